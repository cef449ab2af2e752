"""``meterway rollups recount-errors`` and ``add-attribution`` on moto: the failed requests an older
version counted as requests become errors, the records it counted without their user and app are
added to those rows, each once, and every answer is then the ledger's."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

from meterway.analytics.dal.rollup_store import DynamoRollupStore
from meterway.analytics.logic import reports
from meterway.analytics.logic.rollups import TAKEOVER_MARGIN, contribution, count_record, rollup_updates
from meterway.analytics.logic.windows import Window
from meterway.analytics.models import Counters
from meterway.cli.main import main
from meterway.core.clock import floor, utc_now
from meterway.ledger.dal.ledger_store import DynamoLedgerStore
from tests.ledger_factory import APPS, KEYS, MODELS, USERS, ledger_item
from tests.unit.test_analytics import ledger_sum
from tests.unit.test_rollups_recount import counted_before_errors_apart


def counted_by_an_older_version(store: DynamoRollupStore, ledger: DynamoLedgerStore, items: list[dict]) -> None:
    """Records on the ledger that a version before the errors apart and the user and app rows counted."""
    for item in items:
        assert ledger.put(item)
        counted_before_errors_apart(store, item)


def test_the_recount_command_moves_failed_requests_into_errors_once(aws_env, capsys):
    store = DynamoRollupStore(aws_env["RollupsTable"])
    ledger = DynamoLedgerStore(aws_env["LedgerTable"])
    upgrade = utc_now() - TAKEOVER_MARGIN - timedelta(hours=1)
    old = [
        ledger_item(
            upgrade - timedelta(hours=5 * n, minutes=n),
            model=MODELS[n % 3],
            key=KEYS[n % 3],
            status="error" if n % 4 == 0 else "partial" if n % 7 == 0 else "ok",
        )
        for n in range(1, 60)
    ]
    counted_by_an_older_version(store, ledger, old)
    # This version's first batch, then a failure of its margin: still counted as a request.
    first, late = ledger_item(upgrade), ledger_item(upgrade + timedelta(minutes=5), status="error")
    for item in (first, late):
        assert ledger.put(item)
        assert count_record(store, contribution(item), now=upgrade)
    everything = [*old, first, late]
    window = Window(floor(upgrade, "day") - timedelta(days=30), floor(utc_now(), "hour") + timedelta(hours=1))
    arguments = ["rollups", "recount-errors", "--table", aws_env["RollupsTable"], "--account", "acct"]

    assert main([*arguments, "--ledger-table", aws_env["LedgerTable"]]) == 0

    failed = [item for item in everything if item["status"] == "error"]
    printed = json.loads(capsys.readouterr().out)
    assert (printed["moved"], printed["moved_before"]) == (len(failed), 0)
    totals = reports.usage_summary(store, "acct", window)["totals"]
    assert totals == ledger_sum(everything)
    assert (totals["requests"], totals["errors"]) == (len(everything) - len(failed), len(failed))
    by_key = reports.usage_summary(store, "acct", window, key_id=KEYS[0].key_id)["totals"]
    assert by_key == ledger_sum([item for item in everything if item["key_id"] == KEYS[0].key_id])

    assert main([*arguments, "--ledger-table", aws_env["LedgerTable"]]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert (printed["moved"], printed["moved_before"]) == (0, len(failed))
    assert reports.usage_summary(store, "acct", window)["totals"] == totals

    assert main(arguments) == 1  # the ledger's table is needed with --table
    assert "--ledger-table" in capsys.readouterr().err


def test_the_attribution_command_adds_older_records_to_their_users_and_apps_once(aws_env, capsys):
    store = DynamoRollupStore(aws_env["RollupsTable"])
    ledger = DynamoLedgerStore(aws_env["LedgerTable"])
    upgrade = utc_now() - TAKEOVER_MARGIN - timedelta(hours=1)
    old = [
        ledger_item(
            upgrade - timedelta(hours=5 * n, minutes=n),
            key=KEYS[n % 3],
            status="error" if n % 5 == 0 else "ok",
            user=USERS[n % 3],  # the long one is cut in its rows: the unit tests have it
            app=APPS[n % 3],
        )
        for n in range(1, 40)
    ]
    counted_by_an_older_version(store, ledger, old)
    first = ledger_item(upgrade, user="alice@example.com")
    assert ledger.put(first)
    assert count_record(store, contribution(first), now=upgrade)
    everything = [*old, first]
    arguments = ["rollups", "add-attribution", "--table", aws_env["RollupsTable"], "--account", "acct"]

    assert main([*arguments, "--ledger-table", aws_env["LedgerTable"]]) == 0

    printed = json.loads(capsys.readouterr().out)
    assert (printed["added"], printed["added_before"]) == (len(everything), 0)
    window = Window(floor(upgrade, "day") - timedelta(days=30), floor(utc_now(), "hour") + timedelta(hours=1))
    for user in ("(none)", *USERS[1:3]):
        theirs = [item for item in everything if (item.get("user") or "(none)") == user]
        totals = reports.usage_summary(store, "acct", window, user=user)["totals"]
        assert totals == ledger_sum(theirs), user
    # Activity by user reads every shard of the user rows: each user once, with its requests.
    by_user = reports.activity(store, "acct", "1y", "user", utc_now(), names={})
    assert {group["group"]: group["requests"] + group["errors"] for group in by_user["groups"]} == {
        user: sum(1 for item in everything if (item.get("user") or "(none)") == user)
        for user in {item.get("user") or "(none)" for item in everything}
    }
    assert main([*arguments, "--ledger-table", aws_env["LedgerTable"]]) == 0
    assert json.loads(capsys.readouterr().out)["added_before"] == len(everything)


def test_a_row_is_replaced_only_while_its_requests_and_errors_are_those_read(aws_env):
    store = DynamoRollupStore(aws_env["RollupsTable"])
    failed = ledger_item(utc_now() - timedelta(days=1), status="error")
    assert count_record(store, contribution(failed))
    row = next(
        update for update in rollup_updates(failed) if update.granularity == "day" and update.dimension == "total"
    )
    held = Counters().add(store.cells("acct", "day", "total", row.value, [row.bucket], consistent=True)[0])
    assert (held.requests, held.errors) == (0, 1)
    whole = replace(row, deltas={**row.deltas, "input_tokens": 7})

    assert not store.replace_counters(whole, Counters(requests=0, errors=0))  # stale: an error came since
    assert not store.replace_counters(whole, None)  # the row exists
    assert store.replace_counters(whole, held)
    assert store.cells("acct", "day", "total", row.value, [row.bucket], consistent=True)[0]["input_tokens"] == 7
