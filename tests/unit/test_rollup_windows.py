"""A window is cut into few, coarse buckets: exactly, within a bounded count at its edges, within
the 2,000-item budget at 1M requests a month, and exactly over rows an older version wrote."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from meterway.analytics.dal.rollups_table import bucket_range, partition
from meterway.analytics.logic import reports
from meterway.analytics.logic.rollups import (
    ALL_TIME,
    CALENDAR,
    MINUTE_RETENTION,
    SUB_HOUR,
    TAKEOVER_MARGIN,
    contribution,
    count_record,
    decompose,
    filter_rows,
    has_in_between,
    key_models_dimension,
    rollup_updates,
    start_intermediate,
)
from meterway.analytics.logic.windows import Window, parse_window
from meterway.analytics.models import NO_MEMBER, TOTAL, Part
from meterway.core.clock import EARLIEST, GRANULARITIES, LATEST, Granularity, floor, label, parse_label, step, utc_iso
from meterway.core.errors import InvalidRequest
from meterway.ledger.models import Status
from tests.fakes import InMemoryRollups
from tests.ledger_factory import KEYS, MODELS, costs, ledger_item
from tests.unit.test_analytics import created, ledger_sum

NOW = datetime(2026, 10, 31, 23, 59, 30, tzinfo=UTC)


def minute_of(low: datetime, high: datetime) -> st.SearchStrategy[datetime]:
    """Whole minutes from ``low`` (a whole minute) to ``high``."""
    low = floor(low, "minute")
    span = int((high - low).total_seconds() // 60)
    return st.integers(0, span).map(lambda minutes: low + timedelta(minutes=minutes))


def snapped(moment: datetime, granularity: Granularity, nudge: int) -> datetime:
    try:
        return floor(moment, granularity) + timedelta(minutes=nudge)
    except OverflowError:  # a minute before the year 1
        return moment


def edges(low: datetime, high: datetime) -> st.SearchStrategy[datetime]:
    """Whole minutes between ``low`` and ``high``, often on a bucket's edge give or take a minute."""
    anywhere = minute_of(low, high)
    return st.one_of(
        anywhere,
        st.builds(snapped, anywhere, st.sampled_from(GRANULARITIES), st.sampled_from([-1, 0, 0, 1])),
    ).filter(lambda moment: low <= moment <= high)


def bucket_bounds(start: datetime, end: datetime, since: datetime | None) -> list[tuple[Granularity, datetime]]:
    return [
        (span.granularity, bucket)
        for span in decompose(start, end, since)
        for bucket in _starts(span.granularity, span.first, span.last)
    ]


def _starts(granularity: Granularity, first: datetime, last: datetime) -> list[datetime]:
    starts = [first]
    while starts[-1] < last:
        starts.append(step(starts[-1], granularity))
    assert starts[-1] == last
    return starts


@settings(max_examples=500, deadline=None)
@given(
    data=st.data(),
    first=edges(EARLIEST.replace(hour=0), LATEST),
    days=st.integers(0, 800) | st.integers(0, 18_262),
    since=st.none() | st.just(ALL_TIME) | edges(datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)),
)
def test_decompose_covers_any_window_exactly_once(data, first, days, since):
    second = data.draw(edges(first, first + min(timedelta(days=days, minutes=1), LATEST - first)))
    assume(first < second)

    buckets = bucket_bounds(first, second, since)

    # Consecutive buckets, each aligned to its granularity, from the start to the end: their
    # union is exactly [first, second) and no two overlap.
    assert buckets[0][1] == first
    for (granularity, start), (_, following) in zip(buckets, [*buckets[1:], (None, second)], strict=True):
        assert floor(start, granularity) == start
        assert step(start, granularity) == following
    # The in-between granularities only where their rows are complete.
    assert all(g in CALENDAR or (since is not None and start >= since) for g, start in buckets)


