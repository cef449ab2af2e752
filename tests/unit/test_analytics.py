"""Rollups answer exactly what summing the ledger answers, for any records, window and filter."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from meterway.analytics.logic import reports
from meterway.analytics.logic.rollups import contribution, count_record, decompose
from meterway.analytics.logic.windows import Window, parse_window
from meterway.analytics.models import Counters
from meterway.core.clock import floor
from meterway.core.errors import InvalidRequest
from tests.fakes import InMemoryRollups
from tests.ledger_factory import APPS, KEYS, MODELS, USERS, costs, ledger_item, statuses, usages

NOW = datetime(2026, 3, 2, 10, 17, 30, tzinfo=UTC)
EPOCH = datetime(2025, 12, 20, tzinfo=UTC)  # the span crosses a year end and a February
SPAN_MS = int((NOW - EPOCH).total_seconds() * 1000)

minutes = st.integers(0, SPAN_MS // 60_000)


def snapped(minute: int, granularity: str, nudge: int) -> datetime:
    moment = floor(EPOCH + timedelta(minutes=minute), granularity)  # type: ignore[arg-type]
    return moment + timedelta(minutes=nudge)


# Window edges anywhere, or on an hour, day or month boundary give or take a minute.
edges = st.one_of(
    minutes.map(lambda minute: EPOCH + timedelta(minutes=minute)),
    st.builds(snapped, minutes, st.sampled_from(["hour", "day", "month"]), st.sampled_from([-1, 0, 1])),
)


def rolled_up(items: list[dict[str, Any]]) -> InMemoryRollups:
    store = InMemoryRollups()
    for item in items:
        assert count_record(store, contribution(item))
    return store


def created(item: dict[str, Any]) -> datetime:
    return datetime.strptime(item["created_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def ledger_sum(items: list[dict[str, Any]]) -> dict[str, Any]:
    total = Counters()
    for item in items:
        served = item["status"] != "error"
        total.add({**item, "requests": int(served), "errors": int(not served)})
    return reports.summary(total)


def near(*edges: datetime) -> st.SearchStrategy[datetime]:
    """Times anywhere in the span, or within two minutes of an edge, where off-by-one bugs live."""
    close = [
        st.integers(-120_000, 120_000).map(lambda ms, edge=edge: edge + timedelta(milliseconds=ms)) for edge in edges
    ]
    anywhere = st.integers(0, SPAN_MS - 1).map(lambda ms: EPOCH + timedelta(milliseconds=ms))
    return st.one_of(anywhere, *close).filter(lambda moment: EPOCH <= moment < NOW)


def records_near(
    *edges: datetime,
    users: tuple[str | None, ...] = USERS,
    apps: tuple[str | None, ...] = APPS,
    min_size: int = 0,
    max_size: int = 60,
) -> st.SearchStrategy[list[dict[str, Any]]]:
    return st.lists(
        st.builds(
            lambda moment, model, key, usage, cost, status, user, app: ledger_item(
                moment, model=model, key=key, usage=usage, cost=cost, status=status, user=user, app=app
            ),
            near(*edges),
            st.sampled_from(MODELS),
            st.sampled_from(KEYS),
            usages,
            costs,
            statuses,
            st.sampled_from(users),
            st.sampled_from(apps),
        ),
        min_size=min_size,
        max_size=max_size,
    )


# One of a key, a user (``(none)``: the requests that named none) and an app, or none of them.
owners = st.one_of(
    st.none(),
    st.tuples(st.just("key_id"), st.sampled_from([key.key_id for key in KEYS])),
    st.tuples(st.just("user"), st.sampled_from(["(none)", *USERS[1:]])),
    st.tuples(st.just("app"), st.sampled_from(["(none)", *APPS[1:]])),
)


def named(item: dict[str, Any], field: str) -> str:
    """The record's key, user or app as a filter names it."""
    return item.get(field) or "(none)"


@settings(max_examples=300, deadline=None)
@given(data=st.data(), first=edges, second=edges, model=st.none() | st.sampled_from(MODELS), owner=owners)
def test_usage_equals_the_ledger_sum_for_any_window_and_filter(data, first, second, model, owner):
    assume(first != second)
    window = Window(min(first, second), max(first, second))
    items = data.draw(records_near(window.start, window.end))
    chosen = dict([owner]) if owner else {}

    result = reports.usage_summary(rolled_up(items), "acct", window, model=model, **chosen)

    selected = [
        item
        for item in items
        if window.start <= created(item) < window.end
        and (model is None or item["model"] == model)
        and all(named(item, field) == value for field, value in chosen.items())
    ]
    assert result["totals"] == ledger_sum(selected)
    by_model: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for item in selected:
        by_model[item["model"]].append(item)
    assert {row["model"]: {k: v for k, v in row.items() if k != "model"} for row in result["models"]} == {
        name: ledger_sum(rows) for name, rows in by_model.items()
    }
    assert_series_matches(result["series"], selected, window)
    # Stacked by model unless one model is asked for (three models' rows always fit here).
    assert result["series"]["by_model"] == (model is None)


