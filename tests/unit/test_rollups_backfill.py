"""The backfill gives rows an older version wrote their in-between granularities, exactly, even
while records keep arriving, and then windows over them read the in-between rows."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from meterway.analytics.logic import reports
from meterway.analytics.logic.backfill import backfill
from meterway.analytics.logic.rollups import (
    ALL_TIME,
    CALENDAR,
    MINUTE_RETENTION,
    TAKEOVER_MARGIN,
    attributed,
    contribution,
    count_record,
    rollup_updates,
)
from meterway.analytics.logic.windows import Window
from meterway.core.clock import floor
from tests.fakes import InMemoryRollups
from tests.ledger_factory import APPS, KEYS, MODELS, STATUSES, USERS, ledger_item
from tests.unit.test_analytics import created, ledger_sum, rollup_value
from tests.unit.test_rollup_windows import (
    UPGRADE,
    counted_by_an_older_version,
    edges,
    minute_of,
    record_lists,
    records,
)
from tests.unit.test_rollups_recount import counted_as

LATER = datetime(2026, 3, 16, tzinfo=UTC)  # two days after the upgrade


def upgraded(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> InMemoryRollups:
    """Records before the upgrade counted by the older version, then one batch of this version."""
    store = InMemoryRollups()
    for item in old:
        counted_by_an_older_version(store, item)
    for item in new:
        assert count_record(store, contribution(item), now=UPGRADE)
    return store


@settings(max_examples=150, deadline=None)
@given(
    old=records,
    new=records,
    first=edges(UPGRADE - timedelta(days=420), UPGRADE + timedelta(days=40)),
    second=edges(UPGRADE - timedelta(days=420), UPGRADE + timedelta(days=40)),
    model=st.none() | st.sampled_from(MODELS),
    key=st.none() | st.sampled_from(KEYS),
)
def test_after_the_backfill_every_window_agrees_with_the_ledger(old, new, first, second, model, key):
    assume(first != second)
    before = [item for item in old if created(item) < UPGRADE]
    after = [ledger_item(UPGRADE + TAKEOVER_MARGIN), *new]
    store = upgraded(before, after)
    assert store.intermediate_from("acct") == (UPGRADE + TAKEOVER_MARGIN if before else ALL_TIME)

    assert backfill(store, "acct", LATER).complete_from == ALL_TIME

    assert store.intermediate_from("acct") == ALL_TIME
    assert backfill(store, "acct", LATER).written == {}  # nothing left to do
    window = as_the_api_takes(min(first, second), max(first, second))
    key_id = key.key_id if key else None
    usage = reports.usage_summary(store, "acct", window, model=model, key_id=key_id)
    selected = [
        item
        for item in before + after
        if window.start <= created(item) < window.end
        and model in (None, item["model"])
        and key_id in (None, item["key_id"])
    ]
    assert usage["totals"] == ledger_sum(selected)


def as_the_api_takes(start: datetime, end: datetime) -> Window:
    """A window as ``parse_window`` takes it at ``LATER``: to the minute in the minute rows' 8 days,
    to the hour before (the backfill derives the 10-minute rows of those 8 days only)."""
    recent = LATER - MINUTE_RETENTION
    start, end = (moment if moment >= recent else floor(moment, "hour") for moment in (start, end))
    assume(start < end)
    return Window(start, end)


class RacingRollups(InMemoryRollups):
    """A record that arrives late (created before the upgrade) reaches each row the backfill is
    about to replace, just before it does."""

    def __init__(self) -> None:
        super().__init__()
        self.late: list[dict[str, Any]] = []
        self.raced = 0

    def replace_counters(self, row, seen) -> bool:
        if self.late and self.raced < 3:
            self.raced += 1
            assert count_record(self, contribution(self.late.pop()), now=UPGRADE)
        return super().replace_counters(row, seen)


def test_records_that_arrive_while_the_backfill_runs_are_counted_once():
    store = RacingRollups()
    old = [ledger_item(UPGRADE - timedelta(days=day, minutes=7 * day)) for day in range(1, 40)]
    for item in old:
        counted_by_an_older_version(store, item)
    assert count_record(store, contribution(ledger_item(UPGRADE + TAKEOVER_MARGIN)), now=UPGRADE)
    store.late = [ledger_item(UPGRADE - timedelta(days=day, hours=2)) for day in (1, 2, 3)]

    backfill(store, "acct", LATER)

    assert store.raced == 3
    since_january = Window(datetime(2026, 1, 1, tzinfo=UTC), LATER)
    assert reports.usage_summary(store, "acct", since_january)["totals"]["requests"] == len(old) + 3 + 1


def test_after_the_backfill_a_window_over_older_records_reads_the_in_between_rows():
    old = [ledger_item(UPGRADE - timedelta(days=day / 3), model=MODELS[day % 3]) for day in range(1, 300)]
    store = upgraded(old, [ledger_item(UPGRADE + TAKEOVER_MARGIN)])
    window = Window(datetime(2026, 2, 1, 1, tzinfo=UTC), datetime(2026, 3, 13, 23, tzinfo=UTC))
    before = reports.usage_summary(store, "acct", window)
    # The table's rows (the chart's, stacked by model, are the same day rows before and after)
    read_before = len(reports.window_cells(store, "acct", window, "model"))

    backfill(store, "acct", LATER)

    assert reports.usage_summary(store, "acct", window) == before
    assert len(reports.window_cells(store, "acct", window, "model")) < read_before * 0.6


def test_a_backfill_waits_while_a_batch_of_the_older_version_may_still_run():
    store = upgraded([ledger_item(UPGRADE - timedelta(days=3))], [ledger_item(UPGRADE)])

    report = backfill(store, "acct", UPGRADE + timedelta(minutes=5))

    assert report.waiting_until == UPGRADE + TAKEOVER_MARGIN
    assert store.intermediate_from("acct") == UPGRADE + TAKEOVER_MARGIN


def test_a_backfill_before_this_version_counted_anything_dates_the_start_itself():
    store = upgraded([ledger_item(UPGRADE - timedelta(days=3))], [])

    assert backfill(store, "acct", UPGRADE).waiting_until == UPGRADE + TAKEOVER_MARGIN
    assert backfill(store, "acct", LATER).complete_from == ALL_TIME


# --- the user's and the app's models, and the year rows of users and apps ------------------------


def counted_before_named_in_between(store: InMemoryRollups, item: dict[str, Any]) -> None:
    """What the version before the ``named-in-between`` change wrote: every row of this version
    but the in-between rows of the user's and the app's models and the user's and app's year."""
    named = [u for u in rollup_updates(item) if not attributed(u.dimension) or u.granularity in CALENDAR]
    counted_as(store, item, named)


def of_the_version_before(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> InMemoryRollups:
    """An account every change but ``named-in-between`` counted from the start, its records before
    the upgrade counted by the version before, then one batch of this version."""
    store = InMemoryRollups()
    store.start_intermediate("acct", ALL_TIME)
    for change in ("parts", "errors-apart", "attribution"):
        store.start_change("acct", change, ALL_TIME)
    for item in old:
        counted_before_named_in_between(store, item)
    for item in new:
        assert count_record(store, contribution(item), now=UPGRADE)
    return store


named_records = record_lists(
    minute_of(UPGRADE - timedelta(days=400), UPGRADE), users=USERS, apps=APPS, statuses=STATUSES
)


@settings(max_examples=120, deadline=None)
@given(
    old=named_records,
    first=edges(UPGRADE - timedelta(days=420), UPGRADE + timedelta(days=40)),
    second=edges(UPGRADE - timedelta(days=420), UPGRADE + timedelta(days=40)),
    owner=st.sampled_from(["user", "app"]),
    data=st.data(),
)
def test_a_users_or_apps_windows_and_years_agree_with_the_ledger_before_and_after_their_backfill(
    old, first, second, owner, data
):
    assume(first != second)
    after = [ledger_item(UPGRADE + TAKEOVER_MARGIN, user=USERS[1], app=APPS[1])]
    store = of_the_version_before(old, after)
    assert store.changed_from("acct", "named-in-between") == (UPGRADE + TAKEOVER_MARGIN if old else ALL_TIME)
    window = as_the_api_takes(min(first, second), max(first, second))
    named = rollup_value({owner: data.draw(st.sampled_from(USERS if owner == "user" else APPS))}, owner)

    def years(items: list[dict[str, Any]]) -> dict[str, int]:
        return dict(Counter(item["created_at"][:4] for item in items if rollup_value(item, owner) == named))

    def agrees() -> None:
        usage = reports.usage_summary(store, "acct", window, **{owner: named})
        inside = [item for item in old + after if window.start <= created(item) < window.end]
        assert usage["totals"] == ledger_sum([item for item in inside if rollup_value(item, owner) == named])

    rows = store.query("acct", "year", owner, "0002", "9998")
    assert {row["bucket"]: row["requests"] + row["errors"] for row in rows if row["value"] == named} == years(after)
    agrees()

    backfill(store, "acct", LATER)

    assert store.changed_from("acct", "named-in-between") == ALL_TIME
    rows = store.query("acct", "year", owner, "0002", "9998")
    assert {row["bucket"]: row["requests"] + row["errors"] for row in rows if row["value"] == named} == years(
        old + after
    )
    agrees()
    assert backfill(store, "acct", LATER).written == {}  # nothing left to do


def test_after_the_backfill_a_users_window_over_older_records_reads_the_in_between_rows():
    old = [ledger_item(UPGRADE - timedelta(days=day / 3), model=MODELS[day % 3], user="ana") for day in range(1, 300)]
    store = of_the_version_before(old, [ledger_item(UPGRADE + TAKEOVER_MARGIN, user="ana")])
    window = Window(datetime(2026, 2, 1, 1, tzinfo=UTC), datetime(2026, 3, 13, 23, tzinfo=UTC))
    before = reports.usage_summary(store, "acct", window, user="ana")
    read_before = len(reports.window_cells(store, "acct", window, "user-model:ana"))

    backfill(store, "acct", LATER)

    assert reports.usage_summary(store, "acct", window, user="ana") == before
    assert len(reports.window_cells(store, "acct", window, "user-model:ana")) < read_before * 0.6
