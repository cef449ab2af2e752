"""Seeding demo data writes through the app's own logic and stores, once per backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import boto3
import pytest

from devstack.demo_data import FALLBACK_ROUTES, KEYS
from devstack.demo_seed import seed_demo_data
from meterway.accounts.dal.balance_store import DynamoBalanceStore
from meterway.accounts.dal.key_store import DynamoKeyStore
from meterway.accounts.dal.member_store import DynamoMemberStore
from meterway.accounts.logic.balance import account_balance
from meterway.accounts.logic.limits import period_window
from meterway.analytics.logic.rollups import counted
from meterway.core.aws import deserialize
from meterway.core.clock import utc_iso
from meterway.core.container import container
from meterway.ledger.models import TokenUsage
from meterway.proxy.logic.catalog import CATALOG
from meterway.proxy.logic.pricing import price_usage
from tests.integration.conftest import count_ledger

NOW = datetime(2026, 11, 23, 14, 5, tzinfo=UTC)
SONNET = "anthropic/claude-sonnet-4-5"

# The seeder reserves and settles as the proxy does: over the proxy's own DynamoDB client.
pytestmark = pytest.mark.usefixtures("dynamo_over_loopback")


def ledger_items(table: str) -> list[dict]:
    pages = boto3.client("dynamodb").get_paginator("scan").paginate(TableName=table)
    return [item for page in pages for item in page["Items"]]


def requests_in(items: list[dict]) -> list[dict]:
    """The records of requests: a failed attempt before a fallback has a record of its own, which
    is not a request (the rollups leave it out too)."""
    return [item for item in items if counted(deserialize(item))]


def test_seeding_writes_priced_records_and_settles_their_counters_once(aws_env):
    # Given an empty backend, when demo data is seeded
    report = seed_demo_data(NOW, requests=120)
    count_ledger(aws_env)  # the aggregator, as the ledger's stream runs it
    # Then the ledger holds every planned request at the cost the report gives
    items = ledger_items(aws_env["LedgerTable"])
    assert report.requests == len(requests_in(items)) == 120 and report.refused == 0
    assert sum(Decimal(item["cost_usd"]["N"]) for item in items) == report.cost_usd > 0
    # And the account's spend counter took every settlement
    balance = account_balance(DynamoBalanceStore(aws_env["KeysTable"]), "default")
    assert balance.spent_usd == report.cost_usd
    # And the keys and members were made as the management API makes them, before their first use
    keys = {key.name: key for key in DynamoKeyStore(aws_env["KeysTable"]).list_keys("default")}
    assert set(keys) == {key.name for key in KEYS}
    assert all(key.created_at < min(item["created_at"]["S"] for item in items) for key in keys.values())
    assert len(DynamoMemberStore(aws_env["KeysTable"]).list_members("default")) == 4

    # When it is seeded again on the same backend, later
    again = seed_demo_data(NOW + timedelta(days=1))
    # Then nothing is added
    assert again.already and again.window_end == report.window_end and again.requests == 120
    assert len(requests_in(ledger_items(aws_env["LedgerTable"]))) == 120
    assert len(DynamoKeyStore(aws_env["KeysTable"]).list_keys("default")) == len(KEYS)


def test_a_key_with_a_spend_limit_counts_its_seeded_spend_in_its_period(aws_env):
    report = seed_demo_data(NOW, requests=150)
    count_ledger(aws_env)
    key = next(key for key in DynamoKeyStore(aws_env["KeysTable"]).list_keys("default") if key.name == "support-bot")
    period, _ = period_window(key.limits.spend_period, NOW)
    items = [item for item in ledger_items(aws_env["LedgerTable"]) if item["key_id"]["S"] == key.key_id]
    this_month = [item for item in items if item["created_at"]["S"] >= "2026-11-01"]
    counter = boto3.client("dynamodb").get_item(
        TableName=aws_env["KeysTable"], Key={"pk": {"S": f"QUOTA#{key.key_id}"}, "sk": {"S": f"SPEND#{period}"}}
    )["Item"]
    assert report.requests == 150
    assert Decimal(counter["spent_usd"]["N"]) == sum(Decimal(item["cost_usd"]["N"]) for item in this_month)


def test_with_a_ledger_retention_only_days_still_kept_are_seeded(aws_env, monkeypatch):
    # Older records would be written already expired, for DynamoDB's TTL to delete (the
    # backend's teardown forgets these settings again)
    monkeypatch.setenv("MW_LEDGER_RETENTION_DAYS", "7")
    container.reset()
    seed_demo_data(NOW, requests=60)
    items = ledger_items(aws_env["LedgerTable"])
    assert len(requests_in(items)) == 60
    assert min(item["created_at"]["S"] for item in items) >= utc_iso(NOW - timedelta(days=7))
    assert min(int(item["expires_at"]["N"]) for item in items) > NOW.timestamp()


def test_a_few_claude_sonnet_requests_fell_back_to_bedrock_after_a_failed_attempt(aws_env):
    # Given demo data
    report = seed_demo_data(NOW, requests=120)
    items = [deserialize(item) for item in ledger_items(aws_env["LedgerTable"])]
    by_id = {item["request_id"]: item for item in items}
    attempts = [item for item in items if item.get("attempt_of")]
    sonnet = [item for item in items if item["model"] == SONNET and not item.get("attempt_of")]
    # Then a few Claude Sonnet requests fell back, each after one failed attempt at Anthropic
    assert 0 < len(attempts) < len(sonnet) / 10
    for attempt in attempts:
        request = by_id[attempt["attempt_of"]]
        assert attempt["request_id"] == f"{request['request_id']}.1" and attempt["attempt"] == 1
        # The attempt sorts right next to its request, and billed nothing
        assert attempt["created_sk"] == f"{request['created_sk']}.1"
        assert (attempt["model"], attempt["provider"], attempt["status"]) == (SONNET, "anthropic", "error")
        assert attempt["cost_usd"] == attempt["total_tokens"] == 0 and "route" not in attempt
        assert (attempt["upstream_status"], attempt["error_code"]) in {
            (529, "upstream_rejected"),
            (429, "upstream_rate_limited"),
        }
        # And the request was served by the Bedrock route, at that route's prices, in more time
        route = FALLBACK_ROUTES[SONNET]
        assert (request["model"], request["provider"], request["route"], request["attempts"]) == (
            SONNET,
            "bedrock",
            route,
            2,
        )
        assert request["status"] != "error" and request["latency_ms"] > attempt["latency_ms"] > 0
        tokens = TokenUsage(
            input_tokens=request["input_tokens"],
            output_tokens=request["output_tokens"],
            reasoning_tokens=request["reasoning_tokens"],
            cache_creation_5m_tokens=request["cache_creation_5m_tokens"],
            cache_creation_1h_tokens=request["cache_creation_1h_tokens"],
            cache_read_tokens=request["cache_read_tokens"],
        )
        bedrock, anthropic = price_usage(CATALOG[route], tokens), price_usage(CATALOG[SONNET], tokens)
        assert (request["cost_usd"], request["prices"]) == (bedrock.cost_usd, bedrock.rates)
        assert bedrock.cost_usd != anthropic.cost_usd
    # And the other Claude Sonnet requests were served by Anthropic itself
    assert all(item["provider"] == "anthropic" for item in sonnet if "attempts" not in item)
    assert report.requests == len(items) - len(attempts)
