"""The worst window: searched over every window the API accepts, at 1M requests a month.

``TrafficRollups`` is a RollupStore whose rows exist as random traffic would make them exist,
without generating the records: 1M requests a month (22.4 a minute) for three years up to ``NOW``,
spread evenly over 20 models (4 providers), 50 keys and 10 members, and over end users and apps
as each key names them (the shape below, which ``analytics_reads`` generates too). A row of a
bucket and value exists with probability 1 - e^-λ, λ being the requests that bucket and value
expect (a model expects 1.1 requests a minute, so about a third of its minute rows are missing;
every hour row exists). Each row's draw is a hash of its key, so every query sees the same table.
Minute rows exist for their 8 days only. The counters are meaningless (one request a row): the
search counts items, and ``analytics_reads`` checks exactness against the real write path.

End users and apps, as clients name them (``meterway.ledger.attribution``): 5 apps, named by the
keys' requests as ``KEY_APPS`` says (key i names ``KEY_APPS[i % 10]``): keys 0, 1 (mod 10) the
first app, 2, 3 the second, 4, 5 and 6 one of the other three each, 7, 8 and 9 none; so 20%, 20%,
10%, 10% and 10% of the requests, and 30% name no app ("(none)"). The first two apps' requests
(40%) each name one of 200 end users, drawn Zipf-like (rank r with weight 1/r, s = 1): the
busiest user has 17.0% of them (6.8% of all requests, 68k a month at 1M), the least 0.085%
(340 a month); the other 60% name no user ("(none)"). The usage filters use the busiest user
and the busiest app (``FILTER_USER``, ``FILTER_APP``).

The search runs the real ``reports`` functions on that store for every endpoint and filter: the
windows of ``/api/usage`` (random ones of every length and edge, then hill-climbing from the worst
by moving either edge by a minute, 10 minutes, an hour, 6 hours, a day, 10 days, a month or a
year while ``parse_window`` still accepts it), ``/api/activity`` for each period and grouping,
and the dashboard, both at ``NOW``.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from meterway.analytics.dal.rollups_table import KEY_DIMENSION, bucket_range, cell_partition, read_partitions
from meterway.analytics.logic import reports
from meterway.analytics.logic.rollups import ALL_TIME, MINUTE_RETENTION, SUB_HOUR, granularities_of
from meterway.analytics.logic.windows import Window, parse_window
from meterway.analytics.models import TOTAL
from meterway.core.clock import Granularity, floor, label, parse_label, step, utc_iso
from meterway.core.errors import InvalidRequest
from meterway.ledger.attribution import NONE, cell_value

NOW = datetime(2026, 10, 31, 23, 59, 59, tzinfo=UTC)
HISTORY_START = datetime(2023, 11, 1, tzinfo=UTC)
PER_MINUTE = 1_000_000 / (31 * 24 * 60)
PROVIDERS = ("openai", "anthropic", "google", "mistral")
MODELS = tuple(f"{PROVIDERS[i % 4]}/bench-model-{i:02d}" for i in range(20))
MEMBERS = tuple(f"member{i:02d}@example.com" for i in range(10))
KEYS = tuple(f"key_bench{i:02d}" for i in range(50))
ACCOUNT = "acct_bench"
# The apps the keys name (see the module's docstring): key i names APPS[KEY_APPS[i % 10]], or none.
APPS = ("chat-web", "support-bot", "doc-search", "code-review", "nightly-batch")
KEY_APPS: tuple[int | None, ...] = (0, 0, 1, 1, 2, 3, 4, None, None, None)
# The apps whose requests name an end user, and the end users by rank: rank r weighs 1/r.
USER_APPS = frozenset({0, 1})
USERS = tuple(f"enduser-{rank:03d}" for rank in range(1, 201))
USER_WEIGHTS = tuple(1 / rank for rank in range(1, len(USERS) + 1))
FILTER_KEY, FILTER_MODEL, FILTER_USER, FILTER_APP = KEYS[7], MODELS[3], USERS[0], APPS[0]
# Requests a value of each dimension expects, as a share of the account's.
SHARES = {"total": 1.0, "model": 1 / 20, "key": 1 / 50, "member": 1 / 10, "provider": 1 / 4}
VALUES = {"total": (TOTAL,), "model": MODELS, "key": KEYS, "member": MEMBERS, "provider": PROVIDERS}
SURE = 1 - 1e-12


def key_app(key: int) -> str | None:
    """The app key ``key`` (its index in KEYS) names, None for none."""
    app = KEY_APPS[key % len(KEY_APPS)]
    return None if app is None else APPS[app]


def names_users(key: int) -> bool:
    """Whether key ``key``'s requests name an end user (those of the first two apps)."""
    return KEY_APPS[key % len(KEY_APPS)] in USER_APPS


