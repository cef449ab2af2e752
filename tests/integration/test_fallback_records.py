"""Requests that fell back, in the analytics (on moto): a failed attempt is a ledger record of its
own, but usage, activity and the dashboard count its request once, spend shows by provider, and
the request log shows each request once with its attempts under it, whatever the page size."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3
import pytest

from devstack.gateway import LocalLambdaContext
from meterway.accounts.dal.key_store import DynamoKeyStore
from meterway.accounts.logic.manage_keys import create_key
from meterway.analytics.handlers import aggregator
from meterway.core.errors import UpstreamError
from meterway.ledger.dal.ledger_store import DynamoLedgerStore
from meterway.ledger.models import TokenUsage, UsageRecord
from meterway.management_api.deps import api_deps
from meterway.proxy.logic.catalog import BUILT_IN
from meterway.proxy.logic.fallbacks import Failure, Leg
from meterway.proxy.logic.proxy_call import ProxyCall, attempt_records, charge, take
from meterway.proxy.models import UpstreamRequest
from tests.integration.conftest import call_api, stream_event

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
SONNET = "anthropic/claude-sonnet-4-5"
ON_BEDROCK = "bedrock/us.anthropic.claude-sonnet-4-5-20250929-v1:0"
# Per request: how many attempts failed before it was served (the fourth one's all failed).
FAILED_BEFORE = [0, 2, 0, 3, 1, 0, 0]


def leg(route_id: str) -> Leg:
    route = BUILT_IN.resolve(route_id)
    return Leg.of(BUILT_IN.resolve(SONNET), route, None, UpstreamRequest("https://x.invalid", {}))  # type: ignore[arg-type]


def records_of(number: int, failed: int, key: Any) -> list[dict[str, Any]]:
    """What the proxy settles for one request whose first ``failed`` attempts failed at Anthropic."""
    at = NOW - timedelta(minutes=5 * number)
    record = UsageRecord(f"gen-{number:04d}", at, key, SONNET, "anthropic", "messages", False)
    call = ProxyCall(BUILT_IN.resolve(SONNET), {}, record, 0.0)
    failures = [Failure(leg(SONNET), UpstreamError("overloaded", upstream_status=529), 40 + n) for n in range(failed)]
    if number == 3:  # every route failed: the last failure is the request's own record
        take(call, failures[-1].leg, failed)
        record.status, record.upstream_status = "error", 529
        return [item.to_item() for item in [*attempt_records(record, failures[:-1]), record]]
    take(call, leg(ON_BEDROCK) if failed else leg(SONNET), failed + 1)
    charge(call, TokenUsage(input_tokens=1000 * (number + 1), output_tokens=100))
    return [item.to_item() for item in [*attempt_records(record, failures), record]]


@pytest.fixture(scope="module")
def fell_back(module_aws_env):
    keys = DynamoKeyStore(module_aws_env["KeysTable"])
    _, admin = create_key(keys, "acct", "ops", kind="admin")
    key, _ = create_key(keys, "acct", "prod")
    items = [item for number, failed in enumerate(FAILED_BEFORE) for item in records_of(number, failed, key)]
    ledger = DynamoLedgerStore(module_aws_env["LedgerTable"])
    for item in items:
        assert ledger.put(item)
    arn = boto3.client("dynamodb").describe_table(TableName=module_aws_env["LedgerTable"])["Table"]["TableArn"]
    handled = aggregator.handler(stream_event(items, arn), LocalLambdaContext("AggregatorFunction"))
    assert handled == {"batchItemFailures": []}
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(api_deps(), "clock", lambda: NOW)
        yield {"admin": admin, "items": items}


def get(admin: str, path: str, **query: str) -> dict[str, Any]:
    response = call_api("GET", path, admin, query=query)
    assert response["statusCode"] == 200, response["body"]
    return dict(response["json"])


def test_usage_and_activity_count_each_request_once_and_show_spend_by_provider(fell_back):
    requests = [item for item in fell_back["items"] if not item.get("attempt_of")]
    assert len(fell_back["items"]) == len(requests) + 5  # 2 + 2 + 1 failed attempts of their own

    usage = get(fell_back["admin"], "/api/usage", start="2026-11-20")
    activity = get(fell_back["admin"], "/api/activity", period="1d", group_by="provider")

    # The fourth request failed on every route: an error, not a request
    assert (usage["totals"]["requests"], usage["totals"]["errors"]) == (len(FAILED_BEFORE) - 1, 1)
    assert Decimal(usage["totals"]["cost"]) == sum((item["cost_usd"] for item in requests), Decimal(0))
    by_provider = {group["group"]: group for group in activity["groups"]}
    served_by_bedrock = [item for item in requests if item["provider"] == "bedrock"]
    assert by_provider["bedrock"]["requests"] == len(served_by_bedrock) == 2
    assert Decimal(by_provider["bedrock"]["cost"]) == sum((item["cost_usd"] for item in served_by_bedrock), Decimal(0))
    # its failed attempts are not requests, nor errors: their requests were served by bedrock
    assert (by_provider["anthropic"]["requests"], by_provider["anthropic"]["errors"]) == (len(requests) - 3, 1)


@pytest.mark.parametrize("limit", [1, 2, 3, 4, 7, 50])
def test_the_request_log_shows_each_request_once_with_its_attempts_whatever_the_page_size(fell_back, limit):
    rows, cursor = [], None
    while True:
        query = {"start": "2026-11-20", "limit": str(limit)} | ({"cursor": cursor} if cursor else {})
        page = get(fell_back["admin"], "/api/usage/requests", **query)
        assert page["data"], "no empty page"
        rows += page["data"]
        cursor = page["next_cursor"]
        if not cursor:
            break

    assert [row["id"] for row in rows] == [f"gen-{n:04d}" for n in range(len(FAILED_BEFORE))]
    assert [[a["id"] for a in row["attempts"]] for row in rows] == [
        [f"gen-{n:04d}.{a}" for a in range(1, failed + (0 if n == 3 else 1))] for n, failed in enumerate(FAILED_BEFORE)
    ]
    second = rows[1]
    assert (second["provider"], second["route"]) == ("bedrock", ON_BEDROCK)
    assert second["attempts"][0] | {"latency_ms": 0} == {
        "id": "gen-0001.1",
        "attempt": 1,
        "provider": "anthropic",
        "route": None,
        "status": "error",
        "error_code": "upstream_error",
        "upstream_status": 529,
        "latency_ms": 0,
        "cost": "0",
    }


def test_the_dashboards_recent_activity_lists_requests_not_attempts(fell_back):
    recent = get(fell_back["admin"], "/api/dashboard")["recent_activity"]

    assert [row["id"] for row in recent] == [f"gen-{n:04d}" for n in range(len(FAILED_BEFORE))]
    assert [len(row["attempts"]) for row in recent] == [0, 2, 0, 2, 1, 0, 0]


@pytest.mark.parametrize("limit", [1, 2, 50])
def test_the_request_log_of_one_status_keeps_its_requests_attempts_and_no_other(fell_back, limit):
    def log(status: str) -> list[dict[str, Any]]:
        rows, cursor = [], None
        while True:
            query = {"start": "2026-11-20", "limit": str(limit), "status": status} | (
                {"cursor": cursor} if cursor else {}
            )
            page = get(fell_back["admin"], "/api/usage/requests", **query)
            rows += page["data"]
            cursor = page["next_cursor"]
            if not cursor:
                return rows

    failed = log("error")
    served = log("ok")

    assert [(row["id"], len(row["attempts"])) for row in failed] == [("gen-0003", 2)]
    assert (failed[0]["upstream_status"], failed[0]["endpoint"]) == (529, "messages")
    assert [row["id"] for row in served] == [f"gen-{n:04d}" for n in range(len(FAILED_BEFORE)) if n != 3]
    assert [len(row["attempts"]) for row in served] == [n for i, n in enumerate(FAILED_BEFORE) if i != 3]
    assert log("partial") == []
    refused = call_api("GET", "/api/usage/requests", fell_back["admin"], query={"status": "failed"})
    assert refused["statusCode"] == 400
