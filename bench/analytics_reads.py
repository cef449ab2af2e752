"""Analytics reads grow with buckets, not requests (docs/architecture.md: the budget, invariant 5).

Part 1, real records on moto. For each N (default 10k, 100k and 1M requests in October 2026, UTC;
20 models of 4 providers, 50 keys owned by 10 members, 5 apps and 200 end users; every request
served, none failed) the script generates N seeded synthetic ledger records in a streaming loop,
sums them into the rollup rows that ``meterway.analytics.logic.rollups.rollup_updates`` would have
produced (same pk, sk and attribute names: the partition from ``rollups_table.cell_partition``,
the user's and app's values and model dimensions from ``attribution.cell_value`` and
``rollups.named_models_dimension``), loads those rows into an in-process ``moto.mock_aws``
DynamoDB (``batch_write_item``, 25 items a call) and times the dashboard, activity and usage queries of
``meterway.analytics.logic.reports`` through a real ``DynamoRollupStore``. For each query it reports
the rollup items read (the store's ``items_read``: rows a Query returns, keys a BatchGetItem or
GetItem asks for), the items a naive query would read from the ledger (the requests in its window,
or the key's requests for a key filter, which has an index), the most items the query could ever
read (its buckets × the values of its dimension, and each key asked for), and the median wall
time of 5 runs. Wall times are moto's, in-process, and mostly moto serialising its response
(≈2-3 ms an item): they follow the items read, not DynamoDB's latency.

End users and apps (the shape ``analytics_search`` defines, and searches): key i names the app
``KEY_APPS[i % 10]``: keys 0, 1 (mod 10) name ``chat-web``, 2, 3 ``support-bot``, 4, 5 and 6
``doc-search``, ``code-review`` and ``nightly-batch``, 7, 8 and 9 none (so 20%, 20%, 10%, 10%,
10% of the requests, and 30% "(none)"; a key's member is i mod 10 too, so each member's keys name
one app or none). The requests of the first two apps (40%) each name one of 200 end users,
``enduser-001`` .. ``enduser-200``, drawn Zipf-like (rank r with weight 1/r): ``enduser-001`` has
17.0% of them (6.8% of all requests), ``enduser-200`` 0.085%; the other 60% name none. Users are
drawn from a random stream of their own, so every other draw is the one of the versions before
(the same records, the same counts for the queries measured before). The user and app filters
use the busiest of each: ``enduser-001`` and ``chat-web``.

What is loaded: year, month, 10-day and day rows for the whole month; 6-hour and hour rows for
the ragged window's first and last day (10-03, 10-29) and for the last two days (10-30, 10-31:
activity ``1d`` reads 10-31's hours); 10-minute and minute rows only for the hour of each of the
ragged window's edges and the hours either side (10-03 06:00-08:59, 10-29 17:00-19:59) and for
the last two hours (10-31 22:00-23:59: activity ``1h`` reads 23:00-23:59), so rows just outside
each window exist too; and the account's marker (in-between rows complete). Those are all the
buckets the measured queries read. Minute rows for the two whole edge days (≈180k items at 1M,
moto takes ≈1.6k items/s) would have pushed the run past 10 minutes without changing any count.
Summing the records directly instead of applying ``rollup_updates`` per record (56 transactional
updates each) keeps 1M records feasible; a cross-check proves the shortcut exact: the first 500
records of the smallest N, plus all its records in the minute-row hours (few of the first 500
land there), are applied through ``count_record(DynamoRollupStore, contribution(item))`` under
one account and summed directly under another, and both must give the same rows, partition key
and attribute for attribute (for the loaded buckets; the user's and app's rows in all 16 shards),
and the same ``analytics`` answers; and for each of those records the (pk, sk) of every update
``rollup_updates`` makes, in every granularity, must be those the direct sums write.

Two moto 5.2.5 costs are patched out by ``devstack.moto_patches``, as in the local stack and the
integration tests: a transaction deep-copies the whole table once per operation (the patch backs
up only the touched items), and a Query lists and sorts the whole table (the patch starts from the
queried partition; the queries are run once with and once without it and must agree, items read
included).

Queries are called at ``now`` = 2026-10-31T23:59:59Z without ``parse_window``: at that ``now``
the API would refuse the ragged window's minute precision at 10-03 (minute rows live 8 days);
moto keeps them since it does not enforce TTL.

Part 2, the worst window. ``analytics_search`` searches every window the API accepts, for each
endpoint and filter, at 1M requests a month over three years (the real ``reports`` functions on a
store whose rows exist as such traffic would leave them), once as this version reads and once as
an account whose rows an older version wrote reads until ``meterway rollups backfill``. The rows
each worst window read are then loaded into moto and read again through ``DynamoRollupStore``,
which must read as many items.

The script exits non-zero unless the worst windows of this version stay within the 2,000-item
budget and, at every N up to 1M, each query reads at most 2,000 items and no more than its
(bucket, value) bound, and, from 100k up, ten times the requests make each query read at most
``MAX_GROWTH`` times as many items, unless its bound is the same at both sizes (its buckets ×
values fill in: activity ``1h`` by app reads 6 apps' minutes, few of which have requests at 100k).
Activity by user or app reads the 15 that spent most and each bucket's total (``reports.TOP_GROUPS``),
after ranking them by two coarser buckets × the users in them.

    .venv/bin/python bench/analytics_reads.py [--sizes 10000,100000,1000000] [--cross-check 500]
        [--search-samples 200] [--search-climbs 3]

takes ≈28 minutes on 2 shared cores (27.8 on 2026-12-04).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "functions")]
# Fake credentials, and no endpoint or profile from the caller's shell: only moto is ever called.
for _name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
    os.environ.pop(_name, None)
os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"})

import boto3  # noqa: E402
from moto import mock_aws  # noqa: E402

from bench import analytics_search  # noqa: E402
from devstack import moto_patches  # noqa: E402
from devstack.aws_resources import create_resources  # noqa: E402
from meterway.accounts.models import ApiKey  # noqa: E402
from meterway.analytics.dal.rollup_store import DynamoRollupStore  # noqa: E402
from meterway.analytics.dal.rollups_table import (  # noqa: E402
    KEY_DIMENSION,
    bucket_range,
    cell_partition,
    cell_sk,
    change_key,
    intermediate_key,
    last_used_key,
    read_partitions,
)
from meterway.analytics.logic import reports  # noqa: E402
from meterway.analytics.logic.rollups import (  # noqa: E402
    ALL_TIME,
    MINUTE_RETENTION,
    SUB_HOUR,
    contribution,
    count_record,
    deltas_of,
    granularities_of,
    key_models_dimension,
    named_models_dimension,
    rollup_updates,
)
from meterway.analytics.logic.windows import Window  # noqa: E402
from meterway.analytics.models import COUNTERS, TOTAL, Change  # noqa: E402
from meterway.core.aws import deserialize, serialize  # noqa: E402
from meterway.core.clock import GRANULARITIES, Granularity, buckets, label, parse_label, step, utc_iso  # noqa: E402
from meterway.ledger.attribution import cell_value  # noqa: E402
from meterway.ledger.models import TokenUsage, UsageRecord  # noqa: E402

MONTH = Window(datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC))
MINUTE_MS, HOUR_MS, DAY_MS = 60_000, 3_600_000, 86_400_000
MONTH_MS = 31 * DAY_MS
NOW = datetime(2026, 10, 31, 23, 59, 59, tzinfo=UTC)
RAGGED = Window(datetime(2026, 10, 3, 7, 13, tzinfo=UTC), datetime(2026, 10, 29, 18, 45, tzinfo=UTC))
RAGGED_MS = tuple(int((moment - MONTH.start).total_seconds() * 1000) for moment in (RAGGED.start, RAGGED.end))
# Hour rows are loaded for the ragged window's first and last day, minute rows for the hour of
# each edge and the hours either side (so rows just outside the window exist too); and for
# activity 1d and 1h at NOW, hour rows for its day and the day before, minute rows for its hour and
# the hour before. Offsets in days and hours from 2026-10-01T00:00Z.
EDGE_DAYS = frozenset(edge // DAY_MS for edge in (RAGGED_MS[0], RAGGED_MS[1] - 1))
EDGE_HOURS = frozenset(edge // HOUR_MS + shift for edge in (RAGGED_MS[0], RAGGED_MS[1] - 1) for shift in (-1, 0, 1))
NOW_MS = int((NOW - MONTH.start).total_seconds() * 1000)
NOW_DAY, NOW_HOUR = NOW_MS // DAY_MS, NOW_MS // HOUR_MS
HOUR_ROW_DAYS = EDGE_DAYS | {NOW_DAY - 1, NOW_DAY}
MINUTE_ROW_HOURS = EDGE_HOURS | {NOW_HOUR - 1, NOW_HOUR}
PROVIDERS = ("openai", "anthropic", "google", "mistral")
MODELS = tuple(f"{PROVIDERS[i % 4]}/bench-model-{i:02d}" for i in range(20))
MEMBERS = tuple(f"member{i:02d}@example.com" for i in range(10))
KEYS = tuple(f"key_bench{i:02d}" for i in range(50))
# End users and apps: the shape the search uses (see the docstring).
APPS, USERS = analytics_search.APPS, analytics_search.USERS
USER_CUMULATIVE = tuple(itertools.accumulate(analytics_search.USER_WEIGHTS))
FILTER_USER, FILTER_APP = analytics_search.FILTER_USER, analytics_search.FILTER_APP
NO_USER = -1  # a record that names no end user
ACCOUNT = "acct_bench"
CROSS_CHECK = 500  # records replayed through the real write path (≈0.3 s each in moto)
BUDGET = 2_000
MAX_GROWTH = 3.0  # items read from 100k to 1M requests (10× the requests)
RUNS = 5
# Column order of every counter list below: COUNTERS, cost in nanodollars, then (minute rows
# only) the last record's offset in ms, which sets expires_at as the last update would.
assert COUNTERS[0] == "requests" and COUNTERS[-1] == "cost_usd"
COST, LAST = len(COUNTERS) - 1, len(COUNTERS)


def key_member(key: int) -> int:
    return key % len(MEMBERS)


def user_name(user: int) -> str | None:
    """The end user a record names (``user``: its index in USERS, or NO_USER)."""
    return None if user == NO_USER else USERS[user]


@dataclass(frozen=True, slots=True)
class Rates:
    """Nanodollars per token, so that every cost is an exact multiple of 1e-9 USD."""

    input: int
    output: int
    cache_read: int
    cache_5m: int
    cache_1h: int


RATES = tuple(Rates(150 * (i + 1), 600 * (i + 1), 15 * (i + 1), 190 * (i + 1), 300 * (i + 1)) for i in range(20))


Record = tuple[int, int, int, int, tuple[int, ...]]


def records(n: int) -> Iterator[Record]:
    """N records as (ms since 2026-10-01, key, model, user (NO_USER: none), counters in COUNTERS
    order, the last being the cost in nanos). Every request was served: ``errors`` is 0."""
    rng = random.Random(n)
    # The end users from a stream of their own: every other draw is as it was before them.
    users = random.Random(f"users-{n}")
    population = range(len(USERS))
    for _ in range(n):
        model, key, offset = rng.randrange(len(MODELS)), rng.randrange(len(KEYS)), rng.randrange(MONTH_MS)
        input_tokens, output_tokens = rng.randrange(20, 4000), rng.randrange(1, 1500)
        reasoning = rng.randrange(output_tokens) if model % 5 == 0 else 0
        cache_read = rng.randrange(4000) if rng.random() < 0.3 else 0
        writes = rng.random() if PROVIDERS[model % 4] == "anthropic" else 1.0
        cache_5m = rng.randrange(2000) if writes < 0.1 else 0
        cache_1h = rng.randrange(2000) if writes < 0.02 else 0
        rates = RATES[model]
        cost = (
            input_tokens * rates.input
            + output_tokens * rates.output
            + cache_read * rates.cache_read
            + cache_5m * rates.cache_5m
            + cache_1h * rates.cache_1h
        )
        total = input_tokens + output_tokens + cache_read + cache_5m + cache_1h
        tokens = (input_tokens, output_tokens, reasoning, cache_5m + cache_1h, cache_5m, cache_1h, cache_read)
        named = analytics_search.names_users(key)
        user = users.choices(population, cum_weights=USER_CUMULATIVE)[0] if named else NO_USER
        yield offset, key, model, user, (1, 0, *tokens, total, cost)


Cells = dict[tuple[int, int, int], list[int]]


@dataclass
class Aggregate:
    """Records summed per (day, key, model) for the whole month, per (hour, key, model) on
    HOUR_ROW_DAYS and per (minute, key, model) in MINUTE_ROW_HOURS, and likewise per (day, user,
    model), (hour, user, model) and (minute, user, model): every loaded rollup row is a sum of
    these cells (a key's app is the key's, a user's cells are apart since a user is not a key's).
    ``ragged`` counts the records in the ragged window, for the naive comparison."""

    days: Cells = field(default_factory=dict)
    hours: Cells = field(default_factory=dict)
    minutes: Cells = field(default_factory=dict)
    user_days: Cells = field(default_factory=dict)
    user_hours: Cells = field(default_factory=dict)
    user_minutes: Cells = field(default_factory=dict)
    ragged: int = 0
    ragged_key: int = 0

    def add(self, offset: int, key: int, model: int, user: int, counters: tuple[int, ...]) -> None:
        day, hour = offset // DAY_MS, offset // HOUR_MS
        _merge(self.days, (day, key, model), counters, offset)
        _merge(self.user_days, (day, user, model), counters, offset)
        if day in HOUR_ROW_DAYS:
            _merge(self.hours, (hour, key, model), counters, offset)
            _merge(self.user_hours, (hour, user, model), counters, offset)
            if hour in MINUTE_ROW_HOURS:
                _merge(self.minutes, (offset // MINUTE_MS, key, model), counters, offset)
                _merge(self.user_minutes, (offset // MINUTE_MS, user, model), counters, offset)
        self.ragged += RAGGED_MS[0] <= offset < RAGGED_MS[1]
        self.ragged_key += key == 7 and RAGGED_MS[0] <= offset < RAGGED_MS[1]


def _merge(cells: dict[Any, list[int]], cell: Any, counters: tuple[int, ...] | list[int], last: int) -> None:
    sums = cells.get(cell)
    if sums is None:
        cells[cell] = [*counters[:LAST], last]
        return
    for index in range(LAST):
        sums[index] += counters[index]
    sums[LAST] = max(sums[LAST], last)


def aggregate(stream: Iterator[Record]) -> Aggregate:
    result = Aggregate()
    for offset, key, model, user, counters in stream:
        result.add(offset, key, model, user, counters)
    return result


def dimensions(key: int, model: int, granularity: Granularity) -> tuple[tuple[str, str], ...]:
    """(dimension, value) of a record of ``key`` in ``granularity`` but its user's, as
    ``rollup_updates`` lists them."""
    app = analytics_search.key_app(key)
    every = (
        ("total", TOTAL),
        ("key", KEYS[key]),
        ("member", MEMBERS[key_member(key)]),
        ("provider", PROVIDERS[model % len(PROVIDERS)]),
        ("model", MODELS[model]),
        (key_models_dimension(KEYS[key]), MODELS[model]),
        ("app", cell_value("app", app)),
        (named_models_dimension("app", app), MODELS[model]),
    )
    return tuple((dimension, value) for dimension, value in every if granularity in granularities_of(dimension))


def user_dimensions(user: int, model: int, granularity: Granularity) -> tuple[tuple[str, str], ...]:
    """(dimension, value) of a record of ``user`` in ``granularity``: its user's and its user's
    model's."""
    name = user_name(user)
    every = (("user", cell_value("user", name)), (named_models_dimension("user", name), MODELS[model]))
    return tuple((dimension, value) for dimension, value in every if granularity in granularities_of(dimension))


