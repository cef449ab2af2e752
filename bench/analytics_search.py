"""The worst window: searched over every window the API accepts, at 1M requests a month.

``TrafficRollups`` is a RollupStore whose rows exist as uniformly random traffic would make them
exist, without generating the records: 1M requests a month (22.4 a minute) for three years up to
``NOW``, spread evenly over 20 models (4 providers), 50 keys and 10 members. A row of a bucket and
value exists with probability 1 - e^-λ, λ being the requests that bucket and value expect (a model
expects 1.1 requests a minute, so about a third of its minute rows are missing; every hour row
exists). Each row's draw is a hash of its key, so every query sees the same table. Minute rows
exist for their 8 days only. The counters are meaningless (one request a row): the search counts
items, and ``analytics_reads`` checks exactness against the real write path.

The search runs the real ``reports`` functions on that store for every endpoint and filter: the
windows of ``/api/usage`` (random ones of every length and edge, then hill-climbing from the worst
by moving either edge by a minute, 10 minutes, an hour, 6 hours, a day, 10 days, a month or a
year while ``parse_window`` still accepts it), ``/api/activity`` for each period and grouping,
and the dashboard, both at ``NOW``.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from meterway.analytics.dal.rollups_table import bucket_range, partition
from meterway.analytics.logic import reports
from meterway.analytics.logic.rollups import MINUTE_RETENTION
from meterway.analytics.logic.windows import Window, parse_window
from meterway.analytics.models import TOTAL
from meterway.core.clock import Granularity, floor, label, parse_label, step, utc_iso
from meterway.core.errors import InvalidRequest

NOW = datetime(2026, 10, 31, 23, 59, 59, tzinfo=UTC)
HISTORY_START = datetime(2023, 11, 1, tzinfo=UTC)
PER_MINUTE = 1_000_000 / (31 * 24 * 60)
PROVIDERS = ("openai", "anthropic", "google", "mistral")
MODELS = tuple(f"{PROVIDERS[i % 4]}/bench-model-{i:02d}" for i in range(20))
MEMBERS = tuple(f"member{i:02d}@example.com" for i in range(10))
KEYS = tuple(f"key_bench{i:02d}" for i in range(50))
ACCOUNT = "acct_bench"
FILTER_KEY, FILTER_MODEL = KEYS[7], MODELS[3]
# Requests a value of each dimension expects, as a share of the account's.
SHARES = {"total": 1.0, "model": 1 / 20, "key": 1 / 50, "member": 1 / 10, "provider": 1 / 4}
VALUES = {"total": (TOTAL,), "model": MODELS, "key": KEYS, "member": MEMBERS, "provider": PROVIDERS}
SURE = 1 - 1e-12


def values_of(dimension: str) -> tuple[tuple[str, ...], float]:
    if dimension.startswith("key-model:"):
        return MODELS, 1 / (len(KEYS) * len(MODELS))
    return VALUES[dimension], SHARES[dimension]


def _drawn(pk: str, sk: str) -> float:
    digest = hashlib.blake2b(f"{pk}|{sk}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


class TrafficRollups:
    """The rows 1M requests a month would leave (see the module's docstring); counts items read
    as ``DynamoRollupStore`` does, and records every row it returns (``seen``)."""

    def __init__(self, history_start: datetime = HISTORY_START, now: datetime = NOW):
        self.history_start, self.now = history_start, now
        self.items_read = 0
        self.seen: dict[tuple[str, str], dict[str, Any]] = {}

    def _lasting(self, granularity: Granularity) -> datetime:
        """The oldest time whose rows of ``granularity`` still exist."""
        if granularity == "minute":
            return max(self.history_start, self.now - MINUTE_RETENTION)
        return self.history_start

    def _chance(self, granularity: Granularity, start: datetime, share: float) -> float:
        """The probability that a value with ``share`` of the requests has a row in the bucket."""
        end = step(start, granularity)
        overlap = (min(end, self.now) - max(start, self._lasting(granularity))).total_seconds() / 60
        return 1 - math.exp(-PER_MINUTE * overlap * share) if overlap > 0 else 0.0

    def _starts(self, granularity: Granularity, first: str, last: str) -> Iterator[datetime]:
        cursor = max(parse_label(first, granularity), floor(self._lasting(granularity), granularity))
        last_start = min(parse_label(last, granularity), floor(self.now, granularity))
        while cursor <= last_start:
            yield cursor
            cursor = step(cursor, granularity)

    def query(
        self, account_id: str, granularity: Granularity, dimension: str, first: str, last: str
    ) -> list[dict[str, Any]]:
        bucket_range(first, last)  # the same arguments the real store takes
        pk = partition(account_id, granularity, dimension)
        values, share = values_of(dimension)
        rows = []
        for start in self._starts(granularity, first, last):
            chance, bucket = self._chance(granularity, start, share), label(start, granularity)
            for value in sorted(values):
                sk = f"{bucket}#{value}"
                if chance >= SURE or (chance > 0 and _drawn(pk, sk) < chance):
                    rows.append({"bucket": bucket, "value": value, "requests": 1})
                    self.seen[(pk, sk)] = rows[-1]
        self.items_read += len(rows)
        return rows

    def last_used(self, account_id: str) -> dict[str, str]:
        return {}


# --- the endpoints and their filters ------------------------------------------------------------

Measure = Callable[[TrafficRollups, Window], Any]
USAGE: dict[str, Measure] = {
    "/api/usage": lambda store, window: reports.usage_summary(store, ACCOUNT, window),
    "/api/usage?key=": lambda store, window: reports.usage_summary(store, ACCOUNT, window, key_id=FILTER_KEY),
    "/api/usage?model=": lambda store, window: reports.usage_summary(store, ACCOUNT, window, model=FILTER_MODEL),
    "/api/usage?key=&model=": lambda store, window: reports.usage_summary(
        store, ACCOUNT, window, model=FILTER_MODEL, key_id=FILTER_KEY
    ),
}
FIXED: dict[str, Callable[[TrafficRollups], Any]] = {
    **{
        f"/api/activity?period={period}&group_by={group}": (
            lambda store, period=period, group=group: reports.activity(store, ACCOUNT, period, group, NOW, names={})
        )
        for period in reports.PERIODS
        for group in ("model", "key", "member", "provider")
    },
    "/api/dashboard": lambda store: reports.dashboard(store, ACCOUNT, NOW, recent=[]),
}


def items_read(measure: Measure, window: Window) -> int:
    store = TrafficRollups()
    measure(store, window)
    return store.items_read


# --- the search ---------------------------------------------------------------------------------

MOVES = (
    timedelta(minutes=1),
    timedelta(minutes=10),
    timedelta(hours=1),
    timedelta(hours=6),
    timedelta(days=1),
    timedelta(days=10),
    timedelta(days=31),
    timedelta(days=365),
)
ALIGNMENTS: tuple[Granularity, ...] = ("minute", "hour", "day", "month")
SPAN = (HISTORY_START - timedelta(days=400), NOW + timedelta(days=400))


def accepted(start: datetime, end: datetime) -> Window | None:
    """The window as the API reads it, or None when the API refuses it."""
    try:
        return parse_window(utc_iso(start), utc_iso(end), NOW)
    except (InvalidRequest, OverflowError, ValueError):
        return None


def random_edge(rng: random.Random) -> datetime:
    """Anywhere in the history, most often near now (where minutes exist), aligned or not."""
    if rng.random() < 0.4:
        moment = NOW - timedelta(minutes=rng.randrange(9 * 24 * 60))
    else:
        seconds = (SPAN[1] - SPAN[0]).total_seconds()
        moment = SPAN[0] + timedelta(seconds=rng.random() * seconds)
    return floor(moment, rng.choice(ALIGNMENTS))


def random_window(rng: random.Random) -> Window | None:
    first = random_edge(rng)
    length = timedelta(minutes=math.exp(rng.uniform(0, math.log(50 * 365 * 24 * 60))))
    second = floor(first + length, "minute") if rng.random() < 0.5 else random_edge(rng)
    if rng.random() < 0.5 and second > NOW:
        second = floor(NOW - timedelta(minutes=rng.randrange(60)), "minute")
    return accepted(min(first, second), max(first, second))


@dataclass
class Found:
    endpoint: str
    window: Window | None
    items: int
    evaluated: int


def climb(measure: Measure, window: Window, items: int, budget: int) -> tuple[Window, int, int]:
    """Moves an edge while that reads more, until no move does (or ``budget`` evaluations)."""
    evaluated = 0
    improved = True
    while improved and evaluated < budget:
        improved = False
        for move in MOVES:
            for sign in (1, -1):
                for edge in ("start", "end"):
                    start = window.start + sign * move if edge == "start" else window.start
                    end = window.end + sign * move if edge == "end" else window.end
                    if start >= end or (candidate := accepted(start, end)) is None:
                        continue
                    evaluated += 1
                    count = items_read(measure, candidate)
                    if count > items:
                        window, items, improved = candidate, count, True
    return window, items, evaluated


def search_usage(endpoint: str, measure: Measure, *, samples: int, climbs: int, seed: int = 7) -> Found:
    rng = random.Random(seed)
    tried: list[tuple[int, Window]] = []
    while len(tried) < samples:
        window = random_window(rng)
        if window is not None:
            tried.append((items_read(measure, window), window))
    tried.sort(key=lambda pair: -pair[0])
    best = Found(endpoint, None, -1, samples)
    for items, window in tried[:climbs]:
        window, items, evaluated = climb(measure, window, items, budget=400)
        best.evaluated += evaluated
        if items > best.items:
            best.window, best.items = window, items
    return best


def search(*, samples: int, climbs: int) -> list[Found]:
    found = [search_usage(name, measure, samples=samples, climbs=climbs) for name, measure in USAGE.items()]
    for name, run in FIXED.items():
        store = TrafficRollups()
        run(store)
        found.append(Found(name, None, store.items_read, 1))
    return found


def describe(window: Window | None) -> str:
    if window is None:
        return f"at {utc_iso(NOW)}"
    return f"{window.start_iso[:16]} - {window.end_iso[:16]}"


def report(found: list[Found], budget: int) -> str:
    lines = [f"{'endpoint':<44} {'items':>6}  {'budget':>6}  window (the worst found)"]
    for row in found:
        flag = "  OVER" if row.items > budget else ""
        lines.append(f"{row.endpoint:<44} {row.items:>6}  {budget:>6}  {describe(row.window)}{flag}")
    return "\n".join(lines)


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=400, help="random windows per filter")
    parser.add_argument("--climbs", type=int, default=4, help="hill-climbs from the worst random windows")
    args = parser.parse_args()
    print(report(search(samples=args.samples, climbs=args.climbs), 2_000))


if __name__ == "__main__":
    main()