@settings(max_examples=500, deadline=None)
@given(first=edges(datetime(1990, 1, 1, tzinfo=UTC), datetime(2060, 1, 1, tzinfo=UTC)), data=st.data())
def test_each_edge_of_a_window_costs_a_few_buckets_of_each_granularity(first, data):
    second = data.draw(edges(first + timedelta(minutes=1), first + timedelta(days=18_262)))

    counts = Counter(granularity for granularity, _ in bucket_bounds(first, second, ALL_TIME))

    # Per edge: 9 minutes, 5 ten-minutes, 5 hours, 3 six-hours, 10 days, 2 ten-days, 11 months.
    bound = {"minute": 18, "10min": 10, "hour": 10, "6h": 6, "day": 20, "10d": 4, "month": 22}
    assert all(counts[granularity] <= most for granularity, most in bound.items()), counts
    assert counts["year"] <= 50


# --- the budget --------------------------------------------------------------------------------

HISTORY = datetime(2023, 11, 1, tzinfo=UTC)  # three years of traffic
MANY_MODELS = tuple(f"provider/model-{i:02d}" for i in range(20))
MANY_KEYS = tuple(f"key_{i:02d}" for i in range(50))
PROVIDERS = ("openai", "anthropic", "bedrock", "google", "groq", "mistral", "deepseek", "xai")


class EveryRow:
    """A RollupStore holding every row three years of traffic could write (every bucket of every
    model, key and key's model: more than 1M requests a month leave), counting items read."""

    def __init__(self) -> None:
        self.items_read = 0

    def _exists(self, granularity: Granularity, dimension: str, start: datetime) -> bool:
        in_between = granularity not in CALENDAR
        if in_between and dimension != "model" and not dimension.startswith("key-model:"):
            return False
        oldest = NOW - MINUTE_RETENTION if granularity in SUB_HOUR else HISTORY
        return step(start, granularity) > oldest and start <= NOW

    def query(self, account_id: str, granularity: Granularity, dimension: str, first: str, last: str) -> list:
        bucket_range(first, last)
        values = {"total": ("*",), "key": MANY_KEYS, "provider": PROVIDERS}.get(dimension, MANY_MODELS)
        start, rows = max(parse_label(first, granularity), floor(HISTORY, granularity)), []
        while start <= parse_label(last, granularity) and start <= NOW:
            if self._exists(granularity, dimension, start):
                rows += [{"bucket": label(start, granularity), "value": value, "requests": 1} for value in values]
            start = step(start, granularity)
        self.items_read += len(rows)
        return rows

    def cells(self, account_id: str, granularity: Granularity, dimension: str, value: str, buckets: list) -> list:
        self.items_read += len(buckets)
        starts = [parse_label(bucket, granularity) for bucket in buckets]
        return [
            {"bucket": label(start, granularity), "value": value, "requests": 1}
            for start in starts
            if self._exists(granularity, dimension, start)
        ]

    def intermediate_from(self, account_id: str) -> datetime | None:
        self.items_read += 1
        return ALL_TIME


# What the API accepts: whole hours anywhere (often on a bucket's edge, give or take an hour), and
# any minute since minute rows began to be kept.
api_edges = st.one_of(
    st.builds(
        snapped,
        minute_of(HISTORY - timedelta(days=40), NOW + timedelta(days=40)),
        st.sampled_from(GRANULARITIES[:-2]),
        st.sampled_from([-60, 0, 0, 60]),
    ),
    edges(NOW - MINUTE_RETENTION + timedelta(hours=1), NOW + timedelta(days=1)),
)


def accepted(first: datetime, second: datetime) -> Window | None:
    try:
        return parse_window(utc_iso(min(first, second)), utc_iso(max(first, second)), NOW)
    except InvalidRequest:
        return None


@settings(max_examples=120, deadline=None)
@example(  # the worst the bench's search finds: a day chart of 396 days, 20 models at both edges
    first=datetime(2025, 10, 1, 1, tzinfo=UTC), second=datetime(2026, 10, 31, 23, 59, tzinfo=UTC), model=None, key=None
)
@given(
    first=api_edges,
    second=api_edges,
    model=st.none() | st.just(MANY_MODELS[3]),
    key=st.none() | st.just(MANY_KEYS[7]),
)
def test_any_usage_window_reads_at_most_2000_items_from_every_row_of_three_years(first, second, model, key):
    window = accepted(first, second)
    assume(window is not None)
    store = EveryRow()

    reports.usage_summary(store, "acct", window, model=model, key_id=key)

    assert store.items_read <= 2_000


