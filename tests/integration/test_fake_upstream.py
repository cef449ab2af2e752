"""The fake upstream speaks the real OpenAI and Anthropic wire formats.

Each test drives a real HTTP server with the official SDKs (or raw httpx when the bytes on the
wire are the point) and checks what a gateway author would rely on: shapes the SDKs parse,
usage that adds up, prompt caching, faults and the request log.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import httpx2
import openai
import pytest

from devstack.fake_upstream import FakeUpstreamConfig, FakeUpstreamServer, count_tokens
from tests.integration.conftest import user

ROOT = Path(__file__).resolve().parents[2]
OPENAI_MODEL = "gpt-4o-mini"
REASONING_MODEL = "o4-mini"
CLAUDE = "claude-haiku-4-5"

# ~700 tokens of stable prefix: long enough for OpenAI caching with a 128-token minimum.
LONG_SYSTEM = "You are a meticulous billing assistant. " * 100
LONG_DOC = "The ledger records every request with its token counts and price. " * 40


# The module's fake upstream (tests/integration/conftest.py: fake_server).
FAKE_CONFIG = FakeUpstreamConfig(openai_cache_min_tokens=128, anthropic_cache_min_tokens=0)


def body_of(error: openai.APIStatusError | anthropic.APIStatusError) -> Any:
    """The parsed JSON error body an SDK attached to its exception."""
    return error.body


def sse_events(lines: Iterator[str]) -> list[tuple[str | None, str]]:
    """(event name, data) pairs of a server-sent event stream."""
    events: list[tuple[str | None, str]] = []
    name: str | None = None
    for line in lines:
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            events.append((name, line.removeprefix("data: ")))
            name = None
    return events


def wait_for(predicate: Any, timeout_s: float = 3.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.02)


# --- OpenAI chat completions -----------------------------------------------------------------------


def test_openai_non_stream_reply_is_deterministic_and_its_usage_adds_up(oai: openai.OpenAI) -> None:
    # Given a plain chat request
    messages = user("Summarise our spend for October, please.")

    # When it is sent twice
    first = oai.chat.completions.create(model=OPENAI_MODEL, messages=messages)
    second = oai.chat.completions.create(model=OPENAI_MODEL, messages=messages)

    # Then the SDK parses a complete chat.completion with usage consistent with the text
    choice = first.choices[0]
    assert first.id.startswith("chatcmpl-") and first.id != second.id
    assert first.object == "chat.completion" and first.system_fingerprint == "fp_fake"
    assert choice.finish_reason == "stop" and choice.message.role == "assistant"
    usage = first.usage
    assert usage is not None
    assert usage.completion_tokens == count_tokens(choice.message.content or "")
    assert 12 <= usage.completion_tokens <= 32  # hash-derived, capped by default_max_tokens
    # 3 tokens per message header + content, then 3 tokens to prime the reply
    assert usage.prompt_tokens == 3 + count_tokens(messages[0]["content"]) + 3
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.prompt_tokens_details and usage.prompt_tokens_details.cached_tokens == 0
    assert usage.completion_tokens_details and usage.completion_tokens_details.reasoning_tokens == 0
    # And the same request always gets the same answer
    assert second.choices[0].message.content == choice.message.content


def test_openai_stream_with_include_usage_ends_with_a_usage_chunk(oai: openai.OpenAI) -> None:
    # Given a streamed request asking for usage
    stream = oai.chat.completions.create(
        model=OPENAI_MODEL,
        messages=user("Stream me a reply"),
        stream=True,
        stream_options={"include_usage": True},
    )

    # When all chunks are read
    chunks = list(stream)

    # Then the first chunk opens the assistant turn, one chunk per token follows, and usage comes last
    assert chunks[0].choices[0].delta.role == "assistant" and chunks[0].choices[0].delta.content == ""
    contents = [c.choices[0].delta.content for c in chunks[1:] if c.choices and c.choices[0].delta.content]
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == ["stop"]
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert all(c.usage is None for c in chunks[:-1])
    assert last.usage.completion_tokens == len(contents)
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    assert len({c.id for c in chunks}) == 1


def test_openai_stream_without_include_usage_has_no_usage_anywhere(fake: FakeUpstreamServer) -> None:
    # Given a streamed request that does not ask for usage
    body = {"model": OPENAI_MODEL, "messages": user("no usage please"), "stream": True}

    # When the raw event stream is read
    with httpx.stream(
        "POST", f"{fake.openai_base_url}/chat/completions", json=body, headers={"authorization": "Bearer k"}
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response.iter_lines())

    # Then it ends with [DONE] and no chunk carries a usage key, like the real API
    assert events[-1] == (None, "[DONE]")
    chunks = [json.loads(data) for _, data in events[:-1]]
    assert all("usage" not in chunk for chunk in chunks)
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)


def test_openai_max_tokens_cuts_the_reply_with_finish_reason_length(oai: openai.OpenAI) -> None:
    # Given a request limited to 5 tokens
    # When it is answered
    reply = oai.chat.completions.create(model=OPENAI_MODEL, messages=user("Write a long essay"), max_tokens=5)

    # Then exactly 5 tokens come back and the reply says it was cut
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage is not None and reply.usage.completion_tokens == 5
    assert count_tokens(reply.choices[0].message.content or "") == 5


def test_ping_gets_pong(oai: openai.OpenAI, claude: anthropic.Anthropic) -> None:
    # Given the conventional health prompt, when both dialects answer it
    chat = oai.chat.completions.create(model=OPENAI_MODEL, messages=user("ping"))
    message = claude.messages.create(model=CLAUDE, max_tokens=16, messages=user("ping"))

    # Then both reply "pong" for exactly one output token
    assert chat.choices[0].message.content == "pong" and chat.usage and chat.usage.completion_tokens == 1
    assert message.content[0].type == "text" and message.content[0].text == "pong"
    assert message.usage.output_tokens == 1


def test_reasoning_model_counts_hidden_reasoning_inside_completion_tokens(oai: openai.OpenAI) -> None:
    # Given a reasoning model, streamed with usage
    chunks = list(
        oai.chat.completions.create(
            model=REASONING_MODEL,
            messages=user("Plan the quarterly budget"),
            stream=True,
            stream_options={"include_usage": True},
        )
    )

    # Then reasoning tokens are reported, never streamed, and included in completion_tokens
    usage = chunks[-1].usage
    assert usage is not None and usage.completion_tokens_details is not None
    reasoning = usage.completion_tokens_details.reasoning_tokens or 0
    visible = sum(1 for c in chunks if c.choices and c.choices[0].delta.content)
    assert 8 <= reasoning <= 64
    assert usage.completion_tokens == visible + reasoning


def test_reasoning_model_rejects_max_tokens_like_the_real_api(oai: openai.OpenAI) -> None:
    # Given an o-series request using the legacy max_tokens parameter
    # When it is sent, then it is refused with the real error, pointing at the parameter
    with pytest.raises(openai.BadRequestError) as error:
        oai.chat.completions.create(model=REASONING_MODEL, messages=user("hi"), max_tokens=10)
    assert body_of(error.value)["param"] == "max_tokens"
    assert body_of(error.value)["code"] == "unsupported_parameter"


def test_openai_caches_a_long_shared_prefix_in_128_token_steps(oai: openai.OpenAI) -> None:
    # Given a long system prompt already seen once
    question = "What did team A spend?"
    first = oai.chat.completions.create(
        model=OPENAI_MODEL,
        messages=[{"role": "system", "content": LONG_SYSTEM}, {"role": "user", "content": "Hello"}],
    )

    # When a new question reuses the same system prompt
    second = oai.chat.completions.create(
        model=OPENAI_MODEL,
        messages=[{"role": "system", "content": LONG_SYSTEM}, {"role": "user", "content": question}],
    )

    # Then the shared prefix, rounded down to 128 tokens, is reported as cached within prompt_tokens
    assert first.usage and first.usage.prompt_tokens_details
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    assert second.usage and second.usage.prompt_tokens_details
    shared = second.usage.prompt_tokens - count_tokens(question) - 3  # minus the reply primer
    cached = second.usage.prompt_tokens_details.cached_tokens
    assert cached == shared // 128 * 128 and cached >= 128
    assert second.usage.total_tokens == second.usage.prompt_tokens + second.usage.completion_tokens


def test_openai_short_prompts_are_never_cached(oai: openai.OpenAI) -> None:
    # Given a prompt shorter than the caching minimum, sent twice
    for _ in range(2):
        reply = oai.chat.completions.create(model=OPENAI_MODEL, messages=user("short and repeated"))

    # Then nothing is cached
    assert reply.usage and reply.usage.prompt_tokens_details
    assert reply.usage.prompt_tokens_details.cached_tokens == 0


def test_embeddings_are_deterministic_in_both_encodings(oai: openai.OpenAI, fake: FakeUpstreamServer) -> None:
    # Given two inputs, asked once through the SDK (base64 on the wire) and once as floats
    via_sdk = oai.embeddings.create(model="text-embedding-3-small", input=["alpha beta", "gamma"])
    raw = httpx.post(
        f"{fake.openai_base_url}/embeddings",
        json={"model": "text-embedding-3-small", "input": "alpha beta", "dimensions": 4},
        headers={"authorization": "Bearer k"},
    ).json()

    # Then vectors have the requested size, the same text gives the same vector, and tokens are counted
    assert [d.index for d in via_sdk.data] == [0, 1]
    assert len(via_sdk.data[0].embedding) == 8
    assert via_sdk.usage.prompt_tokens == via_sdk.usage.total_tokens == 3
    assert raw["object"] == "list" and len(raw["data"][0]["embedding"]) == 4
    assert raw["usage"] == {"prompt_tokens": 2, "total_tokens": 2}
    again = oai.embeddings.create(model="text-embedding-3-small", input="alpha beta", encoding_format="float")
    assert again.data[0].embedding == via_sdk.data[0].embedding


def test_models_are_listed_in_each_providers_format(oai: openai.OpenAI, claude: anthropic.Anthropic) -> None:
    # When both SDKs list models, then each gets its own format
    assert "gpt-4o-mini" in {m.id for m in oai.models.list()}
    assert any(m.id.startswith("claude-") for m in claude.models.list())


def test_openai_rejects_invalid_bodies_in_its_error_envelope(fake: FakeUpstreamServer) -> None:
    # Given a chat request with no messages
    response = httpx.post(
        f"{fake.openai_base_url}/chat/completions",
        json={"model": OPENAI_MODEL, "messages": []},
        headers={"authorization": "Bearer k"},
    )

    # Then it is a 400 with OpenAI's error envelope naming the parameter
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == "messages"
    assert set(error) == {"message", "type", "param", "code"}


# --- Anthropic messages ----------------------------------------------------------------------------


def test_anthropic_non_stream_reply_and_usage(claude: anthropic.Anthropic) -> None:
    # Given a plain Messages request
    text = "How much did we spend on Claude last week?"

    # When it is answered
    message = claude.messages.create(model=CLAUDE, max_tokens=100, messages=user(text))

    # Then the SDK gets a complete message whose usage matches its content
    assert message.id.startswith("msg_") and message.type == "message" and message.role == "assistant"
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    block = message.content[0]
    assert block.type == "text"
    assert message.usage.output_tokens == count_tokens(block.text)
    assert message.usage.input_tokens == 3 + count_tokens(text)
    assert message.usage.cache_creation_input_tokens == 0 and message.usage.cache_read_input_tokens == 0
    assert message.usage.service_tier == "standard"


def test_anthropic_max_tokens_stops_the_reply(claude: anthropic.Anthropic) -> None:
    # Given a tiny max_tokens, when the reply is generated, then it is cut there
    message = claude.messages.create(model=CLAUDE, max_tokens=4, messages=user("Tell me everything"))
    assert message.stop_reason == "max_tokens" and message.usage.output_tokens == 4


def test_anthropic_stream_final_message_matches_non_stream(claude: anthropic.Anthropic) -> None:
    # Given the same request, streamed with the SDK helper and sent plainly
    messages = user("Stream this, please")
    with claude.messages.stream(model=CLAUDE, max_tokens=100, messages=messages) as stream:
        deltas = [e.delta.text for e in stream if e.type == "content_block_delta" and e.delta.type == "text_delta"]
        final = stream.get_final_message()
    plain = claude.messages.create(model=CLAUDE, max_tokens=100, messages=messages)

    # Then the streamed message carries the same text and usage, with one delta per output token
    assert final.usage.output_tokens == len(deltas) == plain.usage.output_tokens
    assert final.usage.input_tokens == plain.usage.input_tokens
    assert final.content[0].type == "text" and final.content[0].text == "".join(deltas)
    assert final.stop_reason == "end_turn"


def test_anthropic_stream_follows_the_documented_event_sequence(fake: FakeUpstreamServer) -> None:
    # Given a raw streamed Messages request
    body = {"model": CLAUDE, "max_tokens": 6, "stream": True, "messages": user("raw events")}

    # When the SSE bytes are read
    with httpx.stream("POST", f"{fake.base_url}/v1/messages", json=body, headers={"x-api-key": "k"}) as response:
        events = sse_events(response.iter_lines())

    # Then events come in the documented order, each named like its data type
    names = [name for name, _ in events]
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        *["content_block_delta"] * 6,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert all(json.loads(data)["type"] == name for name, data in events)
    start = json.loads(events[0][1])["message"]
    assert start["content"] == [] and start["stop_reason"] is None and start["usage"]["output_tokens"] == 1
    delta = json.loads(events[-2][1])
    assert delta["delta"] == {"stop_reason": "max_tokens", "stop_sequence": None}
    assert delta["usage"]["output_tokens"] == 6 and delta["usage"]["input_tokens"] == start["usage"]["input_tokens"]


def test_anthropic_cache_writes_split_by_ttl_then_read_back(claude: anthropic.Anthropic) -> None:
    # Given tools and system cached for 1h, and a long document cached for 5m, then a short question
    tool: Any = {"name": "get_spend", "description": "Spend per team", "input_schema": {"type": "object"}}
    system: Any = [{"type": "text", "text": LONG_SYSTEM, "cache_control": {"type": "ephemeral", "ttl": "1h"}}]

    def ask(question: str, doc: str = LONG_DOC) -> Any:
        content: Any = [
            {"type": "text", "text": doc, "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": question},
        ]
        tools: Any = [{**tool, "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
        return claude.messages.create(
            model=CLAUDE,
            max_tokens=50,
            tools=tools,
            system=system,
            messages=[{"role": "user", "content": content}],
        ).usage

    one_hour = count_tokens(json.dumps(tool, sort_keys=True)) + 1 + count_tokens(LONG_SYSTEM)
    five_min = 3 + count_tokens(LONG_DOC)

    # When it is sent a first time, then each segment is written under its breakpoint's TTL
    first = ask("Question: what now?")
    assert first.cache_creation is not None
    assert first.cache_creation.ephemeral_1h_input_tokens == one_hour
    assert first.cache_creation.ephemeral_5m_input_tokens == five_min
    assert first.cache_creation_input_tokens == one_hour + five_min
    assert first.cache_read_input_tokens == 0 and first.input_tokens == count_tokens("Question: what now?")

    # When a different question follows, then the whole prefix is read and nothing is written
    second = ask("And the week before?")
    assert second.cache_read_input_tokens == one_hour + five_min
    assert second.cache_creation_input_tokens == 0 and second.input_tokens == count_tokens("And the week before?")

    # When the document changes, then only the 1h prefix is read and the new document is written
    third = ask("Question: what now?", doc="A different document entirely.")
    assert third.cache_read_input_tokens == one_hour
    assert third.cache_creation is not None
    assert third.cache_creation.ephemeral_5m_input_tokens == 3 + count_tokens("A different document entirely.")
    assert third.cache_creation.ephemeral_1h_input_tokens == 0


def test_anthropic_cache_is_per_model(claude: anthropic.Anthropic) -> None:
    # Given a cached system prompt for one model
    system: Any = [{"type": "text", "text": LONG_SYSTEM, "cache_control": {"type": "ephemeral"}}]
    claude.messages.create(model=CLAUDE, max_tokens=8, system=system, messages=user("hi"))

    # When another model gets the same prompt, then it must write its own cache
    other = claude.messages.create(model="claude-sonnet-4-6", max_tokens=8, system=system, messages=user("hi"))
    assert other.usage.cache_read_input_tokens == 0 and (other.usage.cache_creation_input_tokens or 0) > 0


def test_anthropic_real_minimum_skips_caching_short_prefixes() -> None:
    # Given a fake with the real 1024-token minimum for Anthropic caching
    with FakeUpstreamServer(FakeUpstreamConfig(anthropic_cache_min_tokens=1024)) as server:
        client = anthropic.Anthropic(base_url=server.base_url, api_key="k", max_retries=0)

        def cache_write(system_text: str) -> int:
            system: Any = [{"type": "text", "text": system_text, "cache_control": {"type": "ephemeral"}}]
            usage = client.messages.create(model=CLAUDE, max_tokens=8, system=system, messages=user("hi")).usage
            return usage.cache_creation_input_tokens or 0

        # When a ~700-token and a ~1400-token system prompt are marked for caching
        # Then only the one above the minimum is written
        assert cache_write(LONG_SYSTEM) == 0
        assert cache_write(LONG_SYSTEM * 2) == 1 + count_tokens(LONG_SYSTEM * 2)


def test_anthropic_enforces_breakpoint_rules(fake: FakeUpstreamServer) -> None:
    # Given a 1h breakpoint placed after a 5m one, and five breakpoints
    def block(ttl: str) -> dict[str, Any]:
        return {"type": "text", "text": "chunk", "cache_control": {"type": "ephemeral", "ttl": ttl}}

    def send(blocks: list[dict[str, Any]]) -> httpx.Response:
        body = {"model": CLAUDE, "max_tokens": 5, "messages": [{"role": "user", "content": blocks}]}
        return httpx.post(f"{fake.base_url}/v1/messages", json=body, headers={"x-api-key": "k"})

    # When they are sent, then both are refused as the real API does
    misordered, too_many = send([block("5m"), block("1h")]), send([block("1h")] * 5)
    assert misordered.status_code == too_many.status_code == 400
    assert "1h" in misordered.json()["error"]["message"]
    assert "maximum of 4" in too_many.json()["error"]["message"]


def test_anthropic_count_tokens_agrees_with_billed_input(claude: anthropic.Anthropic) -> None:
    # Given a prompt with a cache breakpoint
    system: Any = [{"type": "text", "text": LONG_SYSTEM, "cache_control": {"type": "ephemeral"}}]
    counted = claude.messages.count_tokens(model=CLAUDE, system=system, messages=user("hi"))

    # When it is sent, then input + cache writes + cache reads equal the counted tokens
    usage = claude.messages.create(model=CLAUDE, max_tokens=8, system=system, messages=user("hi")).usage
    total = usage.input_tokens + (usage.cache_creation_input_tokens or 0) + (usage.cache_read_input_tokens or 0)
    assert counted.input_tokens == total


def test_anthropic_thinking_comes_first_and_is_billed_as_output(claude: anthropic.Anthropic) -> None:
    # Given extended thinking enabled
    thinking: Any = {"type": "enabled", "budget_tokens": 1024}

    # When asked plainly and streamed
    message = claude.messages.create(
        model=CLAUDE,
        max_tokens=2000,
        thinking=thinking,
        messages=user("Think about costs"),
    )
    with claude.messages.stream(
        model=CLAUDE,
        max_tokens=2000,
        thinking=thinking,
        messages=user("Think about costs"),
    ) as stream:
        kinds = [e.delta.type for e in stream if e.type == "content_block_delta"]
        final = stream.get_final_message()

    # Then a signed thinking block precedes the text, and both count as output tokens
    think, text = message.content
    assert think.type == "thinking" and think.signature and text.type == "text"
    assert message.usage.output_tokens == count_tokens(think.thinking) + count_tokens(text.text)
    assert kinds.count("signature_delta") == 1
    assert kinds.count("thinking_delta") + kinds.count("text_delta") == final.usage.output_tokens
    assert kinds.index("signature_delta") < kinds.index("text_delta")
    assert final.content[0].type == "thinking" and final.content[0].signature == think.signature


def test_anthropic_rejects_invalid_requests_in_its_error_envelope(fake: FakeUpstreamServer) -> None:
    # Given a request without max_tokens and one with a too small thinking budget
    url, headers = f"{fake.base_url}/v1/messages", {"x-api-key": "k"}
    missing = httpx.post(url, json={"model": CLAUDE, "messages": user("hi")}, headers=headers)
    small = httpx.post(
        url,
        json={
            "model": CLAUDE,
            "max_tokens": 2000,
            "thinking": {"type": "enabled", "budget_tokens": 100},
            "messages": user("hi"),
        },
        headers=headers,
    )

    # Then both are 400 invalid_request_error in Anthropic's envelope
    for response, fragment in ((missing, "max_tokens"), (small, "budget_tokens")):
        assert response.status_code == 400
        body = response.json()
        assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
        assert fragment in body["error"]["message"]


# --- Auth ------------------------------------------------------------------------------------------


def test_missing_keys_are_refused_in_each_providers_format(fake: FakeUpstreamServer) -> None:
    # Given requests without any credentials
    chat = httpx.post(f"{fake.openai_base_url}/chat/completions", json={"model": OPENAI_MODEL, "messages": user("x")})
    message = httpx.post(f"{fake.base_url}/v1/messages", json={"model": CLAUDE, "max_tokens": 5, "messages": user("x")})

    # Then both are 401 in the provider's own envelope
    assert chat.status_code == 401 and chat.json()["error"]["type"] == "invalid_request_error"
    assert message.status_code == 401 and message.json()["error"]["type"] == "authentication_error"


def test_configured_key_must_match() -> None:
    # Given a fake that only accepts one key
    with FakeUpstreamServer(FakeUpstreamConfig(api_key="right")) as server:
        # When the wrong key is used, then both SDKs raise their authentication error
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=server.openai_base_url, api_key="wrong", max_retries=0).chat.completions.create(
                model=OPENAI_MODEL, messages=user("x")
            )
        with pytest.raises(anthropic.AuthenticationError):
            anthropic.Anthropic(base_url=server.base_url, api_key="wrong", max_retries=0).messages.create(
                model=CLAUDE, max_tokens=5, messages=user("x")
            )
        # And the right key works
        ok = openai.OpenAI(base_url=server.openai_base_url, api_key="right", max_retries=0)
        assert ok.chat.completions.create(model=OPENAI_MODEL, messages=user("ping")).choices[0].message.content


# --- Faults ----------------------------------------------------------------------------------------


def test_status_faults_answer_in_each_providers_format_in_fifo_order(
    fake: FakeUpstreamServer, oai: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    # Given a 429 with retry-after then a 500 for chat, and a 529 only for Anthropic messages
    fake.add_faults({"kind": "status", "status": 429, "retry_after": 2}, {"kind": "status", "status": 500})
    fake.add_faults({"kind": "status", "status": 529}, match={"path": "/v1/messages"})

    # When requests are made, then each gets its fault in order, and the next one succeeds
    with pytest.raises(openai.RateLimitError) as limited:
        oai.chat.completions.create(model=OPENAI_MODEL, messages=user("x"))
    assert limited.value.response.headers["retry-after"] == "2"
    assert body_of(limited.value)["code"] == "rate_limit_exceeded"
    with pytest.raises(openai.InternalServerError):
        oai.chat.completions.create(model=OPENAI_MODEL, messages=user("x"))
    assert oai.chat.completions.create(model=OPENAI_MODEL, messages=user("x")).choices
    with pytest.raises(anthropic.APIStatusError) as overloaded:
        claude.messages.create(model=CLAUDE, max_tokens=5, messages=user("x"))
    assert overloaded.value.status_code == 529
    assert body_of(overloaded.value)["error"]["type"] == "overloaded_error"


def test_timeout_fault_makes_the_client_time_out(fake: FakeUpstreamServer, oai: openai.OpenAI) -> None:
    # Given a fault that stalls the next request for 5 s
    fake.add_faults({"kind": "timeout", "seconds": 5})

    # When the client waits only 0.3 s, then it times out
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        oai.with_options(timeout=0.3).chat.completions.create(model=OPENAI_MODEL, messages=user("x"))
    assert time.monotonic() - started < 2

    # And the server notices the hang-up and keeps serving
    assert wait_for(lambda: fake.requests()[0]["client_disconnected"])
    assert oai.chat.completions.create(model=OPENAI_MODEL, messages=user("ping")).choices[0].message.content == "pong"


def test_cut_fault_drops_an_openai_stream_after_n_tokens(fake: FakeUpstreamServer) -> None:
    # Given a fault cutting the next stream after 3 tokens
    fake.add_faults({"kind": "cut", "after_tokens": 3})
    body = {
        "model": OPENAI_MODEL,
        "messages": user("cut me"),
        "stream": True,
        "stream_options": {"include_usage": True},
    }

    # When the stream is read, then the connection breaks after 3 content chunks, without [DONE]
    received: list[str] = []
    url, headers = f"{fake.openai_base_url}/chat/completions", {"authorization": "Bearer k"}
    with (
        pytest.raises(httpx.RemoteProtocolError),
        httpx.stream("POST", url, json=body, headers=headers) as response,
    ):
        received.extend(line for line in response.iter_lines() if line.startswith("data: "))
    chunks = [json.loads(line.removeprefix("data: ")) for line in received]
    assert len(chunks) == 4  # the role chunk, then 3 content chunks
    assert all(c["choices"][0]["delta"]["content"] for c in chunks[1:])
    assert all(c["usage"] is None for c in chunks)

    # And the log keeps the partial usage for the 3 tokens that went out
    record = fake.requests()[0]
    assert record["fault"]["kind"] == "cut" and record["usage"]["completion_tokens"] == 3
    assert record["usage_reported"] is False


def test_cut_fault_on_non_stream_closes_without_a_response(
    fake: FakeUpstreamServer, oai: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    # Given cut faults for one chat completion and one Anthropic stream
    fake.add_faults({"kind": "cut"}, match={"path": "/v1/chat/completions"})
    fake.add_faults({"kind": "cut", "after_tokens": 2}, match={"path": "/v1/messages"})

    # When the requests are made, then both SDKs report a broken connection
    with pytest.raises(openai.APIConnectionError):
        oai.chat.completions.create(model=OPENAI_MODEL, messages=user("x"))
    texts: list[str] = []
    # The SDK lets its HTTP client's error through when a stream breaks after it started.
    with (
        pytest.raises((anthropic.APIConnectionError, httpx2.RemoteProtocolError)),
        claude.messages.stream(model=CLAUDE, max_tokens=50, messages=user("x")) as stream,
    ):
        texts.extend(stream.text_stream)
    assert len(texts) == 2


def test_malformed_fault_sends_invalid_json(fake: FakeUpstreamServer, oai: openai.OpenAI) -> None:
    # Given a malformed fault, when a chat completion is requested, then the body does not parse
    fake.add_faults({"kind": "malformed"})
    response = httpx.post(
        f"{fake.openai_base_url}/chat/completions",
        json={"model": OPENAI_MODEL, "messages": user("x")},
        headers={"authorization": "Bearer k"},
    )
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        response.json()


def test_faults_only_hit_matching_requests_and_can_be_cleared(fake: FakeUpstreamServer, oai: openai.OpenAI) -> None:
    # Given a fault for another model, then a cleared fault
    fake.add_faults({"kind": "status", "status": 500}, match={"model": "gpt-4.1"})

    # When a different model is used, then it is served normally and the fault stays queued
    assert oai.chat.completions.create(model=OPENAI_MODEL, messages=user("x")).choices
    assert len(httpx.get(f"{fake.base_url}/_fake/faults").json()) == 1
    httpx.delete(f"{fake.base_url}/_fake/faults").raise_for_status()
    assert oai.chat.completions.create(model="gpt-4.1", messages=user("x")).choices


# --- Latency, disconnects and the request log -------------------------------------------------------


def test_latency_header_slows_one_stream(fake: FakeUpstreamServer, oai: openai.OpenAI) -> None:
    # Given a request asking for 40 ms between tokens
    started = time.monotonic()
    chunks = list(
        oai.chat.completions.create(
            model=OPENAI_MODEL,
            messages=user("slowly"),
            max_tokens=8,
            stream=True,
            extra_headers={"x-fake-latency-ms": "40"},
        )
    )
    slow = time.monotonic() - started

    # Then its 8 tokens take at least 7 gaps, while the same request without the header is quick
    started = time.monotonic()
    list(oai.chat.completions.create(model=OPENAI_MODEL, messages=user("slowly"), max_tokens=8, stream=True))
    assert len(chunks) == 10 and slow >= 0.28 > time.monotonic() - started


def test_client_hang_up_is_logged_with_partial_usage(fake: FakeUpstreamServer) -> None:
    # Given a slow stream that the client abandons after two content chunks
    body = {"model": OPENAI_MODEL, "messages": user("I will leave early"), "stream": True, "max_tokens": 30}
    headers = {"authorization": "Bearer k", "x-fake-latency-ms": "50"}
    received = 0
    with httpx.stream("POST", f"{fake.openai_base_url}/chat/completions", json=body, headers=headers) as response:
        for line in response.iter_lines():
            received += line.startswith("data: ")
            if received == 3:  # the role chunk and two content chunks
                break

    # Then the fake stops generating and logs what it had produced
    record = wait_for(lambda: next((r for r in fake.requests() if r["client_disconnected"]), None))
    assert record is not None
    assert 2 <= record["usage"]["completion_tokens"] < 30


def test_request_log_mirrors_what_the_client_saw(
    fake: FakeUpstreamServer, oai: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    # Given one OpenAI stream and one Anthropic message
    chunks = list(
        oai.chat.completions.create(
            model=OPENAI_MODEL, messages=user("log me"), stream=True, stream_options={"include_usage": True}
        )
    )
    message = claude.messages.create(model=CLAUDE, max_tokens=20, messages=user("log me too"))

    # When the log is read
    chat_record, message_record = fake.requests()

    # Then each entry has the response id, the body as sent, redacted credentials and the exact usage
    assert chat_record["id"] == chunks[0].id and chat_record["path"] == "/v1/chat/completions"
    assert chat_record["stream"] is True and chat_record["body"]["messages"] == user("log me")
    assert chat_record["headers"]["authorization"] == "***" and chat_record["status"] == 200
    reported = chunks[-1].usage
    assert reported is not None and chat_record["usage"] == reported.model_dump(exclude_none=True)
    assert message_record["id"] == message.id and message_record["model"] == CLAUDE
    assert message_record["usage"] == message.usage.model_dump(exclude_none=True)
    assert message_record["usage_reported"] is True and message_record["fault"] is None

    # And a reset empties it
    fake.reset()
    assert fake.requests() == []


def test_module_runs_as_a_command() -> None:
    # Given the command line entry point on a free port
    with FakeUpstreamServer() as probe:
        port = probe.port
    process = subprocess.Popen(
        [sys.executable, "-m", "devstack.fake_upstream", "--port", str(port), "--per-token-latency-ms", "1"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # When it is up, then it serves the control endpoints
        def healthy() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/_fake/health").status_code == 200
            except httpx.TransportError:
                return False

        assert wait_for(healthy, timeout_s=10)
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_log_keeps_the_latest_requests_and_the_count_keeps_them_all(
    fake: FakeUpstreamServer, oai: openai.OpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("devstack.fake_upstream.state.MAX_LOGGED_REQUESTS", 2)

    for _ in range(3):
        oai.chat.completions.create(model=OPENAI_MODEL, messages=user("hi"))
    oai.embeddings.create(model="text-embedding-3-small", input="hi")

    assert len(fake.requests()) == 2
    counted = httpx.get(f"{fake.base_url}/_fake/requests/count").json()
    assert counted == {"/v1/chat/completions": 3, "/v1/embeddings": 1}
    fake.reset()
    assert httpx.get(f"{fake.base_url}/_fake/requests/count").json() == {}
