"""Rollups: usage summed per account × granularity × bucket × dimension.

Every ledger record adds its counts to one bucket of each granularity (minute, hour, day, month)
in each dimension (total, model, key, member, and the key's models). Windows are then read from
the coarsest buckets that cover them exactly, so a query costs a number of items that grows with
the number of buckets, not with the number of requests (DESIGN invariant 5).

All times are UTC. Bucket labels sort as text in time order within a granularity.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from meterway.logic.usage import TOKEN_FIELDS

Granularity = Literal["minute", "hour", "day", "month"]
GRANULARITIES: tuple[Granularity, ...] = ("month", "day", "hour", "minute")  # coarsest first
Dimension = Literal["total", "model", "key", "member"]

# Minute buckets are kept this long (DynamoDB TTL); the coarser ones stay.
MINUTE_RETENTION = timedelta(days=8)
NO_MEMBER = "(none)"
TOTAL = "*"

COUNTERS: tuple[str, ...] = ("requests", *TOKEN_FIELDS, "cost_usd")
_LABEL_FORMAT: dict[Granularity, str] = {
    "minute": "%Y-%m-%dT%H:%M",
    "hour": "%Y-%m-%dT%H",
    "day": "%Y-%m-%d",
    "month": "%Y-%m",
}


def floor(moment: datetime, granularity: Granularity) -> datetime:
    """The start of the bucket that holds ``moment``."""
    moment = moment.astimezone(UTC)
    if granularity == "minute":
        return moment.replace(second=0, microsecond=0)
    if granularity == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    if granularity == "day":
        return moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def step(moment: datetime, granularity: Granularity) -> datetime:
    """The start of the next bucket after the one starting at ``moment``."""
    if granularity == "minute":
        return moment + timedelta(minutes=1)
    if granularity == "hour":
        return moment + timedelta(hours=1)
    if granularity == "day":
        return moment + timedelta(days=1)
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    return moment.replace(year=year, month=month)


def label(moment: datetime, granularity: Granularity) -> str:
    return moment.astimezone(UTC).strftime(_LABEL_FORMAT[granularity])


def parse_label(text: str, granularity: Granularity) -> datetime:
    return datetime.strptime(text, _LABEL_FORMAT[granularity]).replace(tzinfo=UTC)


def buckets(start: datetime, end: datetime, granularity: Granularity) -> list[datetime]:
    """Bucket starts from ``start`` (aligned) up to, not including, ``end``."""
    result, cursor = [], floor(start, granularity)
    while cursor < end:
        result.append(cursor)
        cursor = step(cursor, granularity)
    return result


@dataclass(frozen=True, slots=True)
class Span:
    """Consecutive buckets of one granularity: ``first`` .. ``last`` inclusive."""

    granularity: Granularity
    first: datetime
    last: datetime


def decompose(start: datetime, end: datetime) -> list[Span]:
    """Cover [start, end) exactly with the fewest, coarsest buckets: months inside, then days,
    hours and minutes towards the edges. Both ends must be whole minutes."""
    spans: list[Span] = []
    cursor = start
    while cursor < end:
        granularity = next(g for g in GRANULARITIES if floor(cursor, g) == cursor and step(cursor, g) <= end)
        following = step(cursor, granularity)
        if spans and spans[-1].granularity == granularity:
            spans[-1] = Span(granularity, spans[-1].first, cursor)
        else:
            spans.append(Span(granularity, cursor, cursor))
        cursor = following
    return spans


@dataclass(frozen=True, slots=True)
class RollupUpdate:
    """Counters to add to one rollup item."""

    pk: str
    sk: str
    granularity: Granularity
    bucket: str
    dimension: str
    value: str
    deltas: dict[str, int | Decimal]
    expires_at: int | None = None


def partition(account_id: str, granularity: Granularity, dimension: str) -> str:
    return f"{account_id}#{granularity}#{dimension}"


def key_models_dimension(key_id: str) -> str:
    """The per-key model breakdown: what ``/api/usage?key=`` reads."""
    return f"key-model:{key_id}"


def deltas_of(item: dict[str, Any]) -> dict[str, int | Decimal]:
    deltas: dict[str, int | Decimal] = {name: int(item.get(name) or 0) for name in COUNTERS[1:-1]}
    deltas["requests"] = 1
    deltas["cost_usd"] = Decimal(str(item.get("cost_usd") or 0))
    return deltas


def rollup_updates(item: dict[str, Any]) -> list[RollupUpdate]:
    """The updates one ledger record makes: 4 granularities × 5 dimensions."""
    created = datetime.strptime(item["created_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    deltas = deltas_of(item)
    account = item["account_id"]
    dimensions = (
        ("total", TOTAL),
        ("model", item["model"]),
        ("key", item["key_id"]),
        ("member", item.get("member") or NO_MEMBER),
        (key_models_dimension(item["key_id"]), item["model"]),
    )
    updates = []
    for granularity in GRANULARITIES:
        bucket = label(floor(created, granularity), granularity)
        expires = int((created + MINUTE_RETENTION).timestamp()) if granularity == "minute" else None
        for dimension, value in dimensions:
            updates.append(
                RollupUpdate(
                    pk=partition(account, granularity, dimension),
                    sk=f"{bucket}#{value}",
                    granularity=granularity,
                    bucket=bucket,
                    dimension=dimension,
                    value=value,
                    deltas=deltas,
                    expires_at=expires,
                )
            )
    return updates


@dataclass(slots=True)
class Counters:
    """A sum of rollup counters."""

    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cache_creation_tokens: int = 0
    cache_creation_5m_tokens: int = 0
    cache_creation_1h_tokens: int = 0
    cache_read_tokens: int = 0
    total_tokens: int = 0
    cost_usd: Decimal = Decimal(0)

    def add(self, row: dict[str, Any]) -> Counters:
        for name in COUNTERS[:-1]:
            setattr(self, name, getattr(self, name) + int(row.get(name) or 0))
        self.cost_usd += Decimal(str(row.get("cost_usd") or 0))
        return self

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in COUNTERS}


@dataclass(frozen=True, slots=True)
class Contribution:
    """One ledger record's share of the rollups."""

    request_id: str
    updates: list[RollupUpdate]


def merge(contributions: list[Contribution]) -> list[RollupUpdate]:
    """One update per rollup item, with the deltas of every contribution to it added up."""
    merged: dict[tuple[str, str], RollupUpdate] = {}
    for contribution in contributions:
        for update in contribution.updates:
            key = (update.pk, update.sk)
            known = merged.get(key)
            if known is None:
                merged[key] = update
                continue
            deltas = {name: known.deltas[name] + update.deltas[name] for name in known.deltas}
            expires = max(filter(None, (known.expires_at, update.expires_at)), default=None)
            merged[key] = RollupUpdate(
                known.pk, known.sk, known.granularity, known.bucket, known.dimension, known.value, deltas, expires
            )
    return list(merged.values())


def plan_chunks(contributions: list[Contribution], limit: int = 100) -> list[list[Contribution]]:
    """Group contributions so that each group's markers plus its distinct rollup items fit in one
    transaction of at most ``limit`` items (DynamoDB's TransactWriteItems limit is 100)."""
    chunks: list[list[Contribution]] = []
    current: list[Contribution] = []
    keys: set[tuple[str, str]] = set()
    for contribution in contributions:
        own = {(update.pk, update.sk) for update in contribution.updates}
        if current and len(current) + 1 + len(keys | own) > limit:
            chunks.append(current)
            current, keys = [], set()
        current.append(contribution)
        keys |= own
    if current:
        chunks.append(current)
    return chunks