@pytest.mark.parametrize("period", reports.PERIODS)
def test_activity_by_provider_reads_its_calendar_rows_within_the_budget(period):
    store = EveryRow()

    activity = reports.activity(store, "acct", period, "provider", NOW, {})

    # Every bucket has every provider's row: read from the calendar granularity of the period.
    assert activity["granularity"] in CALENDAR
    assert all(set(bucket["groups"]) == set(PROVIDERS) for bucket in activity["buckets"])
    assert store.items_read <= 2_000


def test_the_dashboard_reads_within_the_budget_from_every_row_of_three_years():
    store = EveryRow()
    reports.dashboard(store, "acct", NOW, [])
    assert store.items_read <= 2_000


# --- rows an older version wrote ---------------------------------------------------------------

UPGRADE = datetime(2026, 3, 14, 9, 26, 40, tzinfo=UTC)


def counted_by_an_older_version(store: InMemoryRollups, item: dict[str, Any]) -> None:
    """What the version before the in-between granularities wrote: the calendar rows only, the
    key dimension's in its one unsharded partition, and no last use of the key."""
    store.add(
        [Part(item["request_id"], "key", item["key_id"], [])],
        [
            replace(update, pk=partition(item["account_id"], update.granularity, update.dimension))
            for update in rollup_updates(item)
            if update.granularity in CALENDAR
        ],
        [],
    )


def record_lists(
    moments: st.SearchStrategy[datetime],
    *,
    users: tuple[str | None, ...] = (None,),
    apps: tuple[str | None, ...] = (None,),
    statuses: tuple[Status, ...] = ("ok",),
) -> st.SearchStrategy[list[dict[str, Any]]]:
    """Up to 40 records at ``moments`` (17 s into their minute), of any model, key and cost."""
    return st.lists(
        st.builds(
            lambda moment, model, key, cost, user, app, status: ledger_item(
                moment, model=model, key=key, cost=cost, user=user, app=app, status=status
            ),
            moments.map(lambda moment: moment + timedelta(seconds=17)),
            st.sampled_from(MODELS),
            st.sampled_from(KEYS),
            costs,
            st.sampled_from(users),
            st.sampled_from(apps),
            st.sampled_from(statuses),
        ),
        max_size=40,
    )


records = record_lists(
    st.one_of(
        minute_of(UPGRADE - timedelta(days=400), UPGRADE + timedelta(days=30)),
        minute_of(UPGRADE - timedelta(hours=2), UPGRADE + timedelta(hours=2)),
    )
)


@settings(max_examples=200, deadline=None)
@given(
    old=records,
    late=st.lists(st.booleans(), max_size=40),
    new=records,
    first=edges(UPGRADE - timedelta(days=420), UPGRADE + timedelta(days=40)),
    second=edges(UPGRADE - timedelta(days=420), UPGRADE + timedelta(days=40)),
    model=st.none() | st.sampled_from(MODELS),
    key=st.none() | st.sampled_from(KEYS),
)
def test_a_window_over_rows_an_older_version_wrote_still_agrees_with_the_ledger(
    old, late, new, first, second, model, key
):
    assume(first != second)
    before = [item for item in old if created(item) < UPGRADE]
    # Some records from before the upgrade reach this version (a stream behind): every row.
    by_this_version = [item for item, is_late in zip(before, late, strict=False) if is_late]
    after = by_this_version + [item for item in new if created(item) >= UPGRADE + TAKEOVER_MARGIN]
    store = InMemoryRollups()
    for item in before:
        if item not in by_this_version:
            counted_by_an_older_version(store, item)
    for item in after:
        # The first batch of this version dates the in-between rows' start for the account.
        assert count_record(store, contribution(item), now=UPGRADE)
    window = Window(min(first, second), max(first, second))
    key_id = key.key_id if key else None

    usage = reports.usage_summary(store, "acct", window, model=model, key_id=key_id)

    selected = [
        item
        for item in before + after[len(by_this_version) :]
        if window.start <= created(item) < window.end
        and model in (None, item["model"])
        and key_id in (None, item["key_id"])
    ]
    assert usage["totals"] == ledger_sum(selected)


