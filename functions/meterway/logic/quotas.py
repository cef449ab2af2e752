"""Per-key limits and the account's credit, enforced across every Lambda instance.

Before the upstream call a request *reserves*: one DynamoDB transaction checks that its key is
still enabled, adds one request to the key's minute counter under its requests-per-minute and
tokens-per-minute limits, marks one request in flight against its spend period, and does the
same against the account's credit. After the call it *settles*: the ledger record and the
counters' real cost and tokens are written in one transaction.

A request may start while the spend so far is below the limit. Spend over a limit is therefore
bounded by the requests already in flight when the limit was reached (DESIGN invariant 3); the
same holds for tokens per minute. Requests per minute are exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from meterway.logic.keys import ApiKey, SpendPeriod
from meterway.logic.rollups import floor, label, step

MINUTE_COUNTER_TTL = timedelta(days=1)
PERIOD_COUNTER_GRACE = timedelta(days=7)


def period_window(period: SpendPeriod, now: datetime) -> tuple[str, datetime | None]:
    """The spend period holding ``now``: its label and when the next one starts (UTC)."""
    if period == "daily":
        start = floor(now, "day")
        return label(start, "day"), start + timedelta(days=1)
    if period == "weekly":
        start = floor(now, "day") - timedelta(days=now.astimezone(UTC).weekday())
        year, week, _ = start.isocalendar()
        return f"{year}-W{week:02d}", start + timedelta(days=7)
    if period == "monthly":
        start = floor(now, "month")
        return label(start, "month"), step(start, "month")
    return "ALL", None


def quota_pk(key_id: str) -> str:
    return f"QUOTA#{key_id}"


def balance_key(account_id: str) -> dict[str, str]:
    return {"pk": f"ACCOUNT#{account_id}", "sk": "BALANCE"}


@dataclass(frozen=True, slots=True)
class CounterDelta:
    """Numbers to add to one KeysTable item when a request settles."""

    pk: str
    sk: str
    deltas: dict[str, int | Decimal]

    def to_json(self) -> dict[str, Any]:
        return {"pk": self.pk, "sk": self.sk, "deltas": {name: str(value) for name, value in self.deltas.items()}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CounterDelta:
        deltas: dict[str, int | Decimal] = {
            name: Decimal(value) if "." in value or "E" in value else int(value)
            for name, value in data["deltas"].items()
        }
        return cls(data["pk"], data["sk"], deltas)


@dataclass(frozen=True, slots=True)
class Reservation:
    """What a request reserved: the counters its settlement must adjust."""

    key: ApiKey
    spend_sk: str | None = None
    minute_sk: str | None = None
    next_reset: datetime | None = None
    counters: tuple[str, ...] = field(default_factory=tuple)

    def settlement(self, cost: Decimal, tokens: int) -> list[CounterDelta]:
        """The counters' side of settling this request with its real cost and tokens."""
        deltas: list[CounterDelta] = []
        if self.spend_sk:
            deltas.append(CounterDelta(quota_pk(self.key.key_id), self.spend_sk, {"spent_usd": cost, "inflight": -1}))
        if self.minute_sk:
            deltas.append(CounterDelta(quota_pk(self.key.key_id), self.minute_sk, {"tokens": tokens}))
        balance = balance_key(self.key.account_id)
        deltas.append(CounterDelta(balance["pk"], balance["sk"], {"spent_usd": cost, "inflight": -1}))
        return deltas


def plan_reservation(key: ApiKey, now: datetime) -> Reservation:
    limits = key.limits
    spend_sk = next_reset = None
    if limits.spend_limit_usd is not None:
        period, next_reset = period_window(limits.spend_period, now)
        spend_sk = f"SPEND#{period}"
    minute_sk = None
    if limits.requests_per_minute is not None or limits.tokens_per_minute is not None:
        minute_sk = f"MINUTE#{label(floor(now, 'minute'), 'minute')}"
    return Reservation(key, spend_sk, minute_sk, next_reset)


def seconds_to_next_minute(now: datetime) -> int:
    return max(1, int((step(floor(now, "minute"), "minute") - now).total_seconds() + 0.999))
