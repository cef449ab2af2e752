"""Routes, retries and fallbacks through the local stack, driven by the official SDKs.

The stack's providers file gives Claude Sonnet two routes (Anthropic, then the same model on
Bedrock) and GPT-4o mini two (a provider at a port where nothing listens, then OpenAI), and the
proxy tries each route twice (``MW_UPSTREAM_RETRIES=1``). Faults are queued on the fake
upstream for one route's path and model, so the next route answers as the real one would.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import anthropic
import httpx
import openai
import pytest
from genai_prices import Usage, calc_price

from devstack.stack import free_port
from tests.e2e.conftest import LocalStack, launched_with_providers
from tests.e2e.test_analytics import ledger_items

pytestmark = pytest.mark.e2e

SONNET = "anthropic/claude-sonnet-4-5"
SONNET_PROFILE = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
SONNET_ON_BEDROCK = f"bedrock/{SONNET_PROFILE}"
MINI = "openai/gpt-4o-mini"
ON_ANTHROPIC = {"path": "/v1/messages", "model": "claude-sonnet-4-5"}
ON_BEDROCK = {"model": SONNET_PROFILE}
PROMPT = [{"role": "user", "content": "Explain why a gateway meters every token."}]


ROUTES = {SONNET: [SONNET, SONNET_ON_BEDROCK]}


@pytest.fixture(scope="module")
def routed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    offline = {
        "base_url": f"http://127.0.0.1:{free_port()}/v1",
        "responses": True,
        "models": [{"id": "gpt-4o-mini", "prices": {"provider": "openai"}}],
    }
    providers = {"providers": {"offline": offline}, "routes": ROUTES | {MINI: ["offline/gpt-4o-mini", MINI]}}
    env = {"MW_UPSTREAM_RETRIES": "1", "MW_UPSTREAM_RETRY_BACKOFF_S": "0.05"}
    with launched_with_providers(tmp_path_factory.mktemp("routes"), providers, env) as running:
        yield running


@pytest.fixture(autouse=True)
def fresh_fake(routed):
    httpx.post(f"{routed.fake}/_fake/reset").raise_for_status()


def claude(stack: LocalStack, **kwargs: Any) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=stack.base, api_key=stack.api_key, max_retries=0, **kwargs)


def calls(stack: LocalStack) -> list[str]:
    return [entry["path"] for entry in stack.fake_requests() if not entry["path"].startswith("/_fake")]


def bedrock_price(usage: dict[str, Any]) -> Decimal:
    return calc_price(
        Usage(input_tokens=usage["input_tokens"], output_tokens=usage["output_tokens"]),
        model_ref=SONNET_PROFILE,
        provider_id="aws",
    ).total_price


def attempt(stack: LocalStack, request_id: str, number: int) -> dict[str, Any]:
    return stack.generation(f"{request_id}.{number}")


def test_the_models_list_shows_a_models_routes_in_order(routed):
    listed = {model.id: model.model_extra for model in routed.openai().models.list()}

    assert listed[SONNET]["routes"] == [SONNET, SONNET_ON_BEDROCK]
    assert listed[MINI]["routes"] == ["offline/gpt-4o-mini", MINI]
    assert "routes" not in listed[SONNET_ON_BEDROCK]


@pytest.mark.parametrize(
    ("status", "code"), [(529, "upstream_rejected"), (429, "upstream_rate_limited"), (503, "upstream_error")]
)
def test_a_failing_route_is_retried_then_the_next_route_serves_and_the_ledger_has_each_attempt(routed, status, code):
    routed.fake_faults({"kind": "status", "status": status}, {"kind": "status", "status": status}, **ON_ANTHROPIC)

    raw = claude(routed).messages.with_raw_response.create(model=SONNET, max_tokens=200, messages=PROMPT)
    message = raw.parse()

    request_id = raw.headers["x-meterway-request-id"]
    assert message.model == SONNET and message.content[0].text  # the client's model, whoever served it
    assert calls(routed) == ["/v1/messages", "/v1/messages", f"/model/{SONNET_PROFILE}/invoke"]
    record = routed.generation(request_id)
    served = routed.fake_requests()[-1]["usage"]
    assert (record["status"], record["model"], record["provider"], record["route"], record["attempts"]) == (
        "ok",
        SONNET,
        "bedrock",
        SONNET_ON_BEDROCK,
        3,
    )
    assert Decimal(str(record["cost_usd"])) == bedrock_price(served) > 0  # at the serving route's prices
    for number in (1, 2):
        failed = attempt(routed, request_id, number)
        assert (failed["attempt_of"], failed["attempt"], failed["provider"], failed["status"]) == (
            request_id,
            number,
            "anthropic",
            "error",
        )
        assert (failed["upstream_status"], failed["error_code"], failed["cost_usd"], failed["total_tokens"]) == (
            status,
            code,
            0,
            0,
        )
        assert failed["latency_ms"] <= record["latency_ms"]


def test_a_stream_in_another_format_falls_back_before_its_first_byte(routed):
    routed.fake_faults({"kind": "status", "status": 529}, {"kind": "status", "status": 529}, **ON_ANTHROPIC)

    stream = routed.openai().chat.completions.create(
        model=SONNET, messages=PROMPT, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text and chunks[-1].usage is not None
    assert Decimal(str(chunks[-1].usage.model_extra["cost"])) > 0
    assert calls(routed)[-1] == f"/model/{SONNET_PROFILE}/invoke-with-response-stream"
    records = [r for r in recent_records(routed) if r.get("route") == SONNET_ON_BEDROCK and r["streamed"]]
    assert records and records[-1]["attempts"] == 3 and records[-1]["endpoint"] == "chat.completions"


def test_a_provider_that_refuses_the_connection_is_passed_over_for_the_next_route(routed):
    with routed.openai().responses.with_streaming_response.create(model=MINI, input="Say hello.", stream=True) as raw:
        events = [line for line in raw.iter_lines() if line.startswith("event: ")]
        request_id = raw.headers["x-meterway-request-id"]

    assert events[0] == "event: response.created" and events[-1] == "event: response.completed"
    assert calls(routed) == ["/v1/responses"]  # nothing listens at the first route's port
    record = routed.generation(request_id)
    assert (record["provider"], record.get("route"), record["attempts"], record["status"]) == ("openai", None, 3, "ok")
    for number in (1, 2):
        failed = attempt(routed, request_id, number)
        assert (failed["provider"], failed["route"], failed["cost_usd"]) == ("offline", "offline/gpt-4o-mini", 0)
        assert failed.get("upstream_status") is None and failed["error_code"] == "upstream_error"


def test_nothing_is_retried_once_the_stream_has_begun(routed):
    routed.fake_faults({"kind": "cut", "after_tokens": 5}, **ON_ANTHROPIC)

    with (
        pytest.raises(anthropic.APIError, match="stream broke off"),
        claude(routed).messages.stream(model=SONNET, max_tokens=200, messages=PROMPT) as stream,
    ):
        request_id = stream.response.headers["x-meterway-request-id"]
        for _ in stream:
            pass

    assert calls(routed) == ["/v1/messages"]
    record = routed.generation(request_id)
    assert (record["status"], record["provider"], record.get("attempts")) == ("partial", "anthropic", None)
    with pytest.raises(AssertionError, match="no ledger record"):
        routed.generation(f"{request_id}.1", wait_s=0.5)


def test_when_every_route_fails_a_messages_client_gets_the_last_error_in_anthropics_envelope(routed):
    routed.fake_faults({"kind": "status", "status": 529}, {"kind": "status", "status": 529}, **ON_ANTHROPIC)
    # A retry-after longer than the policy waits: the route is not tried again.
    routed.fake_faults({"kind": "status", "status": 429, "retry_after": 30}, **ON_BEDROCK)

    with pytest.raises(anthropic.RateLimitError) as raised:
        claude(routed).messages.create(model=SONNET, max_tokens=200, messages=PROMPT)

    response = raised.value.response
    assert response.json()["type"] == "error" and response.json()["error"]["type"] == "rate_limit_error"
    assert response.headers["retry-after"] == "30"
    assert len(calls(routed)) == 3
    request_id = response.headers["x-meterway-request-id"]
    record = routed.generation(request_id)
    assert (record["status"], record["provider"], record["upstream_status"], record["attempts"]) == (
        "error",
        "bedrock",
        429,
        3,
    )
    assert record["cost_usd"] == 0 and [attempt(routed, request_id, n)["upstream_status"] for n in (1, 2)] == [529, 529]


def test_when_every_route_fails_a_chat_client_gets_the_last_error_in_openais_envelope(routed):
    routed.fake_faults(*[{"kind": "status", "status": 503}] * 2, **ON_ANTHROPIC)
    routed.fake_faults(*[{"kind": "status", "status": 500}] * 2, **ON_BEDROCK)

    with pytest.raises(openai.APIStatusError) as raised:
        routed.openai().chat.completions.create(model=SONNET, messages=PROMPT)

    assert raised.value.status_code == 502
    error = raised.value.response.json()["error"]
    assert error["type"] == "upstream_error" and set(error) == {"message", "type", "code"}
    assert calls(routed) == ["/v1/messages"] * 2 + [f"/model/{SONNET_PROFILE}/invoke"] * 2
    record = routed.generation(raised.value.response.headers["x-meterway-request-id"])
    assert (record["upstream_status"], record["attempts"], record["provider"]) == (500, 4, "bedrock")


def test_a_client_that_pins_a_provider_gets_only_that_one(routed):
    routed.fake_faults(*[{"kind": "status", "status": 529}] * 2, **ON_ANTHROPIC)

    with pytest.raises(anthropic.APIStatusError) as raised:
        claude(routed).messages.create(
            model=SONNET, max_tokens=200, messages=PROMPT, extra_body={"provider": {"only": ["anthropic"]}}
        )
    pinned = claude(routed, default_headers={"x-meterway-provider": "bedrock"}).messages.with_raw_response.create(
        model=SONNET, max_tokens=200, messages=PROMPT
    )

    assert raised.value.status_code == 529  # Anthropic's overloaded, in its words: no fallback
    sent = [entry for entry in routed.fake_requests() if not entry["path"].startswith("/_fake")]
    assert [entry["path"] for entry in sent] == ["/v1/messages"] * 2 + [f"/model/{SONNET_PROFILE}/invoke"]
    assert all("provider" not in entry["body"] for entry in sent)  # the gateway's field is not forwarded
    record = routed.generation(pinned.headers["x-meterway-request-id"])
    assert (record["provider"], record["route"], record.get("attempts")) == ("bedrock", SONNET_ON_BEDROCK, None)


def test_a_pin_no_route_has_is_a_400_in_the_clients_envelope(routed):
    with pytest.raises(openai.BadRequestError) as raised:
        routed.openai().chat.completions.create(
            model=SONNET, messages=PROMPT, extra_body={"provider": {"only": ["groq"]}}
        )

    assert raised.value.response.json()["error"]["code"] == "provider_not_available"
    assert calls(routed) == []


def recent_records(stack: LocalStack) -> list[dict[str, Any]]:
    return sorted(ledger_items(stack), key=lambda item: item["created_sk"])


def test_usage_and_activity_count_one_request_per_client_request_and_show_spend_by_provider(routed):
    items = recent_records(routed)
    requests = [item for item in items if not item.get("attempt_of")]
    attempts = [item for item in items if item.get("attempt_of")]
    assert len(attempts) >= 10  # the tests above fell back

    today = items[0]["created_at"][:10]
    deadline = time.monotonic() + 30
    while True:
        usage = routed.admin("GET", "/usage", params={"start": today}).json()
        assert "totals" in usage, usage
        if usage["totals"]["requests"] + usage["totals"]["errors"] >= len(requests) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    activity = routed.admin("GET", "/activity", params={"period": "1d", "group_by": "provider"}).json()
    log = routed.admin("GET", "/usage/requests", params={"start": today, "limit": "200"}).json()["data"]

    # A request that failed on every route is an error, not a request
    failed = [item for item in requests if item["status"] == "error"]
    assert (usage["totals"]["requests"], usage["totals"]["errors"]) == (len(requests) - len(failed), len(failed))
    assert Decimal(usage["totals"]["cost"]) == sum((Decimal(str(i["cost_usd"])) for i in items), Decimal(0))
    spend: dict[str, Decimal] = defaultdict(Decimal)
    for item in requests:
        spend[item["provider"]] += Decimal(str(item["cost_usd"]))
    by_provider = {group["group"]: group for group in activity["groups"]}
    assert {name: Decimal(group["cost"]) for name, group in by_provider.items()} == dict(spend)
    assert by_provider["bedrock"]["requests"] == Counter(i["provider"] for i in requests if i not in failed)["bedrock"]
    # The log: one row per request, its failed attempts under it in order
    assert sorted(row["id"] for row in log) == sorted(item["request_id"] for item in requests)
    nested = {row["id"]: [a["id"] for a in row["attempts"]] for row in log if row["attempts"]}
    expected: dict[str, list[str]] = defaultdict(list)
    for item in sorted(attempts, key=lambda a: a["attempt"]):
        expected[item["attempt_of"]].append(item["request_id"])
    assert nested == dict(expected)
