"""Per-key limits, per-member budgets and the account's credit, enforced across every Lambda instance.

A request *reserves* with one round of single-item requests sent at once (see
``quota_store``): its key is read to check it is still enabled, its spend counter where it has a
spend limit, its member's spend under their budget where the member has one, its account's credit
where the account has credit, and one request is added to its minute under its per-minute limits. When the request *settles* (see ``meterway.ledger``), its
ledger record carries its real cost and tokens, which the aggregator adds to the counters.

A request may start while the spend counted so far is below the limit. Spend over a limit is
therefore bounded by the requests in flight (reserved, and not yet counted) when the counted spend
reached the limit; the same holds for tokens per minute. Requests per minute are exact up to
``keys_table.SHARD_WRITES_PER_S`` requests a second; above that the limit is split over shards,
and a request may be refused when its shard is full while another is not.
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from meterway.accounts.dal import keys_table
from meterway.accounts.dal.quota_store import (
    MINUTE_COUNTER_TTL,
    PERIOD_COUNTER_GRACE,
    QuotaStore,
    ReservationRefused,
    Standing,
    member_counter,
)
from meterway.accounts.models import ApiKey, CounterDelta, Reservation, SpendPeriod
from meterway.core.clock import floor, label, seconds_to_next_minute, step, utc_iso
from meterway.core.errors import AuthenticationFailed, MeterwayError, PermissionDenied, QuotaExceeded, RateLimited

# A lifetime budget counts from here: nothing was spent through Meterway before.
LIFETIME_START = datetime(2020, 1, 1, tzinfo=UTC)


def period_window(period: SpendPeriod, now: datetime) -> tuple[str, datetime | None]:
    """The spend period holding ``now``: its label and when the next one starts (UTC)."""
    start = period_start(period, now)
    if period == "daily":
        return label(start, "day"), start + timedelta(days=1)
    if period == "weekly":
        year, week, _ = start.isocalendar()
        return f"{year}-W{week:02d}", start + timedelta(days=7)
    if period == "monthly":
        return label(start, "month"), step(start, "month")
    return "ALL", None


def period_start(period: SpendPeriod, now: datetime) -> datetime:
    """When the spend period holding ``now`` started: 00:00 UTC, Monday, the 1st, or for a
    lifetime budget ``LIFETIME_START``."""
    if period == "daily":
        return floor(now, "day")
    if period == "weekly":
        return floor(now, "day") - timedelta(days=now.astimezone(UTC).weekday())
    if period == "monthly":
        return floor(now, "month")
    return LIFETIME_START


def plan_reservation(key: ApiKey, now: datetime, shard: int | None = None) -> Reservation:
    """The counters a request of ``key`` at ``now`` counts in: its spend period (``ALL`` for a key
    without one), its minute (a shard of it picked at random, or ``shard``), and the account's
    credit. Every key has them, limited or not; the counters of a minute expire a day later, those
    of a spend period a week after it ends."""
    spend_period, next_reset = period_window(key.limits.spend_period, now)
    minute_start = floor(now, "minute")
    shards = keys_table.minute_shards(key.limits.requests_per_minute)
    member: dict[str, Any] = {}
    if key.member is not None and key.member_budget is not None:
        member_period, member_reset = period_window(key.member_budget.spend_period, now)
        member = {
            "member_period": member_period,
            "member_next_reset": member_reset,
            "member_expires_at": int((member_reset + PERIOD_COUNTER_GRACE).timestamp()) if member_reset else None,
        }
    return Reservation(
        key,
        spend_period,
        label(minute_start, "minute"),
        next_reset,
        spend_expires_at=int((next_reset + PERIOD_COUNTER_GRACE).timestamp()) if next_reset else None,
        minute_expires_at=int((minute_start + MINUTE_COUNTER_TTL).timestamp()),
        minute_shard=random.randrange(shards) if shard is None else shard,  # noqa: S311 - spreads load only
        minute_shards=shards,
        **member,
    )


async def reserve(quotas: QuotaStore, key: ApiKey, key_hash: str, now: datetime) -> tuple[Reservation, Standing]:
    """Reserve one request for ``key``, or raise what the client is told: 401 for a key that no
    longer works, 402 for a spend limit or credit used up, 429 for a per-minute limit. With the
    reservation comes what the check read (how far the key stood from its limits)."""
    reservation = plan_reservation(key, now)
    try:
        standing = await quotas.reserve(reservation, key_hash, now)
    except ReservationRefused as refused:
        raise refusal(refused.cause, reservation, now) from refused
    return reservation, standing


class Headroom:
    """What this instance last saw of each key's standing, to judge whether its next request may be
    checked while the upstream is already called (the check is still awaited before anything
    reaches the client). A key is *far* from its limits when it has no per-minute limit (holding
    its minute is a write, made first), and this instance saw, less than ``ttl_s`` ago, its spend
    and its account's credit each under ``share`` of their limit."""

    def __init__(self, ttl_s: float = 30.0, share: Decimal = Decimal("0.8")):
        self._ttl_s = ttl_s
        self._share = share
        self._seen: dict[str, tuple[Standing, float]] = {}

    def note(self, key: ApiKey, standing: Standing) -> None:
        self._seen[key.key_id] = (standing, time.monotonic())

    def forget(self, key: ApiKey) -> None:
        """The key was refused: check it first from now on, until it is seen far again."""
        self._seen.pop(key.key_id, None)

    def far(self, key: ApiKey) -> bool:
        limits = key.limits
        seen = self._seen.get(key.key_id)
        if limits.requests_per_minute is not None or limits.tokens_per_minute is not None or seen is None:
            return False
        standing, at = seen
        if time.monotonic() - at >= self._ttl_s:
            return False
        if limits.spend_limit_usd is not None and (
            standing.spent_usd is None or standing.spent_usd >= limits.spend_limit_usd * self._share
        ):
            return False
        budget = key.member_budget
        if budget is not None and (
            standing.member_spent_usd is None or standing.member_spent_usd >= budget.spend_limit_usd * self._share
        ):
            return False
        credits, left = standing.credits_usd, standing.credit_left_usd
        return credits is None or left is None or left > credits * (1 - self._share)


