"""Creating, listing, changing, rotating and deleting keys: shared by the management API, the CLI
and the dev stack. A secret is returned once, at creation or rotation, and never stored.

Admin keys carry no member, limits or expiry, and are not rotated: only their name and
``disabled`` change (a new admin key comes from the CLI). No admin key disables or deletes itself.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from meterway.accounts.dal import keys_table
from meterway.accounts.dal.key_admin_store import KeyAdminStore, KeyChanged
from meterway.accounts.dal.key_store import KeyStore, MemberBudgetChanged, MemberUnavailable
from meterway.accounts.dal.member_store import MemberStore
from meterway.accounts.dal.spend_counters import SpendCounters
from meterway.accounts.logic.key_secrets import hash_secret, least_used_shard, mint_key
from meterway.accounts.logic.limits import period_window
from meterway.accounts.logic.members import normalize_member_id
from meterway.accounts.models import ApiKey, KeyKind, KeyLimits, KeyRecord, RetiredSecret
from meterway.core.clock import OutOfCalendar, client_time, in_calendar, utc_iso, utc_now
from meterway.core.errors import Conflict, InvalidRequest, MeterwayError, NotFound

DEFAULT_OVERLAP_SECONDS = 3600
MAX_OVERLAP_SECONDS = 7 * 24 * 3600
# Each live secret is one more item every change of the key writes in its transaction.
MAX_OVERLAPPING_SECRETS = 10
ADMIN_EDITABLE = frozenset({"name", "disabled"})
# A key copies its member's budget; a budget set while the key is written is read this often.
BUDGET_ATTEMPTS = 3


class KeyUsage(Protocol):
    """What the keys' listing shows of their use (the analytics read it from the rollups)."""

    def spend_by_key(self, account_id: str, now: datetime, keys: Collection[str]) -> dict[str, Decimal]:
        """The spend to date of ``keys`` (of others too, where their rows are read with them)."""

    def last_used(self, account_id: str) -> dict[str, str]:
        """When each key was last used (the ``created_at`` of its newest request)."""


@dataclass(frozen=True, slots=True)
class KeyView:
    """A key as the management API shows it: never a secret or a hash."""

    key: ApiKey
    spend_to_date: Decimal
    last_used_at: str | None
    rotating: list[RetiredSecret] | None = None
    # For a key with a spend limit: what it spent in the current period, as counted so far.
    spent_this_period: Decimal | None = None


def check_limits(limits: KeyLimits | None, *, models: Collection[str]) -> KeyLimits:
    """Limits a key may carry: every allowed model is one of ``models``, the catalog's ids (a typo
    would lock a key out)."""
    if limits is None:
        return KeyLimits()
    for name in ("spend_limit_usd", "requests_per_minute", "tokens_per_minute"):
        value = getattr(limits, name)
        if value is not None and (value < (0 if name == "spend_limit_usd" else 1)):
            raise InvalidRequest(f"Invalid 'limits.{name}': {value} is out of range.")
    if limits.allowed_models is not None:
        unknown = [model for model in limits.allowed_models if model not in models]
        if unknown:
            raise InvalidRequest(
                f"Invalid 'limits.allowed_models': unknown model '{unknown[0]}'. GET /v1/models lists the ids.",
                code="model_not_found",
            )
        limits = replace(limits, allowed_models=tuple(dict.fromkeys(limits.allowed_models)))
    return limits


def parse_expiry(text: str | None) -> datetime | None:
    """An expiry as a client wrote it (a date or ISO datetime; without an offset, UTC)."""
    if text is None:
        return None
    try:
        return client_time(text)
    except ValueError as exc:
        raise _bad_expiry(str(exc)) from exc


def expiry(valid_until: datetime | None, now: datetime) -> str | None:
    """A key's expiry as stored (UTC ISO); it must lie in the future. Naive times are UTC."""
    if valid_until is None:
        return None
    try:
        moment = in_calendar(valid_until)
    except OutOfCalendar as exc:
        raise _bad_expiry(str(exc)) from exc
    if moment <= now:
        raise _bad_expiry("it must be in the future")
    return utc_iso(moment)


def _bad_expiry(reason: str) -> InvalidRequest:
    return InvalidRequest(f"Invalid 'valid_until': {reason}.", code="invalid_valid_until")


