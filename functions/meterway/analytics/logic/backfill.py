"""In-between rows for the records an older version counted, derived from the calendar rows.

A version before the in-between granularities (10 minutes, 6 hours, 10 days, year) wrote none,
so an account that has such records reads its windows without them before the date its marker
holds (``rollups.start_intermediate``): exact, but up to twice the items. ``backfill`` sets each
in-between row from before that date to the sum of the calendar rows it holds (10 minutes ←
minutes, 6 hours ← hours, 10 days ← days, year ← months), which count every record whatever
version counted it, then moves the marker to the start of time. The ledger may have let old
records expire; the rollups keep them, so they are the source here.

The user's and the app's models got their in-between rows, and the users and the apps their year
rows, later (the ``named-in-between`` change, dated per account as the others): ``backfill``
derives those from before that date likewise, then moves the change to the start of time.

It is exact while the aggregator runs: a row is read before the rows it sums, and replaced only
if its requests and errors are still those read. A record adds to both in one transaction, so one
that lands in between changes the row, the replacement is refused, and the row is read again.
Running it again rewrites nothing.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from meterway.analytics.dal import rollups_table
from meterway.analytics.dal.rollup_store import RollupStore
from meterway.analytics.logic.rollups import (
    ALL_TIME,
    MINUTE_RETENTION,
    cell_models_dimension,
    granularities_of,
    key_models_dimension,
    start_changes,
    start_intermediate,
)
from meterway.analytics.models import Counters, RollupUpdate
from meterway.core.clock import EARLIEST, Granularity, floor, label, parse_label, step
from meterway.core.errors import StorageError

# Each in-between granularity, and the calendar one its rows sum.
SOURCES: dict[Granularity, Granularity] = {"year": "month", "10d": "day", "6h": "hour", "10min": "minute"}
# A row the aggregator keeps changing (this year's, while requests flow) is read again this often.
ATTEMPTS = 50


@dataclass
class Backfill:
    """What a backfill did: rows replaced per granularity, and from when the rows are complete."""

    account_id: str
    complete_from: datetime | None
    written: dict[str, int] = field(default_factory=dict)
    waiting_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class Target:
    """The in-between rows of one account, granularity and dimension."""

    account_id: str
    granularity: Granularity
    dimension: str

    @property
    def source(self) -> Granularity:
        return SOURCES[self.granularity]


def backfill(store: RollupStore, account_id: str, now: datetime) -> Backfill:
    """Derive the account's in-between rows from before its marker, then mark them complete from
    the start of time; then the user's and app's models' and the year rows of users and apps from
    before the ``named-in-between`` change likewise. Does nothing while a batch of an older
    version may still be running (``waiting_until``), and nothing more once done."""
    if store.intermediate_from(account_id) is None:
        # No batch of this version has counted a record of the account yet: date the start now.
        start_intermediate(store, [account_id], now)
    since = store.intermediate_from(account_id)
    report = Backfill(account_id, since)
    if since is None:
        return report
    if since > now:
        report.waiting_until = since
        return report
    if since != ALL_TIME:
        months = store.query(account_id, "month", "key", label(EARLIEST, "month"), label(since, "month"))
        keys = sorted({row["value"] for row in months})
        _derive_before(store, account_id, ["model", *map(key_models_dimension, keys)], since, now, report)
        store.move_intermediate(account_id, since, ALL_TIME)
        report.complete_from = ALL_TIME
    return _backfill_named(store, account_id, now, report)


def _backfill_named(store: RollupStore, account_id: str, now: datetime, report: Backfill) -> Backfill:
    """The in-between rows of the user's and the app's models and the user and app year rows
    from before the account's ``named-in-between`` change."""
    named = start_changes(store, [account_id], now).since(account_id, "named-in-between")
    if named > now:
        report.waiting_until = named
        return report
    if named == ALL_TIME:
        return report
    dimensions = []
    for kind in ("user", "app"):
        months = store.query(account_id, "month", kind, label(EARLIEST, "month"), label(named, "month"))
        dimensions += [cell_models_dimension(kind, value) for value in sorted({row["value"] for row in months})]
    _derive_before(store, account_id, dimensions, named, now, report)
    for kind in ("user", "app"):
        target = Target(account_id, "year", kind)
        last = floor(named - timedelta(microseconds=1), "year")
        report.written["year"] += _derive_all(store, target, floor(EARLIEST, "year"), last)
    store.move_change(account_id, "named-in-between", named, ALL_TIME)
    return report


