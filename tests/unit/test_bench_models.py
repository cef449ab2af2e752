"""The models the benches rest on: DynamoDB's latencies, its request units, Lambda's memory rule.

Nothing here is timed: the latency model is checked by its draws, not by sleeping them.
"""

from __future__ import annotations

import random

import pytest

from bench.aws_relay import LATENCY_BY_OPERATION, SINGLE_ITEM, TRANSACTION, dynamodb_operation
from bench.cost_model import batch_at, memory_size
from bench.dynamodb_units import call_units, item_size


def _quantile(draws: list[float], q: float) -> float:
    return sorted(draws)[int(q * (len(draws) - 1))]


@pytest.mark.parametrize(("model", "p50_ms", "p99_ms"), [(SINGLE_ITEM, 6.5, 16), (TRANSACTION, 25, 92)])
def test_latency_model_draws_the_published_median_and_p99(model, p50_ms, p99_ms):
    rng = random.Random(1)
    draws = [model.draw_s(rng) * 1000 for _ in range(200_000)]

    assert _quantile(draws, 0.5) == pytest.approx(p50_ms, rel=0.02)
    assert _quantile(draws, 0.99) == pytest.approx(p99_ms, rel=0.05)


def test_only_dynamodb_calls_are_delayed_and_each_by_its_class():
    assert LATENCY_BY_OPERATION[dynamodb_operation("DynamoDB_20120810.TransactWriteItems") or ""] is TRANSACTION
    assert LATENCY_BY_OPERATION[dynamodb_operation("DynamoDB_20120810.UpdateItem") or ""] is SINGLE_ITEM
    assert LATENCY_BY_OPERATION[dynamodb_operation("DynamoDB_20120810.BatchGetItem") or ""] is SINGLE_ITEM
    assert dynamodb_operation("secretsmanager.GetSecretValue") is None


def test_a_transaction_costs_double_per_item_and_counts_whole_items():
    ledger_record = {"pk": {"S": "REQ#1"}, "body": {"S": "x" * 1500}}  # 1.5 KB: 2 units, doubled
    stored = {"KEY#1": 300, "QUOTA#1": 2000}  # bytes of the items as stored
    body = {
        "TransactItems": [
            {"ConditionCheck": {"TableName": "keys", "Key": {"pk": {"S": "KEY#1"}}}},
            {"Update": {"TableName": "keys", "Key": {"pk": {"S": "QUOTA#1"}}}},
            {"Put": {"TableName": "ledger", "Item": ledger_record}},
        ]
    }

    units = call_units("TransactWriteItems", body, lambda _table, key: stored[key["pk"]["S"]])

    assert item_size(ledger_record) > 1024
    assert units.wru == 2 * 2 + 2 * 2  # the 2-KB counter and the 1.5-KB record
    assert units.rru == 2  # the condition check reads the key once, transactionally


def test_a_query_is_counted_only_with_a_limit_as_that_many_small_items():
    one_row = {"TableName": "rollups", "KeyConditionExpression": "pk = :pk", "Limit": 1}
    assert call_units("Query", one_row, lambda *_: 0).rru == 0.5  # eventually consistent, under 4 KB
    assert call_units("Query", one_row | {"Limit": 9, "ConsistentRead": True}, lambda *_: 0).rru == 3
    with pytest.raises(ValueError, match="depend on what it read"):
        call_units("Query", {"TableName": "ledger", "KeyConditionExpression": "pk = :pk"}, lambda *_: 0)


def test_item_size_counts_names_and_values_as_dynamodb_does():
    item = {"id": {"S": "abc"}, "n": {"N": "12345"}, "ok": {"BOOL": True}, "m": {"M": {"a": {"S": "b"}}}}

    # id 2+3, n 1+(3+1), ok 2+1, m 1+(3 + 1+1+1)
    assert item_size(item) == 5 + 5 + 3 + 7


@pytest.mark.parametrize(("peak_mib", "memory_mb"), [(40, 128), (95, 192), (128, 192), (129, 256), (10_000, 10_240)])
def test_memory_size_is_half_again_the_peak_in_64_mb_steps_within_lambdas_range(peak_mib, memory_mb):
    assert memory_size(peak_mib) == memory_mb


@pytest.mark.parametrize(
    ("concurrent_mib", "others_mib", "memory_mb"),
    [
        (81.4, (80.2, 101.7), 128),  # a 5-MiB request within 90% of 128 MB
        (81.4, (80.2, 116.0), 192),  # past 90% of 128 MB: one step more
        (81.4, (300.0,), 384),  # as many steps as it takes
        (40, (20_000.0,), 10_240),  # never past Lambda's largest
    ],
)
def test_every_other_peak_fits_within_nine_tenths_of_the_size(concurrent_mib, others_mib, memory_mb):
    assert memory_size(concurrent_mib, others_mib) == memory_mb


@pytest.mark.parametrize(("rate", "batch"), [(0.01, 1), (1, 1), (9.9, 1), (10, 10), (99, 10), (5_000, 100)])
def test_traffic_fills_the_largest_measured_batch_it_reaches_within_the_one_second_window(rate, batch):
    measured = {"aggregator": {1: {}, 10: {}, 100: {}}}
    assert batch_at(measured, rate) == batch