def refusal(cause: str, reservation: Reservation, now: datetime) -> MeterwayError:
    """The client's error for the reservation condition that failed."""
    if cause == "key":
        return AuthenticationFailed("Invalid, disabled or expired API key.")
    if cause == "spend":
        resets = f" It resets at {utc_iso(reservation.next_reset)}." if reservation.next_reset else ""
        return QuotaExceeded(
            f"This key reached its spend limit of ${reservation.key.limits.spend_limit_usd}.{resets}",
            code="key_spend_limit_reached",
        )
    if cause == "member":
        budget = reservation.key.member_budget
        resets = f" It resets at {utc_iso(reservation.member_next_reset)}." if reservation.member_next_reset else ""
        return QuotaExceeded(
            f"This key's member reached their spend limit of ${budget.spend_limit_usd if budget else '?'}.{resets}",
            code="member_spend_limit_reached",
        )
    if cause == "minute":
        wait = str(seconds_to_next_minute(now))
        return RateLimited("This key is over its per-minute limit.", headers={"retry-after": wait})
    return QuotaExceeded("The account's credit balance is used up: add credit to continue.", code="insufficient_credit")


def counter_deltas(reservation: Reservation, cost: Decimal, tokens: int) -> list[CounterDelta]:
    """What settling a request adds to its counters: its real cost and tokens, and the request
    itself on its minute where it was not held there (a key without a per-minute limit counts its
    requests when its record is counted: no write before the upstream)."""
    key = reservation.key
    deltas: list[CounterDelta] = []
    if reservation.spend_period is not None:
        spend = keys_table.spend_key(key.key_id, reservation.spend_period)
        deltas.append(
            CounterDelta(
                spend["pk"], spend["sk"], {"spent_usd": cost}, reservation.spend_expires_at, reservation.checks_spend
            )
        )
    if reservation.checks_member:
        member = member_counter(reservation)
        deltas.append(
            CounterDelta(member["pk"], member["sk"], {"spent_usd": cost}, reservation.member_expires_at, copied=True)
        )
    if reservation.minute is not None:
        minute = keys_table.minute_key(key.key_id, reservation.minute, reservation.minute_shard)
        counted = {} if reservation.holds_minute else {"requests": 1}
        deltas.append(
            CounterDelta(minute["pk"], minute["sk"], {**counted, "tokens": tokens}, reservation.minute_expires_at)
        )
    balance = keys_table.balance_key(key.account_id)
    # The balance of an account with credit is read through copies; one without credit has none
    # (the aggregator sees which when it reads the balance).
    deltas.append(CounterDelta(balance["pk"], balance["sk"], {"spent_usd": cost}, copied=True))
    return deltas


def check_model_allowed(key: ApiKey, model: str) -> None:
    """A key with ``allowed_models`` may use those models only (403 ``model_not_allowed``)."""
    allowed = key.limits.allowed_models
    if allowed is not None and model not in allowed:
        raise PermissionDenied(
            f"This key may not use '{model}'. Allowed: {', '.join(allowed) or 'none'}.", code="model_not_allowed"
        )
