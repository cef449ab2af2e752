"""Ledger → stream event → AggregatorFunction → rollups → the analytics API, all on moto.

What the API answers must equal what summing the ledger answers, to the token and the cent, and
a stream batch delivered twice must not count twice.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3
import pytest

from devstack.gateway import LocalLambdaContext
from meterway.accounts.dal.key_store import DynamoKeyStore
from meterway.accounts.dal.member_store import DynamoMemberStore
from meterway.accounts.logic.manage_keys import create_key
from meterway.accounts.logic.manage_members import create_member
from meterway.analytics.handlers import aggregator
from meterway.ledger.dal.ledger_store import DynamoLedgerStore
from meterway.management_api.deps import api_deps
from tests.integration.conftest import call_api, stream_event
from tests.ledger_factory import MODELS, ledger_item

NOW = datetime(2026, 3, 1, 0, 30, 15, tzinfo=UTC)  # just after a month end


@pytest.fixture(scope="module")
def account(module_aws_env):
    aws_env = module_aws_env
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(api_deps(), "clock", lambda: NOW)
        yield seed(aws_env)


def seed(aws_env: dict[str, str]) -> dict[str, Any]:
    keys = DynamoKeyStore(aws_env["KeysTable"])
    members = DynamoMemberStore(aws_env["KeysTable"])
    for member in ("alice", "bob"):
        create_member(members, "acct", member)
    _, admin_secret = create_key(keys, "acct", "ops", kind="admin")
    alice, _ = create_key(keys, "acct", "prod", member="alice")
    bob, _ = create_key(keys, "acct", "staging", member="bob")
    _, foreign_admin = create_key(keys, "other", "ops", kind="admin")
    foreign, _ = create_key(keys, "other", "theirs")
    times = [
        datetime(2026, 2, 28, 23, 59, 59, 999_000, tzinfo=UTC),
        datetime(2026, 3, 1, 0, 0, 0, 0, tzinfo=UTC),
        datetime(2026, 3, 1, 0, 29, 10, tzinfo=UTC),
        datetime(2026, 2, 14, 12, 0, tzinfo=UTC),
        datetime(2026, 1, 31, 23, 0, tzinfo=UTC),
        datetime(2026, 2, 27, 8, 45, tzinfo=UTC),
    ]
    items = [
        ledger_item(
            moment,
            model=MODELS[n % 3],
            key=(alice, bob)[n % 2],
            cost=Decimal(f"0.{n + 1:03d}123456"),
            user=USERS[n % 3],
            app=APPS[(n // 2) % 3],
        )
        for n, moment in enumerate(times)
    ]
    items.append(ledger_item(NOW - timedelta(minutes=3), key=foreign, cost=Decimal("5")))
    ledger = DynamoLedgerStore(aws_env["LedgerTable"])
    for item in items:
        assert ledger.put(item)
    arn = boto3.client("dynamodb").describe_table(TableName=aws_env["LedgerTable"])["Table"]["TableArn"]
    event = stream_event(items, arn)
    assert aggregator.handler(event, LocalLambdaContext("AggregatorFunction")) == {"batchItemFailures": []}
    mine = [item for item in items if item["account_id"] == "acct"]
    return {"admin": admin_secret, "foreign_admin": foreign_admin, "items": mine, "event": event, "keys": (alice, bob)}


USERS = ("alice@example.com", "team#7", None)
APPS = (None, "support-bot", "evals")
TOKENS = ("input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens", "total_tokens")


def total(items: list[dict[str, Any]]) -> dict[str, Any]:
    sums: dict[str, Any] = {"requests": len(items)} | {name: sum(item[name] for item in items) for name in TOKENS}
    sums["cost"] = format(sum((item["cost_usd"] for item in items), Decimal(0)).normalize(), "f") if items else "0"
    return sums


def usage(secret: str, **query: str) -> dict[str, Any]:
    response = call_api("GET", "/api/usage", secret, query=query)
    assert response["statusCode"] == 200, response["body"]
    return response["json"]


def subset(figures: dict[str, Any]) -> dict[str, Any]:
    return {name: figures[name] for name in ("requests", *TOKENS, "cost")}


def test_usage_matches_the_ledger_for_windows_and_filters(account):
    items, (alice, _) = account["items"], account["keys"]
    assert subset(usage(account["admin"], start="2026-01-01")["totals"]) == total(items)
    february = [i for i in items if i["created_at"].startswith("2026-02")]
    assert subset(usage(account["admin"], start="2026-02-01", end="2026-02-28")["totals"]) == total(february)
    last_half_hour = [i for i in items if i["created_at"] >= "2026-02-28T23:59"]
    assert subset(usage(account["admin"], start="2026-02-28T23:59:00Z", end="2026-03-01T00:30:00Z")["totals"]) == total(
        last_half_hour
    )
    alices = [i for i in items if i["key_id"] == alice.key_id]
    assert subset(usage(account["admin"], start="2026-01-01", key=alice.key_id)["totals"]) == total(alices)
    model = MODELS[1]
    of_model = [i for i in items if i["model"] == model]
    result = usage(account["admin"], start="2026-01-01", model=model)
    assert subset(result["totals"]) == total(of_model)
    assert [row["model"] for row in result["models"]] == [model]


def named(item: dict[str, Any], field: str) -> str:
    return item.get(field) or "(none)"


@pytest.mark.parametrize("field", ["user", "app"])
def test_usage_by_user_and_by_app_matches_the_ledger(account, field):
    items = account["items"]
    for value in ("(none)", *{named(item, field) for item in items}):
        theirs = [item for item in items if named(item, field) == value]
        result = usage(account["admin"], start="2026-01-01", **{field: value})
        assert subset(result["totals"]) == total(theirs), value
        assert {row["model"]: row["requests"] for row in result["models"]} == {
            model: sum(1 for item in theirs if item["model"] == model) for model in {item["model"] for item in theirs}
        }
        assert result["filters"][field] == value
        of_model = usage(account["admin"], start="2026-02-01", end="2026-02-28", model=MODELS[0], **{field: value})
        february = [i for i in theirs if i["created_at"].startswith("2026-02") and i["model"] == MODELS[0]]
        assert subset(of_model["totals"]) == total(february)
    # Usage is read from rollups of one of a key, a user and an app: a key and a user together are refused.
    key_and_user = call_api("GET", "/api/usage", account["admin"], query={"key": account["keys"][0].key_id, field: "x"})
    assert (key_and_user["statusCode"], key_and_user["json"]["error"]["code"]) == (400, "invalid_filter")


@pytest.mark.parametrize("group_by", ["user", "app"])
def test_activity_by_user_and_by_app_matches_the_ledger(account, group_by):
    body = call_api("GET", "/api/activity", account["admin"], query={"period": "1y", "group_by": group_by})["json"]
    in_period = [item for item in account["items"] if item["created_at"] >= body["start"][:10]]
    assert {g["group"]: (g["name"], g["requests"]) for g in body["groups"]} == {
        value: (value, sum(1 for item in in_period if named(item, group_by) == value))
        for value in {named(item, group_by) for item in in_period}
    }


@pytest.mark.parametrize(("field", "value"), [("user", "team#7"), ("user", "(none)"), ("app", "support-bot")])
def test_the_request_log_filters_by_user_and_app_through_every_page(account, field, value):
    seen = logged(account, start="2026-01-01", limit="2", **{field: value})
    expected = sorted(account["items"], key=lambda i: i["created_at"], reverse=True)
    assert [(row["id"], row[field]) for row in seen] == [
        (item["request_id"], item.get(field)) for item in expected if named(item, field) == value
    ]
    assert seen


def test_a_redelivered_batch_changes_nothing(account):
    before = usage(account["admin"], start="2026-01-01")
    again = aggregator.handler(account["event"], LocalLambdaContext("AggregatorFunction"))
    partial = {"Records": account["event"]["Records"][3:]}
    aggregator.handler(partial, LocalLambdaContext("AggregatorFunction"))
    assert again == {"batchItemFailures": []}
    assert usage(account["admin"], start="2026-01-01") == before


def test_activity_and_dashboard_match_the_ledger(account):
    items = account["items"]
    activity = call_api("GET", "/api/activity", account["admin"], query={"period": "1mo", "group_by": "member"})
    assert activity["statusCode"] == 200, activity["body"]
    body = activity["json"]
    assert len(body["buckets"]) == 30
    in_period = [i for i in items if i["created_at"] >= body["start"][:10]]
    assert sum(b["requests"] for b in body["buckets"]) == len(in_period)
    assert {g["group"]: g["requests"] for g in body["groups"]} == {
        member: sum(1 for i in in_period if i["member"] == member) for member in {i["member"] for i in in_period}
    }
    last_hour = call_api("GET", "/api/activity", account["admin"], query={"period": "1h", "group_by": "key"})["json"]
    assert len(last_hour["buckets"]) == 60
    assert {g["name"] for g in last_hour["groups"]} <= {"prod", "staging"}

    dashboard = call_api("GET", "/api/dashboard", account["admin"])
    assert dashboard["statusCode"] == 200, dashboard["body"]
    recent_30 = [i for i in items if i["created_at"] >= "2026-01-31"]
    assert subset(dashboard["json"]["last_30_days"]["totals"]) == total(recent_30)
    newest = sorted(items, key=lambda i: i["created_at"], reverse=True)
    assert [r["id"] for r in dashboard["json"]["recent_activity"]] == [
        i["request_id"] for i in newest[:10] if i["created_at"] >= "2026-01-31"
    ]


def logged(account: dict[str, Any], **query: str) -> list[dict[str, Any]]:
    """Every entry of the request log for ``query``, page after page."""
    seen, cursor = [], None
    while True:
        page = call_api(
            "GET", "/api/usage/requests", account["admin"], query=query | ({"cursor": cursor} if cursor else {})
        )
        assert page["statusCode"] == 200, page["body"]
        seen.extend(page["json"]["data"])
        cursor = page["json"]["next_cursor"]
        if not cursor:
            return seen


def test_the_request_log_pages_newest_first_through_every_record(account):
    seen = logged(account, start="2026-01-01", limit="2")
    expected = sorted(account["items"], key=lambda i: i["created_at"], reverse=True)
    assert [row["id"] for row in seen] == [i["request_id"] for i in expected]
    assert seen[0]["tokens"]["total"] == expected[0]["total_tokens"]
    assert Decimal(seen[0]["cost"]) == expected[0]["cost_usd"]


@pytest.mark.parametrize(
    ("path", "query", "status", "code"),
    [
        ("/api/usage", {"start": "2026-02-10", "end": "2026-02-01"}, 400, "invalid_window"),
        ("/api/usage", {"start": "last tuesday"}, 400, "invalid_date"),
        ("/api/usage", {"start": "2025-06-01T10:07:00Z", "end": "2025-06-02"}, 400, "invalid_window"),
        ("/api/activity", {"period": "2h"}, 400, "invalid_request"),
        ("/api/activity", {"group_by": "colour"}, 400, "invalid_request"),
        ("/api/usage/requests", {"limit": "0"}, 400, "invalid_request"),
        ("/api/usage/requests", {"limit": "5.0"}, 400, "invalid_request"),
        ("/api/usage/requests", {"limit": " 5"}, 400, "invalid_request"),
        ("/api/usage", {"start": "0001-01-01", "end": "0001-01-02"}, 400, "invalid_date"),
        ("/api/usage", {"start": "9999-12-30", "end": "9999-12-31"}, 400, "invalid_date"),
        ("/api/usage", {"start": "0001-12-31T23:00:00-05:00"}, 400, "invalid_date"),
        ("/api/usage", {"start": "2100-02-29"}, 400, "invalid_date"),
        ("/api/usage", {"start": "9999-12-31T23:59:00-05:00"}, 400, "invalid_date"),
        ("/api/usage", {"start": "2026-02-30"}, 400, "invalid_date"),
        ("/api/usage/requests", {"cursor": "bm90LWEtY3Vyc29y"}, 400, "invalid_cursor"),
        ("/api/usage", {"user": "alice@example.com", "app": "evals"}, 400, "invalid_filter"),
        ("/api/usage", {"user": "u" * 257}, 400, "invalid_request"),
        ("/api/usage/requests", {"app": ""}, 400, "invalid_request"),
        ("/api/activity", {"group_by": "users"}, 400, "invalid_request"),
    ],
)
def test_bad_analytics_input_is_a_400_in_the_envelope(account, path, query, status, code):
    response = call_api("GET", path, account["admin"], query=query)
    assert response["statusCode"] == status, response["body"]
    assert response["json"]["error"]["code"] == code


def test_a_key_of_another_account_is_not_found(account):
    alice = account["keys"][0]
    for path in ("/api/usage", "/api/usage/requests"):
        response = call_api("GET", path, account["foreign_admin"], query={"key": alice.key_id})
        assert response["statusCode"] == 404
        assert response["json"]["error"]["code"] == "key_not_found"


def test_another_account_sees_only_its_own_spend(account):
    theirs = usage(account["foreign_admin"], start="2026-01-01")
    assert theirs["totals"]["requests"] == 1
    assert theirs["totals"]["cost"] == "5"


def test_a_cursor_from_another_account_is_refused(account):
    page = call_api("GET", "/api/usage/requests", account["admin"], query={"start": "2026-01-01", "limit": "1"})
    cursor = page["json"]["next_cursor"]
    stolen = call_api(
        "GET", "/api/usage/requests", account["foreign_admin"], query={"start": "2026-01-01", "cursor": cursor}
    )
    assert stolen["statusCode"] == 400
    assert stolen["json"]["error"]["code"] == "invalid_cursor"


def test_years_before_1000_are_written_zero_padded(account):
    result = usage(account["admin"], start="0999-01-01", end="0999-01-02")
    assert (result["start"], result["end"]) == ("0999-01-01T00:00:00.000Z", "0999-01-03T00:00:00.000Z")
    assert result["series"]["buckets"][0]["start"] == "0999-01-01T00:00:00.000Z"


def test_a_model_left_the_catalog_still_filters_its_history(account, monkeypatch):
    retired = MODELS[1]
    monkeypatch.setattr(api_deps(), "models", frozenset(MODELS) - {retired})
    result = usage(account["admin"], start="2026-01-01", model=retired)
    assert result["totals"]["requests"] == sum(1 for item in account["items"] if item["model"] == retired)
    unknown = call_api("GET", "/api/usage", account["admin"], query={"model": "openai/gpt-9-ultra"})
    assert unknown["statusCode"] == 404
    assert unknown["json"]["error"]["code"] == "model_not_found"
