"""Failed requests apart from requests: this version counts them as errors from the date its first
batch records for an account, the older versions' cells are moved by ``recount_errors`` exactly
once, and every window then agrees with the ledger whatever order the parts came in."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from meterway.analytics.dal.rollup_store import RollupStore
from meterway.analytics.logic import reports
from meterway.analytics.logic.recount import add_attribution, recount_errors
from meterway.analytics.logic.rollups import (
    ALL_TIME,
    MINUTE_RETENTION,
    SUB_HOUR,
    TAKEOVER_MARGIN,
    attributed,
    contribution,
    count_record,
    count_records,
    rollup_updates,
)
from meterway.analytics.logic.windows import Window
from meterway.analytics.models import Part, RollupUpdate
from meterway.core.clock import floor
from meterway.core.errors import StorageError
from tests.fakes import InMemoryLedger, InMemoryRollups
from tests.ledger_factory import KEYS, MODELS, ledger_item, statuses
from tests.unit.test_analytics import created, ledger_sum

UPGRADE = datetime(2026, 11, 20, 9, 26, 40, tzinfo=UTC)
SINCE = UPGRADE + TAKEOVER_MARGIN
LATER = UPGRADE + timedelta(days=2)
EVERYTHING = Window(datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))


def counted_before_errors_apart(store: RollupStore, item: dict[str, Any]) -> None:
    """What the version before wrote: every record of a client request one more request (served
    or not), and no errors counter at all; in two parts, as this one; by no user or app."""
    old = [
        replace(u, deltas={**{k: v for k, v in u.deltas.items() if k != "errors"}, "requests": 1})
        for u in rollup_updates(item)
        if not attributed(u.dimension)
    ]
    counted_as(store, item, old)


def counted_as(store: RollupStore, item: dict[str, Any], updates: list[RollupUpdate]) -> None:
    """``updates`` written as this version writes a record, in its two parts."""
    keyed = [u for u in updates if u.dimension == "key" or u.dimension.startswith("key-model:")]
    shared = [u for u in updates if u not in keyed]
    store.add([Part(item["request_id"], "account", "acct", shared)], shared, [])
    store.add([Part(item["request_id"], "key", item["key_id"], keyed)], keyed, [contribution(item).use])


def recorded(*items: dict[str, Any]) -> InMemoryLedger:
    ledger = InMemoryLedger()
    for item in items:
        ledger.put(item)
    return ledger


def hours(start: datetime, end: datetime) -> st.SearchStrategy[datetime]:
    span = int((end - start).total_seconds() // 3600)
    return st.integers(0, span).map(lambda n: start + timedelta(hours=n))


def at(start: datetime, end: datetime) -> st.SearchStrategy[datetime]:
    span = int((end - start).total_seconds() * 1000)
    return st.integers(0, span - 1).map(lambda ms: start + timedelta(milliseconds=ms))


def records_between(start: datetime, end: datetime, max_size: int) -> st.SearchStrategy[list[dict[str, Any]]]:
    return st.lists(
        st.builds(
            lambda moment, model, key, status: ledger_item(moment, model=model, key=key, status=status),
            at(start, end),
            st.sampled_from(MODELS),
            st.sampled_from(KEYS),
            statuses,
        ),
        max_size=max_size,
    )


# Window edges: whole hours anywhere (their minute cells may be past their 8 days), or any minute of
# the last days (where minute cells are read).
edges = hours(floor(UPGRADE, "hour") - timedelta(days=40), LATER) | at(LATER - timedelta(days=3), LATER).map(
    lambda moment: floor(moment, "minute")
)


@settings(max_examples=120, deadline=None)
@given(
    old=records_between(UPGRADE - timedelta(days=40), UPGRADE, 30),
    late=records_between(UPGRADE, SINCE, 8),
    new=records_between(SINCE, LATER, 12),
    split=st.integers(0, 8),
    first=edges,
    second=edges,
    model=st.none() | st.sampled_from(MODELS),
    key=st.none() | st.sampled_from(KEYS),
)
def test_after_the_recount_every_window_counts_requests_and_errors_as_the_ledger(
    old, late, new, split, first, second, model, key
):
    assume(first != second)
    store = InMemoryRollups()
    for item in old:
        counted_before_errors_apart(store, item)
    # This version's first batch dates the change; records of its margin still count failures as
    # requests, whether they come before the recount or after it (a stream delivers late).
    start = ledger_item(UPGRADE)
    assert count_record(store, contribution(start), now=UPGRADE)
    count_records(store, [contribution(item) for item in late[:split]], now=UPGRADE)
    everything = [*old, start, *late, *new]
    report = recount_errors(store, recorded(*everything), "acct", LATER)
    count_records(store, [contribution(item) for item in late[split:] + new], now=LATER)

    failed_before = [item for item in old + late if item["status"] == "error"] if old else []
    assert report.changed_from == (SINCE if old else ALL_TIME)  # an account without rollups: from the start
    assert (report.moved, report.moved_before) == (len(failed_before) if old else 0, 0)
    window = Window(min(first, second), max(first, second))
    key_id = key.key_id if key else None
    selected = [
        item
        for item in everything
        if window.start <= created(item) < window.end
        and model in (None, item["model"])
        and key_id in (None, item["key_id"])
    ]
    assert reports.usage_summary(store, "acct", window, model=model, key_id=key_id)["totals"] == ledger_sum(selected)
    assert reports.usage_summary(store, "acct", EVERYTHING)["totals"] == ledger_sum(everything)
    again = recount_errors(store, recorded(*everything), "acct", LATER)
    assert (again.moved, again.moved_before) == (0, len(failed_before))


@pytest.mark.parametrize("command", [recount_errors, add_attribution])
def test_a_ledger_command_waits_while_records_may_still_be_counted_as_before(command):
    store = InMemoryRollups()
    failed = ledger_item(UPGRADE - timedelta(hours=1), status="error", user="alice@example.com")
    counted_before_errors_apart(store, failed)
    before = {cell: dict(row) for cell, row in store.items.items()}

    report = command(store, recorded(failed), "acct", UPGRADE)

    assert (report.changed_from, report.waiting_until, report.moved) == (SINCE, SINCE, 0)
    assert store.items == before
    assert command(store, recorded(failed), "acct", SINCE).moved == 1


def test_an_account_this_version_counted_from_its_first_record_has_nothing_to_move():
    store = InMemoryRollups()
    failed = ledger_item(UPGRADE, status="error")
    assert count_record(store, contribution(failed), now=UPGRADE)

    report = recount_errors(store, recorded(failed), "acct", LATER)

    assert (report.changed_from, report.moved) == (ALL_TIME, 0)
    totals = reports.usage_summary(store, "acct", EVERYTHING)["totals"]
    assert (totals["requests"], totals["errors"]) == (0, 1)


def test_minute_cells_past_their_days_are_not_written_again():
    store = InMemoryRollups()
    old, recent = (
        ledger_item(LATER - MINUTE_RETENTION - timedelta(hours=2), status="error"),
        ledger_item(LATER - timedelta(days=3), status="error"),
    )
    for item in (old, recent):
        counted_before_errors_apart(store, item)
    assert count_record(store, contribution(ledger_item(UPGRADE)), now=UPGRADE)
    for (pk, sk), row in list(store.items.items()):
        if row.get("dimension") and pk.split("#")[1] in SUB_HOUR and sk < "2026-11-15":
            del store.items[(pk, sk)]  # gone: DynamoDB's TTL took them

    assert recount_errors(store, recorded(old, recent), "acct", LATER).moved == 2

    written = [pk for kind, cells in store.writes if kind == "recount" for pk, _ in cells]
    minute_cells = [pk for pk in written if pk.split("#")[1] in SUB_HOUR]
    moved = [u for u in rollup_updates(recent) if u.granularity in SUB_HOUR and not attributed(u.dimension)]
    assert minute_cells and len(minute_cells) == len(moved)
    assert not any(row.get("requests", 0) < 0 for row in store.items.values())


def test_a_recount_cut_short_by_a_failed_write_moves_each_record_once_when_run_again():
    store = InMemoryRollups()
    failed = [ledger_item(UPGRADE - timedelta(days=n, minutes=n), status="error") for n in range(1, 30)]
    served = [ledger_item(UPGRADE - timedelta(days=n, minutes=2 * n)) for n in range(1, 30)]
    for item in failed + served:
        counted_before_errors_apart(store, item)
    assert count_record(store, contribution(ledger_item(UPGRADE)), now=UPGRADE)
    store.fail_kind = "recount"

    with pytest.raises(StorageError, match="run the command again"):
        recount_errors(store, recorded(*failed, *served), "acct", LATER)
    report = recount_errors(store, recorded(*failed, *served), "acct", LATER)

    assert report.moved + report.moved_before == len(failed) and report.moved > 0
    totals = reports.usage_summary(store, "acct", EVERYTHING)["totals"]
    assert (totals["requests"], totals["errors"]) == (len(served) + 1, len(failed))