def _named_shares() -> dict[str, dict[str, float]]:
    """The requests each user and each app (by rollup value, ``(none)`` too) expects, as a share."""
    apps = [key_app(key) for key in range(len(KEYS))]
    by_app = {cell_value("app", app): apps.count(app) / len(KEYS) for app in (*APPS, None)}
    naming = sum(names_users(key) for key in range(len(KEYS))) / len(KEYS)
    by_user = {
        cell_value("user", user): naming * w / sum(USER_WEIGHTS) for user, w in zip(USERS, USER_WEIGHTS, strict=True)
    }
    return {"user": {**by_user, NONE: 1 - naming}, "app": by_app}


NAMED_SHARES = _named_shares()
# The prefixes of the user's and the app's models (``rollups.named_models_dimension``).
NAMED_MODELS = {"user": "user-model:", "app": "app-model:"}


def values_of(dimension: str) -> tuple[str, ...]:
    """The values a dimension's rows can have."""
    if dimension.startswith(("key-model:", *NAMED_MODELS.values())):
        return MODELS
    if dimension in NAMED_SHARES:
        return tuple(NAMED_SHARES[dimension])
    return VALUES[dimension]


def share_of(dimension: str, value: str) -> float:
    """The share of the account's requests the row of ``value`` in ``dimension`` expects."""
    if dimension.startswith("key-model:"):
        return 1 / (len(KEYS) * len(MODELS))
    for kind, prefix in NAMED_MODELS.items():
        if dimension.startswith(prefix):
            return NAMED_SHARES[kind].get(dimension.removeprefix(prefix), 0.0) / len(MODELS)
    if dimension in NAMED_SHARES:
        return NAMED_SHARES[dimension].get(value, 0.0)
    return SHARES[dimension]


