"""The RollupsTable's two markers a record, on moto: a record an older version counted whole (its
one marker, without ``part``) is counted again by neither part, and a key's last use is raised at
most once a minute per container."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import boto3

from meterway.accounts.dal.key_admin_store import DynamoKeyAdminStore
from meterway.accounts.logic import manage_keys
from meterway.accounts.models import KEY_SHARDS, key_shard
from meterway.analytics.dal import rollups_table
from meterway.analytics.dal.rollup_store import DynamoRollupStore
from meterway.analytics.logic import reports
from meterway.analytics.logic.key_usage import RollupKeyUsage
from meterway.analytics.logic.rollups import contribution, count_records, rollup_updates
from meterway.analytics.logic.windows import Window
from meterway.core.aws import serialize
from tests.ledger_factory import KEYS, ledger_item

START = datetime(2026, 12, 3, 5, 0, tzinfo=UTC)


def total_requests(store: DynamoRollupStore) -> int:
    return sum(row["requests"] for row in store.query("acct", "month", "total", "2026-12", "2026-12"))


def partitions_queried(store: DynamoRollupStore, table: str) -> list[str]:
    """The partition of every Query of the rollups ``table`` the store makes from now on, in order."""
    read: list[str] = []
    paginator = store.client.get_paginator

    def recording(operation: str):
        pages = paginator(operation)
        paginate = pages.paginate

        def paginated(**request):
            if request["TableName"] == table:  # the client may be shared with other stores
                read.append(request["ExpressionAttributeValues"][":pk"]["S"])
            return paginate(**request)

        pages.paginate = paginated  # type: ignore[method-assign]
        return pages

    store.client.get_paginator = recording  # type: ignore[method-assign]
    return read


def test_a_record_counted_whole_before_the_parts_is_a_duplicate_of_both(aws_env):
    store = DynamoRollupStore(aws_env["RollupsTable"], counters_table=aws_env["KeysTable"])
    old, new = (ledger_item(START + timedelta(minutes=n), cost=Decimal("0.5")) for n in (1, 2))
    # An older version counted ``old`` whole: its rows, and its one marker without ``part``
    assert count_records(store, [contribution(old)], now=START).applied == {old["request_id"]}
    client = boto3.client("dynamodb")
    marker = rollups_table.applied_marker_key(old["request_id"])
    client.delete_item(
        TableName=aws_env["RollupsTable"], Key=serialize(rollups_table.account_marker_key(old["request_id"]))
    )
    client.put_item(TableName=aws_env["RollupsTable"], Item=serialize(marker | {"expires_at": 1}))
    # The account was first counted in parts after it (the takeover margin): ``old`` is checked
    client.put_item(
        TableName=aws_env["RollupsTable"],
        Item=serialize(rollups_table.change_key("acct", "parts") | {"complete_from": "2026-12-03T05:15:00.000Z"}),
    )
    fresh = DynamoRollupStore(aws_env["RollupsTable"], counters_table=aws_env["KeysTable"])

    outcome = count_records(fresh, [contribution(old), contribution(new)], now=START + timedelta(minutes=3))

    assert outcome.duplicates == {old["request_id"]} and outcome.applied == {new["request_id"]}
    assert total_requests(fresh) == 2
    key_rows = fresh.query("acct", "month", "key", "2026-12", "2026-12")
    assert sum(row["requests"] for row in key_rows) == 2


def test_a_record_of_the_parts_era_is_counted_once_per_part_when_redelivered(aws_env):
    store = DynamoRollupStore(aws_env["RollupsTable"], counters_table=aws_env["KeysTable"])
    items = [ledger_item(START + timedelta(seconds=n), key=KEYS[n % 3]) for n in range(12)]
    assert len(count_records(store, [contribution(i) for i in items], now=START).applied) == 12
    again = count_records(store, [contribution(i) for i in items], now=START)
    assert len(again.duplicates) == 12 and not again.applied and not again.failed
    assert total_requests(store) == 12


def test_a_keys_last_use_is_raised_once_a_minute_per_container(aws_env):
    store = DynamoRollupStore(aws_env["RollupsTable"], counters_table=aws_env["KeysTable"])
    writes: list[str] = []
    update_item = store.client.update_item

    def recording(**request):
        writes.append(request["Key"]["pk"]["S"])
        return update_item(**request)

    store.client.update_item = recording  # type: ignore[method-assign]
    for second in range(0, 180, 20):  # 9 batches over 3 minutes, each with a record of the key
        count_records(store, [contribution(ledger_item(START + timedelta(seconds=second)))], now=START)
    assert writes.count(rollups_table.last_used_pk("acct")) == 3
    # The first use of the last minute: accurate to the minute (the last was at 05:02:40)
    assert store.last_used("acct")[KEYS[0].key_id] == "2026-12-03T05:02:00.000Z"


def test_readers_add_a_keys_cells_written_before_the_shards_to_its_shards(aws_env):
    store = DynamoRollupStore(aws_env["RollupsTable"], counters_table=aws_env["KeysTable"])
    key_id = KEYS[1].key_id
    before = ledger_item(START, key=KEYS[1], cost=Decimal("0.25"))
    # Counted by a version before the shards: its key cells in the unsharded partition (without a
    # marker: not redelivered here)
    for update in rollup_updates(before):
        legacy = replace(update, pk=rollups_table.partition("acct", update.granularity, update.dimension))
        assert store.replace_counters(legacy, None)
    after = [ledger_item(START + timedelta(seconds=n), key=KEYS[n % 2]) for n in range(1, 5)]
    count_records(store, [contribution(item) for item in after], now=START)
    shard = rollups_table.cell_partition("acct", "month", "key", key_id)
    assert shard.endswith(f"#key#{key_shard(key_id)}")

    month = store.query("acct", "month", "key", "2026-12", "2026-12")
    assert {row["value"]: row["requests"] for row in month} == {KEYS[0].key_id: 2, key_id: 3}
    assert total_requests(store) == 5
    (cell,) = store.cells("acct", "day", "key", key_id, ["2026-12-03"])
    assert (cell["requests"], cell["cost_usd"]) == (3, Decimal("0.25") + 2 * after[0]["cost_usd"])
    window = Window(START - timedelta(hours=5), START + timedelta(hours=19))
    assert reports.usage_summary(store, "acct", window, key_id=key_id)["totals"]["requests"] == 3
    by_key = reports.activity(store, "acct", "1d", "key", START + timedelta(minutes=5), names={})
    assert sum(bucket["groups"].get(key_id, {}).get("requests", 0) for bucket in by_key["buckets"]) == 3


def test_the_key_dimension_is_read_from_the_shards_of_the_keys_the_account_used(aws_env):
    store = DynamoRollupStore(aws_env["RollupsTable"], counters_table=aws_env["KeysTable"])
    used = [replace(KEYS[n % 3], key_id=f"key_{n:03d}") for n in range(40)]
    items = [ledger_item(START + timedelta(seconds=n), key=used[n % 40]) for n in range(80)]
    count_records(store, [contribution(item) for item in items], now=START)
    # Another account's keys, which the reader must not visit
    stranger = replace(KEYS[0], account_id="other", key_id="key_theirs")
    count_records(store, [contribution(ledger_item(START, key=stranger) | {"account_id": "other"})], now=START)
    read = partitions_queried(store, aws_env["RollupsTable"])

    month = store.query("acct", "month", "key", "2026-12", "2026-12")

    assert {row["value"]: row["requests"] for row in month} == {key.key_id: 2 for key in used}
    shards = {rollups_table.cell_partition("acct", "month", "key", key.key_id) for key in used}
    legacy = rollups_table.partition("acct", "month", "key")
    assert sorted(read) == sorted([rollups_table.last_used_pk("acct"), legacy, *shards])
    assert len(shards) < 40 < KEY_SHARDS  # some keys share a shard; no shard is read twice


def test_the_keys_listing_reads_last_use_once_and_one_keys_view_reads_its_own_shard(aws_env):
    store = DynamoRollupStore(aws_env["RollupsTable"], counters_table=aws_env["KeysTable"])
    keys = DynamoKeyAdminStore(aws_env["KeysTable"])
    used = [replace(KEYS[0], key_id=f"key_{n:03d}", member=None) for n in range(20)]
    for n, key in enumerate(used):
        keys.put(key, f"hash{n}")
    items = [ledger_item(START + timedelta(seconds=n), key=used[n % 20], cost=Decimal(n)) for n in range(60)]
    count_records(store, [contribution(item) for item in items], now=START)
    spent = {
        key.key_id: sum((item["cost_usd"] for item in items if item["key_id"] == key.key_id), Decimal(0))
        for key in used
    }
    usage, now = RollupKeyUsage(store), START + timedelta(hours=1)
    read = partitions_queried(store, aws_env["RollupsTable"])

    views = manage_keys.key_views(keys, usage, "acct", now)

    assert {view.key.key_id: view.spend_to_date for view in views} == spent
    assert read.count(rollups_table.last_used_pk("acct")) == 1
    assert read.count(rollups_table.admin_used_pk("acct")) == 1
    read.clear()
    view = manage_keys.key_view(keys, usage, manage_keys.find_key(keys, "acct", used[7].key_id), now)
    assert view.spend_to_date == spent[used[7].key_id] and view.last_used_at is not None
    legacy = rollups_table.partition("acct", "month", "key")
    own = rollups_table.cell_partition("acct", "month", "key", used[7].key_id)
    last_uses = [rollups_table.last_used_pk("acct"), rollups_table.admin_used_pk("acct")]
    assert sorted(read) == sorted([*last_uses, legacy, own])
