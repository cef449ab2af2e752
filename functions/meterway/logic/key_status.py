"""What ``GET /v1/key`` tells a key about itself, and the allowed-models rule."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from meterway.errors import PermissionDenied
from meterway.logic.keys import ApiKey, utc_iso
from meterway.logic.quotas import plan_reservation, seconds_to_next_minute


def check_model_allowed(key: ApiKey, model: str) -> None:
    allowed = key.limits.allowed_models
    if allowed is not None and model not in allowed:
        raise PermissionDenied(
            f"This key may not use '{model}'. Allowed: {', '.join(allowed) or 'none'}.", code="model_not_allowed"
        )


def _money(value: Any) -> str:
    return format(Decimal(str(value or 0)).normalize(), "f") if value else "0"


def key_status(key: ApiKey, state: dict[str, dict[str, Any]], now: datetime) -> dict[str, Any]:
    limits = key.limits
    reservation = plan_reservation(key, now)
    spend, minute, balance = state.get("spend", {}), state.get("minute", {}), state.get("balance", {})
    spent = Decimal(str(spend.get("spent_usd", 0)))
    result: dict[str, Any] = {
        "id": key.key_id,
        "name": key.name,
        "member": key.member,
        "valid_until": key.valid_until,
        "limits": {
            "spend_limit_usd": _money(limits.spend_limit_usd) if limits.spend_limit_usd is not None else None,
            "spend_period": limits.spend_period,
            "requests_per_minute": limits.requests_per_minute,
            "tokens_per_minute": limits.tokens_per_minute,
            "allowed_models": list(limits.allowed_models) if limits.allowed_models is not None else None,
        },
        "usage": {
            "spend_usd": _money(spent),
            "in_flight": int(spend.get("inflight", 0)),
            "requests_this_minute": int(minute.get("requests", 0)),
            "tokens_this_minute": int(minute.get("tokens", 0)),
        },
        "remaining": {
            "spend_usd": _money(max(limits.spend_limit_usd - spent, Decimal(0)))
            if limits.spend_limit_usd is not None
            else None,
            "requests_this_minute": max(limits.requests_per_minute - int(minute.get("requests", 0)), 0)
            if limits.requests_per_minute is not None
            else None,
            "tokens_this_minute": max(limits.tokens_per_minute - int(minute.get("tokens", 0)), 0)
            if limits.tokens_per_minute is not None
            else None,
        },
        "next_reset": utc_iso(reservation.next_reset) if reservation.next_reset else None,
        "minute_resets_in_s": seconds_to_next_minute(now),
    }
    credits = balance.get("credits_usd")
    result["balance_usd"] = (
        _money(Decimal(str(credits)) - Decimal(str(balance.get("spent_usd", 0)))) if credits is not None else None
    )
    return result
