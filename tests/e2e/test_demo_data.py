"""``MW_DEMO_DATA=1``: the stack starts with 30 days of usage that the API reports like real traffic.

The stack seeds fewer requests than its default (``MW_DEMO_REQUESTS``) to keep this quick: the
path is the same whatever the number.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from devstack.demo_data import FALLBACK_ROUTES, KEYS
from meterway.analytics.logic.rollups import counted
from meterway.core.aws import deserialize
from meterway.core.clock import utc_iso
from tests.e2e.conftest import LocalStack, launched

REQUESTS = 600
DEMO_ENV = {"MW_DEMO_DATA": "1", "MW_DEMO_REQUESTS": str(REQUESTS)}


def start(state: Path) -> Any:
    return launched(state, token_latency_ms=0, first_token_latency_ms=0, env=DEMO_ENV, startup_s=240)


@pytest.fixture(scope="module")
def demo_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("demo")


@pytest.fixture(scope="module")
def demo_stack(demo_state: Path) -> Iterator[LocalStack]:
    with start(demo_state) as running:
        yield running


def ledger(stack: LocalStack) -> list[dict[str, Any]]:
    """Every ledger record, read straight from the table."""
    pages = stack.dynamodb().get_paginator("scan").paginate(TableName=stack.info["tables"]["ledger"])
    return [item for page in pages for item in page["Items"]]


def requests_in(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records of requests: a failed attempt before a fallback has a record of its own, which
    is not a request (the rollups leave it out too)."""
    return [item for item in records if counted(deserialize(item))]


def last_30_days(stack: LocalStack) -> dict[str, Any]:
    today = datetime.now(UTC).date()
    window = {"start": str(today - timedelta(days=31)), "end": str(today)}
    response = stack.admin("GET", "/usage", params=window)
    assert response.status_code == 200, response.text
    usage: dict[str, Any] = response.json()
    return usage


def test_usage_over_the_month_counts_every_seeded_request_at_its_ledger_cost(demo_stack):
    # Given a stack started with demo data, when the month's usage is asked for
    records = ledger(demo_stack)
    totals = last_30_days(demo_stack)["totals"]
    # Then it counts each seeded request once, served or failed, and costs what the records cost,
    # to the last digit
    seeded = requests_in(records)
    assert len(seeded) == REQUESTS
    failed = sum(deserialize(item)["status"] == "error" for item in seeded)
    assert 0 < failed < REQUESTS / 10
    assert (totals["requests"], totals["errors"]) == (REQUESTS - failed, failed)
    assert Decimal(totals["cost"]) == sum(Decimal(item["cost_usd"]["N"]) for item in records)
    assert Decimal(totals["cost"]) > 0
    # And the records span the month and are spread over several models, some streamed
    times = sorted(item["created_at"]["S"] for item in records)
    assert times[0] < utc_iso(datetime.now(UTC) - timedelta(days=25))
    assert len({item["model"]["S"] for item in records}) >= 5
    assert any(item["streamed"]["BOOL"] for item in records)


def test_the_per_model_rows_add_up_to_the_totals(demo_stack):
    usage = last_30_days(demo_stack)
    for field in ("requests", "input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens"):
        assert sum(row[field] for row in usage["models"]) == usage["totals"][field], field
    assert sum(Decimal(row["cost"]) for row in usage["models"]) == Decimal(usage["totals"]["cost"])


def test_activity_by_key_shows_the_demo_keys(demo_stack):
    response = demo_stack.admin("GET", "/activity", params={"period": "1mo", "group_by": "key"})
    assert response.status_code == 200, response.text
    names = {group["name"] for group in response.json()["groups"] if group["requests"]}
    assert names == {key.name for key in KEYS}


def test_activity_by_provider_counts_each_request_where_it_was_served(demo_stack):
    # Given the ledger's requests, some served by Bedrock after a failed attempt at Anthropic
    records = [deserialize(item) for item in ledger(demo_stack)]
    fallbacks = [item for item in records if item.get("attempts")]
    assert fallbacks and {item["route"] for item in fallbacks} <= set(FALLBACK_ROUTES.values())
    # When the year's activity (the whole month of demo data) is grouped by provider
    response = demo_stack.admin("GET", "/activity", params={"period": "1y", "group_by": "provider"})
    assert response.status_code == 200, response.text
    groups = {group["group"]: group for group in response.json()["groups"]}
    # Then Bedrock has the fallbacks, at their cost, and the failed attempts count nowhere
    assert set(groups) == {"anthropic", "bedrock", "openai"}
    assert groups["bedrock"]["requests"] == len(fallbacks)
    assert Decimal(groups["bedrock"]["cost"]) == sum(item["cost_usd"] for item in fallbacks)
    assert sum(group["requests"] + group["errors"] for group in groups.values()) == REQUESTS


def test_a_second_start_on_the_same_state_dir_does_not_add_to_the_data(demo_stack, demo_state):
    # Given a second start on the same state dir (its AWS backend starts empty: moto keeps state in memory)
    with start(demo_state) as again:
        # Then the month holds the same number of requests, and the ledger no more than that
        assert again.base != demo_stack.base
        totals = last_30_days(again)["totals"]
        assert totals["requests"] + totals["errors"] == REQUESTS
        assert len(requests_in(ledger(again))) == REQUESTS
    assert "demo data:" in again.log.read_text()
