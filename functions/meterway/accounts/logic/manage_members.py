"""Creating, listing and changing members.

Disabling a member disables every key of theirs, each with all its secrets, so no old secret in
its rotation overlap keeps working either. Enabling the member again leaves the keys disabled:
each one is enabled on purpose (``PATCH /api/keys/{id}``), never by accident.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from meterway.accounts.dal.key_admin_store import KeyAdminStore
from meterway.accounts.dal.member_store import MemberStore
from meterway.accounts.logic.manage_keys import patch_key
from meterway.accounts.logic.members import normalize_member_id
from meterway.accounts.models import ApiKey, Member
from meterway.core.clock import utc_iso, utc_now
from meterway.core.errors import Conflict, InvalidRequest, NotFound


def create_member(
    members: MemberStore, account_id: str, member_id: str, name: str | None = None, *, now: datetime | None = None
) -> Member:
    """A new member; an id the account already has is a 409 ``member_exists``."""
    member = Member(account_id, normalize_member_id(member_id), name, utc_iso(now or utc_now()))
    if not members.create(member):
        raise Conflict(f"The member '{member.member_id}' already exists.", code="member_exists")
    return member


def ensure_member(members: MemberStore, account_id: str, member_id: str) -> Member:
    """The member, created when missing (the CLI and the local stack bootstrap keys this way)."""
    existing = members.get(account_id, normalize_member_id(member_id))
    if existing is not None:
        return existing
    member = Member(account_id, normalize_member_id(member_id), None, utc_iso(utc_now()))
    members.create(member)
    return members.get(account_id, member.member_id) or member


def list_members(members: MemberStore, account_id: str) -> list[Member]:
    return sorted(members.list_members(account_id), key=lambda member: member.member_id)


def find_member(members: MemberStore, account_id: str, member_id: str) -> Member:
    member = members.get(account_id, _path_member_id(member_id))
    if member is None:
        raise NotFound(f"No member '{member_id}' in this account.", code="member_not_found")
    return member


def patch_member(
    members: MemberStore,
    keys: KeyAdminStore,
    member: Member,
    changes: dict[str, Any],
    *,
    caller: ApiKey,
    now: datetime,
) -> Member:
    """Change a member's name or ``disabled``; disabling also disables every key of theirs.

    The member is disabled first, so a retry after a failure part-way finds it disabled and
    disables the keys that are left (new keys for a disabled member are refused meanwhile).
    """
    if "disabled" in changes and changes["disabled"] is None:
        raise InvalidRequest("Invalid 'disabled': it cannot be null.")
    fields: dict[str, Any] = {name: changes[name] for name in ("name", "disabled") if name in changes}
    if fields:
        updated = members.update(member.account_id, member.member_id, fields)
        if updated is None:
            raise NotFound(f"No member '{member.member_id}' in this account.", code="member_not_found")
        member = updated
    if changes.get("disabled"):
        for record in keys.list_records(member.account_id):
            # A key's secrets are disabled together, so a disabled key has none left enabled.
            if record.key.member == member.member_id and not record.key.disabled:
                patch_key(keys, members, record, {"disabled": True}, caller=caller, now=now)
    return member


def _path_member_id(member_id: str) -> str:
    try:
        return normalize_member_id(member_id)
    except InvalidRequest as exc:
        raise NotFound(f"No member '{member_id}' in this account.", code="member_not_found") from exc