def _drawn(pk: str, sk: str) -> float:
    digest = hashlib.blake2b(f"{pk}|{sk}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


class TrafficRollups:
    """The rows 1M requests a month would leave (see the module's docstring); counts items read
    as ``DynamoRollupStore`` does, and records every row it returns (``seen``)."""

    def __init__(self, complete_from: datetime | None = ALL_TIME, history_start: datetime = HISTORY_START):
        self.complete_from, self.history_start, self.now = complete_from, history_start, NOW
        self.items_read = 0
        self.seen: set[tuple[str, str]] = set()
        self.changes_read: set[str] = set()

    def _lasting(self, granularity: Granularity) -> datetime:
        """The oldest time whose rows of ``granularity`` still exist."""
        if granularity in SUB_HOUR:
            return max(self.history_start, self.now - MINUTE_RETENTION)
        return self.history_start

    def _row(self, granularity: Granularity, dimension: str, start: datetime, value: str) -> dict[str, Any] | None:
        """The row of ``value`` in the bucket starting at ``start``, if the traffic left one."""
        if granularity not in granularities_of(dimension):
            return None  # in-between rows: the per-model dimensions; years: users and apps too
        end = step(start, granularity)
        overlap = (min(end, self.now) - max(start, self._lasting(granularity))).total_seconds() / 60
        if overlap <= 0:
            return None
        chance = 1 - math.exp(-PER_MINUTE * overlap * share_of(dimension, value))
        pk, sk = cell_partition(ACCOUNT, granularity, dimension, value), f"{label(start, granularity)}#{value}"
        if chance < SURE and _drawn(pk, sk) >= chance:
            return None
        self.seen.add((pk, sk))
        return {"bucket": label(start, granularity), "value": value, "requests": 1}

    def _starts(self, granularity: Granularity, first: datetime, last: datetime) -> Iterator[datetime]:
        cursor = max(first, floor(self._lasting(granularity), granularity))
        while cursor <= min(last, self.now):
            yield cursor
            cursor = step(cursor, granularity)

    def query(
        self, account_id: str, granularity: Granularity, dimension: str, first: str, last: str
    ) -> list[dict[str, Any]]:
        bucket_range(first, last)  # the same arguments the real store takes
        values = values_of(dimension)
        starts = self._starts(granularity, parse_label(first, granularity), parse_label(last, granularity))
        rows = [
            row
            for start in starts
            for value in sorted(values)
            if (row := self._row(granularity, dimension, start, value))
        ]
        # The key dimension's readers first read the account's used keys, to find their shards.
        self.items_read += len(rows) + (len(values) if dimension == KEY_DIMENSION else 0)
        return rows

    def cells(
        self, account_id: str, granularity: Granularity, dimension: str, value: str, buckets: list[str]
    ) -> list[dict[str, Any]]:
        # A key's cells are read from its shard and from the partition written before the shards
        # (a user's or an app's from its shard only).
        self.items_read += len(buckets) * len(read_partitions(account_id, granularity, dimension, [value]))
        starts = [parse_label(bucket, granularity) for bucket in buckets]
        return [row for start in starts if (row := self._row(granularity, dimension, start, value))]

    def intermediate_from(self, account_id: str) -> datetime | None:
        self.items_read += 1
        return self.complete_from

    def changed_from(self, account_id: str, change: str) -> datetime | None:
        # The user's and app's in-between and year rows are complete when the others are; the real
        # store reads a change once, when it is recorded.
        if change not in self.changes_read:
            self.items_read += 1
        if self.complete_from is not None:
            self.changes_read.add(change)
        return self.complete_from

    def last_used(self, account_id: str) -> dict[str, str]:
        return {}


# --- the endpoints and their filters ------------------------------------------------------------

# Each reads through a store: a TrafficRollups, or the DynamoRollupStore that confirms it on moto.
Measure = Callable[[Any, Window], Any]
USAGE: dict[str, Measure] = {
    "/api/usage": lambda store, window: reports.usage_summary(store, ACCOUNT, window),
    "/api/usage?key=": lambda store, window: reports.usage_summary(store, ACCOUNT, window, key_id=FILTER_KEY),
    "/api/usage?model=": lambda store, window: reports.usage_summary(store, ACCOUNT, window, model=FILTER_MODEL),
    "/api/usage?key=&model=": lambda store, window: reports.usage_summary(
        store, ACCOUNT, window, model=FILTER_MODEL, key_id=FILTER_KEY
    ),
    "/api/usage?user=": lambda store, window: reports.usage_summary(store, ACCOUNT, window, user=FILTER_USER),
    "/api/usage?app=": lambda store, window: reports.usage_summary(store, ACCOUNT, window, app=FILTER_APP),
}


def _activity(period: str, group_by: str) -> Callable[[Any], Any]:
    return lambda store: reports.activity(store, ACCOUNT, period, group_by, NOW, names={})


FIXED: dict[str, Callable[[Any], Any]] = {
    **{
        f"/api/activity?period={period}&group_by={group}": _activity(period, group)
        for period in reports.PERIODS
        for group in ("model", "key", "member", "provider", "user", "app")
    },
    "/api/dashboard": lambda store: reports.dashboard(store, ACCOUNT, NOW, recent=[]),
}


def items_read(measure: Measure, window: Window, complete_from: datetime | None = ALL_TIME) -> int:
    store = TrafficRollups(complete_from)
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
    """The worst window found for an endpoint (None for those that take no window)."""

    endpoint: str
    window: Window | None
    items: int
    evaluated: int


def climb(measure: Measure, found: Found, complete_from: datetime | None, budget: int) -> None:
    """Move an edge of ``found.window`` while that reads more, until no move does (or after
    ``budget`` evaluations)."""
    improved = True
    spent = 0
    while improved and spent < budget and found.window is not None:
        improved = False
        for move, sign, edge in itertools.product(MOVES, (1, -1), ("start", "end")):
            start = found.window.start + sign * move if edge == "start" else found.window.start
            end = found.window.end + sign * move if edge == "end" else found.window.end
            if start >= end or (candidate := accepted(start, end)) is None:
                continue
            spent += 1
            count = items_read(measure, candidate, complete_from)
            if count > found.items:
                found.window, found.items, improved = candidate, count, True
    found.evaluated += spent


def search_usage(
    endpoint: str, measure: Measure, complete_from: datetime | None, *, samples: int, climbs: int, seed: int = 7
) -> Found:
    """Random windows, then hill-climbing from the ``climbs`` worst of them."""
    rng = random.Random(seed)
    tried: list[tuple[int, Window]] = []
    while len(tried) < samples:
        window = random_window(rng)
        if window is not None:
            tried.append((items_read(measure, window, complete_from), window))
    tried.sort(key=lambda pair: -pair[0])
    best = Found(endpoint, None, -1, samples)
    for items, window in tried[:climbs]:
        found = Found(endpoint, window, items, 0)
        climb(measure, found, complete_from, budget=400)
        best.evaluated += found.evaluated
        if found.items > best.items:
            best.window, best.items = found.window, found.items
    return best


def search(*, samples: int, climbs: int, complete_from: datetime | None = ALL_TIME) -> list[Found]:
    """The worst window of each endpoint and filter; ``complete_from`` None reads as an account
    whose rows an older version wrote does until its backfill."""
    found = [
        search_usage(name, measure, complete_from, samples=samples, climbs=climbs) for name, measure in USAGE.items()
    ]
    for name, run in FIXED.items():
        store = TrafficRollups(complete_from)
        run(store)
        found.append(Found(name, None, store.items_read, 1))
    return found


def reader(found: Found) -> Callable[[Any], Any]:
    """The read of ``found``'s endpoint over its window, on any store."""
    if found.window is None:
        return FIXED[found.endpoint]
    measure, window = USAGE[found.endpoint], found.window
    return lambda store: measure(store, window)


def describe(window: Window | None) -> str:
    if window is None:
        return f"at {utc_iso(NOW)[:16]}"
    return f"{window.start_iso[:16]} - {window.end_iso[:16]}"


def report(columns: dict[str, list[Found]], budget: int) -> str:
    """A row per endpoint: the items its worst window reads in each column, and that window."""
    names = list(columns)
    lines = [f"{'endpoint':<44}" + "".join(f" {name:>16}" for name in names) + f" {'budget':>7}  worst window"]
    for row in zip(*columns.values(), strict=True):
        cells = "".join(f" {found.items:>16,}" for found in row)
        over = "  OVER" if row[0].items > budget else ""
        lines.append(f"{row[0].endpoint:<44}{cells} {budget:>7,}  {describe(row[0].window)}{over}")
    return "\n".join(lines)


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=200, help="random windows per filter")
    parser.add_argument("--climbs", type=int, default=3, help="hill-climbs from the worst random windows")
    args = parser.parse_args()
    print(report({"items": search(samples=args.samples, climbs=args.climbs)}, 2_000))


if __name__ == "__main__":
    main()