def test_a_chart_of_too_many_buckets_by_model_reads_one_row_a_bucket():
    # 400 days of 5 models: 2,000 rows a stacked chart would read (past STACKED_READS with the table's)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    models = [f"openai/model-{n}" for n in range(5)]
    items = [
        ledger_item(start + timedelta(days=day, hours=n), model=name)
        for day in range(400)
        for n, name in enumerate(models)
    ]
    store = rolled_up(items)
    window = Window(start, start + timedelta(days=400))

    store.items_read = 0
    result = reports.usage_summary(store, "acct", window)

    assert not result["series"]["by_model"] and "models" not in result["series"]["buckets"][0]
    assert result["totals"] == ledger_sum(items)
    assert_series_matches(result["series"], items, window)
    assert store.items_read <= reports.STACKED_READS
    shorter = reports.usage_summary(store, "acct", Window(start, start + timedelta(days=200)))
    assert shorter["series"]["by_model"]  # 200 days × 5 models fit


def assert_series_matches(series: dict[str, Any], selected: list[dict[str, Any]], window: Window) -> None:
    """Each bucket of the chart holds exactly the selected records inside it (clipped to the window)."""
    starts = [datetime.fromisoformat(bucket["start"]) for bucket in series["buckets"]]
    assert starts[0] == window.start
    ends = [*starts[1:], window.end]
    for bucket, start, end in zip(series["buckets"], starts, ends, strict=True):
        inside = [item for item in selected if start <= created(item) < end]
        assert {k: v for k, v in bucket.items() if k not in ("start", "models")} == ledger_sum(inside)
        if series["by_model"]:  # stacked by model: each model's part of the bucket
            assert bucket["models"] == {
                model: ledger_sum([item for item in inside if item["model"] == model])
                for model in {item["model"] for item in inside}
            }
        else:
            assert "models" not in bucket


@settings(max_examples=100, deadline=None)
@given(
    items=records_near(NOW - timedelta(hours=1), floor(NOW, "hour"), floor(NOW, "day"), floor(NOW, "month")),
    period=st.sampled_from(["1h", "1d", "1mo", "1y"]),
    group_by=st.sampled_from(["model", "key", "member", "user", "app"]),
)
def test_activity_buckets_equal_the_ledger_sums_and_none_is_missing(items, period, group_by):
    result = reports.activity(rolled_up(items), "acct", period, group_by, NOW, names={})

    granularity, count = reports.PERIODS[period]
    assert len(result["buckets"]) == count
    assert result["buckets"][-1]["label"] == reports.label(floor(NOW, granularity), granularity)
    start = datetime.fromisoformat(result["start"])
    end = datetime.fromisoformat(result["end"])
    for bucket in result["buckets"]:
        bucket_start = datetime.fromisoformat(bucket["start"])
        inside = [item for item in items if floor(created(item), granularity) == bucket_start]
        assert {k: bucket[k] for k in ledger_sum([])} == ledger_sum(inside)
        groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for item in inside:
            group = named(item, group_by if group_by != "key" else "key_id")
            # A user's cells keep the first 256 bytes of its name: 128 of the long one's 300 é.
            groups["é" * 128 if group == "é" * 300 else group].append(item)
        assert bucket["groups"] == {value: ledger_sum(rows) for value, rows in groups.items()}
    in_period = [item for item in items if start <= created(item) < end]
    assert sum(group["requests"] + group["errors"] for group in result["groups"]) == len(in_period)


# More users and apps than activity shows one by one (``reports.TOP_GROUPS``).
MANY = tuple(f"team-{n}" for n in range(24))


def rollup_value(item: dict[str, Any], group_by: str) -> str:
    """A record's user or app as its cells hold it: the first 256 bytes of its name."""
    group = named(item, group_by)
    return "é" * 128 if group == "é" * 300 else group


