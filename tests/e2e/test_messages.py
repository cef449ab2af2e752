"""The anthropic SDK against the local stack's ``/v1/messages``: what Claude Code's requests go
through. Anthropic models are a pass-through; every call is metered as the upstream reported it."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import anthropic
import httpx
import pytest

from tests.e2e.conftest import no_client_pauses
from tests.e2e.expected import assert_anthropic_usage_recorded

pytestmark = pytest.mark.e2e

CLAUDE = "anthropic/claude-haiku-4-5"
PROMPT = [{"role": "user", "content": "Explain why a gateway meters every token."}]


@pytest.fixture(autouse=True)
def fresh_fake(stack):
    httpx.post(f"{stack.fake}/_fake/reset").raise_for_status()
    httpx.delete(f"{stack.fake}/_fake/faults").raise_for_status()


def claude(stack, **kwargs: Any) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=stack.base, api_key=stack.api_key, max_retries=0, **kwargs)


def assert_record_is_the_upstreams_usage(record: dict[str, Any], usage: dict[str, Any], model: str) -> None:
    assert record["endpoint"] == "messages" and record["status"] == "ok"
    assert_anthropic_usage_recorded(record, usage, model)


def test_a_message_passes_through_and_is_metered_as_the_upstream_reported(stack):
    raw = claude(stack).messages.with_raw_response.create(model=CLAUDE, max_tokens=200, messages=PROMPT)
    message = raw.parse()

    upstream = stack.fake_requests()[-1]
    record = stack.generation(raw.headers["x-meterway-request-id"])
    # The body reached Anthropic as sent, but for the model id
    assert upstream["path"] == "/v1/messages" and upstream["body"]["model"] == "claude-haiku-4-5"
    assert upstream["body"]["messages"] == PROMPT and upstream["body"]["max_tokens"] == 200
    assert message.model == CLAUDE and message.content[0].text
    assert message.usage.output_tokens == upstream["usage"]["output_tokens"]
    assert_record_is_the_upstreams_usage(record, upstream["usage"], "claude-haiku-4-5")
    assert Decimal(str(message.usage.model_extra["cost"])) == Decimal(str(record["cost_usd"]))


def test_a_stream_is_relayed_event_by_event_and_its_final_usage_carries_the_cost(stack):
    client = claude(stack)
    arrivals: list[float] = []
    kinds: list[str] = []
    costs: list[Decimal] = []
    started = time.perf_counter()
    with no_client_pauses(), client.messages.stream(model=CLAUDE, max_tokens=60, messages=PROMPT) as stream:
        for event in stream:
            arrivals.append(time.perf_counter() - started)
            kinds.append(event.type)
            if event.type == "message_delta":
                costs.append(Decimal(str(event.usage.model_extra["cost"])))
        request_id = stream.response.headers["x-meterway-request-id"]

    assert kinds[0] == "message_start" and "message_stop" in kinds
    deltas = [arrivals[i] for i, kind in enumerate(kinds) if kind == "text"]
    # The fake spaces tokens 20 ms apart: a buffered relay would deliver them all at once.
    assert len(deltas) >= 10 and deltas[-1] - deltas[0] >= 0.015 * (len(deltas) - 1)
    upstream = stack.fake_requests()[-1]
    record = stack.generation(request_id)
    assert record["streamed"] is True
    assert_record_is_the_upstreams_usage(record, upstream["usage"], "claude-haiku-4-5")
    # The one event with the final usage carries the cost (the SDK's accumulator keeps only tokens)
    assert costs == [Decimal(str(record["cost_usd"]))]


def test_anthropic_headers_are_forwarded_unchanged_and_beta_requests_are_accepted(stack):
    betas = "interleaved-thinking-2025-05-14,fine-grained-tool-streaming-2025-05-14"
    response = httpx.post(
        f"{stack.base}/v1/messages?beta=true",
        json={"model": CLAUDE, "max_tokens": 20, "messages": PROMPT},
        headers={"x-api-key": stack.api_key, "anthropic-version": "2023-06-01", "anthropic-beta": betas},
    )

    assert response.status_code == 200, response.text
    sent = stack.fake_requests()[-1]["headers"]
    assert sent["anthropic-beta"] == betas and sent["anthropic-version"] == "2023-06-01"
    assert sent["x-api-key"] != stack.api_key  # the provider's key, never the caller's


def test_count_tokens_is_answered_by_the_provider_and_not_billed(stack):
    before = stack.ledger_count()
    counted = claude(stack).messages.count_tokens(model=CLAUDE, messages=PROMPT, system="Be brief.")
    billed = claude(stack).messages.create(model=CLAUDE, max_tokens=5, messages=PROMPT, system="Be brief.")

    assert counted.input_tokens == billed.usage.input_tokens > 0
    time.sleep(0.5)
    assert stack.ledger_count() == before + 1  # the billed call only


@pytest.mark.parametrize(
    ("body", "status", "error_type"),
    [
        ({"model": CLAUDE, "messages": PROMPT}, 400, "invalid_request_error"),
        ({"model": "anthropic/claude-nope", "max_tokens": 5, "messages": PROMPT}, 404, "not_found_error"),
        ({"model": CLAUDE, "max_tokens": 5, "messages": []}, 400, "invalid_request_error"),
    ],
)
def test_bad_requests_get_anthropics_envelope_and_record_nothing(stack, body, status, error_type):
    before = stack.ledger_count()
    response = httpx.post(f"{stack.base}/v1/messages", json=body, headers={"x-api-key": stack.api_key})

    assert response.status_code == status
    assert response.json()["type"] == "error" and response.json()["error"]["type"] == error_type
    assert set(response.json()["error"]) == {"type", "message"}
    assert stack.ledger_count() == before and stack.fake_requests() == []


def test_a_bad_key_is_refused_in_anthropics_envelope(stack):
    with pytest.raises(anthropic.AuthenticationError) as refused:
        anthropic.Anthropic(base_url=stack.base, api_key="mw-live-nope", max_retries=0).messages.create(
            model=CLAUDE, max_tokens=5, messages=PROMPT
        )
    assert refused.value.body["error"]["type"] == "authentication_error"


def test_an_overloaded_upstream_reaches_the_client_in_its_own_words_and_bills_nothing(stack):
    stack.fake_faults({"kind": "status", "status": 529, "message": "Overloaded"}, path="/v1/messages")

    with pytest.raises(anthropic.APIStatusError) as failed:
        claude(stack).messages.create(model=CLAUDE, max_tokens=5, messages=PROMPT)

    assert failed.value.status_code == 529
    assert failed.value.body["error"] == {"type": "overloaded_error", "message": "Overloaded"}
    record = stack.generation(failed.value.response.headers["x-meterway-request-id"])
    assert record["status"] == "error" and record["upstream_status"] == 529 and record["cost_usd"] == 0


def test_an_upstream_refusing_the_gateways_key_says_nothing_of_it(stack):
    words = "invalid x-api-key: sk-ant-api03-...Xk9Q"
    stack.fake_faults({"kind": "status", "status": 401, "message": words}, path="/v1/messages")

    with pytest.raises(anthropic.APIStatusError) as failed:
        claude(stack).messages.create(model=CLAUDE, max_tokens=5, messages=PROMPT)

    assert failed.value.status_code == 502 and failed.value.body["error"]["type"] == "api_error"
    assert "sk-ant" not in failed.value.response.text and "x-api-key" not in failed.value.response.text


WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.mark.parametrize("model", [CLAUDE, "openai/gpt-4o-mini"])
def test_a_tool_round_trip_works_on_every_provider_and_each_turn_is_metered(stack, model):
    client = claude(stack)
    ask = [{"role": "user", "content": "What is the weather in Paris? Use get_weather."}]
    raw = client.messages.with_raw_response.create(model=model, max_tokens=300, messages=ask, tools=[WEATHER])
    first = raw.parse()
    call = next(block for block in first.content if block.type == "tool_use")
    assert first.stop_reason == "tool_use" and call.name == "get_weather" and isinstance(call.input["city"], str)

    turn = [
        *ask,
        {"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "18°C and sunny"}]},
    ]
    with client.messages.stream(model=model, max_tokens=300, messages=turn, tools=[WEATHER]) as stream:
        second = stream.get_final_message()
        second_id = stream.response.headers["x-meterway-request-id"]

    assert second.stop_reason == "end_turn" and "18°C and sunny" in second.content[-1].text
    records = [stack.generation(raw.headers["x-meterway-request-id"]), stack.generation(second_id)]
    upstream = [request["usage"] for request in stack.fake_requests()]
    for record, usage in zip(records, upstream, strict=True):
        assert record["endpoint"] == "messages" and record["model"] == model
        total = usage.get("total_tokens") or usage["input_tokens"] + usage["output_tokens"]
        assert record["total_tokens"] == total > 0 and Decimal(str(record["cost_usd"])) > 0


def test_an_openai_model_answers_a_messages_client_in_anthropics_format(stack):
    with claude(stack).messages.stream(model="openai/gpt-4o-mini", max_tokens=80, messages=PROMPT) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
        request_id = stream.response.headers["x-meterway-request-id"]

    upstream = stack.fake_requests()[-1]
    record = stack.generation(request_id)
    assert upstream["path"] == "/v1/chat/completions" and upstream["body"]["model"] == "gpt-4o-mini"
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert final.model == "openai/gpt-4o-mini" and final.content[0].text and final.stop_reason == "end_turn"
    cached = upstream["usage"]["prompt_tokens_details"]["cached_tokens"]
    assert final.usage.input_tokens == record["input_tokens"] == upstream["usage"]["prompt_tokens"] - cached
    assert final.usage.output_tokens == record["output_tokens"] == upstream["usage"]["completion_tokens"]
    assert record["endpoint"] == "messages" and Decimal(str(record["cost_usd"])) > 0


def test_count_tokens_for_a_model_without_a_counting_endpoint_is_an_estimate_that_says_so(stack):
    response = httpx.post(
        f"{stack.base}/v1/messages/count_tokens",
        json={"model": "openai/gpt-4o-mini", "messages": PROMPT},
        headers={"x-api-key": stack.api_key},
    )
    assert response.status_code == 200
    assert response.json()["input_tokens"] > 0 and response.json()["estimated"] is True
    assert stack.fake_requests() == []


def test_a_stream_cut_by_the_upstream_ends_with_an_error_event_and_a_partial_record(stack):
    stack.fake_faults({"kind": "cut", "after_tokens": 5}, path="/v1/messages")
    body = {"model": CLAUDE, "max_tokens": 100, "messages": PROMPT, "stream": True}
    with httpx.stream("POST", f"{stack.base}/v1/messages", json=body, headers={"x-api-key": stack.api_key}) as sent:
        request_id = sent.headers["x-meterway-request-id"]
        events = [line for line in sent.iter_lines() if line.startswith("event: ")]

    assert events[0] == "event: message_start" and events[-1] == "event: error"
    record = stack.generation(request_id)
    assert record["status"] == "partial" and record["input_tokens"] > 0 and record["output_tokens"] >= 5


@pytest.mark.parametrize("model", [CLAUDE, "openai/gpt-4o-mini"])
def test_a_client_that_leaves_mid_stream_leaves_one_partial_record(stack, model):
    before = stack.ledger_count()
    body = {"model": model, "max_tokens": 64, "messages": PROMPT, "stream": True}
    with httpx.stream("POST", f"{stack.base}/v1/messages", json=body, headers={"x-api-key": stack.api_key}) as sent:
        request_id = sent.headers["x-meterway-request-id"]
        deltas = 0
        for line in sent.iter_lines():
            deltas += line == "event: content_block_delta"
            if deltas == 3:
                break

    record = stack.generation(request_id, wait_s=10)
    assert record["endpoint"] == "messages" and record["status"] == "partial"
    assert record["output_tokens"] >= 3 and record["cost_usd"] > 0
    assert stack.ledger_count() == before + 1


def test_a_key_limited_to_other_models_is_refused_on_this_door_too(stack):
    created = stack.admin(
        "POST", "/keys", json={"name": "chat only", "limits": {"allowed_models": ["openai/gpt-4o-mini"]}}
    )
    secret = created.json()["secret"]

    with pytest.raises(anthropic.PermissionDeniedError) as refused:
        anthropic.Anthropic(base_url=stack.base, api_key=secret, max_retries=0).messages.create(
            model=CLAUDE, max_tokens=5, messages=PROMPT
        )
    assert refused.value.body["error"]["type"] == "permission_error"
    assert stack.fake_requests() == []


def test_text_outside_ascii_streams_to_the_sdk_as_the_answer_carries_it(stack):
    # Each event's JSON is written with msgspec (text as UTF-8, not \u escapes)
    text = "café 東京 — naïve ✓"
    turn = [
        {"role": "user", "content": "Look it up."},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": text}]},
    ]
    whole = claude(stack).messages.create(model=CLAUDE, max_tokens=200, messages=turn)
    with claude(stack).messages.stream(model=CLAUDE, max_tokens=200, messages=turn) as stream:
        streamed = "".join(stream.text_stream)

    assert "東京" in streamed and "✓" in streamed and "café" in streamed
    assert streamed == "".join(block.text for block in whole.content if block.type == "text")
