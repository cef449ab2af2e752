"""What ``GET /v1/key`` tells a key about itself: its limits, what it used, what remains."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from meterway.accounts.dal.quota_store import QuotaStore
from meterway.accounts.logic.limits import plan_reservation
from meterway.accounts.models import ApiKey, Reservation
from meterway.core.clock import seconds_to_next_minute, utc_iso
from meterway.core.money import money, optional_money, to_decimal


def read_key_status(quotas: QuotaStore, key: ApiKey, now: datetime) -> dict[str, Any]:
    """The key's status from its counters as they stand at ``now``."""
    return key_status(key, quotas.counters(plan_reservation(key, now)), now)


def key_status(key: ApiKey, state: dict[str, dict[str, Any]], now: datetime) -> dict[str, Any]:
    limits = key.limits
    reservation = plan_reservation(key, now)
    spend, minute, balance = state.get("spend", {}), state.get("minute", {}), state.get("balance", {})
    spent = to_decimal(spend.get("spent_usd"))
    requests, tokens = int(minute.get("requests", 0)), int(minute.get("tokens", 0))
    credits = balance.get("credits_usd")
    return {
        "id": key.key_id,
        "name": key.name,
        "member": key.member,
        "valid_until": key.valid_until,
        "limits": {
            "spend_limit_usd": optional_money(limits.spend_limit_usd),
            "spend_period": limits.spend_period,
            "requests_per_minute": limits.requests_per_minute,
            "tokens_per_minute": limits.tokens_per_minute,
            "allowed_models": list(limits.allowed_models) if limits.allowed_models is not None else None,
        },
        "usage": {
            "spend_usd": money(spent),
            "requests_this_minute": requests,
            "tokens_this_minute": tokens,
        },
        "remaining": {
            "spend_usd": _left(limits.spend_limit_usd, spent, money),
            "requests_this_minute": _left(limits.requests_per_minute, requests, int),
            "tokens_this_minute": _left(limits.tokens_per_minute, tokens, int),
        },
        "next_reset": utc_iso(reservation.next_reset) if reservation.next_reset else None,
        "minute_resets_in_s": seconds_to_next_minute(now),
        "balance_usd": money(to_decimal(credits) - to_decimal(balance.get("spent_usd")))
        if credits is not None
        else None,
        "member_budget": _member_budget(key, reservation, state.get("member", {})),
    }


def _member_budget(key: ApiKey, reservation: Reservation, counter: dict[str, Any]) -> dict[str, Any] | None:
    """The budget of the key's member, shared with their other keys: what it allows, what the
    member spent in the period so far, what remains."""
    budget = key.member_budget
    if budget is None or not reservation.checks_member:
        return None
    spent = to_decimal(counter.get("spent_usd"))
    return {
        "spend_limit_usd": money(budget.spend_limit_usd),
        "spend_period": budget.spend_period,
        "spent_usd": money(spent),
        "remaining_usd": money(max(budget.spend_limit_usd - spent, Decimal(0))),
        "next_reset": utc_iso(reservation.member_next_reset) if reservation.member_next_reset else None,
    }


def _left(limit: Any, used: Any, shown: Callable[[Any], Any]) -> Any:
    """What a limit leaves, never below zero, as ``shown``; None where there is no limit."""
    return None if limit is None else shown(max(limit - used, 0))