def create_key(
    keys: KeyStore,
    account_id: str,
    name: str,
    *,
    kind: KeyKind = "api",
    member: str | None = None,
    limits: KeyLimits | None = None,
    valid_until: datetime | None = None,
    now: datetime | None = None,
    models: Collection[str] = frozenset(),
) -> tuple[ApiKey, str]:
    """Mint a key, store its hash, and return it with its secret (shown once, stored never).

    A member must exist in the account and be enabled (404 ``member_not_found``, 400 ``member_disabled``);
    ``allowed_models`` in ``limits`` must be among ``models``, the catalog's ids.
    """
    now = now or utc_now()
    if kind == "admin" and (member is not None or limits is not None or valid_until is not None):
        raise InvalidRequest("Admin keys have no member, limits or expiry.", code="admin_key")
    member_id = normalize_member_id(member) if member is not None else None
    # An API key's usage rows go to its own shard, the one its account's keys use least.
    shard = least_used_shard(k for k in keys.list_keys(account_id) if k.kind == "api") if kind == "api" else None
    key, secret = mint_key(account_id, name, kind=kind, member=member_id, shard=shard)
    key = replace(
        key, limits=check_limits(limits, models=models), valid_until=expiry(valid_until, now), created_at=utc_iso(now)
    )
    for _ in range(BUDGET_ATTEMPTS):
        try:
            keys.put(key, hash_secret(secret))
        except MemberUnavailable as exc:
            raise member_error(exc.member_id, exists=exc.exists) from exc
        except MemberBudgetChanged as changed:
            # The key carries its member's budget (``manage_members.set_budget``).
            key = replace(key, member_budget=changed.budget)
            continue
        return key, secret
    raise Conflict(f"The budget of the member '{member_id}' kept changing; try again.")


def list_keys(keys: KeyStore, account_id: str) -> list[ApiKey]:
    return keys.list_keys(account_id)


def find_key(keys: KeyAdminStore, account_id: str, key_id: str) -> KeyRecord:
    """A key of the caller's account; another account's key, or none, is a 404."""
    record = keys.get_record(account_id, key_id) if key_id.startswith("key_") and len(key_id) <= 64 else None
    if record is None:
        raise NotFound(f"No key '{key_id}' in this account.", code="key_not_found")
    return record


def key_filter(keys: KeyAdminStore, account_id: str, key_id: str | None) -> str | None:
    """A query's key filter: None, or the id of a key of the account (anything else is a 404)."""
    return None if key_id is None else find_key(keys, account_id, key_id).key.key_id


def key_views(
    keys: KeyAdminStore, usage: KeyUsage, account_id: str, now: datetime, counters: SpendCounters | None = None
) -> list[KeyView]:
    """Every key of the account with its spend to date and last use, and (with ``counters``) what
    each key with a spend limit spent in its current period."""
    used = usage.last_used(account_id)
    spend = usage.spend_by_key(account_id, now, used)
    listed = keys.list_keys(account_id)
    periods = period_spend(counters, listed, now) if counters is not None else {}
    return [
        KeyView(key, spend.get(key.key_id, Decimal(0)), used.get(key.key_id), None, periods.get(key.key_id))
        for key in listed
    ]


def period_spend(counters: SpendCounters, listed: list[ApiKey], now: datetime) -> dict[str, Decimal]:
    """What each key with a spend limit spent in the period holding ``now`` (its spend counter)."""
    wanted = {
        key.key_id: keys_table.spend_key(key.key_id, period_window(key.limits.spend_period, now)[0])
        for key in listed
        if key.limits.spend_limit_usd is not None
    }
    held = counters.spent(list(wanted.values()))
    return {key_id: held.get((item["pk"], item["sk"]), Decimal(0)) for key_id, item in wanted.items()}


def key_view(keys: KeyAdminStore, usage: KeyUsage, record: KeyRecord, now: datetime) -> KeyView:
    """One key, with the rotated-out secrets that still work (their display prefix and end)."""
    key = record.key
    rotating = [secret for secret in keys.retired_secrets(record.retired_hashes) if secret.valid_until > utc_iso(now)]
    spend = usage.spend_by_key(key.account_id, now, [key.key_id]).get(key.key_id, Decimal(0))
    return KeyView(key, spend, usage.last_used(key.account_id).get(key.key_id), rotating)


def patch_key(
    keys: KeyAdminStore,
    members: MemberStore,
    record: KeyRecord,
    changes: dict[str, Any],
    *,
    caller: ApiKey,
    now: datetime,
    models: Collection[str] = frozenset(),
) -> KeyRecord:
    """Apply ``changes`` (any of name, disabled, limits, valid_until) to every secret of the key.

    ``limits`` replaces the whole limits object (None: no limits); ``valid_until`` None removes
    the expiry. A rotated-out secret keeps its own, earlier end unless the new expiry is earlier.
    Enabling a key of a disabled member is refused: enable the member first.
    """
    _check_patch(members, record.key, changes, caller)
    new_key, fields = _changed_fields(record.key, changes, now, models)
    if fields:
        shared = {name: value for name, value in fields.items() if name != "valid_until"}
        retired = {
            secret.key_hash: shared | _retired_end(secret, fields, new_key.valid_until)
            for secret in keys.retired_secrets(record.retired_hashes)
        }
        try:
            keys.update(record, fields, {key_hash: own for key_hash, own in retired.items() if own})
        except KeyChanged as exc:
            raise _changed(record.key) from exc
    return replace(record, key=new_key)


