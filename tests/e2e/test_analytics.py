"""After traffic through the local stack, the analytics API agrees with the ledger exactly."""

from __future__ import annotations

import time
from collections import defaultdict
from decimal import Decimal
from typing import Any

import httpx
import pytest
from boto3.dynamodb.types import TypeDeserializer

pytestmark = pytest.mark.e2e


def ledger_items(stack) -> list[dict[str, Any]]:
    client, deserializer = stack.dynamodb(), TypeDeserializer()
    items, start = [], None
    while True:
        page = client.scan(TableName=stack.info["tables"]["ledger"], **({"ExclusiveStartKey": start} if start else {}))
        items += [{k: deserializer.deserialize(v) for k, v in item.items()} for item in page["Items"]]
        start = page.get("LastEvaluatedKey")
        if not start:
            return [item for item in items if item["account_id"] == "default"]


def api(stack, path: str, **query: str) -> dict[str, Any]:
    response = httpx.get(
        f"{stack.base}{path}", params=query, headers={"authorization": f"Bearer {stack.info['admin_key']}"}
    )
    assert response.status_code == 200, response.text
    return response.json()


def settled_usage(stack, expected_requests: int, **query: str) -> dict[str, Any]:
    """The aggregator runs behind the stream: wait until it has counted every record."""
    deadline = time.monotonic() + 30
    while True:
        usage = api(stack, "/api/usage", **query)
        if usage["totals"]["requests"] >= expected_requests or time.monotonic() > deadline:
            return usage
        time.sleep(0.2)


def test_usage_activity_and_dashboard_agree_with_the_ledger_after_traffic(stack):
    client = stack.openai()
    for n in range(12):
        model = ("openai/gpt-4o-mini", "anthropic/claude-haiku-4-5", "openai/o4-mini")[n % 3]
        messages = [{"role": "user", "content": f"Question {n}: what did we spend?"}]
        if n % 2:
            list(client.chat.completions.create(model=model, messages=messages, stream=True))
        else:
            client.chat.completions.create(model=model, messages=messages)

    items = ledger_items(stack)
    usage = settled_usage(stack, len(items), start="2000-01-01T00:00:00Z")
    totals = usage["totals"]
    assert totals["requests"] == len(items)
    for name in ("input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens", "total_tokens"):
        assert totals[name] == sum(item[name] for item in items), name
    assert Decimal(totals["cost"]) == sum(item["cost_usd"] for item in items)

    per_model: dict[str, Decimal] = defaultdict(Decimal)
    for item in items:
        per_model[item["model"]] += item["cost_usd"]
    assert {row["model"]: Decimal(row["cost"]) for row in usage["models"]} == dict(per_model)

    activity = api(stack, "/api/activity", period="1h", group_by="model")
    assert sum(bucket["requests"] for bucket in activity["buckets"]) == sum(
        1 for item in items if item["created_at"] >= activity["start"].replace("Z", ".000Z")
    )
    dashboard = api(stack, "/api/dashboard")
    assert dashboard["last_7_days"]["totals"]["requests"] == len(items)
    assert Decimal(dashboard["last_7_days"]["totals"]["cost"]) == sum(item["cost_usd"] for item in items)
    newest_first = sorted(items, key=lambda item: item["created_sk"], reverse=True)
    assert [row["id"] for row in dashboard["recent_activity"]] == [item["request_id"] for item in newest_first[:10]]

    log = api(stack, "/api/usage/requests", limit="5")
    assert [row["id"] for row in log["data"]] == [item["request_id"] for item in newest_first[:5]]
    assert log["next_cursor"]
