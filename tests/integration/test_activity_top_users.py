"""Activity by user or app with more of them than it shows, on moto: the ledger's biggest spenders
of the months (or years) the period lies in, each exact, the rest summed as ``other`` in the period
and in each bucket, read through the aggregator's rows and the management API."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3
import pytest

from devstack.gateway import LocalLambdaContext
from meterway.accounts.dal.key_store import DynamoKeyStore
from meterway.accounts.logic.manage_keys import create_key
from meterway.analytics.handlers import aggregator
from meterway.analytics.logic.reports import TOP_GROUPS
from meterway.ledger.dal.ledger_store import DynamoLedgerStore
from meterway.management_api.deps import api_deps
from tests.integration.conftest import call_api, stream_event
from tests.ledger_factory import MODELS, ledger_item
from tests.unit.test_analytics import ledger_sum

NOW = datetime(2026, 3, 10, 12, 30, tzinfo=UTC)
USERS = [f"user-{n:02d}@example.com" for n in range(24)]


@pytest.fixture(scope="module")
def account(module_aws_env):
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(api_deps(), "clock", lambda: NOW)
        yield seed(module_aws_env)


def seed(aws_env: dict[str, str]) -> dict[str, Any]:
    keys = DynamoKeyStore(aws_env["KeysTable"])
    _, admin = create_key(keys, "acct", "ops", kind="admin")
    key, _ = create_key(keys, "acct", "prod")
    # 24 users over 70 days (two months before the period's and the period's own), spending
    # differently; the app is one of 20, or none
    items = [
        ledger_item(
            NOW - timedelta(hours=17 * n + n % 5),
            model=MODELS[n % 3],
            key=key,
            cost=Decimal(f"0.{(n * 7919) % 1000:03d}{n:03d}"),
            user=USERS[(n * 7 + n // 24) % len(USERS)],
            app=None if n % 4 == 0 else f"app-{n % 20}",
            status="error" if n % 13 == 0 else "ok",
        )
        for n in range(100)
    ]
    ledger = DynamoLedgerStore(aws_env["LedgerTable"])
    for item in items:
        assert ledger.put(item)
    arn = boto3.client("dynamodb").describe_table(TableName=aws_env["LedgerTable"])["Table"]["TableArn"]
    assert aggregator.handler(stream_event(items, arn), LocalLambdaContext("AggregatorFunction")) == {
        "batchItemFailures": []
    }
    return {"admin": admin, "items": items}


def value(item: dict[str, Any], group_by: str) -> str:
    return item.get(group_by) or "(none)"


@pytest.mark.parametrize(("period", "group_by", "ranking"), [("1mo", "user", 7), ("1y", "user", 4), ("1mo", "app", 7)])
def test_activity_shows_the_top_spenders_of_the_ranking_buckets_and_sums_the_rest(account, period, group_by, ranking):
    rollups = api_deps().rollups
    rollups.items_read = 0
    body = call_api("GET", "/api/activity", account["admin"], query={"period": period, "group_by": group_by})["json"]

    # Ranked by the months (1mo) or years (1y) the period lies in: labels of 7 or 4 characters
    first = body["start"][:ranking]
    ranked = [item for item in account["items"] if item["created_at"][:ranking] >= first]
    spent: dict[str, Decimal] = defaultdict(Decimal)
    for item in ranked:
        spent[value(item, group_by)] += item["cost_usd"]
    assert len(spent) > TOP_GROUPS
    top = sorted(spent, key=lambda name: (-spent[name], name))[:TOP_GROUPS]
    in_period = [item for item in account["items"] if body["start"] <= item["created_at"] < body["end"]]
    assert {group["group"] for group in body["groups"]} == {value(item, group_by) for item in in_period} & set(top)
    for group in body["groups"]:
        assert {k: group[k] for k in ledger_sum([])} == ledger_sum(
            [item for item in in_period if value(item, group_by) == group["group"]]
        )
    assert body["other"] == ledger_sum([item for item in in_period if value(item, group_by) not in top])
    for bucket in body["buckets"]:
        inside = [item for item in in_period if item["created_at"].startswith(bucket["label"])]
        assert {k: bucket[k] for k in ledger_sum([])} == ledger_sum(inside)
        assert bucket["other"] == ledger_sum([item for item in inside if value(item, group_by) not in top])
    # The ranking rows (2 buckets × at most 24 values), 15 values' rows and the total's, a bucket each
    assert rollups.items_read <= 2 * 24 + (TOP_GROUPS + 1) * len(body["buckets"]) + 5
