"""Usage, activity and dashboard figures, read from rollups only (never by scanning the ledger)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from meterway.analytics.dal.rollup_store import RollupStore
from meterway.analytics.dal.rollups_table import VALUE_DIMENSIONS
from meterway.analytics.logic.rollups import Filter, Span, decompose, granularities_of, in_between_from
from meterway.analytics.logic.windows import Window
from meterway.analytics.models import GROUP_BY, TOTAL, Counters
from meterway.core.clock import (
    GRANULARITIES,
    Granularity,
    buckets,
    floor,
    iso_z,
    label,
    parse_label,
    step,
    step_back,
    utc_iso,
)
from meterway.core.errors import InvalidRequest
from meterway.core.money import money

PERIODS: dict[str, tuple[Granularity, int]] = {
    "1h": ("minute", 60),
    "1d": ("hour", 24),
    "1mo": ("day", 30),
    "1y": ("month", 12),
}
TOP_MODELS = 5
# The most items a usage query reads for its table and a chart stacked by model (buckets × models):
# past it the chart reads one total row a bucket (a window of 400 days by 20 models would be 8,000).
STACKED_READS = 1500
# Activity by user or app shows the groups that spent most, each exactly, and sums the rest: an
# application names thousands of end users, and every bucket × user would be read (6,000 items for
# a month of 200 users). They are ranked by the rows of the calendar granularity above the
# period's buckets (``RANKING``): the hours of an hour's minutes, the days of a day's hours, the
# months of a month's days, the years of a year's months; two buckets × the users in them.
TOP_GROUPS = 15
RANKED = VALUE_DIMENSIONS
RANKING: dict[Granularity, Granularity] = {"minute": "hour", "hour": "day", "day": "month", "month": "year"}


def summary(counters: Counters) -> dict[str, Any]:
    """Counters as the API shows them: ``requests`` served (in full or in part), ``errors`` failed."""
    return {
        "cost": money(counters.cost_usd),
        "requests": counters.requests,
        "errors": counters.errors,
        "input_tokens": counters.input_tokens,
        "output_tokens": counters.output_tokens,
        "reasoning_tokens": counters.reasoning_tokens,
        "cache_creation_tokens": counters.cache_creation_tokens,
        "cache_creation_5m_tokens": counters.cache_creation_5m_tokens,
        "cache_creation_1h_tokens": counters.cache_creation_1h_tokens,
        "cache_read_tokens": counters.cache_read_tokens,
        "total_tokens": counters.total_tokens,
    }


@dataclass(frozen=True, slots=True)
class Cell:
    """One rollup row of a window's decomposition: a bucket's counters for one value."""

    granularity: Granularity
    bucket: str
    value: str
    counters: Counters


def window_cells(
    store: RollupStore, account_id: str, window: Window, dimension: str, value: str | None = None
) -> list[Cell]:
    """The rows of ``dimension`` (only those of ``value`` when given) in the coarsest buckets that
    cover the window: buckets × values of a few dozen buckets, however long the window."""
    cells: list[Cell] = []
    since = in_between_from(store, account_id, dimension)
    for span in decompose(window.start, window.end, since, granularities_of(dimension)):
        granularity = span.granularity
        first, last = label(span.first, granularity), label(span.last, granularity)
        if value is None:
            rows = store.query(account_id, granularity, dimension, first, last)
        else:
            labels = [
                label(start, granularity) for start in buckets(span.first, step(span.last, granularity), granularity)
            ]
            rows = store.cells(account_id, granularity, dimension, value, labels)
        cells.extend(Cell(granularity, row["bucket"], row["value"], Counters().add(row)) for row in rows)
    return cells


def sum_window(store: RollupStore, account_id: str, window: Window, dimension: str) -> dict[str, Counters]:
    """Counters per value of ``dimension`` over the window, read from the coarsest buckets."""
    sums: dict[str, Counters] = defaultdict(Counters)
    for cell in window_cells(store, account_id, window, dimension):
        sums[cell.value].add(cell.counters.as_dict())
    return sums


def usage_summary(
    store: RollupStore,
    account_id: str,
    window: Window,
    *,
    model: str | None = None,
    key_id: str | None = None,
    user: str | None = None,
    app: str | None = None,
) -> dict[str, Any]:
    """Stat-card totals, the per-model breakdown and the chart's series for a window, optionally
    for one model and one of a key, a user and an app.

    The totals and the per-model table sum the per-model rows (the key's, user's or app's, for
    such a filter) of the window's coarsest buckets (``window_cells``). The chart is stacked by
    model while the whole buckets' per-model rows fit beside those (``STACKED_READS``): it reads
    them; else one row per whole bucket, the total's or the filter's own (a model, a key, or the
    key's model; a user's or an app's likewise). A bucket cut by an edge of the window counts
    only its part inside: the per-model rows already read for that part, which lie in it since
    every granularity nests in the coarser ones."""
    if len([owner for owner in (key_id, user, app) if owner]) > 1:
        raise InvalidRequest(
            "Filter usage by one of 'key', 'user' and 'app' (with 'model' or not); "
            "the request log and its export take them together.",
            code="invalid_filter",
        )
    chosen = Filter(model, key_id, user, app)
    dimension = chosen.models_dimension()
    granularity = series_granularity(window)
    per_model: dict[str, Counters] = defaultdict(Counters)
    cut: dict[str, dict[str, Counters]] = defaultdict(lambda: defaultdict(Counters))
    totals = Counters()
    finer = GRANULARITIES[GRANULARITIES.index(granularity) + 1 :]
    cells = window_cells(store, account_id, window, dimension, model)
    for cell in cells:
        per_model[cell.value].add(cell.counters.as_dict())
        totals.add(cell.counters.as_dict())
        if cell.granularity in finer:
            cut[label(parse_label(cell.bucket, cell.granularity), granularity)][cell.value].add(cell.counters.as_dict())
    starts = buckets(window.start, window.end, granularity)
    whole = [start for start in starts if window.start <= start and step(start, granularity) <= window.end]
    # Stacked by model while the chart's buckets × models fit beside the table's rows; one model's
    # chart (a model filter) has nothing to stack.
    stacked = not model and len(cells) + len(whole) * max(len(per_model), 1) <= STACKED_READS
    if stacked:
        rows = models_per_bucket(store, account_id, granularity, whole, dimension)
    else:
        rows = {
            bucket: {"": counters}
            for bucket, counters in whole_buckets(store, account_id, granularity, whole, chosen).items()
        }
    inside = set(whole)
    models = [
        {"model": name, **summary(counters)}
        for name, counters in sorted(per_model.items(), key=lambda item: (-item[1].cost_usd, item[0]))
    ]
    series = []
    for start in starts:
        groups = (rows if start in inside else cut).get(label(start, granularity), {})
        bucket = {"start": utc_iso(max(start, window.start)), **summary(_sum(groups.values()))}
        if stacked:
            bucket["models"] = {name: summary(counters) for name, counters in sorted(groups.items())}
        series.append(bucket)
    return {
        "start": window.start_iso,
        "end": window.end_iso,
        "filters": {"model": model, "key": key_id, "user": user, "app": app},
        "totals": summary(totals),
        "models": models,
        "series": {"granularity": granularity, "by_model": stacked, "buckets": series},
    }


def series_granularity(window: Window) -> Granularity:
    """Buckets a chart of the window can show: at most a few hundred of them."""
    span = window.end - window.start
    if span <= timedelta(hours=3):
        return "minute"
    if span <= timedelta(days=3):
        return "hour"
    return "day" if span <= timedelta(days=400) else "month"


def whole_buckets(
    store: RollupStore,
    account_id: str,
    granularity: Granularity,
    starts: list[datetime],
    chosen: Filter,
) -> dict[str, Counters]:
    """Counters per bucket (label) for consecutive buckets, one row each: the account's total, or
    the row of the filter (``Filter.rows``)."""
    if not starts:
        return {}
    dimension, value = chosen.rows()
    if dimension == "total":
        first, last = label(starts[0], granularity), label(starts[-1], granularity)
        rows = store.query(account_id, granularity, dimension, first, last)
    else:
        rows = store.cells(account_id, granularity, dimension, value, [label(start, granularity) for start in starts])
    return {row["bucket"]: Counters().add(row) for row in rows}


def models_per_bucket(
    store: RollupStore, account_id: str, granularity: Granularity, starts: list[datetime], dimension: str
) -> dict[str, dict[str, Counters]]:
    """Counters per bucket (label) and model for consecutive buckets: the rows of ``dimension``
    (every model's, or a key's, user's or app's models)."""
    if not starts:
        return {}
    per_bucket: dict[str, dict[str, Counters]] = defaultdict(lambda: defaultdict(Counters))
    for row in store.query(
        account_id, granularity, dimension, label(starts[0], granularity), label(starts[-1], granularity)
    ):
        per_bucket[row["bucket"]][row["value"]].add(row)
    return per_bucket


def _sum(counters: Iterable[Counters]) -> Counters:
    total = Counters()
    for each in counters:
        total.add(each.as_dict())
    return total


def activity(
    store: RollupStore, account_id: str, period: str, group_by: str, now: datetime, names: dict[str, str]
) -> dict[str, Any]:
    """Spend, tokens and requests per bucket and group over the period ending now; every bucket
    is present, empty ones included, so a chart has no holes."""
    if period not in PERIODS:
        raise InvalidRequest(f"'period' must be one of {', '.join(PERIODS)}.", code="invalid_period")
    if group_by not in GROUP_BY:
        raise InvalidRequest(f"'group_by' must be one of {', '.join(GROUP_BY)}.", code="invalid_group_by")
    granularity, count = PERIODS[period]
    last = floor(now, granularity)
    first = last
    for _ in range(count - 1):
        first = step_back(first, granularity)
    top = TOP_GROUPS if group_by in RANKED else None
    return {"period": period, **bucket_series(store, account_id, first, last, granularity, group_by, names, top=top)}


def bucket_series(
    store: RollupStore,
    account_id: str,
    first: datetime,
    last: datetime,
    granularity: Granularity,
    group_by: str,
    names: dict[str, str],
    *,
    top: int | None = None,
) -> dict[str, Any]:
    """Buckets ``first``..``last`` (inclusive) of one granularity, each with its groups: every
    group's row of every bucket; with ``top``, only the rows of the ``top`` values that spent most
    (``top_values``) when there are more, each exact over the period, and the rest summed in
    ``other`` (each bucket's total less the groups shown)."""
    chosen = top_values(store, account_id, Span(granularity, first, last), group_by, top) if top else None
    if chosen is None:
        rows = store.query(account_id, granularity, group_by, label(first, granularity), label(last, granularity))
        return _grouped(first, last, granularity, group_by, names, rows)
    labels = [label(start, granularity) for start in buckets(first, step(last, granularity), granularity)]
    rows = [row for value in chosen for row in store.cells(account_id, granularity, group_by, value, labels)]
    totals = {
        row["bucket"]: Counters().add(row)
        for row in store.query(account_id, granularity, "total", labels[0], labels[-1])
    }
    return _grouped(first, last, granularity, group_by, names, rows, totals)


def top_values(store: RollupStore, account_id: str, span: Span, group_by: str, top: int) -> list[str] | None:
    """The ``top`` values of ``group_by`` that spent most in the buckets of the ranking
    granularity the period (``span``) lies in (``RANKING``); None when there are no more than
    ``top`` (every group is read), or for years whose year rows are not complete yet (a version
    before wrote none: ``backfill`` derives them)."""
    coarse = RANKING[span.granularity]
    if coarse == "year":
        named = store.changed_from(account_id, "named-in-between")
        if named is None or named > floor(span.first, "year"):
            return None
    spent: dict[str, Counters] = defaultdict(Counters)
    for row in store.query(account_id, coarse, group_by, label(span.first, coarse), label(span.last, coarse)):
        spent[row["value"]].add(row)
    if len(spent) <= top:
        return None
    return sorted(spent, key=lambda value: (-spent[value].cost_usd, value))[:top]


def _grouped(
    first: datetime,
    last: datetime,
    granularity: Granularity,
    group_by: str,
    names: dict[str, str],
    rows: list[dict[str, Any]],
    totals: dict[str, Counters] | None = None,
) -> dict[str, Any]:
    """The series of ``rows`` (groups' cells); with ``totals`` (each bucket's, when only some
    groups were read), the rest of each bucket and of the period as ``other``."""
    cells: dict[str, dict[str, Counters]] = defaultdict(lambda: defaultdict(Counters))
    for row in rows:
        cells[row["bucket"]][row["value"]].add(row)
    group_totals: dict[str, Counters] = defaultdict(Counters)
    rest = Counters()
    series = []
    for start in buckets(first, step(last, granularity), granularity):
        bucket_label = label(start, granularity)
        groups = cells.get(bucket_label, {})
        shown = _sum(groups.values())
        for value, counters in groups.items():
            group_totals[value].add(counters.as_dict())
        bucket = {
            "start": iso_z(start),
            "label": bucket_label,
            **summary(shown if totals is None else totals.get(bucket_label, Counters())),
            "groups": {value: summary(counters) for value, counters in sorted(groups.items())},
        }
        if totals is not None:
            other = totals.get(bucket_label, Counters()).less(shown)
            rest.add(other.as_dict())
            bucket["other"] = summary(other)
        series.append(bucket)
    return {
        "granularity": granularity,
        "group_by": group_by,
        "start": iso_z(first),
        "end": iso_z(step(last, granularity)),
        "buckets": series,
        "groups": [
            {"group": value, "name": names.get(value, value), **summary(counters)}
            for value, counters in sorted(group_totals.items(), key=lambda item: (-item[1].cost_usd, item[0]))
        ],
        "other": None if totals is None else summary(rest),
    }


def dashboard(
    store: RollupStore, account_id: str, now: datetime, recent: list[dict[str, Any]], balance: str | None = None
) -> dict[str, Any]:
    """Trends for the last 7 and 30 days (today included), the top models of those 30 days, the
    most recent requests, and the credit ``balance`` (None while no credit was ever added)."""
    today = floor(now, "day")
    first = today - timedelta(days=29)
    daily = {
        row["bucket"]: Counters().add(row)
        for row in store.query(account_id, "day", "total", label(first, "day"), label(today, "day"))
        if row["value"] == TOTAL
    }
    trend = [
        {"date": label(day, "day"), **summary(daily.get(label(day, "day"), Counters()))}
        for day in buckets(first, today + timedelta(days=1), "day")
    ]
    window = Window(first, today + timedelta(days=1))
    models = sum_window(store, account_id, window, "model")
    top = sorted(models.items(), key=lambda item: (-item[1].cost_usd, item[0]))[:TOP_MODELS]
    return {
        "as_of": iso_z(now),
        "balance": balance,
        "last_7_days": {"totals": _total(trend[-7:]), "daily": trend[-7:]},
        "last_30_days": {"totals": _total(trend), "daily": trend},
        "top_models": [{"model": name, **summary(counters)} for name, counters in top],
        "recent_activity": recent,
    }


def _total(days: list[dict[str, Any]]) -> dict[str, Any]:
    total = Counters()
    for day in days:
        total.add({**day, "cost_usd": day["cost"]})
    return summary(total)
