"""``meterway rollups backfill`` on moto: rows an older version wrote get their in-between rows,
windows over them then read fewer items, and every answer is still the ledger's."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta

from meterway.analytics.dal.rollup_store import DynamoRollupStore
from meterway.analytics.logic import reports
from meterway.analytics.logic.rollups import (
    ALL_TIME,
    CALENDAR,
    TAKEOVER_MARGIN,
    attributed,
    contribution,
    count_record,
    rollup_updates,
)
from meterway.analytics.logic.windows import Window
from meterway.analytics.models import Part
from meterway.cli.main import main
from meterway.core.clock import utc_now
from tests.ledger_factory import KEYS, MODELS, ledger_item
from tests.unit.test_analytics import created, ledger_sum
from tests.unit.test_rollups_recount import counted_as

UPGRADE = datetime(2026, 3, 14, 9, 26, 40, tzinfo=UTC)
WINDOW = Window(datetime(2025, 12, 2, 5, tzinfo=UTC), datetime(2026, 3, 13, 19, tzinfo=UTC))


def counted_by_an_older_version(store: DynamoRollupStore, item: dict) -> None:
    store.add(
        [Part(item["request_id"], "key", item["key_id"], [])],
        [u for u in rollup_updates(item) if u.granularity in CALENDAR],
        [contribution(item).use],  # every version raised its key's last use
    )


def answers(store: DynamoRollupStore) -> dict[str, dict]:
    return {
        "all": reports.usage_summary(store, "acct", WINDOW),
        "key": reports.usage_summary(store, "acct", WINDOW, key_id=KEYS[1].key_id),
        "model": reports.usage_summary(store, "acct", WINDOW, model=MODELS[2]),
    }


def test_the_backfill_command_derives_what_an_older_version_did_not_write(aws_env, capsys):
    store = DynamoRollupStore(aws_env["RollupsTable"])
    old = [ledger_item(UPGRADE - timedelta(hours=7 * n), model=MODELS[n % 3], key=KEYS[n % 2]) for n in range(1, 240)]
    for item in old:
        counted_by_an_older_version(store, item)
    assert count_record(store, contribution(ledger_item(UPGRADE + TAKEOVER_MARGIN)), now=UPGRADE)
    store.items_read = 0
    before = answers(store)
    read_before = store.items_read

    assert main(["rollups", "backfill", "--table", aws_env["RollupsTable"], "--account", "acct"]) == 0

    printed = json.loads(capsys.readouterr().out)
    assert printed["complete_from"] == "0001-01-01T00:00:00.000Z"
    assert printed["rows_written"]["year"] > 0 and printed["rows_written"]["6h"] > 0
    store.items_read = 0
    assert answers(store) == before
    assert store.items_read < read_before  # the filters' charts read one row a day either way
    inside = [item for item in old if WINDOW.start <= created(item) < WINDOW.end]
    assert before["all"]["totals"] == ledger_sum(inside)
    assert main(["rollups", "backfill", "--table", aws_env["RollupsTable"], "--account", "acct"]) == 0
    assert json.loads(capsys.readouterr().out)["rows_written"] == {}


def test_the_backfill_command_waits_while_an_older_version_may_still_run(aws_env, capsys):
    store = DynamoRollupStore(aws_env["RollupsTable"])
    counted_by_an_older_version(store, ledger_item(UPGRADE))
    assert count_record(store, contribution(ledger_item(utc_now())))

    assert main(["rollups", "backfill", "--table", aws_env["RollupsTable"], "--account", "acct"]) == 1

    assert "run this again" in capsys.readouterr().err


def test_the_backfill_command_derives_the_users_and_apps_rows_the_version_before_did_not_write(aws_env, capsys):
    store = DynamoRollupStore(aws_env["RollupsTable"])
    store.start_intermediate("acct", ALL_TIME)
    for change in ("parts", "errors-apart", "attribution"):
        store.start_change("acct", change, ALL_TIME)
    users = ("ana", "team#7", None)
    old = [
        ledger_item(UPGRADE - timedelta(hours=9 * n), model=MODELS[n % 3], user=users[n % 3], app=("cli", None)[n % 2])
        for n in range(1, 200)
    ]
    for item in old:
        counted_as(
            store, item, [u for u in rollup_updates(item) if not attributed(u.dimension) or u.granularity in CALENDAR]
        )
    assert count_record(store, contribution(ledger_item(UPGRADE + TAKEOVER_MARGIN, user="ana")), now=UPGRADE)
    assert store.changed_from("acct", "named-in-between") == UPGRADE + TAKEOVER_MARGIN
    store.items_read = 0
    before = reports.usage_summary(store, "acct", WINDOW, user="ana")
    read_before = store.items_read

    assert main(["rollups", "backfill", "--table", aws_env["RollupsTable"], "--account", "acct"]) == 0

    assert json.loads(capsys.readouterr().out)["rows_written"]["year"] > 0
    store = DynamoRollupStore(aws_env["RollupsTable"])
    assert store.changed_from("acct", "named-in-between") == ALL_TIME
    store.items_read = 0
    assert reports.usage_summary(store, "acct", WINDOW, user="ana") == before
    assert store.items_read < read_before
    inside = [item for item in old if WINDOW.start <= created(item) < WINDOW.end and item.get("user") == "ana"]
    assert before["totals"] == ledger_sum(inside)
    # Each user's year rows, in their shards, count the user's records of the year
    everyone = [*old, ledger_item(UPGRADE + TAKEOVER_MARGIN, user="ana")]
    years = {
        (row["bucket"], row["value"]): row["requests"] for row in store.query("acct", "year", "user", "2025", "2026")
    }
    assert years == Counter((item["created_at"][:4], item.get("user") or "(none)") for item in everyone)
    assert main(["rollups", "backfill", "--table", aws_env["RollupsTable"], "--account", "acct"]) == 0
    assert json.loads(capsys.readouterr().out)["rows_written"] == {}