def _check_patch(members: MemberStore, key: ApiKey, changes: dict[str, Any], caller: ApiKey) -> None:
    if key.kind == "admin" and not set(changes) <= ADMIN_EDITABLE:
        raise InvalidRequest(
            "Admin keys have no limits or expiry: only 'name' and 'disabled' change.", code="admin_key"
        )
    for name in ("name", "disabled"):
        if name in changes and changes[name] is None:
            raise InvalidRequest(f"Invalid '{name}': it cannot be null.")
    if changes.get("disabled") and key.key_id == caller.key_id:
        raise InvalidRequest("An admin key cannot disable itself.", code="own_key")
    if changes.get("disabled") is False and key.disabled and key.member is not None:
        member = members.get(key.account_id, key.member)
        if member is None or member.disabled:
            raise member_error(key.member, exists=member is not None)


def _changed_fields(
    key: ApiKey, changes: dict[str, Any], now: datetime, models: Collection[str]
) -> tuple[ApiKey, dict[str, Any]]:
    """The key after ``changes``, and the stored fields that change (limits as their item)."""
    new_key = key
    fields: dict[str, Any] = {}
    if "name" in changes:
        new_key = replace(new_key, name=changes["name"])
        fields["name"] = new_key.name
    if "disabled" in changes:
        new_key = replace(new_key, disabled=bool(changes["disabled"]))
        fields["disabled"] = new_key.disabled
    if "limits" in changes:
        new_key = replace(new_key, limits=check_limits(changes["limits"], models=models))
        fields["limits"] = new_key.limits.to_item()
    if "valid_until" in changes:
        new_key = replace(new_key, valid_until=expiry(changes["valid_until"], now))
        fields["valid_until"] = new_key.valid_until
    return new_key, fields


def _retired_end(secret: RetiredSecret, fields: dict[str, Any], key_until: str | None) -> dict[str, Any]:
    if "valid_until" not in fields:
        return {}
    return {"valid_until": min(secret.retired_until, key_until) if key_until else secret.retired_until}


def delete_key(keys: KeyAdminStore, record: KeyRecord, *, caller: ApiKey) -> None:
    """Delete the key and every secret still in overlap: none of them works from now on."""
    if record.key.key_id == caller.key_id:
        raise InvalidRequest("An admin key cannot delete itself.", code="own_key")
    try:
        keys.delete(record)
    except KeyChanged as exc:
        raise _changed(record.key) from exc


def rotate_key(keys: KeyAdminStore, record: KeyRecord, overlap_seconds: int, now: datetime) -> tuple[KeyRecord, str]:
    """A new secret for the key; the old one keeps working for ``overlap_seconds`` (0: stops now).

    Rotated-out secrets whose overlap has ended are deleted on the way.
    """
    key = record.key
    if key.kind == "admin":
        raise InvalidRequest(
            "Admin keys are not rotated: create a new admin key with the CLI, then delete this one.",
            code="admin_key",
        )
    if not 0 <= overlap_seconds <= MAX_OVERLAP_SECONDS:
        raise InvalidRequest(f"Invalid 'overlap_seconds': 0 to {MAX_OVERLAP_SECONDS}.")
    now_iso = utc_iso(now)
    live = [secret for secret in keys.retired_secrets(record.retired_hashes) if secret.valid_until > now_iso]
    keep = [secret.key_hash for secret in live]
    drop = [key_hash for key_hash in record.retired_hashes if key_hash not in keep]
    if overlap_seconds and len(keep) >= MAX_OVERLAPPING_SECRETS:
        raise InvalidRequest(
            f"The key already has {len(keep)} old secrets in overlap: rotate with overlap_seconds 0, or wait.",
            code="too_many_secrets",
        )
    retired = None
    if overlap_seconds:
        overlap_end = utc_iso(now + timedelta(seconds=overlap_seconds))
        until = min(overlap_end, key.valid_until) if key.valid_until else overlap_end
        retired = RetiredSecret(record.key_hash, key.display_prefix, until, overlap_end)
    minted, secret = mint_key(key.account_id, key.name, kind=key.kind, member=key.member)
    new_key = replace(key, display_prefix=minted.display_prefix)
    new_hash = hash_secret(secret)
    try:
        keys.rotate(record, new_key, new_hash, retired=retired, keep=keep, drop=drop)
    except KeyChanged as exc:
        raise _changed(key) from exc
    hashes = (*keep, record.key_hash) if retired else tuple(keep)
    return KeyRecord(new_key, new_hash, hashes), secret


def member_error(member_id: str, *, exists: bool) -> MeterwayError:
    if not exists:
        return NotFound(f"No member '{member_id}' in this account.", code="member_not_found")
    return InvalidRequest(f"The member '{member_id}' is disabled.", code="member_disabled")


def _changed(key: ApiKey) -> Conflict:
    return Conflict(f"The key '{key.key_id}' was rotated or deleted meanwhile; read it again and retry.")
