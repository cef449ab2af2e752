"""The openai SDK's ``client.responses`` against the local stack: what Codex CLI's requests go
through. OpenAI models are a pass-through; every call is metered as the upstream reported it."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest
from genai_prices import Usage, calc_price

from tests.e2e.conftest import no_client_pauses

pytestmark = pytest.mark.e2e

SHELL = {
    "type": "function",
    "name": "shell",
    "description": "Run a command",
    "parameters": {
        "type": "object",
        "properties": {"command": {"type": "array", "items": {"type": "string"}}},
        "required": ["command"],
        "additionalProperties": False,
    },
    "strict": True,
}


@pytest.fixture(autouse=True)
def fresh_fake(stack):
    httpx.post(f"{stack.fake}/_fake/reset").raise_for_status()
    httpx.delete(f"{stack.fake}/_fake/faults").raise_for_status()


def responses_price(model: str, usage: dict[str, Any]) -> Decimal:
    cached = (usage.get("input_tokens_details") or {}).get("cached_tokens", 0)
    return calc_price(
        Usage(input_tokens=usage["input_tokens"], cache_read_tokens=cached, output_tokens=usage["output_tokens"]),
        model_ref=model,
        provider_id="openai",
    ).total_price


def assert_record_is_the_upstreams_usage(record: dict[str, Any], usage: dict[str, Any], model: str) -> None:
    cached = (usage.get("input_tokens_details") or {}).get("cached_tokens", 0)
    reasoning = (usage.get("output_tokens_details") or {}).get("reasoning_tokens", 0)
    assert record["endpoint"] == "responses"
    assert record["input_tokens"] == usage["input_tokens"] - cached
    assert record["cache_read_tokens"] == cached
    assert record["output_tokens"] == usage["output_tokens"] > 0
    assert record["reasoning_tokens"] == reasoning
    assert Decimal(str(record["cost_usd"])) == responses_price(model, usage) > 0


def test_a_response_passes_through_and_is_metered_as_the_upstream_reported(stack):
    raw = stack.openai().responses.with_raw_response.create(
        model="openai/gpt-5-mini", input="Summarise why gateways meter tokens.", store=False
    )
    response = raw.parse()

    upstream = stack.fake_requests()[-1]
    record = stack.generation(raw.headers["x-meterway-request-id"])
    assert upstream["path"] == "/v1/responses" and upstream["body"]["model"] == "gpt-5-mini"
    assert upstream["body"]["store"] is False
    assert response.model == "openai/gpt-5-mini" and response.output_text
    assert_record_is_the_upstreams_usage(record, upstream["usage"], "gpt-5-mini")
    assert record["reasoning_tokens"] > 0  # a reasoning model
    assert Decimal(str(response.usage.model_extra["cost"])) == Decimal(str(record["cost_usd"]))


def test_a_streamed_function_tool_round_trip_is_relayed_and_each_turn_metered(stack):
    client = stack.openai()
    # First turn: the model calls the tool the prompt names
    with client.responses.with_streaming_response.create(
        model="openai/gpt-5-mini",
        input="List the files with shell.",
        tools=[SHELL],
        store=False,
        include=["reasoning.encrypted_content"],
        reasoning={"effort": "low"},
        stream=True,
    ) as raw:
        first_id = raw.headers["x-meterway-request-id"]
        streamed = list(raw.parse())
    events = [event.type for event in streamed]
    first = streamed[-1].response
    call = next(item for item in first.output if item.type == "function_call")
    assert call.name == "shell" and json.loads(call.arguments)["command"]
    assert events[0] == "response.created" and events[-1] == "response.completed"
    assert "response.function_call_arguments.delta" in events

    # Second turn: the whole conversation, reasoning included, with the tool's output
    replay = [item.model_dump(exclude_none=True) for item in first.output]
    second = client.responses.create(
        model="openai/gpt-5-mini",
        input=[
            {"role": "user", "content": "List the files with shell."},
            *replay,
            {"type": "function_call_output", "call_id": call.call_id, "output": "README.md\nMakefile"},
        ],
        tools=[SHELL],
        store=False,
    )
    assert "README.md" in second.output_text

    usages = [request["usage"] for request in stack.fake_requests()]
    assert_record_is_the_upstreams_usage(stack.generation(first_id), usages[0], "gpt-5-mini")
    assert stack.generation(first_id)["streamed"] is True


def test_the_stream_arrives_event_by_event(stack):
    # Timed on the wire: the SDK's first parse of each event type would add its own delay.
    arrivals: list[float] = []
    body = {"model": "openai/gpt-4o-mini", "input": "Tell me about meters.", "stream": True}
    headers = {"authorization": f"Bearer {stack.api_key}"}
    started = time.perf_counter()
    with no_client_pauses(), httpx.stream("POST", f"{stack.base}/v1/responses", json=body, headers=headers) as response:
        for line in response.iter_lines():
            if line.startswith("data:") and '"response.output_text.delta"' in line:
                arrivals.append(time.perf_counter() - started)
    # The fake spaces tokens 20 ms apart: a buffered relay would deliver them all at once.
    assert len(arrivals) >= 10 and arrivals[-1] - arrivals[0] >= 0.015 * (len(arrivals) - 1)


def test_previous_response_id_is_refused_clearly_and_records_nothing(stack):
    before = stack.ledger_count()
    with pytest.raises(openai.BadRequestError) as refused:
        stack.openai().responses.create(model="openai/gpt-4o-mini", input="again", previous_response_id="resp_123")

    assert "previous_response_id" in refused.value.message and "input" in refused.value.message
    assert refused.value.body["type"] == "invalid_request_error"
    assert stack.ledger_count() == before and stack.fake_requests() == []


def test_structured_output_survives_the_gateway(stack):
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
        "required": ["city", "population"],
        "additionalProperties": False,
    }
    response = stack.openai().responses.create(
        model="openai/gpt-4o-mini",
        input="Give me a city.",
        text={"format": {"type": "json_schema", "name": "city", "schema": schema, "strict": True}},
    )
    answer = json.loads(response.output_text)
    assert set(answer) == {"city", "population"} and isinstance(answer["population"], int)


def test_an_anthropic_model_answers_a_responses_client_with_a_tool_round_trip(stack):
    client = stack.openai()
    ask = "List the files with shell."
    raw = client.responses.with_raw_response.create(
        model="anthropic/claude-sonnet-4-5", input=ask, tools=[SHELL], store=False, reasoning={"effort": "low"}
    )
    first = raw.parse()
    call = next(item for item in first.output if item.type == "function_call")
    assert call.name == "shell" and json.loads(call.arguments)["command"]
    reasoning = [item for item in first.output if item.type == "reasoning"]
    assert reasoning and reasoning[0].encrypted_content  # Anthropic's signed thinking, carried by the client

    second = client.responses.create(
        model="anthropic/claude-sonnet-4-5",
        input=[
            {"role": "user", "content": ask},
            *[item.model_dump(exclude_none=True) for item in first.output],
            {"type": "function_call_output", "call_id": call.call_id, "output": "README.md"},
        ],
        tools=[SHELL],
        store=False,
        reasoning={"effort": "low"},
    )
    assert "README.md" in second.output_text

    upstream = stack.fake_requests()
    assert [request["path"] for request in upstream] == ["/v1/messages", "/v1/messages"]
    # The thinking block came back to Anthropic signed as it was given
    thinking = upstream[1]["body"]["messages"][1]["content"][0]
    assert thinking["type"] == "thinking" and thinking["signature"]
    record = stack.generation(raw.headers["x-meterway-request-id"])
    usage = upstream[0]["usage"]
    assert record["endpoint"] == "responses" and record["input_tokens"] == usage["input_tokens"]
    assert record["output_tokens"] == usage["output_tokens"] and Decimal(str(record["cost_usd"])) > 0
    assert first.usage.output_tokens == usage["output_tokens"]


@pytest.mark.parametrize(
    ("path", "body", "auth"),
    [
        ("/v1/chat/completions", {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}, "b"),
        ("/v1/responses", {"model": "openai/gpt-4o-mini", "input": "x"}, "b"),
        ("/v1/messages", {"model": "anthropic/claude-haiku-4-5", "max_tokens": 5, "messages": []}, "x"),
        ("/v1/embeddings", {"model": "openai/text-embedding-3-small", "input": "x"}, "b"),
    ],
)
def test_an_oversized_body_is_refused_on_every_door_in_its_envelope(stack, path, body, auth):
    before = stack.ledger_count()
    padded = body | {"padding": "x" * (6 * 1024 * 1024 + 1)}
    headers = {"authorization": f"Bearer {stack.api_key}"} if auth == "b" else {"x-api-key": stack.api_key}
    response = httpx.post(f"{stack.base}{path}", json=padded, headers=headers, timeout=30)

    assert response.status_code == 413
    error = response.json()["error"]
    assert error["type"] == ("request_too_large" if path == "/v1/messages" else "invalid_request_error")
    assert stack.ledger_count() == before and stack.fake_requests() == []


def test_a_malformed_input_item_is_a_400_that_records_nothing(stack):
    before = stack.ledger_count()
    with pytest.raises(openai.BadRequestError) as refused:
        stack.openai().responses.create(
            model="anthropic/claude-sonnet-4-5", input=[{"type": "no_such_item", "content": "x"}]
        )
    assert refused.value.status_code == 400 and "input" in refused.value.message
    assert stack.ledger_count() == before and stack.fake_requests() == []


@pytest.mark.parametrize(
    ("model", "upstream_path"),
    [("openai/gpt-4o-mini", "/v1/responses"), ("anthropic/claude-sonnet-4-5", "/v1/messages")],
)
def test_a_stream_cut_by_the_upstream_ends_with_an_error_event_and_a_partial_record(stack, model, upstream_path):
    stack.fake_faults({"kind": "cut", "after_tokens": 4}, path=upstream_path)
    before = stack.ledger_count()
    body = {"model": model, "input": "Tell me about meters.", "stream": True}
    headers = {"authorization": f"Bearer {stack.api_key}"}
    with httpx.stream("POST", f"{stack.base}/v1/responses", json=body, headers=headers) as sent:
        request_id = sent.headers["x-meterway-request-id"]
        events = [line for line in sent.iter_lines() if line.startswith("event: ")]

    assert events[0] == "event: response.created" and events[-1] == "event: error"
    assert "event: response.completed" not in events
    record = stack.generation(request_id)
    assert record["endpoint"] == "responses" and record["status"] == "partial"
    assert record["input_tokens"] > 0 and record["output_tokens"] >= 4 and record["cost_usd"] > 0
    assert stack.ledger_count() == before + 1


@pytest.mark.parametrize("model", ["openai/gpt-4o-mini", "anthropic/claude-sonnet-4-5"])
def test_a_client_that_leaves_mid_stream_leaves_one_partial_record(stack, model):
    before = stack.ledger_count()
    body = {"model": model, "input": "Tell me about meters.", "stream": True, "max_output_tokens": 64}
    headers = {"authorization": f"Bearer {stack.api_key}"}
    with httpx.stream("POST", f"{stack.base}/v1/responses", json=body, headers=headers) as sent:
        request_id = sent.headers["x-meterway-request-id"]
        deltas = 0
        for line in sent.iter_lines():
            deltas += '"response.output_text.delta"' in line
            if deltas == 3:
                break

    record = stack.generation(request_id, wait_s=10)
    assert record["status"] == "partial" and record["output_tokens"] >= 3 and record["cost_usd"] > 0
    assert stack.ledger_count() == before + 1