@settings(max_examples=100, deadline=None)
@given(
    items=records_near(
        NOW - timedelta(minutes=90),
        NOW - timedelta(hours=1),
        NOW - timedelta(minutes=20),
        floor(NOW, "hour"),
        floor(NOW, "day") - timedelta(hours=30),
        floor(NOW, "day"),
        floor(NOW, "month") - timedelta(days=20),
        floor(NOW, "month"),
        users=(*USERS, *MANY),
        apps=(*APPS, *MANY),
        min_size=50,
        max_size=150,
    ),
    period=st.sampled_from(["1h", "1d", "1mo", "1y"]),
    group_by=st.sampled_from(["user", "app"]),
)
def test_activity_by_user_shows_the_top_spenders_exactly_and_the_rest_as_other(items, period, group_by):
    store = rolled_up(items)
    store.items_read = 0
    result = reports.activity(store, "acct", period, group_by, NOW, names={})

    granularity, count = reports.PERIODS[period]
    ranking = reports.RANKING[granularity]
    start, end = datetime.fromisoformat(result["start"]), datetime.fromisoformat(result["end"])
    # The users (apps) ranked: those of the hours, days, months or years the period lies in
    ranked = [item for item in items if floor(start, ranking) <= floor(created(item), ranking) <= floor(NOW, ranking)]
    spent: dict[str, Decimal] = defaultdict(Decimal)
    for item in ranked:
        spent[rollup_value(item, group_by)] += item["cost_usd"]
    top = sorted(spent, key=lambda value: (-spent[value], value))[: reports.TOP_GROUPS]
    shown = set(top) if len(spent) > reports.TOP_GROUPS else set(spent)
    in_period = [item for item in items if start <= created(item) < end]
    assert [group["group"] for group in result["groups"]] == sorted(
        {rollup_value(item, group_by) for item in in_period} & shown,
        key=lambda value: (-sum(i["cost_usd"] for i in in_period if rollup_value(i, group_by) == value), value),
    )
    rest = [item for item in in_period if rollup_value(item, group_by) not in shown]
    assert result["other"] == (ledger_sum(rest) if len(spent) > reports.TOP_GROUPS else None)
    for bucket in result["buckets"]:
        inside = [
            item for item in in_period if floor(created(item), granularity) == datetime.fromisoformat(bucket["start"])
        ]
        assert {k: bucket[k] for k in ledger_sum([])} == ledger_sum(inside)
        groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for item in inside:
            if rollup_value(item, group_by) in shown:
                groups[rollup_value(item, group_by)].append(item)
        assert bucket["groups"] == {value: ledger_sum(rows) for value, rows in groups.items()}
        if result["other"] is not None:
            assert bucket["other"] == ledger_sum([i for i in inside if rollup_value(i, group_by) not in shown])
    # The ranking rows (2 buckets × the values in them), the shown values' rows and each bucket's total
    ranking_rows = len({(floor(created(item), ranking), rollup_value(item, group_by)) for item in ranked})
    assert store.items_read <= ranking_rows + (reports.TOP_GROUPS + 1) * count


@settings(max_examples=60, deadline=None)
@given(items=records_near(floor(NOW, "day") - timedelta(days=29), floor(NOW, "day") - timedelta(days=6)))
def test_dashboard_trends_and_top_models_equal_the_ledger(items):
    result = reports.dashboard(rolled_up(items), "acct", NOW, recent=[])

    today = floor(NOW, "day")
    last_30 = [item for item in items if today - timedelta(days=29) <= created(item)]
    last_7 = [item for item in items if today - timedelta(days=6) <= created(item)]
    assert result["last_30_days"]["totals"] == ledger_sum(last_30)
    assert result["last_7_days"]["totals"] == ledger_sum(last_7)
    assert len(result["last_30_days"]["daily"]) == 30
    for day in result["last_7_days"]["daily"]:
        same_day = [item for item in items if item["created_at"].startswith(day["date"])]
        assert {k: day[k] for k in ledger_sum([])} == ledger_sum(same_day)
    spend: dict[str, Decimal] = defaultdict(Decimal)
    for item in last_30:
        spend[item["model"]] += item["cost_usd"]
    expected = sorted(spend.items(), key=lambda pair: (-pair[1], pair[0]))[: reports.TOP_MODELS]
    assert [(row["model"], Decimal(row["cost"])) for row in result["top_models"]] == expected


def test_a_redelivered_record_is_counted_once():
    item = ledger_item(NOW - timedelta(minutes=5))
    store = InMemoryRollups()
    assert count_record(store, contribution(item)) is True
    assert count_record(store, contribution(item)) is False
    window = parse_window(None, None, NOW)
    assert reports.usage_summary(store, "acct", window)["totals"]["requests"] == 1


