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


def test_the_user_and_app_each_sdk_names_are_recorded_and_counted(stack):
    import anthropic

    # Given requests that name their end user and app as each SDK lets a caller name them
    app = f"sdk-app-{time.monotonic_ns()}"
    titled = {"X-Title": app}
    chat = stack.openai().chat.completions.with_raw_response.create(
        model="openai/gpt-4o-mini",
        messages=[{"role": "user", "content": "hi"}],
        user="customer-42",
        extra_headers=titled,
    )
    responses = stack.openai().responses.with_raw_response.create(
        model="openai/gpt-4o-mini", input="hi", safety_identifier="customer-43", extra_headers=titled
    )
    claude = anthropic.Anthropic(base_url=stack.base, api_key=stack.api_key, max_retries=0)
    messages = claude.messages.with_raw_response.create(
        model="anthropic/claude-haiku-4-5",
        max_tokens=50,
        messages=[{"role": "user", "content": "hi"}],
        metadata={"user_id": "customer-42"},
        extra_headers={"X-Meterway-App": app},
    )

    # Then each record names them
    ids = [raw.headers["x-meterway-request-id"] for raw in (chat, responses, messages)]
    records = [stack.generation(request_id) for request_id in ids]
    assert [(record["user"], record["app"]) for record in records] == [
        ("customer-42", app),
        ("customer-43", app),
        ("customer-42", app),
    ]
    # And the rollups count them by app and by user, as the request log lists them
    by_app = settled_usage(stack, 3, start="2000-01-01T00:00:00Z", app=app)
    assert by_app["totals"]["requests"] == 3
    assert {row["model"] for row in by_app["models"]} == {"openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"}
    logged = api(stack, "/api/usage/requests", start="2000-01-01T00:00:00Z", app=app, user="customer-42")["data"]
    assert sorted(row["id"] for row in logged) == sorted([ids[0], ids[2]])
    assert api(stack, "/api/usage", start="2000-01-01T00:00:00Z", user="customer-43")["totals"]["requests"] >= 1
