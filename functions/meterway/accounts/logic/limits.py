"""Per-key limits and the account's credit, enforced across every Lambda instance.

Before the upstream call a request *reserves*: one DynamoDB transaction checks that its key is
still enabled, adds one request to the key's minute counter under its requests-per-minute and
tokens-per-minute limits, marks one request in flight against its spend period, and does the
same against the account's credit. When the request *settles* (see ``meterway.ledger``), its
ledger record and the counters' real cost and tokens are written in one transaction.

A request may start while the spend so far is below the limit. Spend over a limit is therefore
bounded by the requests already in flight when the limit was reached; the same holds for tokens
per minute. Requests per minute are exact.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from meterway.accounts.dal import keys_table
from meterway.accounts.dal.quota_store import MINUTE_COUNTER_TTL, PERIOD_COUNTER_GRACE, QuotaStore, ReservationRefused
from meterway.accounts.models import ApiKey, CounterDelta, Reservation, SpendPeriod
from meterway.core.clock import floor, label, seconds_to_next_minute, step, utc_iso
from meterway.core.dynamo import Contention
from meterway.core.errors import AuthenticationFailed, MeterwayError, PermissionDenied, QuotaExceeded, RateLimited


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


def plan_reservation(key: ApiKey, now: datetime) -> Reservation:
    """The counters a request of ``key`` at ``now`` counts in: its spend period (``ALL`` for a key
    without one), its minute, and the account's credit. Every key has them, limited or not; the
    counters of a minute expire a day later, those of a spend period a week after it ends."""
    spend_period, next_reset = period_window(key.limits.spend_period, now)
    minute_start = floor(now, "minute")
    return Reservation(
        key,
        spend_period,
        label(minute_start, "minute"),
        next_reset,
        spend_expires_at=int((next_reset + PERIOD_COUNTER_GRACE).timestamp()) if next_reset else None,
        minute_expires_at=int((minute_start + MINUTE_COUNTER_TTL).timestamp()),
    )


def reserve(quotas: QuotaStore, key: ApiKey, key_hash: str, now: datetime) -> Reservation:
    """Reserve one request for ``key``, or raise what the client is told: 401 for a key that no
    longer works, 402 for a spend limit or credit used up, 429 for a per-minute limit."""
    reservation = plan_reservation(key, now)
    try:
        quotas.reserve(reservation, key_hash, now)
    except ReservationRefused as refused:
        raise refusal(refused.cause, reservation, now) from refused
    except Contention as exc:
        # Raced other reservations of the same key: the client may simply retry.
        raise RateLimited(
            "Too many concurrent requests for this key; retry shortly.", headers={"retry-after": "1"}
        ) from exc
    return reservation


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
    if cause == "minute":
        wait = str(seconds_to_next_minute(now))
        return RateLimited("This key is over its per-minute limit.", headers={"retry-after": wait})
    return QuotaExceeded("The account's credit balance is used up: add credit to continue.", code="insufficient_credit")


def counter_deltas(reservation: Reservation, cost: Decimal, tokens: int) -> list[CounterDelta]:
    """What settling a request adds to its counters: its real cost and tokens, one request less in
    flight where it was held, and the request itself where it was not (a key without that kind
    of limit counts its requests here, in the same transaction as the record: no extra round trip)."""
    key = reservation.key
    deltas: list[CounterDelta] = []
    if reservation.spend_period is not None:
        spend = keys_table.spend_key(key.key_id, reservation.spend_period)
        held = {"inflight": -1} if reservation.holds_spend else {}
        deltas.append(CounterDelta(spend["pk"], spend["sk"], {"spent_usd": cost, **held}, reservation.spend_expires_at))
    if reservation.minute is not None:
        minute = keys_table.minute_key(key.key_id, reservation.minute)
        counted = {} if reservation.holds_minute else {"requests": 1}
        deltas.append(
            CounterDelta(minute["pk"], minute["sk"], {**counted, "tokens": tokens}, reservation.minute_expires_at)
        )
    balance = keys_table.balance_key(key.account_id)
    deltas.append(CounterDelta(balance["pk"], balance["sk"], {"spent_usd": cost, "inflight": -1}))
    return deltas


def check_model_allowed(key: ApiKey, model: str) -> None:
    """A key with ``allowed_models`` may use those models only (403 ``model_not_allowed``)."""
    allowed = key.limits.allowed_models
    if allowed is not None and model not in allowed:
        raise PermissionDenied(
            f"This key may not use '{model}'. Allowed: {', '.join(allowed) or 'none'}.", code="model_not_allowed"
        )