def test_the_last_millisecond_of_a_month_and_the_first_of_the_next_land_in_their_own_buckets():
    before = ledger_item(datetime(2026, 1, 31, 23, 59, 59, 999_000, tzinfo=UTC), cost=Decimal("0.1"))
    after = ledger_item(datetime(2026, 2, 1, 0, 0, 0, 0, tzinfo=UTC), cost=Decimal("0.2"))
    store = rolled_up([before, after])

    january = Window(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC))
    february_first = Window(datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 2, 1, 0, 1, tzinfo=UTC))
    last_minute = Window(datetime(2026, 1, 31, 23, 59, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC))
    assert reports.usage_summary(store, "acct", january)["totals"]["cost"] == "0.1"
    assert reports.usage_summary(store, "acct", february_first)["totals"]["cost"] == "0.2"
    assert reports.usage_summary(store, "acct", last_minute)["totals"]["cost"] == "0.1"
    assert [span.granularity for span in decompose(january.start, january.end)] == ["month"]


def test_a_window_may_span_fifty_years_and_no_more():
    since = parse_window("1976-03-02", "2026-03-01", NOW)
    assert since.end - since.start == timedelta(days=18_262)
    with pytest.raises(InvalidRequest, match="50 years"):
        parse_window("1976-03-01", "2026-03-01", NOW)


def test_a_window_ending_a_minute_before_midnight_leaves_out_the_last_minute():
    inside = ledger_item(datetime(2026, 2, 28, 23, 58, 59, 999_000, tzinfo=UTC), cost=Decimal("0.01"))
    outside = ledger_item(datetime(2026, 2, 28, 23, 59, 0, 0, tzinfo=UTC), cost=Decimal("0.02"))
    store = rolled_up([inside, outside])
    until_2359 = Window(datetime(2026, 2, 28, tzinfo=UTC), datetime(2026, 2, 28, 23, 59, tzinfo=UTC))
    whole_day = parse_window("2026-02-28", "2026-02-28", NOW)
    assert reports.usage_summary(store, "acct", until_2359)["totals"]["cost"] == "0.01"
    assert reports.usage_summary(store, "acct", whole_day)["totals"]["cost"] == "0.03"


def test_a_window_is_read_from_coarse_buckets_and_finer_ones_only_at_its_edges():
    start, end = datetime(2026, 1, 30, 22, 13, tzinfo=UTC), datetime(2026, 4, 2, 3, 7, tzinfo=UTC)
    assert [span.granularity for span in decompose(start, end)] == [
        *("minute", "10min", "hour", "day", "month", "day", "hour", "minute")
    ]
    # Until the in-between rows are complete, the calendar granularities alone.
    assert [span.granularity for span in decompose(start, end, None)] == [
        *("minute", "hour", "day", "month", "day", "hour", "minute")
    ]
    store = rolled_up([])
    reports.usage_summary(store, "acct", Window(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 12, 31, tzinfo=UTC)))
    assert store.items_read == 1  # the account's marker; no row exists to read


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        ("2026-02-01", "2026-02-28", ("2026-02-01T00:00:00+00:00", "2026-03-01T00:00:00+00:00")),
        (
            "2026-03-01T09:30:45Z",
            "2026-03-02T10:00:00+00:00",
            ("2026-03-01T09:30:00+00:00", "2026-03-02T10:00:00+00:00"),
        ),
        (None, None, ("2026-02-01T00:00:00+00:00", "2026-03-02T10:18:00+00:00")),
    ],
)
def test_windows_are_utc_dates_inclusive_and_datetimes_cut_to_the_minute(start, end, expected):
    window = parse_window(start, end, NOW)
    assert (window.start.isoformat(), window.end.isoformat()) == expected


@pytest.mark.parametrize(
    ("start", "end", "code"),
    [
        ("2026-03-02", "2026-03-01", "invalid_window"),
        ("yesterday", None, "invalid_date"),
        ("2026-02-30", None, "invalid_date"),
        ("2025-06-01T10:15:00Z", "2025-06-02", "invalid_window"),
        ("0002-01-01", "2026-03-01", "invalid_window"),
    ],
)
def test_bad_windows_are_refused(start, end, code):
    with pytest.raises(InvalidRequest) as refused:
        parse_window(start, end, NOW)
    assert refused.value.code == code


@pytest.mark.parametrize(("period", "group_by"), [("2h", "model"), ("1d", "colour")])
def test_unknown_period_or_grouping_is_refused(period, group_by):
    with pytest.raises(InvalidRequest):
        reports.activity(InMemoryRollups(), "acct", period, group_by, NOW, names={})
