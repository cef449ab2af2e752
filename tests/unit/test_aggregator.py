"""The aggregator: batches merged into transactions that fit, failures reported per record."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from boto3.dynamodb.types import TypeSerializer

from devstack.gateway import LocalLambdaContext
from meterway.accounts.logic.limits import counter_deltas, plan_reservation
from meterway.accounts.models import ApiKey, KeyLimits
from meterway.analytics.handlers import aggregator
from meterway.analytics.logic import reports
from meterway.analytics.logic.rollups import Changes, contribution, merge, parts_of, plan_chunks, rollup_updates
from meterway.analytics.logic.windows import Window
from meterway.analytics.models import Contribution
from meterway.core.container import container
from meterway.core.errors import StorageError
from meterway.ledger.logic.record_usage import with_counters
from tests.fakes import InMemoryRollups
from tests.ledger_factory import KEYS, MODELS, ledger_item

EVENT = json.loads((Path(__file__).parents[2] / "events" / "ledger_stream_insert.json").read_text())
START = datetime(2026, 5, 31, 23, 58, tzinfo=UTC)


def stream_event(items, event_name="INSERT"):
    serializer = TypeSerializer()
    records = []
    for number, item in enumerate(items):
        record = json.loads(json.dumps(EVENT["Records"][0]))
        record["eventName"] = event_name
        record["dynamodb"]["NewImage"] = {name: serializer.serialize(value) for name, value in item.items()}
        record["dynamodb"]["SequenceNumber"] = f"{500 + number:021d}"
        records.append(record)
    return {"Records": records}


@pytest.fixture
def store():
    rollups = InMemoryRollups()
    container.override(aggregator.rollup_store, rollups)
    yield rollups
    container.reset()


def many(count: int) -> list[dict]:
    return [
        ledger_item(START + timedelta(seconds=7 * n), model=MODELS[n % 3], key=KEYS[n % 3], cost=Decimal("0.001"))
        for n in range(count)
    ]


def parts(items: list[dict]) -> list:
    return [part for item in items for part in parts_of(contribution(item), Changes({}))]


def test_chunks_never_exceed_the_transaction_limit_and_keep_every_part():
    planned = parts(many(120))
    chunks = plan_chunks(planned)
    assert sorted((p.request_id, p.kind) for chunk in chunks for p in chunk) == sorted(
        (p.request_id, p.kind) for p in planned
    )
    for chunk in chunks:
        assert len(chunk) + len(merge(chunk)) <= 100
        assert len({part.kind for part in chunk}) == 1


def test_records_of_one_minute_share_their_rollup_items():
    same_minute = [ledger_item(START + timedelta(seconds=n), cost=Decimal("0.5")) for n in range(30)]
    merged = merge([Contribution(item["request_id"], rollup_updates(item)) for item in same_minute])
    # 4 calendar granularities × 10 dimensions, 4 in-between ones × the model and the key's models,
    # 3 × the user's and the app's models, and the user's and the app's year, each written once for the 30
    assert len(merged) == 56
    assert {update.deltas["requests"] for update in merged} == {30}
    assert {update.deltas["cost_usd"] for update in merged} == {Decimal(15)}


def test_a_batch_is_counted_once_however_often_it_is_delivered(store):
    items = many(150)
    event = stream_event(items)
    for _ in range(2):
        assert aggregator.handler(event, LocalLambdaContext("AggregatorFunction")) == {"batchItemFailures": []}
    window = Window(START, START + timedelta(days=1))
    result = reports.usage_summary(store, items[0]["account_id"], window)
    assert result["totals"]["requests"] == 150
    assert result["totals"]["cost"] == "0.15"


def settled(items: list[dict], key: ApiKey) -> list[dict]:
    """The items as the proxy settles them for ``key`` (spend limit, so spend held): carrying
    their counters."""
    reservation = plan_reservation(key, START)
    return [with_counters(item, counter_deltas(reservation, item["cost_usd"], item["total_tokens"])) for item in items]


def test_the_counters_the_records_carry_are_added_once_merged_per_write(store):
    limited = ApiKey(key_id="key_l", account_id="acct", name="limited", limits=KeyLimits(spend_limit_usd=Decimal(9)))
    items = settled(
        [ledger_item(START + timedelta(seconds=n), key=limited, cost=Decimal("0.25")) for n in range(40)], limited
    )
    written: list[int] = []
    add = store.add
    store.add = lambda parts, updates, uses, counters=None: (
        written.append(len(counters or [])) or add(parts, updates, uses, counters)
    )
    event = stream_event(items)

    for _ in range(2):  # delivered twice
        assert aggregator.handler(event, LocalLambdaContext("AggregatorFunction")) == {"batchItemFailures": []}

    # the key's spend, its minute(s) and the account's balance: each item written once a chunk
    assert store.counters[("QUOTA#key_l", "SPEND#ALL")] == {"spent_usd": Decimal(10)}
    assert store.counters[("ACCOUNT#acct", "BALANCE")] == {"spent_usd": Decimal(10)}
    minutes = [value for (pk, sk), value in store.counters.items() if sk.startswith("MINUTE#")]
    assert sum(minute["requests"] for minute in minutes) == 40
    assert sum(minute["tokens"] for minute in minutes) == sum(item["total_tokens"] for item in items)
    assert written[0] <= 2 + len(minutes) and len(written) < len(items)


def test_a_batch_is_planned_model_by_model_so_each_transaction_writes_fewer_cells():
    # 150 records of 3 models, interleaved as they arrive
    chunks = plan_chunks(parts(many(150)))

    accounts = [chunk for chunk in chunks if chunk[0].kind == "account"]
    models = [{u.value for part in chunk for u in part.updates if u.dimension == "model"} for chunk in accounts]
    # Each transaction holds one model's records, or the end of one and the start of the next
    assert max(len(held) for held in models) <= 2
    assert sum(len(held) for held in models) <= len(accounts) + 2


def test_records_whose_transaction_failed_are_reported_for_retry(store):
    items = many(150)
    store.fail_chunks = 1
    response = aggregator.handler(stream_event(items), LocalLambdaContext("AggregatorFunction"))
    failed = {entry["itemIdentifier"] for entry in response["batchItemFailures"]}
    # The first write is the account part of the first records planned (by model and user)
    first_chunk = {part.request_id for part in plan_chunks(parts(items))[0]}
    assert failed == {f"{500 + n:021d}" for n, item in enumerate(items) if item["request_id"] in first_chunk}
    assert 0 < len(failed) < 150
    # The retry Lambda makes from the first failure counts the rest once.
    aggregator.handler(stream_event(items), LocalLambdaContext("AggregatorFunction"))
    result = reports.usage_summary(store, items[0]["account_id"], Window(START, START + timedelta(days=1)))
    assert result["totals"]["requests"] == 150


def test_counters_whose_copies_were_not_set_are_retried_and_counted_once(store):
    limited = ApiKey(key_id="key_l", account_id="acct", name="limited", limits=KeyLimits(spend_limit_usd=Decimal(9)))
    items = settled(
        [ledger_item(START + timedelta(seconds=n), key=limited, cost=Decimal("0.25")) for n in range(4)], limited
    )
    event = stream_event(items)
    store.fail_spreads = 1
    # The counts are written but the copies are not: the records are handed back for retry
    with pytest.raises(BatchProcessingError, match=r"All records failed processing"):
        aggregator.handler(event, LocalLambdaContext("AggregatorFunction"))
    spend = ("QUOTA#key_l", "SPEND#ALL")
    assert store.counters[spend]["spent_usd"] == Decimal(1) and spend not in store.copies
    # Delivered again, they are counted before: nothing is added, and the copies are set
    assert aggregator.handler(event, LocalLambdaContext("AggregatorFunction")) == {"batchItemFailures": []}
    assert store.counters[spend]["spent_usd"] == Decimal(1)
    assert store.copies[spend] == store.counters[spend]


def test_only_the_counters_the_reserve_reads_get_copies(store):
    # A key without a spend limit still counts its lifetime spend, but no check reads it
    free = ApiKey(key_id="key_f", account_id="acct", name="free")
    items = settled([ledger_item(START + timedelta(seconds=n), key=free, cost=Decimal("0.5")) for n in range(3)], free)
    assert aggregator.handler(stream_event(items), LocalLambdaContext("AggregatorFunction")) == {
        "batchItemFailures": []
    }
    assert store.counters[("QUOTA#key_f", "SPEND#ALL")]["spent_usd"] == Decimal("1.5")
    assert set(store.copies) == {("ACCOUNT#acct", "BALANCE")}


def test_a_batch_whose_accounts_cannot_be_read_is_failed_whole_for_retry(store, monkeypatch):
    items = many(5)

    def unavailable(account_id):
        raise StorageError("throttled")

    monkeypatch.setattr(store, "intermediate_from", unavailable)
    # Every record failed, as a failed write fails its records: Powertools fails the whole batch,
    # which Lambda delivers again
    with pytest.raises(BatchProcessingError, match=r"All records failed processing\. 5 individual errors"):
        aggregator.handler(stream_event(items), LocalLambdaContext("AggregatorFunction"))
    assert store.items == {} and store.counters == {}


@pytest.mark.parametrize("event_name", ["MODIFY", "REMOVE"])
def test_modifications_and_ttl_deletions_never_change_rollups(store, event_name):
    response = aggregator.handler(stream_event(many(3), event_name), LocalLambdaContext("AggregatorFunction"))
    assert response == {"batchItemFailures": []}
    assert store.items == {}


def hundred_keys(count: int = 100) -> list[dict]:
    """Records of one account with credit from ``count`` limited keys, one minute, one model."""
    records = []
    for n in range(count):
        key = ApiKey(
            key_id=f"key_{n:03d}", account_id="acct", name=f"k{n}", limits=KeyLimits(spend_limit_usd=Decimal(9))
        )
        records += settled([ledger_item(START + timedelta(seconds=n % 60), key=key, cost=Decimal("0.01"))], key)
    return records


def everything_counted_once(store: InMemoryRollups, items: list[dict]) -> None:
    """Every counter (the account's cells, each key's, the balance, each key's spend) equals the
    ledger counted exactly once."""
    window = Window(START, START + timedelta(days=1))
    assert reports.usage_summary(store, "acct", window)["totals"]["requests"] == len(items)
    assert store.counters[("ACCOUNT#acct", "BALANCE")]["spent_usd"] == sum(item["cost_usd"] for item in items)
    for item in items:
        key_id = item["key_id"]
        assert store.counters[(f"QUOTA#{key_id}", "SPEND#ALL")]["spent_usd"] == item["cost_usd"]
        assert reports.usage_summary(store, "acct", window, key_id=key_id)["totals"]["requests"] == 1
    for dimension in ("total", "model", "member", "provider", "key"):
        cells = store.query("acct", "month", dimension, "2026-05", "2026-05")
        assert sum(row["requests"] for row in cells) == len(items), dimension


def test_a_batch_of_many_keys_writes_the_accounts_shared_cells_once_or_twice(store):
    items = hundred_keys()
    assert aggregator.handler(stream_event(items), LocalLambdaContext("AggregatorFunction")) == {
        "batchItemFailures": []
    }
    total = ("acct#minute#total", "2026-05-31T23:58#*")
    # The writes that carry the account's total cell: before the parts, one per ~5 records (20)
    assert [kind for kind, cells in store.writes if total in cells] in (["account"], ["account", "account"])
    # Each key's cells are written once: no key part is split over two writes
    for item in items:
        key_cell = [cells for _, cells in store.writes if any(item["key_id"] in sk for _, sk in cells)]
        assert len(key_cell) == 1
    everything_counted_once(store, items)


@pytest.mark.parametrize("failing", ["account", "key"])
def test_a_part_that_failed_is_retried_and_the_part_that_did_not_is_not_counted_again(store, failing):
    items = hundred_keys(30)
    store.fail_kind = failing
    if failing == "account":  # one write holds the account part of all 30: all of them fail
        with pytest.raises(BatchProcessingError, match=r"All records failed processing"):
            aggregator.handler(stream_event(items), LocalLambdaContext("AggregatorFunction"))
        failed = {f"{500 + n:021d}" for n in range(len(items))}
    else:
        response = aggregator.handler(stream_event(items), LocalLambdaContext("AggregatorFunction"))
        failed = {entry["itemIdentifier"] for entry in response["batchItemFailures"]}
        assert 0 < len(failed) < len(items), "the records of the failed write are retried, no others"
    written = {kind for kind, _ in store.writes}
    assert written == ({"key"} if failing == "account" else {"account", "key"})
    # Lambda retries from the first failed record: everything after it comes again
    first = min(failed)
    again = [item for n, item in enumerate(items) if f"{500 + n:021d}" >= first]
    retried = stream_event(again)
    for number, record in enumerate(retried["Records"]):
        record["dynamodb"]["SequenceNumber"] = f"{500 + len(items) - len(again) + number:021d}"
    assert aggregator.handler(retried, LocalLambdaContext("AggregatorFunction")) == {"batchItemFailures": []}
    everything_counted_once(store, items)


def test_a_batch_redelivered_whole_or_bisected_counts_each_part_once(store):
    items = hundred_keys(40)
    for delivery in (items, items[:20], items[20:], items[10:30], items):
        assert aggregator.handler(stream_event(delivery), LocalLambdaContext("AggregatorFunction")) == {
            "batchItemFailures": []
        }
    everything_counted_once(store, items)


def test_a_record_an_older_version_counted_whole_is_not_counted_again(store):
    items = hundred_keys(4)
    store.changes[("acct", "parts")] = START + timedelta(minutes=15)  # an account counted before the parts
    store.counted_whole.add(items[0]["request_id"])  # its one marker, without the rows (not read here)
    aggregator.handler(stream_event(items), LocalLambdaContext("AggregatorFunction"))
    assert store.counters[("ACCOUNT#acct", "BALANCE")]["spent_usd"] == Decimal("0.03")
    assert (items[0]["request_id"], "key") not in store.applied