@cache
def bucket_label(granularity: Granularity, minute: int) -> str:
    return label(MONTH.start + timedelta(minutes=minute), granularity)


Dimensions = Callable[[int, int, Granularity], tuple[tuple[str, str], ...]]


def rows_of(
    cells: Cells, granularity: Granularity, minutes_per_cell: int, dimensions_of: Dimensions
) -> dict[tuple[str, str, str], list[int]]:
    """Rollup rows ``(dimension, bucket, value) -> counters`` of one granularity: each cell (a day,
    hour or minute) falls in one bucket, whose row sums the cells of every key (or user) and model
    in it. ``dimensions_of(key or user, model, granularity)`` lists the rows a cell adds to."""
    rows: dict[tuple[str, str, str], list[int]] = {}
    for (cell, owner, model), counters in cells.items():
        bucket = bucket_label(granularity, cell * minutes_per_cell)
        for dimension, value in dimensions_of(owner, model, granularity):
            _merge(rows, (dimension, bucket, value), counters, counters[LAST])
    return rows


def rollup_items(result: Aggregate, account: str) -> Iterator[dict[str, Any]]:
    """The RollupsTable items of the month (year, month, 10-day and day rows), of HOUR_ROW_DAYS
    (6-hour and hour rows) and of MINUTE_ROW_HOURS (10-minute and minute rows), attribute for
    attribute as ``DynamoRollupStore.add`` writes them, and the account's marker (in-between rows
    complete)."""
    layers: tuple[tuple[Granularity, Cells, Cells, int], ...] = (
        ("year", result.days, result.user_days, 1440),
        ("month", result.days, result.user_days, 1440),
        ("10d", result.days, result.user_days, 1440),
        ("day", result.days, result.user_days, 1440),
        ("6h", result.hours, result.user_hours, 60),
        ("hour", result.hours, result.user_hours, 60),
        ("10min", result.minutes, result.user_minutes, 1),
        ("minute", result.minutes, result.user_minutes, 1),
    )
    for granularity, cells, user_cells, minutes_per_cell in layers:
        rows = rows_of(cells, granularity, minutes_per_cell, dimensions)
        rows |= rows_of(user_cells, granularity, minutes_per_cell, user_dimensions)  # no dimension in both
        for (dimension, bucket, value), counters in rows.items():
            yield rollup_item(account, granularity, dimension, bucket, value, counters)
            if granularity == "month" and dimension == KEY_DIMENSION:
                # Each key's last use, which the store records before its first cell (the key
                # dimension's readers find its shard there).
                at = utc_iso(created_at(counters[LAST]))
                yield {**last_used_key(account, value), "last_used_at": at}
    yield from complete(account)


