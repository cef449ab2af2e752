"""Prepaid credit: top-ups add to an account's credits, the proxy adds each request's cost to
what it spent. Credit is opt-in: an account that never had a top-up has no credit limit, and its
balance is None (``null`` in the API).

The BALANCE item's ``credits_usd`` is the limit the proxy checks against ``spent_usd``: the first
top-up sets it to what was spent until then plus its amount, so that spending before credit is
not charged to it. What an account is shown as its credits is the sum of its top-ups; what it spent
before its first top-up is the difference."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from meterway.accounts.dal.balance_store import BalanceStore
from meterway.core.clock import utc_iso, utc_now
from meterway.core.errors import InvalidRequest
from meterway.core.money import to_decimal

MAX_TOPUP_USD = Decimal(1_000_000)
MAX_DECIMAL_PLACES = 10
RECENT_TOPUPS = 50


@dataclass(frozen=True, slots=True)
class Balance:
    #: The limit: what was spent before the first top-up, plus every top-up; None before credit.
    credits_usd: Decimal | None
    spent_usd: Decimal = Decimal(0)
    topups: list[dict[str, Any]] = field(default_factory=list)
    #: The sum of every top-up (``account_balance`` reads it; 0 where not read).
    topped_up_usd: Decimal = Decimal(0)

    @property
    def balance_usd(self) -> Decimal | None:
        """Credits left; None while no credit was ever added (no limit)."""
        return None if self.credits_usd is None else self.credits_usd - self.spent_usd

    @property
    def spent_before_credit_usd(self) -> Decimal:
        """What was spent before the first top-up, which the credit does not pay for."""
        return Decimal(0) if self.credits_usd is None else self.credits_usd - self.topped_up_usd


def balance_of(
    item: dict[str, Any] | None, topups: list[dict[str, Any]] | None = None, topped_up: Decimal = Decimal(0)
) -> Balance:
    item = item or {}
    credits = item.get("credits_usd")
    return Balance(
        credits_usd=None if credits is None else to_decimal(credits),
        spent_usd=to_decimal(item.get("spent_usd")),
        topups=topups or [],
        topped_up_usd=topped_up,
    )


def account_balance(store: BalanceStore, account_id: str) -> Balance:
    """Credits, spend, the sum of the top-ups, and the last top-ups (newest first). The sum is
    read between two reads of the BALANCE item that agree on its ``version`` (each top-up adds one
    to it with its amount): a top-up made meanwhile is in both or in neither."""
    item = store.get(account_id)
    topped_up = Decimal(0)
    while item and item.get("credits_usd") is not None:
        topped_up = store.topped_up(account_id)
        again = store.get(account_id) or {}
        if again.get("version") == item.get("version"):
            break
        item = again
    return balance_of(item, store.topups(account_id, RECENT_TOPUPS), topped_up)


def balance_usd(store: BalanceStore, account_id: str) -> Decimal | None:
    return balance_of(store.get(account_id)).balance_usd


def top_up(
    store: BalanceStore,
    account_id: str,
    amount_usd: Decimal,
    *,
    note: str | None,
    created_by: str,
    now: datetime | None = None,
) -> Balance:
    """Add credit; the first top-up turns prepaid credit on for the account."""
    check_amount(amount_usd)
    topup = {
        "topup_id": "top_" + uuid.uuid4().hex[:20],
        "amount_usd": amount_usd,
        "created_by": created_by,
        "created_at": utc_iso(now or utc_now()),
    }
    if note:
        topup["note"] = note
    store.add_topup(account_id, topup)
    return account_balance(store, account_id)


def check_amount(amount_usd: Decimal) -> None:
    exponent = amount_usd.as_tuple().exponent
    if not amount_usd.is_finite() or not 0 < amount_usd <= MAX_TOPUP_USD:
        raise InvalidRequest(f"Invalid 'amount_usd': more than 0 and at most {MAX_TOPUP_USD}.", code="invalid_amount")
    if isinstance(exponent, int) and exponent < -MAX_DECIMAL_PLACES:
        raise InvalidRequest(
            f"Invalid 'amount_usd': at most {MAX_DECIMAL_PLACES} decimal places.", code="invalid_amount"
        )