def test_an_account_new_to_this_version_has_its_in_between_rows_from_the_start():
    store = InMemoryRollups()
    assert count_record(store, contribution(ledger_item(UPGRADE)), now=UPGRADE)
    assert store.intermediate_from("acct") == ALL_TIME


def test_an_account_with_older_rows_has_its_in_between_rows_from_after_the_takeover():
    store = InMemoryRollups()
    counted_by_an_older_version(store, ledger_item(UPGRADE - timedelta(days=3)))
    assert count_record(store, contribution(ledger_item(UPGRADE)), now=UPGRADE)
    start_intermediate(store, ["acct"], now=UPGRADE + timedelta(days=1))  # a later batch changes nothing
    assert store.intermediate_from("acct") == UPGRADE + TAKEOVER_MARGIN


# --- dimensions without in-between rows ----------------------------------------------------------


def test_only_the_per_model_dimensions_have_in_between_rows():
    item = ledger_item(UPGRADE, model=MODELS[1], key=KEYS[0])
    updates = rollup_updates({**item, "user": "ana", "app": "Raycast"})

    per_model = {"model", key_models_dimension(KEYS[0].key_id), "user-model:ana", "app-model:Raycast"}
    in_between = {update.dimension for update in updates if update.granularity not in CALENDAR}
    assert in_between == per_model | {"user", "app"}
    assert all(has_in_between(update.dimension) == (update.dimension in per_model) for update in updates)
    # Users and apps have a year row besides their calendar rows (it ranks a year's users); the
    # provider's rows are calendar rows, like the total's, the key's and the member's
    # and a user's models no 10-minute rows
    for dimension, granularities in (
        ("user", (*CALENDAR, "year")),
        ("provider", CALENDAR),
        ("user-model:ana", (*CALENDAR, "year", "10d", "6h")),
        ("model", (*CALENDAR, "year", "10d", "6h", "10min")),
    ):
        assert sorted(update.granularity for update in updates if update.dimension == dimension) == sorted(
            granularities
        )


def value_of(item: dict[str, Any], dimension: str) -> str:
    if dimension == "total":
        return TOTAL
    if dimension == "member":
        return item["member"] or NO_MEMBER
    return str(item["key_id" if dimension == "key" else "provider"])


@settings(max_examples=100, deadline=None)
@given(
    items=records,
    first=edges(UPGRADE - timedelta(days=420), UPGRADE + timedelta(days=40)),
    second=edges(UPGRADE - timedelta(days=420), UPGRADE + timedelta(days=40)),
    dimension=st.sampled_from(["provider", "total", "key", "member"]),
)
def test_a_window_of_a_dimension_without_in_between_rows_agrees_with_the_ledger(items, first, second, dimension):
    # Given an account whose in-between rows are complete from the start of time
    assume(first != second)
    store = InMemoryRollups()
    for item in items:
        assert count_record(store, contribution(item), now=UPGRADE)
    window = Window(min(first, second), max(first, second))

    # When a window of a dimension that has calendar rows only is summed (a year of it, say)
    sums = reports.sum_window(store, "acct", window, dimension)

    # Then it is cut into calendar buckets, whose rows hold every record of the window
    selected: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        if window.start <= created(item) < window.end:
            selected.setdefault(value_of(item, dimension), []).append(item)
    assert {value: reports.summary(counters) for value, counters in sums.items()} == {
        value: ledger_sum(chosen) for value, chosen in selected.items()
    }


def test_a_filters_own_rows_are_named_once_for_the_chart_and_the_export_plan():
    assert filter_rows(None, None) == ("total", TOTAL)
    assert filter_rows(MODELS[0], None) == ("model", MODELS[0])
    assert filter_rows(None, "key_a") == ("key", "key_a")
    assert filter_rows(MODELS[0], "key_a") == (key_models_dimension("key_a"), MODELS[0])