def complete(account: str) -> Iterator[dict[str, Any]]:
    """The account's markers that its in-between rows (and the user's and app's) are complete."""
    yield {**intermediate_key(account), "complete_from": utc_iso(ALL_TIME)}
    yield {**change_key(account, "named-in-between"), "complete_from": utc_iso(ALL_TIME)}


def rollup_item(
    account: str, granularity: Granularity, dimension: str, bucket: str, value: str, counters: list[int]
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "pk": cell_partition(account, granularity, dimension, value),
        "sk": cell_sk(bucket, value),
        **dict(zip(COUNTERS[:COST], counters[:COST], strict=True)),
        "cost_usd": Decimal(counters[COST]).scaleb(-9),
    }
    if granularity in SUB_HOUR:
        item["expires_at"] = int((created_at(counters[LAST]) + MINUTE_RETENTION).timestamp())
    return item


def created_at(offset: int) -> datetime:
    return MONTH.start + timedelta(milliseconds=offset)


def load(table: Any, items: Iterator[dict[str, Any]]) -> int:
    """Write items with batch_write_item, 25 at a time (the resource's batch writer)."""
    count = 0
    with table.batch_writer() as batch:
        for item in items:
            batch.put_item(Item=item)
            count += 1
    return count


# --- cross-check: the direct sums against the real write path -----------------------------------


