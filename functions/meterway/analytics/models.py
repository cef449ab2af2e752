"""Rollups as the analytics read and write them: counters summed per bucket and dimension."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, get_args

from meterway.accounts.models import CounterDelta
from meterway.core.clock import Granularity
from meterway.core.money import to_decimal
from meterway.ledger.models import TOKEN_FIELDS

# What every rollup item counts, in order: requests served (in full or in part), requests that
# failed (nothing served, nothing billed), each token class, cost.
COUNTERS: tuple[str, ...] = ("requests", "errors", *TOKEN_FIELDS, "cost_usd")
# The groupings of activity and of its exports: each a rollup dimension. ``user`` and ``app`` are
# what the client named (``attribution.py``).
GroupBy = Literal["model", "key", "member", "provider", "user", "app"]
GROUP_BY: tuple[str, ...] = get_args(GroupBy)
# What Activity's cards show, and its detailed exports break down by a grouping: spend, tokens
# (every class: input, cache writes and reads, output with its reasoning part), requests served.
Metric = Literal["cost", "tokens", "requests"]
METRICS: tuple[str, ...] = get_args(Metric)
METRIC_NAMES: dict[str, str] = {"cost": "Spend", "tokens": "Tokens", "requests": "Requests"}
# The field of a summary (``reports.summary``) that holds each metric's amount.
METRIC_FIELD: dict[str, str] = {"cost": "cost", "tokens": "total_tokens", "requests": "requests"}
# The counters of the rollups that each metric's files carry.
METRIC_COUNTERS: dict[str, tuple[str, ...]] = {
    "cost": ("cost_usd",),
    "tokens": TOKEN_FIELDS,
    "requests": ("requests", "errors"),
}
# Each grouping as a title names it: "Tokens by API key".
GROUP_NAMES: dict[str, str] = {
    "model": "model",
    "key": "API key",
    "member": "member",
    "provider": "provider",
    "user": "user",
    "app": "app",
}
# The value of the ``total`` dimension, and the member of keys that have none (the user or app of
# a request that named none too).
TOTAL = "*"
NO_MEMBER = "(none)"


@dataclass(slots=True)
class Counters:
    """A sum of rollup counters."""

    requests: int = 0
    errors: int = 0
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
        self.cost_usd += to_decimal(row.get("cost_usd") or 0)
        return self

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in COUNTERS}

    def less(self, part: Counters) -> Counters:
        """These counters without ``part`` (a part of them)."""
        return Counters(**{name: getattr(self, name) - getattr(part, name) for name in COUNTERS})


def records_of(figures: dict[str, Any]) -> int:
    """The ledger records that figures of the API (``reports.summary``) count: requests and errors."""
    return int(figures["requests"]) + int(figures.get("errors") or 0)


@dataclass(frozen=True, slots=True)
class RollupUpdate:
    """Counters to add to one rollup item (``pk``/``sk`` as ``rollups_table`` spells them)."""

    pk: str
    sk: str
    granularity: Granularity
    bucket: str
    dimension: str
    value: str
    deltas: dict[str, int | Decimal]
    expires_at: int | None = None


@dataclass(frozen=True, slots=True)
class LastUse:
    """When a key was used by one request (its ``created_at``); an admin key by a call of the
    management API."""

    account_id: str
    key_id: str
    at: str
    admin: bool = False


@dataclass(frozen=True, slots=True)
class Contribution:
    """One ledger record's share of the rollups, the key use it records, and what it adds to its
    key's and account's counters in the keys table."""

    request_id: str
    updates: list[RollupUpdate]
    use: LastUse | None = None
    counters: list[CounterDelta] = field(default_factory=list)
    #: The request failed: it counts as an error, not as a request (``rollups.deltas_of``).
    failed: bool = False


# A record is counted in two parts, each exactly once with its own marker: the ``account`` part (the
# cells every record of the account shares: total, model, member, provider, and the account's
# balance) and the ``key`` part (its key's cells and counters). A batch writes each shared cell once.
# A ``recount`` part moves a failed request counted as a request by a version before the errors
# were counted apart into its cells' errors (``recount.recount_errors``), once, with its own marker.
# An ``attribution`` part adds a record from before its account's ``attribution`` date to its user
# and app cells (``recount.add_attribution``), once, with its own marker.
PartKind = Literal["account", "key", "recount", "attribution"]


# Changes in how records are counted, each dated per account from when every record is counted so
# (``rollups.start_changes``): in two parts; with failed requests as errors, apart from requests;
# by user and app; with in-between rows of the user's and the app's models and year rows of the
# users and the apps (``named-in-between``: from then on they are complete, ``backfill`` derives
# them before).
Change = Literal["parts", "errors-apart", "attribution", "named-in-between"]


@dataclass(frozen=True, slots=True)
class Part:
    """One part of a record's contribution: what one marker guards. ``group`` is the account (the
    account part) or the key (the key part): parts of a group are planned together. ``legacy``:
    the record may have been counted whole by a version before the parts (one marker for both),
    so the account part checks that marker too."""

    request_id: str
    kind: PartKind
    group: str
    updates: list[RollupUpdate]
    counters: list[CounterDelta] = field(default_factory=list)
    use: LastUse | None = None
    legacy: bool = False


@dataclass(slots=True)
class BatchOutcome:
    """Request ids of a batch: newly counted, counted before (skipped), or not written (retry)."""

    applied: set[str] = field(default_factory=set)
    duplicates: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)
