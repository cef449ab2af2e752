"""The openai SDK against the local stack: what a team sees when it points its client at Meterway."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest
from genai_prices import Usage, calc_price

from tests.e2e.conftest import no_client_pauses

pytestmark = pytest.mark.e2e

PROMPT = [{"role": "user", "content": "Tell me about metering tokens in an LLM gateway."}]


@pytest.fixture(autouse=True)
def fresh_fake(stack):
    httpx.post(f"{stack.fake}/_fake/reset").raise_for_status()


def openai_price(model: str, usage: dict[str, Any]) -> Decimal:
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
    return calc_price(
        Usage(input_tokens=usage["prompt_tokens"], cache_read_tokens=cached, output_tokens=usage["completion_tokens"]),
        model_ref=model,
        provider_id="openai",
    ).total_price


def assert_record_matches_openai_usage(record: dict[str, Any], upstream_usage: dict[str, Any]) -> None:
    cached = (upstream_usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
    reasoning = (upstream_usage.get("completion_tokens_details") or {}).get("reasoning_tokens", 0)
    assert record["input_tokens"] == upstream_usage["prompt_tokens"] - cached
    assert record["cache_read_tokens"] == cached
    assert record["output_tokens"] == upstream_usage["completion_tokens"]
    assert record["reasoning_tokens"] == reasoning
    assert record["total_tokens"] == upstream_usage["total_tokens"]


def test_non_streamed_completion_is_metered_priced_and_recorded(stack):
    client = stack.openai()
    raw = client.chat.completions.with_raw_response.create(model="openai/gpt-4o-mini", messages=PROMPT)
    completion = raw.parse()
    request_id = raw.headers["x-meterway-request-id"]

    upstream = stack.fake_requests()[-1]
    record = stack.generation(request_id)
    assert completion.id == request_id == record["request_id"]
    assert completion.model == "openai/gpt-4o-mini"
    assert completion.choices[0].message.content
    assert_record_matches_openai_usage(record, upstream["usage"])
    expected = openai_price("gpt-4o-mini", upstream["usage"])
    assert Decimal(str(record["cost_usd"])) == expected
    assert Decimal(str(completion.usage.model_extra["cost"])) == expected
    assert record["status"] == "ok"
    assert record["streamed"] is False
    assert record["key_name"] == "local dev"


def test_stream_arrives_while_the_upstream_is_still_generating_and_ends_with_usage(stack):
    client = stack.openai()
    arrivals: list[float] = []
    chunks = []
    started = time.perf_counter()
    with no_client_pauses():
        stream = client.chat.completions.create(model="openai/gpt-4o-mini", messages=PROMPT, stream=True, max_tokens=40)
        for chunk in stream:
            arrivals.append(time.perf_counter() - started)
            chunks.append(chunk)

    content_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    # The fake upstream spaces tokens 20 ms apart: a buffered relay would deliver them all at once.
    assert len(content_chunks) >= 12
    first_content = arrivals[chunks.index(content_chunks[0])]
    assert arrivals[-1] - first_content >= 0.015 * (len(content_chunks) - 1)

    usage_chunk = chunks[-1]
    assert usage_chunk.choices == []
    assert usage_chunk.usage is not None
    upstream = stack.fake_requests()[-1]
    assert upstream["body"]["stream_options"] == {"include_usage": True}
    record = stack.generation(usage_chunk.id)
    assert_record_matches_openai_usage(record, upstream["usage"])
    assert record["streamed"] is True
    assert record["status"] == "ok"
    assert record["ttft_ms"] < record["latency_ms"]
    assert Decimal(str(usage_chunk.usage.model_extra["cost"])) == openai_price("gpt-4o-mini", upstream["usage"])


def test_reasoning_tokens_are_recorded_as_part_of_output(stack):
    completion = stack.openai().chat.completions.create(model="openai/o4-mini", messages=PROMPT)
    record = stack.generation(completion.id)
    upstream = stack.fake_requests()[-1]
    assert record["reasoning_tokens"] == upstream["usage"]["completion_tokens_details"]["reasoning_tokens"] > 0
    assert record["output_tokens"] == upstream["usage"]["completion_tokens"]


def test_anthropic_model_through_chat_completions_keeps_one_hour_writes_apart(stack):
    long_context = "Policy clause. " * 400
    messages = [
        {
            "role": "system",
            "content": [{"type": "text", "text": long_context, "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
        },
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Recent ticket history. " * 200, "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": "Summarise the policy."},
            ],
        },
    ]
    client = stack.openai()
    first = client.chat.completions.create(model="anthropic/claude-sonnet-4-5", messages=messages)
    written = stack.fake_requests()[-1]["usage"]
    record = stack.generation(first.id)

    assert written["cache_creation"]["ephemeral_1h_input_tokens"] > 0
    assert written["cache_creation"]["ephemeral_5m_input_tokens"] > 0
    assert record["cache_creation_1h_tokens"] == written["cache_creation"]["ephemeral_1h_input_tokens"]
    assert record["cache_creation_5m_tokens"] == written["cache_creation"]["ephemeral_5m_input_tokens"]
    assert record["input_tokens"] == written["input_tokens"]
    assert record["prices"]["cache_write_1h_mtok"] == 6
    assert record["prices"]["cache_write_5m_mtok"] == 3.75
    expected = calc_price(
        Usage(
            input_tokens=written["input_tokens"] + written["cache_creation_input_tokens"],
            cache_write_tokens=written["cache_creation_input_tokens"],
            cache_write_5m_tokens=written["cache_creation"]["ephemeral_5m_input_tokens"],
            cache_write_1h_tokens=written["cache_creation"]["ephemeral_1h_input_tokens"],
            output_tokens=written["output_tokens"],
        ),
        model_ref="claude-sonnet-4-5",
        provider_id="anthropic",
    ).total_price
    assert Decimal(str(record["cost_usd"])) == expected

    # The same prefix again is read from the cache, streamed this time.
    chunks = list(client.chat.completions.create(model="anthropic/claude-sonnet-4-5", messages=messages, stream=True))
    read = stack.fake_requests()[-1]["usage"]
    second = stack.generation(chunks[-1].id)
    assert second["cache_read_tokens"] == read["cache_read_input_tokens"] > 0
    assert second["cache_creation_tokens"] == 0
    assert chunks[-1].usage.prompt_tokens == second["input_tokens"] + second["cache_read_tokens"]


def test_a_client_that_disconnects_mid_stream_leaves_a_partial_record(stack):
    before = stack.ledger_count()
    body = {"model": "openai/gpt-4o-mini", "messages": PROMPT, "stream": True, "max_tokens": 48}
    headers = {"authorization": f"Bearer {stack.api_key}"}
    with httpx.stream("POST", f"{stack.base}/v1/chat/completions", json=body, headers=headers) as response:
        request_id = response.headers["x-meterway-request-id"]
        received = 0
        for line in response.iter_lines():
            if line.startswith("data: {"):
                received += 1
            if received == 4:
                break
    record = stack.generation(request_id, wait_s=10)
    assert record["status"] == "partial"
    assert record["usage_estimated"] is True
    assert record["output_tokens"] >= 1
    assert record["cost_usd"] > 0
    assert stack.ledger_count() == before + 1


def test_an_upstream_cut_mid_stream_gives_the_client_an_error_and_a_partial_record(stack):
    stack.fake_faults({"kind": "cut", "after_tokens": 3})
    client = stack.openai()
    seen = []
    with pytest.raises(openai.APIError):
        for chunk in client.chat.completions.create(model="openai/gpt-4o-mini", messages=PROMPT, stream=True):
            seen.append(chunk)
    record = stack.generation(seen[0].id)
    assert record["status"] == "partial"
    assert record["output_tokens"] >= 3


@pytest.mark.parametrize(
    ("fault", "status"),
    [({"kind": "status", "status": 500}, 502), ({"kind": "timeout", "seconds": 4}, 504)],
)
def test_upstream_failures_map_to_gateway_errors_and_bill_nothing(stack, fault, status):
    stack.fake_faults(fault)
    response = httpx.post(
        f"{stack.base}/v1/chat/completions",
        json={"model": "openai/gpt-4o-mini", "messages": PROMPT},
        headers={"authorization": f"Bearer {stack.api_key}"},
        timeout=10,
    )
    assert response.status_code == status
    assert set(response.json()["error"]) == {"message", "type", "code"}
    record = stack.generation(response.headers["x-meterway-request-id"])
    assert record["status"] == "error"
    assert record["cost_usd"] == 0
    assert record["total_tokens"] == 0


def test_models_are_listed_with_their_prices(stack):
    models = {model.id: model for model in stack.openai().models.list()}
    assert "openai/gpt-4o-mini" in models
    assert "anthropic/claude-sonnet-4-5" in models
    pricing = models["anthropic/claude-sonnet-4-5"].model_extra["pricing"]
    assert pricing["input_mtok"] == "3"
    assert pricing["cache_write_1h_mtok"] == "6"


def test_a_generation_of_another_account_is_not_found(stack):
    response = httpx.get(
        f"{stack.base}/v1/generation",
        params={"id": "gen-does-not-exist"},
        headers={"authorization": f"Bearer {stack.api_key}"},
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "generation_not_found"


# A tool's result in several scripts; the fake quotes it in its reply, so the reply carries it.
NON_ASCII = "café 東京 — naïve ✓"
TOOL_TURN = [
    {"role": "user", "content": "Look it up."},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": NON_ASCII},
]


def test_text_outside_ascii_streams_to_the_sdk_as_the_answer_carries_it(stack):
    # The relay writes each chunk's JSON with msgspec (text as UTF-8, not \u escapes)
    client = stack.openai()
    whole = client.chat.completions.create(model="openai/gpt-4o-mini", messages=TOOL_TURN)
    stream = client.chat.completions.create(model="openai/gpt-4o-mini", messages=TOOL_TURN, stream=True)
    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)

    assert NON_ASCII.split(" ", 1)[0] in streamed and "東京" in streamed and "✓" in streamed
    assert streamed == whole.choices[0].message.content