def _derive_before(
    store: RollupStore, account_id: str, dimensions: list[str], since: datetime, now: datetime, report: Backfill
) -> None:
    """Derive every in-between row of ``dimensions`` from before ``since``."""
    for granularity in SOURCES:
        first, last = _first_bucket(granularity, now), floor(since - timedelta(microseconds=1), granularity)
        targets = [Target(account_id, granularity, d) for d in dimensions if granularity in granularities_of(d)]
        written = sum(_derive_all(store, target, first, last) for target in targets)
        report.written[granularity] = report.written.get(granularity, 0) + written


def _first_bucket(granularity: Granularity, now: datetime) -> datetime:
    """The oldest bucket worth deriving: 10-minute rows are read (and minute rows kept) for the
    last 8 days only, and older minute rows may be gone already."""
    if granularity == "10min":
        return floor(now - MINUTE_RETENTION, "hour") + timedelta(hours=1)
    return floor(EARLIEST, granularity)


def _derive_all(store: RollupStore, target: Target, first: datetime, last: datetime) -> int:
    """Replace each row of buckets ``first``..``last`` that differs from the sum of its calendar
    rows; the number replaced. The rows are read before what they sum."""
    if last < first:
        return 0
    low, high = label(first, target.granularity), label(last, target.granularity)
    rows = store.query(target.account_id, target.granularity, target.dimension, low, high, consistent=True)
    held = {(row["bucket"], row["value"]): Counters().add(row) for row in rows}
    sums = _sums(store, target, first, last)
    changed = [cell for cell in sorted(held.keys() | sums.keys()) if held.get(cell) != sums.get(cell, Counters())]
    for bucket, value in changed:
        _derive(store, target, bucket, value, held.get((bucket, value)), sums.get((bucket, value), Counters()))
    return len(changed)


def _sums(
    store: RollupStore, target: Target, first: datetime, last: datetime, value: str | None = None
) -> dict[tuple[str, str], Counters]:
    """The calendar rows in buckets ``first``..``last``, summed per in-between bucket and value."""
    low = label(first, target.source)
    high = label(step(last, target.granularity) - timedelta(minutes=1), target.source)
    sums: dict[tuple[str, str], Counters] = defaultdict(Counters)
    for row in store.query(target.account_id, target.source, target.dimension, low, high, consistent=True):
        if value in (None, row["value"]):
            bucket = label(parse_label(row["bucket"], target.source), target.granularity)
            sums[(bucket, row["value"])].add(row)
    return sums


def _derive(
    store: RollupStore, target: Target, bucket: str, value: str, held: Counters | None, total: Counters
) -> None:
    """Replace one row with ``total``, reading both again while records keep reaching it."""
    start = parse_label(bucket, target.granularity)
    # A 10-minute row lives as long as the minute rows of its last minute.
    expires = int((step(start, "10min") + MINUTE_RETENTION).timestamp()) if target.granularity == "10min" else None
    for _ in range(ATTEMPTS):
        row = RollupUpdate(
            pk=rollups_table.cell_partition(target.account_id, target.granularity, target.dimension, value),
            sk=rollups_table.cell_sk(bucket, value),
            granularity=target.granularity,
            bucket=bucket,
            dimension=target.dimension,
            value=value,
            deltas=total.as_dict(),
            expires_at=expires,
        )
        if store.replace_counters(row, held):
            return
        again = store.cells(target.account_id, target.granularity, target.dimension, value, [bucket], consistent=True)
        held = Counters().add(again[0]) if again else None
        total = _sums(store, target, start, start, value).get((bucket, value), Counters())
    raise StorageError(f"The {target.granularity} row {bucket} of {value} kept changing: run the backfill again.")
