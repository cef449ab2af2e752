"""Creating, listing and changing members.

Disabling a member disables every key of theirs, each with all its secrets, so no old secret in
its rotation overlap keeps working either. Enabling the member again leaves the keys disabled:
each one is enabled on purpose (``PATCH /api/keys/{id}``), never by accident.

A member's budget caps what all their keys spend together in a period. It is copied onto each of
their keys (and their secrets in overlap), so that the proxy's reserve knows it from the key it
already reads, and counted in a counter of its own (``keys_table.member_spend_key``) that each
request's record adds its cost to, as a key's spend counter. Setting a budget starts a new counter
(its ``since``), seeded with what the member spent in the period so far (the rollups' member rows):
the member, then the counter, then the keys, so that no key checks a counter not yet seeded. The
requests in flight while it is set may be missing from both, or in both: the same bound as a key's
spend over its limit.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from meterway.accounts.dal import keys_table
from meterway.accounts.dal.key_admin_store import KeyAdminStore, KeyChanged
from meterway.accounts.dal.member_store import MemberStore
from meterway.accounts.dal.quota_store import PERIOD_COUNTER_GRACE
from meterway.accounts.dal.spend_counters import SpendCounters
from meterway.accounts.logic.limits import period_start, period_window
from meterway.accounts.logic.manage_keys import patch_key
from meterway.accounts.logic.members import normalize_member_id
from meterway.accounts.models import ApiKey, Budget, KeyRecord, Member, SpendPeriod
from meterway.core.clock import floor, utc_iso, utc_now
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


class MemberSpend(Protocol):
    """What a member spent in a window (the analytics read it from the rollups)."""

    def spent(self, account_id: str, member_id: str, start: datetime, end: datetime) -> Decimal:
        """The member's spend from ``start`` to ``end`` (whole minutes)."""


def set_budget(
    members: MemberStore,
    keys: KeyAdminStore,
    counters: SpendCounters,
    spend: MemberSpend,
    member: Member,
    budget: tuple[Decimal, SpendPeriod] | None,
    now: datetime,
) -> Member:
    """Give the member a budget (a spend limit and its period) from ``now``, or none; every key of
    theirs then carries it."""
    new = Budget(budget[0], budget[1], utc_iso(now)) if budget is not None else None
    updated = members.update(member.account_id, member.member_id, {"budget": new.to_item() if new else None})
    if updated is None:
        raise NotFound(f"No member '{member.member_id}' in this account.", code="member_not_found")
    if new is not None:
        period, next_reset = period_window(new.spend_period, now)
        end = floor(now, "minute") + timedelta(minutes=1)
        so_far = spend.spent(member.account_id, member.member_id, period_start(new.spend_period, now), end)
        counter = keys_table.member_spend_key(member.account_id, member.member_id, new.since, period)
        expires = int((next_reset + PERIOD_COUNTER_GRACE).timestamp()) if next_reset else None
        counters.add(counter, so_far, expires)
    for record in keys.list_records(member.account_id):
        if record.key.member == member.member_id and record.key.member_budget != new:
            _give_budget(keys, record, new)
    return updated


def budget_spent(counters: SpendCounters, listed: list[Member], now: datetime) -> dict[str, Decimal]:
    """What each member with a budget spent under it in the period holding ``now``."""
    wanted = {
        member.member_id: keys_table.member_spend_key(
            member.account_id,
            member.member_id,
            member.budget.since,
            period_window(member.budget.spend_period, now)[0],
        )
        for member in listed
        if member.budget is not None
    }
    held = counters.spent(list(wanted.values()))
    return {member_id: held.get((key["pk"], key["sk"]), Decimal(0)) for member_id, key in wanted.items()}


def _give_budget(keys: KeyAdminStore, record: KeyRecord, budget: Budget | None) -> None:
    """Copy the member's budget onto the key's current secret and its secrets in overlap."""
    fields = {"member_budget": budget.to_item() if budget else None}
    live = {secret.key_hash: dict(fields) for secret in keys.retired_secrets(record.retired_hashes)}
    try:
        keys.update(record, fields, live)
    except KeyChanged as exc:
        raise Conflict(f"The key '{record.key.key_id}' changed meanwhile; set the budget again.") from exc


def _path_member_id(member_id: str) -> str:
    try:
        return normalize_member_id(member_id)
    except InvalidRequest as exc:
        raise NotFound(f"No member '{member_id}' in this account.", code="member_not_found") from exc
