"""Where a large request export is cut into time slices, for several workers to write at once.

The rollups tell how many requests each hour of the window holds (each day, or month, for long
windows), under the export's filters. The cuts give each slice about the same share, ``slice_rows``
or more, taking records as spread evenly within a bucket, and fall on whole seconds. That is an
estimate: rollups lag the ledger by seconds, and do not count failed attempts' records. A slice
that turns out too small for S3's minimum part is taken over by the slice before it (see
``fan_out``), so a poor estimate costs time, never a row.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any

from meterway.analytics.dal.rollup_store import RollupStore
from meterway.analytics.logic.rollups import Filter
from meterway.analytics.logic.windows import Window
from meterway.core.clock import Granularity, floor, label, parse_label, step

# Each slice owns 10,000 / MAX_SLICES of the upload's part numbers: 500 parts, 2.5 GB at 5 MiB a part.
MAX_SLICES = 20

Bucket = tuple[datetime, datetime, float]  # start, end, records


def request_counts(rollups: RollupStore, job: dict[str, Any], window: Window, now: datetime) -> list[Bucket]:
    """The records of the job's filters per rollup bucket over the window, as the rollups count them.
    A bucket still running at ``now`` ends there: it holds no record from later, so a window that
    ends now keeps all of its records instead of the share of the bucket's whole length."""
    granularity = _granularity(window)
    # With more than one of a key, user and app, the first one's rows: more records than the
    # file's, which only evens the slices less well.
    dimension, value = Filter(job.get("model"), job.get("key_id"), job.get("user"), job.get("app")).rows()
    first, last = floor(window.start, granularity), floor(window.end - timedelta(microseconds=1), granularity)
    rows = rollups.query(
        job["account_id"], granularity, dimension, label(first, granularity), label(last, granularity), keys=[value]
    )
    found = []
    for row in rows:
        if row["value"] == value:
            start = parse_label(row["bucket"], granularity)
            end = max(min(step(start, granularity), now), start + timedelta(seconds=1))
            found.append((start, end, float(row["requests"] + row.get("errors", 0))))
    return found


def _granularity(window: Window) -> Granularity:
    """Hours while they are at most a couple of hundred buckets, then days, then months."""
    span = window.end - window.start
    return "hour" if span <= timedelta(days=8) else "day" if span <= timedelta(days=400) else "month"


def cuts(window: Window, counts: Iterable[Bucket], slice_rows: int, max_slices: int = MAX_SLICES) -> list[datetime]:
    """The bounds of the slices, from ``window.start`` to ``window.end``: just those two when one
    worker should write it all (under two slices' worth of records, or ``slice_rows`` 0)."""
    inside = sorted(_clipped(window, counts))
    total = sum(records for _, _, records in inside)
    slices = min(max_slices, int(round(total, 6) // slice_rows)) if slice_rows > 0 else 1
    bounds = [window.start]
    if slices >= 2:
        for moment in _moments(inside, [total * part / slices for part in range(1, slices)]):
            if bounds[-1] < moment < window.end:
                bounds.append(moment)
    return [*bounds, window.end]


def _clipped(window: Window, counts: Iterable[Bucket]) -> Iterator[Bucket]:
    """The part of each bucket inside the window, with its share of the bucket's records."""
    for start, end, records in counts:
        low, high = max(start, window.start), min(end, window.end)
        if low < high:
            yield low, high, records * ((high - low) / (end - start))


def _moments(buckets: list[Bucket], targets: list[float]) -> Iterator[datetime]:
    """When the running count of records reaches each target (whole seconds, in order)."""
    pending = iter(targets)
    target = next(pending, None)
    before = 0.0
    for start, end, records in buckets:
        while target is not None and records > 0 and before + records >= target:
            yield (start + (end - start) * ((target - before) / records)).replace(microsecond=0)
            target = next(pending, None)
        before += records
