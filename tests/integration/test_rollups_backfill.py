"""``meterway rollups backfill`` on moto: rows an older version wrote get their in-between rows,
windows over them then read fewer items, and every answer is still the ledger's."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from meterway.analytics.dal.rollup_store import DynamoRollupStore
from meterway.analytics.logic import reports
from meterway.analytics.logic.rollups import CALENDAR, TAKEOVER_MARGIN, contribution, count_record, rollup_updates
from meterway.analytics.logic.windows import Window
from meterway.analytics.models import Part
from meterway.cli.main import main
from meterway.core.clock import utc_now
from tests.ledger_factory import KEYS, MODELS, ledger_item
from tests.unit.test_analytics import created, ledger_sum

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
