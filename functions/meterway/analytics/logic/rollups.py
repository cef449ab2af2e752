"""Rollups: usage summed per account × granularity × bucket × dimension.

Every ledger record of a client request adds its counts to one bucket of each calendar granularity
(minute, hour, day, month) in each dimension (total, model, key, member, provider, user, app, and
the key's, the user's and the app's models), to one bucket of each in-between granularity
(10 minutes, 6 hours, 10 days, year) in the model and the key's models dimensions, and of each but
the 10 minutes in the user's and the app's models, and to its year in the user and app
dimensions: 56 rows. The record of
an attempt that failed before a fallback (``attempt_of``) adds nothing: it billed nothing, and the
request it was made for is counted by its own record. A request served (in full or in part) adds to ``requests``, one that failed to
``errors`` (``deltas_of``; see ``recount`` for the records of the versions before). Windows are
then read from the coarsest buckets that cover them exactly, so a query costs a number of items
that grows with the number of buckets, not with the number of requests.

The in-between granularities exist for the per-model tables of ``/api/usage``, which read a
window's buckets × models: with them an edge of a window costs at most 9 minutes, 5 ten-minutes,
5 hours, 3 six-hours, 10 days, 2 ten-days and 11 months, instead of 59 minutes, 23 hours and 30
days. Rows written before they existed have none: an account's marker says from when they are
complete (``start_intermediate``; for the user's and the app's models, and the user and app
year rows, the later of it and the ``named-in-between`` change), and ``decompose`` uses them only
from then on. The user and app year rows rank a year's users for activity (``reports``).

All times are UTC. Bucket labels sort as text in time order within a granularity.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, get_args

from meterway.accounts.models import CounterDelta
from meterway.analytics.dal import rollups_table
from meterway.analytics.dal.rollup_store import AlreadyCounted, RollupStore
from meterway.analytics.models import (
    NO_MEMBER,
    TOTAL,
    BatchOutcome,
    Change,
    Contribution,
    LastUse,
    Part,
    RollupUpdate,
)
from meterway.core.clock import GRANULARITIES, Granularity, floor, label, parse_utc_iso, step, utc_now
from meterway.core.dynamo import MAX_TRANSACTION_ITEMS
from meterway.core.errors import StorageError
from meterway.core.money import to_decimal
from meterway.core.observability import logger
from meterway.ledger.attribution import cell_value
from meterway.ledger.models import TOKEN_FIELDS

# The dimensions of a record's key part; every other one is the account's, shared by its keys.
_KEY_DIMENSIONS = ("key",)
_ACCOUNT_COUNTERS = "ACCOUNT#"

# Every dimension is written in these: activity, the dashboard and the charts read them.
CALENDAR: tuple[Granularity, ...] = ("month", "day", "hour", "minute")
# Minute and 10-minute buckets are kept this long (DynamoDB TTL); the coarser ones stay.
MINUTE_RETENTION = timedelta(days=8)
SUB_HOUR: tuple[Granularity, ...] = ("10min", "minute")
# The in-between rows are complete from the start of time (an account new to this version).
ALL_TIME = datetime.min.replace(tzinfo=UTC)
# An aggregator of an older version still running when this one first counts an account's record
# ends within its 60-second timeout: every record from 15 minutes on is counted by this version.
TAKEOVER_MARGIN = timedelta(minutes=15)


@dataclass(frozen=True, slots=True)
class Span:
    """Consecutive buckets of one granularity: ``first`` .. ``last`` inclusive."""

    granularity: Granularity
    first: datetime
    last: datetime


def decompose(
    start: datetime,
    end: datetime,
    intermediate_from: datetime | None = ALL_TIME,
    granularities: tuple[Granularity, ...] = GRANULARITIES,
) -> list[Span]:
    """Cover [start, end) exactly with the fewest, coarsest buckets of ``granularities`` (a
    dimension's: ``granularities_of``): years inside, then months, 10 days, days, 6 hours, hours,
    10 minutes and minutes towards the edges. Both ends must be whole minutes. The in-between
    granularities serve only buckets that start at or after ``intermediate_from`` (None: none
    do), where their rows are complete."""
    spans: list[Span] = []
    cursor = start
    while cursor < end:
        granularity = next(g for g in granularities if _fits(cursor, g, end) and _usable(g, cursor, intermediate_from))
        following = step(cursor, granularity)
        if spans and spans[-1].granularity == granularity:
            spans[-1] = Span(granularity, spans[-1].first, cursor)
        else:
            spans.append(Span(granularity, cursor, cursor))
        cursor = following
    return spans


def _fits(cursor: datetime, granularity: Granularity, end: datetime) -> bool:
    """Whether the bucket of ``granularity`` starting at ``cursor`` lies inside [cursor, end)."""
    if floor(cursor, granularity) != cursor:
        return False
    try:
        return step(cursor, granularity) <= end
    except (OverflowError, ValueError):  # the year 10000
        return False


def _usable(granularity: Granularity, start: datetime, intermediate_from: datetime | None) -> bool:
    return granularity in CALENDAR or (intermediate_from is not None and start >= intermediate_from)


_KEY_MODELS = "key-model:"
# The user's and the app's models: what ``/api/usage?user=`` and ``?app=`` read.
_NAMED_MODELS = {"user": "user-model:", "app": "app-model:"}
# The user's and the app's models have no 10-minute rows: a user's minute rows are few (a window's
# edge reads as many items within the budget either way: ``bench/analytics_search.py``), and a
# batch writes a row for each of its users (2 rows, 4 write units, a record fewer).
NAMED_GRANULARITIES: tuple[Granularity, ...] = tuple(g for g in GRANULARITIES if g != "10min")
# The calendar granularities coarsest first, and with the year (the user and app dimensions').
_CALENDAR_ROWS: tuple[Granularity, ...] = tuple(g for g in GRANULARITIES if g in CALENDAR)
_RANKED_ROWS: tuple[Granularity, ...] = ("year", *_CALENDAR_ROWS)
# The dimensions counted from an account's ``attribution`` date on (``parts_of``).
_ATTRIBUTION = ("user", "app", *_NAMED_MODELS.values())


def key_models_dimension(key_id: str) -> str:
    """The per-key model breakdown: what ``/api/usage?key=`` reads."""
    return f"{_KEY_MODELS}{key_id}"


def named_models_dimension(kind: str, value: str | None) -> str:
    """A user's or an app's (``kind``) model breakdown, by the user or app a record names."""
    return cell_models_dimension(kind, cell_value(kind, value))


def cell_models_dimension(kind: str, cell: str) -> str:
    """A user's or an app's (``kind``) model breakdown, by its rollup value (a cell's)."""
    return f"{_NAMED_MODELS[kind]}{cell}"


@dataclass(frozen=True, slots=True)
class Filter:
    """What a usage query or a requests export selects: a model; one of a key, a user and an app."""

    model: str | None = None
    key_id: str | None = None
    user: str | None = None
    app: str | None = None

    @property
    def owner(self) -> tuple[str, str] | None:
        """The key, user or app filtered on, as (dimension, value)."""
        named = [
            (kind, value) for kind, value in (("key", self.key_id), ("user", self.user), ("app", self.app)) if value
        ]
        return named[0] if named else None

    def models_dimension(self) -> str:
        """The dimension of the per-model rows the filter reads: the key's, the user's, the app's
        models, or every model's."""
        owner = self.owner
        if owner is None:
            return "model"
        kind, value = owner
        return key_models_dimension(value) if kind == "key" else named_models_dimension(kind, value)

    def rows(self) -> tuple[str, str]:
        """The dimension and value whose rows hold exactly what the filter selects: one model of a
        key, user or app; a key, user or app; a model; or (no filter) the account's total."""
        owner = self.owner
        if owner and self.model:
            return self.models_dimension(), self.model
        if owner:
            kind, value = owner
            return kind, value if kind == "key" else cell_value(kind, value)
        if self.model:
            return "model", self.model
        return "total", TOTAL


def filter_rows(model: str | None, key_id: str | None) -> tuple[str, str]:
    """The rows of a filter of a model and a key (``Filter.rows``)."""
    return Filter(model, key_id).rows()


def has_in_between(dimension: str) -> bool:
    """Whether ``dimension`` has in-between rows: only the four per-model ones do (every model's,
    a key's, a user's and an app's models). The others (total, key, member, provider, user, app)
    have calendar rows, which is all activity, the dashboard and the chart read of them: a window
    of theirs is cut into calendar buckets."""
    return dimension == "model" or dimension.startswith((_KEY_MODELS, *_NAMED_MODELS.values()))


def granularities_of(dimension: str) -> tuple[Granularity, ...]:
    """The granularities a dimension's rows are written in, coarsest first: the calendar ones, the
    in-between ones for a per-model dimension (``NAMED_GRANULARITIES`` for a user's or an app's
    models), and years for the user and app dimensions (which rank a year's users:
    ``reports.top_values``)."""
    if has_in_between(dimension):
        return NAMED_GRANULARITIES if attributed(dimension) else GRANULARITIES
    return _RANKED_ROWS if dimension in _ATTRIBUTION[:2] else _CALENDAR_ROWS


def deltas_of(item: dict[str, Any]) -> dict[str, int | Decimal]:
    """What a record adds to each of its cells: a request served (in full or in part) or an error
    (nothing served), its tokens and its cost."""
    deltas: dict[str, int | Decimal] = {name: int(item.get(name) or 0) for name in TOKEN_FIELDS}
    deltas["requests"], deltas["errors"] = (0, 1) if failed(item) else (1, 0)
    deltas["cost_usd"] = to_decimal(item.get("cost_usd") or 0)
    return deltas


def counted(item: dict[str, Any]) -> bool:
    """Whether a ledger record counts in the rollups: every one but a failed attempt's."""
    return not item.get("attempt_of")


def failed(item: dict[str, Any]) -> bool:
    """Whether a record's request failed: nothing was served and nothing billed."""
    return item.get("status") == "error"


def as_request(update: RollupUpdate) -> RollupUpdate:
    """A failed request's update as the versions before the errors apart counted it: a request."""
    return replace(update, deltas={**update.deltas, "requests": 1, "errors": 0})


def rollup_updates(item: dict[str, Any]) -> list[RollupUpdate]:
    """The updates one ledger record makes: 4 calendar granularities × 10 dimensions, 4 in-between
    granularities × the model and the key's models dimensions, 3 × the user's and the app's
    models, and the user's and the app's year."""
    created = parse_utc_iso(item["created_at"])
    deltas = deltas_of(item)
    account = item["account_id"]
    user, app = item.get("user"), item.get("app")
    dimensions = (
        ("total", TOTAL),
        ("key", item["key_id"]),
        ("member", item.get("member") or NO_MEMBER),
        ("provider", item["provider"]),
        ("model", item["model"]),
        (key_models_dimension(item["key_id"]), item["model"]),
        ("user", cell_value("user", user)),
        ("app", cell_value("app", app)),
        (named_models_dimension("user", user), item["model"]),
        (named_models_dimension("app", app), item["model"]),
    )
    expires = int((created + MINUTE_RETENTION).timestamp())
    written = [(dimension, value, granularities_of(dimension)) for dimension, value in dimensions]
    updates = []
    for granularity in GRANULARITIES:
        bucket = label(created, granularity)
        for dimension, value, granularities in written:
            if granularity not in granularities:
                continue
            updates.append(
                RollupUpdate(
                    pk=rollups_table.cell_partition(account, granularity, dimension, value),
                    sk=rollups_table.cell_sk(bucket, value),
                    granularity=granularity,
                    bucket=bucket,
                    dimension=dimension,
                    value=value,
                    deltas=deltas,
                    expires_at=expires if granularity in SUB_HOUR else None,
                )
            )
    return updates


def contribution(item: dict[str, Any]) -> Contribution:
    """A ledger record's rollup updates, its key's use, and the counter deltas it carries."""
    use = LastUse(item["account_id"], item["key_id"], item["created_at"])
    counters = [CounterDelta.from_item(counter) for counter in item.get("counters", [])]
    return Contribution(item["request_id"], rollup_updates(item), use, counters, failed(item))


def merged_counters(contributions: list[Contribution] | list[Part]) -> list[CounterDelta]:
    """One delta per counter item, with every contribution's to it added up: a busy key's
    counters are written once a batch."""
    merged: dict[tuple[str, str], CounterDelta] = {}
    for contribution in contributions:
        for counter in contribution.counters:
            known = merged.get((counter.pk, counter.sk))
            if known is None:
                merged[(counter.pk, counter.sk)] = CounterDelta(
                    counter.pk, counter.sk, dict(counter.deltas), counter.expires_at, counter.copied
                )
                continue
            if counter.copied and not known.copied:
                known = merged[(counter.pk, counter.sk)] = replace(known, copied=True)
            for name, value in counter.deltas.items():
                known.deltas[name] = known.deltas.get(name, 0) + value
    return list(merged.values())


def merge(contributions: list[Contribution] | list[Part]) -> list[RollupUpdate]:
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


def latest_uses(contributions: list[Contribution] | list[Part]) -> list[LastUse]:
    """Each key's latest use among ``contributions``."""
    latest: dict[tuple[str, str], LastUse] = {}
    for contribution in contributions:
        use = contribution.use
        if use is not None:
            known = latest.get((use.account_id, use.key_id))
            if known is None or use.at > known.at:
                latest[(use.account_id, use.key_id)] = use
    return list(latest.values())


def parts_of(contribution: Contribution, changes: Changes) -> list[Part]:
    """A record's account part (the cells of the total, model, member and provider dimensions,
    and its account's counters) and its key part (the cells of its key and of its key's models,
    and its key's counters). ``changes``: from when each account's records are counted in parts
    (a record from before may have been counted whole by an older version), and with their
    failed requests as errors (a failed request from before counts as a request, as an older
    version counted it, and ``recount`` moves it)."""
    if contribution.use is None:
        return [Part(contribution.request_id, "key", "", contribution.updates, contribution.counters)]
    account, key_id = contribution.use.account_id, contribution.use.key_id
    created = parse_utc_iso(contribution.use.at)
    updates = contribution.updates
    if created < changes.since(account, "attribution"):
        # An older version counted it without its user and app: ``recount.add_attribution`` adds them.
        updates = [update for update in updates if not attributed(update.dimension)]
    if contribution.failed and created < changes.since(account, "errors-apart"):
        updates = [as_request(update) for update in updates]
    keyed = [u for u in updates if _of_key(u.dimension)]
    shared = [u for u in updates if not _of_key(u.dimension)]
    accounts = [c for c in contribution.counters if c.pk.startswith(_ACCOUNT_COUNTERS)]
    keys = [c for c in contribution.counters if not c.pk.startswith(_ACCOUNT_COUNTERS)]
    legacy = created < changes.since(account, "parts")
    return [
        Part(contribution.request_id, "account", account, shared, accounts, legacy=legacy),
        Part(contribution.request_id, "key", key_id, keyed, keys, contribution.use),
    ]


def in_between_from(store: RollupStore, account_id: str, dimension: str) -> datetime | None:
    """From when ``dimension``'s in-between rows are complete (None: not at all): the account's
    in-between marker; for a user's or an app's models, the later of it and the account's
    ``named-in-between`` change (a version before wrote them in calendar granularities only)."""
    if not has_in_between(dimension):
        return None
    since = store.intermediate_from(account_id)
    if since is None or not attributed(dimension):
        return since
    named = store.changed_from(account_id, "named-in-between")
    return None if named is None else max(since, named)


def attributed(dimension: str) -> bool:
    """Whether ``dimension`` is one of the user's or the app's (counted from the ``attribution`` date)."""
    return dimension in _ATTRIBUTION[:2] or dimension.startswith(_ATTRIBUTION[2:])


def _of_key(dimension: str) -> bool:
    return dimension in _KEY_DIMENSIONS or dimension.startswith(_KEY_MODELS)


def plan_chunks(parts: list[Part], limit: int = MAX_TRANSACTION_ITEMS) -> list[list[Part]]:
    """Group parts so that each group's markers (and checks of older markers) plus its distinct
    rollup and counter items fit in one transaction of at most ``limit`` items, one kind a group.
    The parts of one account or key are planned together, so that a batch writes an account's
    shared cells once or twice, and each key's cells once, however many records share them."""
    chunks: list[list[Part]] = []
    current: list[Part] = []
    keys: set[tuple[str, str, str]] = set()
    guards = 0
    for part in sorted(parts, key=lambda part: (part.kind, part.group, _affinity(part))):
        own = {("rollup", update.pk, update.sk) for update in part.updates}
        own |= {("counter", counter.pk, counter.sk) for counter in part.counters}
        cost = 1 + (part.legacy and part.kind == "account")
        if current and (current[0].kind != part.kind or guards + cost + len(keys | own) > limit):
            chunks.append(current)
            current, keys, guards = [], set(), 0
        current.append(part)
        keys |= own
        guards += cost
    if current:
        chunks.append(current)
    return chunks


def _affinity(part: Part) -> tuple[str, str]:
    """A part's model and user: parts alike share most of their cells (the per-model rows, the
    user's), so planned next to each other they fill a transaction with fewer distinct items, and
    a batch of many models and users takes fewer transactions, each writing fewer cells again."""
    model = next((update.value for update in part.updates if has_in_between(update.dimension)), "")
    user = next((update.value for update in part.updates if update.dimension == "user"), "")
    return model, user


def count_records(store: RollupStore, contributions: list[Contribution], now: datetime | None = None) -> BatchOutcome:
    """Add many records' counters, each part exactly once, merged into as few writes as fit. A
    part counted before is skipped; a write that fails leaves its records to be retried. ``now``
    (the aggregator's clock) dates the in-between rows' start and the parts' start for an account
    seen for the first time."""
    outcome = BatchOutcome()
    accounts = sorted({contribution.use.account_id for contribution in contributions if contribution.use})
    try:
        start_intermediate(store, accounts, now or utc_now())
        changes = start_changes(store, accounts, now or utc_now())
    except StorageError:
        # Nothing was counted: every record is left to be retried, as a failed write leaves them.
        outcome.failed = {contribution.request_id for contribution in contributions}
        return outcome
    parts = [part for contribution in contributions for part in parts_of(contribution, changes)]
    done = write_parts(store, parts)
    _spread_copies(store, parts, done)
    for contribution in contributions:
        request_id = contribution.request_id
        if request_id in done.failed:
            outcome.failed.add(request_id)
        elif all((request_id, part.kind) in done.duplicates for part in parts_of(contribution, changes)):
            outcome.duplicates.add(request_id)
        else:
            outcome.applied.add(request_id)
    return outcome


def write_parts(store: RollupStore, parts: list[Part]) -> PartsDone:
    """Write each part once, in as few transactions as fit (``plan_chunks``)."""
    done = PartsDone()
    for chunk in plan_chunks(parts):
        _count_chunk(store, chunk, done)
    return done


class PartsDone:
    """What became of a batch's parts: (request id, kind) counted now or before; request ids of
    which some part was not written, or whose counters' copies were not set."""

    def __init__(self) -> None:
        self.applied: set[tuple[str, str]] = set()
        self.duplicates: set[tuple[str, str]] = set()
        self.failed: set[str] = set()


def _spread_copies(store: RollupStore, parts: list[Part], done: PartsDone) -> None:
    """Bring the read copies of the counters the batch counted (or had counted before) up to date.
    When that fails, the records are left to be retried: counted already, they only spread again."""
    counted = [part for part in parts if (part.request_id, part.kind) in done.applied | done.duplicates]
    try:
        store.spread_copies([(c.pk, c.sk) for part in counted for c in part.counters if c.copied])
    except StorageError as failed:
        logger.warning("counter copies not set; their records are retried", extra={"error": _cause(failed)})
        done.failed |= {part.request_id for part in counted if any(c.copied for c in part.counters)}


def start_intermediate(store: RollupStore, account_ids: list[str], now: datetime) -> None:
    """Record, once per account, from when its in-between rows are complete: from the start of
    time for an account without rollups (every record of it is counted by this version), else
    from ``now`` plus ``TAKEOVER_MARGIN`` (records before may have been counted by an older one)."""
    for account_id in account_ids:
        if store.intermediate_from(account_id) is None:
            since = now + TAKEOVER_MARGIN if store.has_rollups(account_id) else ALL_TIME
            store.start_intermediate(account_id, since)


@dataclass(frozen=True, slots=True)
class Changes:
    """From when each account's records are counted as each change says."""

    starts: dict[tuple[str, Change], datetime]

    def since(self, account_id: str, change: Change) -> datetime:
        return self.starts.get((account_id, change), ALL_TIME)


def start_changes(store: RollupStore, account_ids: list[str], now: datetime) -> Changes:
    """From when each account's records are counted in two parts, with failed requests as errors,
    and by user and app, each recorded once per account as ``start_intermediate`` records its start: a record
    from before may have been counted by an older version (whole, under the one marker its key
    part now uses; a failed request as a request; without its user and app)."""
    starts = {}
    for account_id in account_ids:
        for change in get_args(Change):
            since = store.changed_from(account_id, change)
            if since is None:
                store.start_change(
                    account_id, change, now + TAKEOVER_MARGIN if store.has_rollups(account_id) else ALL_TIME
                )
                since = store.changed_from(account_id, change)
            starts[(account_id, change)] = since or ALL_TIME
    return Changes(starts)


def count_record(store: RollupStore, contribution: Contribution, now: datetime | None = None) -> bool:
    """Add one record's counters, once; False when it was counted before."""
    outcome = count_records(store, [contribution], now)
    if outcome.failed:
        raise StorageError("The rollups table did not accept the update.")
    return contribution.request_id in outcome.applied


def _count_chunk(store: RollupStore, chunk: list[Part], done: PartsDone) -> None:
    """One write for the chunk; the parts counted before are dropped and the rest written again."""
    while chunk:
        try:
            store.add(chunk, merge(chunk), latest_uses(chunk), merged_counters(chunk))
        except AlreadyCounted as counted:
            done.duplicates |= {
                (part.request_id, part.kind) for part in chunk if part.request_id in counted.request_ids
            }
            chunk = [part for part in chunk if part.request_id not in counted.request_ids]
            continue
        except StorageError as failed:
            logger.warning(
                "rollups write failed; its records are retried",
                extra={"records": len(chunk), "error": _cause(failed)},
            )
            done.failed |= {part.request_id for part in chunk}
            return
        done.applied |= {(part.request_id, part.kind) for part in chunk}
        return


def _cause(error: Exception) -> str:
    """What DynamoDB said of a failed write (its error code and message, and a cancelled
    transaction's reasons): no record's content, which can hold a user's name."""
    response = getattr(error.__cause__, "response", None) or {}
    detail = response.get("Error", {})
    reasons = [reason.get("Code") for reason in response.get("CancellationReasons", [])]
    return f"{detail.get('Code')}: {detail.get('Message')} {reasons or ''}".strip()
