"""The demo-data plan: reproducible, inside its window, shaped like a team's working week."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from devstack.demo_data import KEYS, MEMBERS, REQUESTS, for_key, plan_requests
from meterway.accounts.models import ApiKey
from meterway.core.clock import utc_iso
from meterway.proxy.logic.catalog import CATALOG
from meterway.proxy.logic.pricing import price_usage

NOW = datetime(2026, 11, 23, 14, 5, 17, 250000, tzinfo=UTC)


@pytest.fixture(scope="module")
def plan():
    return plan_requests(NOW)


def test_the_same_now_gives_the_same_plan_and_another_now_another(plan):
    assert plan_requests(NOW) == plan
    later = plan_requests(NOW + timedelta(hours=1))
    assert later != plan
    assert len(later) == len(plan) == REQUESTS


def test_every_request_lies_in_the_30_days_before_now_oldest_first(plan):
    times = [request.created_at for request in plan]
    assert times == sorted(times)
    assert NOW - timedelta(days=30) <= times[0] < NOW - timedelta(days=29)
    assert NOW - timedelta(days=1) < times[-1] < NOW


def test_request_ids_are_unique_and_carry_their_time(plan):
    assert len({request.request_id for request in plan}) == len(plan)
    for request in plan:
        milliseconds = int(request.request_id.removeprefix("gen-")[:12], 16)
        assert utc_iso(datetime.fromtimestamp(milliseconds / 1000, UTC)) == utc_iso(request.created_at)


def test_a_smaller_plan_has_exactly_the_requests_asked_for():
    short = plan_requests(NOW, requests=50, days=7)
    assert len(short) == 50
    assert all(NOW - timedelta(days=7) <= request.created_at < NOW for request in short)


def test_weekdays_and_office_hours_are_busiest_with_a_nightly_batch(plan):
    per_weekday = Counter(request.created_at.weekday() for request in plan)
    # Each weekday at least three times a weekend day (a weekday appears 4-5 times in 30 days, as does Sunday).
    assert min(per_weekday[day] for day in range(5)) > 3 * max(per_weekday[5], per_weekday[6])
    interactive = [request for request in plan if request.key.name != "nightly-evals"]
    per_hour = Counter(request.created_at.hour for request in interactive)
    office = sum(per_hour[hour] for hour in range(8, 17)) / 9
    night = sum(per_hour[hour] for hour in (0, 1, 2, 3, 4)) / 5
    assert office > 10 * night
    nightly = [request for request in plan if request.key.name == "nightly-evals"]
    assert nightly and {request.created_at.hour for request in nightly} <= {2, 3}
    assert all(request.created_at.weekday() < 5 for request in nightly)


def test_every_key_and_several_models_are_used(plan):
    assert {request.key.name for request in plan} == {key.name for key in KEYS}
    models = Counter(request.model for request in plan)
    assert set(models) <= set(CATALOG)
    for model in ("openai/gpt-4o-mini", "openai/gpt-4o", "openai/gpt-5-mini", "anthropic/claude-sonnet-4-5"):
        assert models[model] > 0, model
    assert models["anthropic/claude-haiku-4-5"] > 0
    assert all(key.member is None or key.member in {member.member_id for member in MEMBERS} for key in KEYS)


def test_token_classes_look_like_each_provider_reports_them(plan):
    ok = [request for request in plan if request.status == "ok"]
    for request in ok:
        usage = request.tokens
        assert min(usage.input_tokens, usage.output_tokens) >= 0 and usage.total_tokens > 0
        assert usage.reasoning_tokens <= usage.output_tokens
        if request.model.startswith("openai/"):
            # OpenAI reports no cache writes, and reads only whole 128-token steps.
            assert usage.cache_creation_tokens == 0 and usage.cache_read_tokens % 128 == 0
        if not CATALOG[request.model].reasoning:
            assert usage.reasoning_tokens == 0
    reasoning = [request for request in ok if request.model == "openai/gpt-5-mini"]
    assert all(request.tokens.reasoning_tokens > 0 for request in reasoning)
    anthropic = [request.tokens for request in ok if request.model.startswith("anthropic/")]
    assert any(usage.cache_creation_5m_tokens and usage.cache_creation_1h_tokens for usage in anthropic)
    assert sum(usage.cache_read_tokens > 0 for usage in anthropic) > len(anthropic) / 2


def test_some_requests_stream_some_fail_and_some_are_cut_off(plan):
    statuses = Counter(request.status for request in plan)
    assert statuses["ok"] > 0.9 * len(plan)
    assert statuses["error"] > 0 and statuses["partial"] > 0
    assert 0.2 * len(plan) < sum(request.streamed for request in plan) < 0.8 * len(plan)
    for request in plan:
        if request.status == "error":
            assert request.tokens.total_tokens == 0 and request.error_code and request.ttft_ms is None
        if request.status == "partial":
            assert request.streamed and request.usage_estimated and request.error_code == "client_disconnected"
        if request.status == "ok" and not request.streamed:
            assert request.ttft_ms == request.latency_ms


def test_a_record_is_priced_like_the_proxy_prices_it_once_its_key_exists(plan):
    keys = {demo.name: ApiKey(f"key_{index}", "acct", demo.name, member=demo.member) for index, demo in enumerate(KEYS)}
    for planned in plan[:300]:
        key = keys[planned.key.name]
        record = for_key(planned, key)
        item = record.to_item()
        assert (item["request_id"], item["key_id"], item["key_name"]) == (planned.request_id, key.key_id, key.name)
        assert (item["account_id"], item["member"]) == ("acct", key.member or "")
        assert planned.cost_usd == 0 and planned.key.key_id.startswith("planned:")
        if planned.status == "error":
            assert record.cost_usd == 0 and record.prices == {}
            continue
        price = price_usage(CATALOG[planned.model], planned.tokens)
        assert (record.cost_usd, record.prices) == (price.cost_usd, price.rates)
        assert record.cost_usd > 0