def ledger_item(index: int, offset: int, key: int, model: int, user: int, counters: tuple[int, ...]) -> dict[str, Any]:
    usage = TokenUsage(
        input_tokens=counters[2],
        output_tokens=counters[3],
        reasoning_tokens=counters[4],
        cache_creation_5m_tokens=counters[6],
        cache_creation_1h_tokens=counters[7],
        cache_read_tokens=counters[8],
    )
    api_key = ApiKey(KEYS[key], "acct_real", KEYS[key], member=MEMBERS[key_member(key)])
    record = UsageRecord(
        request_id=f"gen-bench{index:08d}",
        created_at=created_at(offset),
        key=api_key,
        model=MODELS[model],
        provider=MODELS[model].split("/")[0],
        endpoint="/v1/chat/completions",
        streamed=False,
        tokens=usage,
        cost_usd=Decimal(counters[COST]).scaleb(-9),
        user=user_name(user),
        app=analytics_search.key_app(key),
    )
    item = record.to_item()
    deltas = deltas_of(item)
    assert [deltas[name] for name in COUNTERS[:COST]] == list(counters[:COST]), "synthetic tokens disagree"
    return item


def cross_check(client: Any, table: Any, table_name: str, n: int, count: int) -> dict[str, Any]:
    """Apply the first ``count`` records, and every record in MINUTE_ROW_HOURS (only a few of the
    first ones fall in the minute rows), through the real store under acct_real, sum the same
    records directly under acct_direct, and compare rows and answers; check that each record's
    ``rollup_updates`` are the cells the direct sums write, in every granularity. Raises
    AssertionError on any difference."""
    chosen = (
        record for index, record in enumerate(records(n)) if index < count or record[0] // HOUR_MS in MINUTE_ROW_HOURS
    )
    sample = sorted(chosen)  # in time order, as a stream delivers them
    real = DynamoRollupStore(table_name, client=client)
    updates_per_record = set()
    for index, record in enumerate(sample):
        item = ledger_item(index, *record)
        updates_per_record.add(_check_cells(item, record))
        assert count_record(real, contribution(item))
    load(table, rollup_items(aggregate(iter(sample)), "acct_direct"))
    direct_rows = _loaded_rows(client, table_name, "acct_direct")
    assert _loaded_rows(client, table_name, "acct_real") == direct_rows, "summed rows differ from applied rows"
    answers = _compare_answers(DynamoRollupStore(table_name, client=client))
    in_minutes = sum(record[0] // HOUR_MS in MINUTE_ROW_HOURS for record in sample)
    return {
        "records": len(sample),
        "records_naming_a_user": sum(record[3] != NO_USER for record in sample),
        "records_in_minute_rows": in_minutes,
        "updates_per_record": sorted(updates_per_record),
        "rows_compared": len(direct_rows),
        "user_app_rows_compared": sum(dimension.startswith(("user", "app")) for _, dimension, _ in direct_rows),
        "answers_compared": answers,
    }


def _check_cells(item: dict[str, Any], record: Record) -> int:
    """That ``rollup_updates(item)`` updates exactly the cells (pk, sk) the direct sums write for
    ``record``, in every granularity; returns how many updates it makes."""
    offset, key, model, user, _ = record
    updates = rollup_updates(item)
    account = item["account_id"]
    direct = set()
    for granularity in GRANULARITIES:
        bucket = label(created_at(offset), granularity)
        for dimension, value in (*dimensions(key, model, granularity), *user_dimensions(user, model, granularity)):
            direct.add((cell_partition(account, granularity, dimension, value), cell_sk(bucket, value)))
    made = [(update.pk, update.sk) for update in updates]
    assert len(set(made)) == len(made) == len(direct) and set(made) == direct, "rollup_updates writes other cells"
    return len(made)


def _compare_answers(store: DynamoRollupStore) -> list[str]:
    """The analytics answers of acct_real and acct_direct must be equal."""
    checks = {
        "usage month": lambda account: reports.usage_summary(store, account, MONTH),
        "usage ragged": lambda account: reports.usage_summary(store, account, RAGGED),
        "usage ragged model": lambda account: reports.usage_summary(store, account, RAGGED, model=MODELS[1]),
        "usage month key": lambda account: reports.usage_summary(store, account, MONTH, key_id=KEYS[0]),
        "usage month user": lambda account: reports.usage_summary(store, account, MONTH, user=FILTER_USER),
        "usage ragged user": lambda account: reports.usage_summary(store, account, RAGGED, user=USERS[3]),
        "usage month app": lambda account: reports.usage_summary(store, account, MONTH, app=FILTER_APP),
        "usage ragged app model": lambda account: reports.usage_summary(
            store, account, RAGGED, app=APPS[2], model=MODELS[1]
        ),
        "usage ragged no app": lambda account: reports.usage_summary(store, account, RAGGED, app="(none)"),
        "activity 1mo key": lambda account: reports.activity(store, account, "1mo", "key", NOW, names={}),
        "activity 1h user": lambda account: reports.activity(store, account, "1h", "user", NOW, names={}),
        "activity 1d user": lambda account: reports.activity(store, account, "1d", "user", NOW, names={}),
        "activity 1mo user": lambda account: reports.activity(store, account, "1mo", "user", NOW, names={}),
        "activity 1h app": lambda account: reports.activity(store, account, "1h", "app", NOW, names={}),
        "activity 1y app": lambda account: reports.activity(store, account, "1y", "app", NOW, names={}),
        "dashboard": lambda account: reports.dashboard(store, account, NOW, recent=[]),
    }
    for name, query in checks.items():
        assert query("acct_real") == query("acct_direct"), f"{name}: answers differ"
    return list(checks)


def _loaded_rows(client: Any, table_name: str, account: str) -> dict[tuple[str, str, str], dict[str, Any]]:
    """Every attribute of an account's rows in the loaded buckets, by (granularity, dimension, sk),
    their partition key without the account's id (the user's and app's rows from all 16 shards)."""
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    dimension_names = [
        "total",
        "model",
        "key",
        "member",
        "provider",
        "user",
        "app",
        *map(key_models_dimension, KEYS),
        *(named_models_dimension("user", user) for user in (*USERS, None)),
        *(named_models_dimension("app", app) for app in (*APPS, None)),
    ]
    for granularity, dimension in itertools.product(LOADED_BUCKETS, dimension_names):
        keys = KEYS if dimension == KEY_DIMENSION else ()  # every shard of the user and app dimensions
        for (first, last), pk in itertools.product(
            LOADED_BUCKETS[granularity], read_partitions(account, granularity, dimension, keys)
        ):
            low, high = bucket_range(first, last)
            pages = client.get_paginator("query").paginate(
                TableName=table_name,
                KeyConditionExpression="pk = :pk AND sk BETWEEN :low AND :high",
                ExpressionAttributeValues=serialize({":pk": pk, ":low": low, ":high": high}),
            )
            for item in (deserialize(raw) for page in pages for raw in page["Items"]):
                item["pk"] = item["pk"].removeprefix(account)
                rows[(granularity, dimension, item["sk"])] = item
    return rows


def _hour_spans(hours: frozenset[int]) -> list[tuple[datetime, datetime]]:
    """Runs of consecutive hours (offsets from the month's start) as (first, last) hour starts."""
    runs: list[list[int]] = []
    for hour in sorted(hours):
        if runs and runs[-1][-1] == hour - 1:
            runs[-1].append(hour)
        else:
            runs.append([hour])
    return [(MONTH.start + timedelta(hours=run[0]), MONTH.start + timedelta(hours=run[-1])) for run in runs]


# (first, last) bucket labels of the rows the bench loads, per granularity.
LOADED_BUCKETS: dict[Granularity, list[tuple[str, str]]] = {
    **{
        granularity: [(label(MONTH.start, granularity), label(MONTH.end - timedelta(days=1), granularity))]
        for granularity in ("year", "month", "10d", "day")
    },
    **{
        granularity: [
            (label(start, granularity), label(start + timedelta(hours=23), granularity))
            for start in (MONTH.start + timedelta(days=day) for day in sorted(HOUR_ROW_DAYS))
        ]
        for granularity in ("6h", "hour")
    },
    **{
        granularity: [
            (label(first, granularity), label(last + timedelta(minutes=59), granularity))
            for first, last in _hour_spans(MINUTE_ROW_HOURS)
        ]
        for granularity in ("10min", "minute")
    },
}


# --- measurement ---------------------------------------------------------------------------------


class BoundingStore:
    """Wraps a store and adds up the most rows its queries could return: buckets × values."""

    cardinality = {
        "total": 1,
        "model": len(MODELS),
        "key": len(KEYS),
        "member": len(MEMBERS),
        "provider": len(PROVIDERS),
        "user": len(USERS) + 1,  # and "(none)"
        "app": len(APPS) + 1,
    }

    def __init__(self, store: DynamoRollupStore):
        self.store = store
        self.bound = 0

    def query(self, account_id: str, granularity: Granularity, dimension: str, first: str, last: str) -> list:
        end = step(parse_label(last, granularity), granularity)
        # key-model:<key>, user-model:<user> and app-model:<app> have one row per model.
        values = self.cardinality.get(dimension, len(MODELS))
        self.bound += len(buckets(parse_label(first, granularity), end, granularity)) * values
        # The key dimension's readers first read the account's keys (last-used rows), for their shards.
        self.bound += len(KEYS) if dimension == KEY_DIMENSION else 0
        return self.store.query(account_id, granularity, dimension, first, last)

    def cells(self, account_id: str, granularity: Granularity, dimension: str, value: str, wanted: list[str]) -> list:
        # A key's cells are asked for in its shard and in the partition written before the shards
        # (a user's or an app's in its shard only).
        self.bound += len(wanted) * len(read_partitions(account_id, granularity, dimension, [value]))
        return self.store.cells(account_id, granularity, dimension, value, wanted)

    def intermediate_from(self, account_id: str) -> datetime | None:
        self.bound += 1
        return self.store.intermediate_from(account_id)

    def changed_from(self, account_id: str, change: Change) -> datetime | None:
        self.bound += 1
        return self.store.changed_from(account_id, change)


Query = Callable[[Any], Any]


def queries() -> dict[str, Query]:
    return {
        "usage month": lambda store: reports.usage_summary(store, ACCOUNT, MONTH),
        "usage month key": lambda store: reports.usage_summary(store, ACCOUNT, MONTH, key_id=KEYS[7]),
        "usage month model": lambda store: reports.usage_summary(store, ACCOUNT, MONTH, model=MODELS[3]),
        "usage ragged": lambda store: reports.usage_summary(store, ACCOUNT, RAGGED),
        "usage ragged key": lambda store: reports.usage_summary(store, ACCOUNT, RAGGED, key_id=KEYS[7]),
        "usage ragged model": lambda store: reports.usage_summary(store, ACCOUNT, RAGGED, model=MODELS[3]),
        "activity 1mo model": lambda store: reports.activity(store, ACCOUNT, "1mo", "model", NOW, names={}),
        "activity 1mo key": lambda store: reports.activity(store, ACCOUNT, "1mo", "key", NOW, names={}),
        "activity 1mo member": lambda store: reports.activity(store, ACCOUNT, "1mo", "member", NOW, names={}),
        "dashboard": lambda store: reports.dashboard(store, ACCOUNT, NOW, recent=[]),
        "usage month user": lambda store: reports.usage_summary(store, ACCOUNT, MONTH, user=FILTER_USER),
        "usage month app": lambda store: reports.usage_summary(store, ACCOUNT, MONTH, app=FILTER_APP),
        "usage ragged user": lambda store: reports.usage_summary(store, ACCOUNT, RAGGED, user=FILTER_USER),
        "usage ragged app": lambda store: reports.usage_summary(store, ACCOUNT, RAGGED, app=FILTER_APP),
        **{
            f"activity {period} {group}": _activity(period, group)
            for group in ("user", "app")
            for period in reports.PERIODS
        },
    }


def _activity(period: str, group_by: str) -> Query:
    return lambda store: reports.activity(store, ACCOUNT, period, group_by, NOW, names={})


def ledger_reads(result: Aggregate) -> dict[str, int]:
    """Ledger items the same queries would read: the requests in the window (a model, user or app
    filter is a FilterExpression, read then dropped; a key filter has the ByKeyTime index)."""
    month = sum(c[0] for c in result.days.values())
    since_02 = sum(c[0] for (day, _, _), c in result.days.items() if day >= 1)
    # Activity at NOW: 1h is 10-31 23:00-23:59, 1d 10-31, 1mo 10-02..10-31, 1y 2025-11..2026-10.
    periods = {
        "1h": sum(c[0] for (hour, _, _), c in result.hours.items() if hour == NOW_HOUR),
        "1d": sum(c[0] for (day, _, _), c in result.days.items() if day == NOW_DAY),
        "1mo": since_02,
        "1y": month,
    }
    return {
        "usage month user": month,
        "usage month app": month,
        "usage ragged user": result.ragged,
        "usage ragged app": result.ragged,
        **{f"activity {period} {group}": count for period, count in periods.items() for group in ("user", "app")},
        "usage month": sum(c[0] for c in result.days.values()),
        "usage month key": sum(c[0] for (_, key, _), c in result.days.items() if key == 7),
        "usage month model": sum(c[0] for c in result.days.values()),
        "usage ragged": result.ragged,
        "usage ragged key": result.ragged_key,
        "usage ragged model": result.ragged,
        "activity 1mo model": since_02,
        "activity 1mo key": since_02,
        "activity 1mo member": since_02,
        "dashboard": since_02,
    }


def confirm_on_moto(worst: list[analytics_search.Found]) -> int:
    """Load into moto the rows each worst window read from the search's store, read the window
    again through the real ``DynamoRollupStore``, and check it reads as many items. Any row the
    search's store has in a read range was read by it, so no loaded row of another window adds to
    a read. Returns how many endpoints were checked."""
    with mock_aws():
        client, resource = boto3.client("dynamodb"), boto3.resource("dynamodb")
        table_name = create_resources(ROOT / "template.yaml", prefix="worst")["RollupsTable"]
        table = resource.Table(table_name)
        load(table, complete(ACCOUNT))
        # Every key's last use, where the key dimension's readers find the keys' shards (the
        # search's store counts them on every such read).
        used = analytics_search.values_of(KEY_DIMENSION)
        load(table, ({**last_used_key(ACCOUNT, key), "last_used_at": utc_iso(NOW)} for key in used))
        for found in worst:
            read = analytics_search.reader(found)
            synthetic = analytics_search.TrafficRollups()
            read(synthetic)
            load(table, ({"pk": pk, "sk": sk, "requests": 1} for pk, sk in synthetic.seen))
            real = DynamoRollupStore(table_name, client=client)
            read(real)
            assert real.items_read == found.items, f"{found.endpoint}: {real.items_read} on moto, {found.items} found"
    return len(worst)


def run_once(client: Any, table_name: str, query: Query) -> tuple[Any, int]:
    store = DynamoRollupStore(table_name, client=client)
    return query(store), store.items_read


def check_patch_neutral(client: Any, table_name: str) -> int:
    """Every query answers the same, reading the same items, with and without the moto patch that
    reads a Query's own partition only."""
    for name, query in queries().items():
        with moto_patches.whole_table_queries():
            plain = run_once(client, table_name, query)
        assert run_once(client, table_name, query) == plain, f"{name}: the moto patch changed the answer"
    return len(queries())


def measure(client: Any, table_name: str, query: Query) -> dict[str, Any]:
    times, reads = [], set()
    for _ in range(RUNS):
        # A new store each run, as a cold one: it reads the account's change markers again.
        store = DynamoRollupStore(table_name, client=client)
        bounding = BoundingStore(store)
        started = time.perf_counter()
        query(bounding)
        times.append(time.perf_counter() - started)
        reads.add(store.items_read)
    assert len(reads) == 1, "the same query read different item counts"
    return {"items_read": reads.pop(), "bound": bounding.bound, "p50_ms": round(statistics.median(times) * 1000, 1)}


def run_size(n: int, *, cross_check_records: int) -> dict[str, Any]:
    started = time.perf_counter()
    result = aggregate(records(n))
    generated = time.perf_counter() - started
    with mock_aws():
        client, resource = boto3.client("dynamodb"), boto3.resource("dynamodb")
        table_name = create_resources(ROOT / "template.yaml", prefix="bench")["RollupsTable"]
        table = resource.Table(table_name)
        started = time.perf_counter()
        items = load(table, rollup_items(result, ACCOUNT))
        loaded = time.perf_counter() - started
        check = cross_check(client, table, table_name, n, cross_check_records) if cross_check_records else None
        if check:
            check["queries_unchanged_by_moto_patch"] = check_patch_neutral(client, table_name)
        measured = {name: measure(client, table_name, query) for name, query in queries().items()}
    for name, count in ledger_reads(result).items():
        measured[name]["ledger_items"] = count
    report: dict[str, Any] = {"generate_s": round(generated, 1), "rollup_items": items, "load_s": round(loaded, 1)}
    print(f"N={n:,}: generated+summed in {generated:.1f}s, loaded {items:,} rollup items in {loaded:.1f}s", flush=True)
    if check:
        print(f"  cross-check: {check}", flush=True)
        report["cross_check"] = check
    return {**report, "queries": measured}


def table(results: dict[int, dict[str, Any]]) -> str:
    sizes = list(results)
    head = f"{'query':<21}" + "".join(f"| {f'N={n:,}':^30}" for n in sizes)
    sub = f"{'':<21}" + "".join(f"| {'items':>6} {'bound':>6} {'ledger':>9} {'p50ms':>6} " for _ in sizes)
    lines = [head, sub, "-" * len(sub)]
    for name in queries():
        cells = []
        for n in sizes:
            q = results[n]["queries"][name]
            cells.append(f"| {q['items_read']:>6} {q['bound']:>6} {q['ledger_items']:>9} {q['p50_ms']:>6} ")
        lines.append(f"{name:<21}" + "".join(cells))
    return "\n".join(lines)


def failures(results: dict[int, dict[str, Any]]) -> list[str]:
    found = []
    sizes = sorted(results)
    for n in sizes:
        for name, q in results[n]["queries"].items():
            if q["items_read"] > q["bound"]:
                found.append(f"N={n:,} {name}: {q['items_read']} items > bound {q['bound']}")
            if n <= 1_000_000 and q["items_read"] > BUDGET:
                found.append(f"N={n:,} {name}: {q['items_read']} items > budget {BUDGET}")
    for smaller, larger in itertools.pairwise(sizes):
        if smaller < 100_000:
            continue
        for name, q in results[larger]["queries"].items():
            before = results[smaller]["queries"][name]["items_read"]
            # A query whose bound (buckets × values) is the same at both sizes reads more only as
            # more of those rows exist: activity 1h by app reads 6 apps' minutes, sparse at 100k.
            fixed = q["bound"] == results[smaller]["queries"][name]["bound"]
            if q["items_read"] > MAX_GROWTH * before and not fixed:
                found.append(
                    f"{name}: {q['items_read']} items at N={larger:,} > {MAX_GROWTH} × {before} at {smaller:,}"
                )
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000", help="comma-separated request counts")
    parser.add_argument(
        "--cross-check",
        type=int,
        default=CROSS_CHECK,
        metavar="RECORDS",
        help=f"records of the smallest N replayed through the real write path (default {CROSS_CHECK}; 0: skip)",
    )
    parser.add_argument("--search-samples", type=int, default=200, help="random windows per filter in the search")
    parser.add_argument("--search-climbs", type=int, default=3, help="hill-climbs from the worst random windows")
    args = parser.parse_args()
    sizes = sorted(int(size) for size in args.sizes.split(","))
    moto_patches.apply()  # as in the local stack and the integration tests
    started = time.perf_counter()
    # The cross-check replays the first records of the smallest N through the real write path.
    results = {n: run_size(n, cross_check_records=args.cross_check if n == sizes[0] else 0) for n in sizes}
    print()
    print(table(results))
    worst = analytics_search.search(samples=args.search_samples, climbs=args.search_climbs)
    before_backfill = analytics_search.search(
        samples=args.search_samples, climbs=args.search_climbs, complete_from=None
    )
    confirmed = confirm_on_moto(worst)
    print()
    print("The worst window of each endpoint at 1M requests a month (bench/analytics_search.py), in items read:")
    print(analytics_search.report({"this version": worst, "until backfilled": before_backfill}, BUDGET))
    print(f"confirmed on moto through DynamoRollupStore: {confirmed} endpoints read the same items")
    problems = failures(results) + [
        f"worst case {found.endpoint}: {found.items} items > budget {BUDGET}" for found in worst if found.items > BUDGET
    ]
    summary = {
        "budget_items": BUDGET,
        "max_growth": MAX_GROWTH,
        "sizes": {str(n): result for n, result in results.items()},
        "worst_case": [
            {
                "endpoint": found.endpoint,
                "items_read": found.items,
                "window": analytics_search.describe(found.window),
                "until_backfilled": {"items_read": old.items, "window": analytics_search.describe(old.window)},
            }
            for found, old in zip(worst, before_backfill, strict=True)
        ],
        "failures": problems,
        "total_s": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(summary, indent=2))
    if problems:
        print("FAILED:\n  " + "\n  ".join(problems), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
