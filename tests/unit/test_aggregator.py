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
from meterway.analytics.logic.rollups import merge, plan_chunks, rollup_updates
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


def test_chunks_never_exceed_the_transaction_limit_and_keep_every_record():
    contributions = [Contribution(item["request_id"], rollup_updates(item)) for item in many(120)]
    chunks = plan_chunks(contributions)
    assert [c for chunk in chunks for c in chunk] == contributions
    for chunk in chunks:
        assert len(chunk) + len(merge(chunk)) <= 100


def test_records_of_one_minute_share_their_rollup_items():
    same_minute = [ledger_item(START + timedelta(seconds=n), cost=Decimal("0.5")) for n in range(30)]
    merged = merge([Contribution(item["request_id"], rollup_updates(item)) for item in same_minute])
    # 4 calendar granularities × 6 dimensions and 4 in-between ones × 2, each written once for the 30
    assert len(merged) == 32
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
    store.add = lambda ids, updates, uses, counters=None: (
        written.append(len(counters or [])) or add(ids, updates, uses, counters)
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


def test_records_whose_transaction_failed_are_reported_for_retry(store):
    items = many(150)
    store.fail_chunks = 1
    response = aggregator.handler(stream_event(items), LocalLambdaContext("AggregatorFunction"))
    failed = {entry["itemIdentifier"] for entry in response["batchItemFailures"]}
    first_chunk = len(plan_chunks([Contribution(i["request_id"], rollup_updates(i)) for i in items])[0])
    assert failed == {f"{500 + n:021d}" for n in range(first_chunk)}
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
