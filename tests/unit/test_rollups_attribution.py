"""User and app as rollup dimensions: this version counts an account's records by them from the
date its first batch records (``attribution``); ``add_attribution`` adds the records from before
to their user's and app's cells exactly once, in either order with ``recount_errors``, and every
window then agrees with the ledger for every filter."""

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
    TAKEOVER_MARGIN,
    attributed,
    contribution,
    count_record,
    count_records,
    rollup_updates,
)
from meterway.analytics.logic.windows import Window
from meterway.core.errors import StorageError
from tests.fakes import InMemoryRollups
from tests.ledger_factory import APPS, KEYS, MODELS, USERS, ledger_item, statuses
from tests.unit.test_analytics import created, ledger_sum
from tests.unit.test_rollups_recount import at, counted_as, edges, recorded

# The version that counted errors apart took over on 1 Nov; this one on 20 Nov.
ERRORS_APART = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
UPGRADE = datetime(2026, 11, 20, 9, 26, 40, tzinfo=UTC)
SINCE = UPGRADE + TAKEOVER_MARGIN
LATER = UPGRADE + timedelta(days=2)
EVERYTHING = Window(datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))


def counted_by_an_older_version(store: RollupStore, item: dict[str, Any]) -> None:
    """What a version before the user and app dimensions wrote, in two parts: no user or app cell;
    a failed request as a request before the errors were counted apart, as an error after."""
    errors_apart = created(item) >= ERRORS_APART
    old = [
        update if errors_apart else replace(update, deltas={**update.deltas, "requests": 1, "errors": 0})
        for update in rollup_updates(item)
        if not attributed(update.dimension)
    ]
    counted_as(store, item, old)


def an_account_of_the_errors_apart_version() -> InMemoryRollups:
    store = InMemoryRollups()
    for change in ("parts", "errors-apart"):
        store.start_change("acct", change, ERRORS_APART)
    return store


def records_between(start: datetime, end: datetime, max_size: int) -> st.SearchStrategy[list[dict[str, Any]]]:
    return st.lists(
        st.builds(
            lambda moment, model, key, status, user, app: ledger_item(
                moment, model=model, key=key, status=status, user=user, app=app
            ),
            at(start, end),
            st.sampled_from(MODELS),
            st.sampled_from(KEYS),
            statuses,
            st.sampled_from(USERS),
            st.sampled_from(APPS),
        ),
        max_size=max_size,
    )


owners = st.one_of(
    st.none(),
    st.tuples(st.just("key_id"), st.sampled_from([key.key_id for key in KEYS])),
    st.tuples(st.just("user"), st.sampled_from(["(none)", *USERS[1:3]])),
    st.tuples(st.just("app"), st.sampled_from(["(none)", *APPS[1:]])),
)


def selected(items: list[dict[str, Any]], window: Window, model: str | None, chosen: dict[str, str]):
    return [
        item
        for item in items
        if window.start <= created(item) < window.end
        and model in (None, item["model"])
        and all((item.get(field) or "(none)") == value for field, value in chosen.items())
    ]


@settings(max_examples=120, deadline=None)
@given(
    old=records_between(ERRORS_APART - timedelta(days=20), UPGRADE, 30),
    late=records_between(UPGRADE, SINCE, 8),
    new=records_between(SINCE, LATER, 12),
    split=st.integers(0, 8),
    attribution_first=st.booleans(),
    first=edges,
    second=edges,
    model=st.none() | st.sampled_from(MODELS),
    owner=owners,
)
def test_after_adding_the_attribution_every_window_and_filter_agrees_with_the_ledger(
    old, late, new, split, attribution_first, first, second, model, owner
):
    assume(first != second)
    store = an_account_of_the_errors_apart_version()
    for item in old:
        counted_by_an_older_version(store, item)
    # This version's first batch dates the attribution; records of its margin are still counted
    # without their user and app, whether they come before the commands or after them.
    start = ledger_item(UPGRADE, user="alice@example.com", app="evals")
    assert count_record(store, contribution(start), now=UPGRADE)
    count_records(store, [contribution(item) for item in late[:split]], now=UPGRADE)
    everything = [*old, start, *late, *new]
    ledger = recorded(*everything)
    commands = [add_attribution, recount_errors] if attribution_first else [recount_errors, add_attribution]
    reports_of = {command: command(store, ledger, "acct", LATER) for command in commands}
    count_records(store, [contribution(item) for item in late[split:] + new], now=LATER)

    added = reports_of[add_attribution]
    before = len(old) + 1 + len(late) if old else 0  # an account without rollups: counted in full
    assert added.changed_from == (SINCE if old else ALL_TIME)
    assert (added.moved, added.moved_before) == (before, 0)
    window = Window(min(first, second), max(first, second))
    chosen = dict([owner]) if owner else {}
    usage = reports.usage_summary(store, "acct", window, model=model, **chosen)
    assert usage["totals"] == ledger_sum(selected(everything, window, model, chosen))
    for user in ("(none)", *USERS[1:3]):
        assert reports.usage_summary(store, "acct", EVERYTHING, user=user)["totals"] == ledger_sum(
            selected(everything, EVERYTHING, None, {"user": user})
        )
    again = add_attribution(store, ledger, "acct", LATER)
    assert (again.moved, again.moved_before) == (0, before)


def test_adding_cut_short_by_a_failed_write_adds_each_record_once_when_run_again():
    store = an_account_of_the_errors_apart_version()
    items = [
        ledger_item(UPGRADE - timedelta(days=n, minutes=n), user=USERS[n % 4], app=APPS[n % 3]) for n in range(1, 40)
    ]
    for item in items:
        counted_by_an_older_version(store, item)
    first = ledger_item(UPGRADE)
    assert count_record(store, contribution(first), now=UPGRADE)
    items.append(first)
    store.fail_kind = "attribution"

    with pytest.raises(StorageError, match="run the command again"):
        add_attribution(store, recorded(*items), "acct", LATER)
    report = add_attribution(store, recorded(*items), "acct", LATER)

    assert report.moved + report.moved_before == len(items) and report.moved > 0
    activity = reports.activity(store, "acct", "1y", "app", LATER, names={})
    assert {group["group"]: group["requests"] for group in activity["groups"]} == {
        "(none)": len([item for item in items if not item.get("app")]),
        "support-bot": len([item for item in items if item.get("app") == "support-bot"]),
        "evals": len([item for item in items if item.get("app") == "evals"]),
    }
