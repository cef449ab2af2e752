"""Seeding demo data writes through the app's own logic and stores, once per backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import boto3

from devstack.demo_data import KEYS
from devstack.demo_seed import seed_demo_data
from meterway.accounts.dal.balance_store import DynamoBalanceStore
from meterway.accounts.dal.key_store import DynamoKeyStore
from meterway.accounts.dal.member_store import DynamoMemberStore
from meterway.accounts.logic.balance import account_balance
from meterway.accounts.logic.limits import period_window
from meterway.core.clock import utc_iso
from meterway.core.container import container

NOW = datetime(2026, 11, 23, 14, 5, tzinfo=UTC)


def ledger_items(table: str) -> list[dict]:
    pages = boto3.client("dynamodb").get_paginator("scan").paginate(TableName=table)
    return [item for page in pages for item in page["Items"]]


def test_seeding_writes_priced_records_and_settles_their_counters_once(aws_env):
    # Given an empty backend, when demo data is seeded
    report = seed_demo_data(NOW, requests=120)
    # Then the ledger holds every planned request at the cost the report gives
    items = ledger_items(aws_env["LedgerTable"])
    assert report.requests == len(items) == 120 and report.refused == 0
    assert sum(Decimal(item["cost_usd"]["N"]) for item in items) == report.cost_usd > 0
    # And the account's spend counter took every settlement, with nothing left in flight
    balance = account_balance(DynamoBalanceStore(aws_env["KeysTable"]), "default")
    assert (balance.spent_usd, balance.inflight) == (report.cost_usd, 0)
    # And the keys and members were made as the management API makes them, before their first use
    keys = {key.name: key for key in DynamoKeyStore(aws_env["KeysTable"]).list_keys("default")}
    assert set(keys) == {key.name for key in KEYS}
    assert all(key.created_at < min(item["created_at"]["S"] for item in items) for key in keys.values())
    assert len(DynamoMemberStore(aws_env["KeysTable"]).list_members("default")) == 4

    # When it is seeded again on the same backend, later
    again = seed_demo_data(NOW + timedelta(days=1))
    # Then nothing is added
    assert again.already and again.window_end == report.window_end and again.requests == 120
    assert len(ledger_items(aws_env["LedgerTable"])) == 120
    assert len(DynamoKeyStore(aws_env["KeysTable"]).list_keys("default")) == len(KEYS)


def test_a_key_with_a_spend_limit_counts_its_seeded_spend_in_its_period(aws_env):
    report = seed_demo_data(NOW, requests=150)
    key = next(key for key in DynamoKeyStore(aws_env["KeysTable"]).list_keys("default") if key.name == "support-bot")
    period, _ = period_window(key.limits.spend_period, NOW)
    items = [item for item in ledger_items(aws_env["LedgerTable"]) if item["key_id"]["S"] == key.key_id]
    this_month = [item for item in items if item["created_at"]["S"] >= "2026-11-01"]
    counter = boto3.client("dynamodb").get_item(
        TableName=aws_env["KeysTable"], Key={"pk": {"S": f"QUOTA#{key.key_id}"}, "sk": {"S": f"SPEND#{period}"}}
    )["Item"]
    assert report.requests == 150
    assert Decimal(counter["spent_usd"]["N"]) == sum(Decimal(item["cost_usd"]["N"]) for item in this_month)
    assert counter["inflight"]["N"] == "0"


def test_with_a_ledger_retention_only_days_still_kept_are_seeded(aws_env, monkeypatch):
    # Older records would be written already expired, for DynamoDB's TTL to delete (the
    # backend's teardown forgets these settings again)
    monkeypatch.setenv("MW_LEDGER_RETENTION_DAYS", "7")
    container.reset()
    seed_demo_data(NOW, requests=60)
    items = ledger_items(aws_env["LedgerTable"])
    assert len(items) == 60
    assert min(item["created_at"]["S"] for item in items) >= utc_iso(NOW - timedelta(days=7))
    assert min(int(item["expires_at"]["N"]) for item in items) > NOW.timestamp()
