"""The fake upstream speaks OpenAI's Responses API as the official SDK expects it.

Raw bodies and events are validated against the SDK's own pydantic models (strictly, where
the SDK itself would only construct them), and the SDK's stream accumulator must rebuild the
same response the non-stream endpoint returns.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pydantic
import pytest
from openai.types.responses import Response, ResponseStreamEvent

from devstack.fake_upstream import FakeUpstreamConfig, FakeUpstreamServer, count_tokens

OPENAI_MODEL = "gpt-4o-mini"
REASONING_MODEL = "o4-mini"
STREAM_EVENT: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(ResponseStreamEvent)
ENCRYPTED: Any = "reasoning.encrypted_content"


# The module's fake upstream (tests/integration/conftest.py: fake_server).
FAKE_CONFIG = FakeUpstreamConfig(openai_cache_min_tokens=128)


def post(fake: FakeUpstreamServer, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{fake.openai_base_url}/responses", json=body, headers={"authorization": "Bearer k"})


def stream_events(fake: FakeUpstreamServer, body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) of a raw streamed request."""
    events: list[tuple[str, dict[str, Any]]] = []
    name = ""
    url, headers = f"{fake.openai_base_url}/responses", {"authorization": "Bearer k"}
    with httpx.stream("POST", url, json={**body, "stream": True}, headers=headers) as response:
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((name, json.loads(line.removeprefix("data: "))))
    return events


def test_response_is_complete_and_bills_like_the_same_chat(fake: FakeUpstreamServer, oai: openai.OpenAI) -> None:
    # Given instructions and a question, asked through Responses and through Chat Completions
    instructions, question = "Be brief.", "Summarise our spend for October."
    response = oai.responses.create(model=OPENAI_MODEL, instructions=instructions, input=question)
    chat = oai.chat.completions.create(
        model=OPENAI_MODEL,
        messages=[{"role": "system", "content": instructions}, {"role": "user", "content": question}],
    )

    # Then the response is complete, with one assistant message holding the text
    assert response.id.startswith("resp_") and response.object == "response" and response.status == "completed"
    (message,) = response.output
    assert message.type == "message" and message.role == "assistant" and message.status == "completed"
    assert message.content[0].type == "output_text" and message.content[0].text == response.output_text
    # And its usage counts the prompt exactly as Chat does, and the text it returned
    usage = response.usage
    assert usage is not None and chat.usage is not None
    assert usage.input_tokens == chat.usage.prompt_tokens
    assert usage.output_tokens == count_tokens(response.output_text)
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    assert usage.input_tokens_details.cached_tokens == 0 and usage.output_tokens_details.reasoning_tokens == 0
    # And the wire body passes the SDK model's strict validation; the same request gets the same text
    raw = post(fake, {"model": OPENAI_MODEL, "instructions": instructions, "input": question}).json()
    assert Response.model_validate(raw).output_text == response.output_text


def test_stream_events_come_in_the_real_order_numbered_from_zero(fake: FakeUpstreamServer) -> None:
    # Given a streamed request cut by max_output_tokens
    events = stream_events(fake, {"model": OPENAI_MODEL, "input": "Write a long essay", "max_output_tokens": 16})

    # Then the events follow OpenAI's order, each named like its type and valid for the SDK
    names = [name for name, _ in events]
    assert names == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * 16,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.incomplete",
    ]
    assert [data["sequence_number"] for _, data in events] == list(range(len(events)))
    assert all(data["type"] == name for name, data in events)
    for _, data in events:
        STREAM_EVENT.validate_python(data)
    # And every delta points at the announced item; the last event reports why it stopped
    item_id = events[2][1]["item"]["id"]
    assert {data["item_id"] for _, data in events[3:-2]} == {item_id}
    final = events[-1][1]["response"]
    assert final["status"] == "incomplete" and final["incomplete_details"] == {"reason": "max_output_tokens"}
    assert final["output"][0]["status"] == "incomplete" and final["usage"]["output_tokens"] == 16
    assert events[0][1]["response"]["status"] == "in_progress" and events[0][1]["response"]["usage"] is None


def test_sdk_stream_rebuilds_the_non_stream_response(oai: openai.OpenAI) -> None:
    # Given the same request, streamed with the SDK helper and sent plainly
    with oai.responses.stream(model=OPENAI_MODEL, input="Stream this, please") as stream:
        deltas = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    plain = oai.responses.create(model=OPENAI_MODEL, input="Stream this, please")

    # Then the accumulated response has the same text and usage, one delta per output token
    assert final.output_text == "".join(deltas) == plain.output_text
    assert final.usage == plain.usage and final.usage is not None
    assert final.usage.output_tokens == len(deltas)


def test_reasoning_model_starts_with_a_summarised_encrypted_reasoning_item(oai: openai.OpenAI) -> None:
    # Given a reasoning model asked for a summary and the encrypted reasoning
    request: Any = {
        "model": REASONING_MODEL,
        "input": "Plan the quarterly budget",
        "reasoning": {"effort": "low", "summary": "auto"},
        "include": [ENCRYPTED],
    }

    # When it is streamed with the SDK and sent plainly
    with oai.responses.stream(**request) as stream:
        events = list(stream)
        final = stream.get_final_response()
    plain = oai.responses.create(**request)

    # Then the reasoning item comes first, its summary streamed before the message starts
    kinds = [event.type for event in events]
    assert kinds[2:7] == [
        "response.output_item.added",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.delta",
    ]
    summary_deltas = [e.delta for e in events if e.type == "response.reasoning_summary_text.delta"]
    reasoning, message = final.output
    assert reasoning.type == "reasoning" and message.type == "message"
    assert reasoning.summary[0].text == "".join(summary_deltas)
    assert isinstance(reasoning.encrypted_content, str) and reasoning.encrypted_content
    # And hidden reasoning is billed inside output tokens, never streamed
    assert final.usage is not None
    hidden = final.usage.output_tokens_details.reasoning_tokens
    assert 8 <= hidden <= 64 and final.usage.output_tokens == hidden + count_tokens(final.output_text)
    # And the plain request decides the same reasoning
    assert plain.output[0].type == "reasoning" and plain.output[0].encrypted_content == reasoning.encrypted_content
    assert plain.usage == final.usage


def test_reasoning_without_summary_or_include_is_bare(oai: openai.OpenAI) -> None:
    # When a reasoning model is asked for neither a summary nor the encrypted content
    response = oai.responses.create(model=REASONING_MODEL, input="Plan the quarterly budget")

    # Then its reasoning item has an empty summary and no encrypted content
    reasoning = response.output[0]
    assert reasoning.type == "reasoning" and reasoning.summary == [] and reasoning.encrypted_content is None
    assert response.reasoning is not None and response.reasoning.effort == "medium"


def test_encrypted_reasoning_goes_back_unaltered_or_is_refused(oai: openai.OpenAI) -> None:
    # Given a first turn whose output, reasoning included, is sent back as input (store=false style)
    question: Any = {"role": "user", "content": "Plan the quarterly budget"}
    first = oai.responses.create(model=REASONING_MODEL, input=[question], include=[ENCRYPTED], store=False)
    history: Any = [question, *[item.model_dump(exclude_none=True) for item in first.output]]
    follow_up: Any = {"role": "user", "content": "And the next quarter?"}

    # When the conversation continues, then the reasoning is accepted and billed as input
    second = oai.responses.create(model=REASONING_MODEL, input=[*history, follow_up], include=[ENCRYPTED])
    assert second.status == "completed" and second.usage and first.usage
    assert second.usage.input_tokens > first.usage.input_tokens

    # And an altered encrypted content is refused
    history[1]["encrypted_content"] = "x" + history[1]["encrypted_content"][1:]
    with pytest.raises(openai.BadRequestError) as error:
        oai.responses.create(model=REASONING_MODEL, input=[*history, follow_up])
    assert error.value.code == "invalid_encrypted_content"


def test_max_output_tokens_makes_a_reasoning_response_incomplete(oai: openai.OpenAI) -> None:
    # Given a reasoning model limited to the minimum of 16 output tokens
    response = oai.responses.create(model=REASONING_MODEL, input="Write a long essay", max_output_tokens=16)

    # Then reasoning is spent first, the rest is cut, and the response says why
    assert response.status == "incomplete"
    assert response.incomplete_details is not None and response.incomplete_details.reason == "max_output_tokens"
    assert response.usage is not None and response.usage.output_tokens == 16
    reasoning = response.usage.output_tokens_details.reasoning_tokens
    assert response.output[0].type == "reasoning"
    assert count_tokens(response.output_text) == 16 - reasoning


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        (
            {"model": OPENAI_MODEL, "input": "hi", "previous_response_id": "resp_1"},
            "previous_response_id",
            "previous_response_not_found",
        ),
        (
            {"model": OPENAI_MODEL, "input": "hi", "max_output_tokens": 5},
            "max_output_tokens",
            "integer_below_min_value",
        ),
        (
            {"model": OPENAI_MODEL, "input": "hi", "reasoning": {"effort": "high"}},
            "reasoning.effort",
            "unsupported_parameter",
        ),
        ({"input": "hi"}, "model", "missing_required_parameter"),
        (
            {"model": OPENAI_MODEL, "input": [{"type": "function_call_output", "call_id": "c1", "output": "x"}]},
            "input",
            None,
        ),
    ],
)
def test_invalid_requests_are_refused_in_openais_envelope(
    fake: FakeUpstreamServer, body: dict[str, Any], param: str, code: str | None
) -> None:
    # When an invalid request is sent, then it is a 400 naming the parameter, in OpenAI's envelope
    response = post(fake, body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["type"] == "invalid_request_error"
    assert (error["param"], error["code"]) == (param, code)


def test_hosted_tools_and_store_false_are_accepted(oai: openai.OpenAI) -> None:
    # Given hosted tools the fake cannot run, next to a function tool, without storage
    tools: Any = [
        {"type": "web_search"},
        {"type": "file_search", "vector_store_ids": ["vs_1"]},
        {"type": "function", "name": "lookup", "parameters": {"type": "object", "properties": {}}, "strict": False},
    ]

    # When the prompt names none of them, then the model answers text and echoes the request
    response = oai.responses.create(model=OPENAI_MODEL, input="hello", tools=tools, store=False)
    assert response.status == "completed" and response.output_text
    assert response.to_dict()["store"] is False and [tool.type for tool in response.tools] == [
        "web_search",
        "file_search",
        "function",
    ]


def test_requests_are_logged_with_the_usage_they_reported(fake: FakeUpstreamServer, oai: openai.OpenAI) -> None:
    # Given one plain and one streamed response
    plain = oai.responses.create(model=OPENAI_MODEL, input="log me")
    with oai.responses.stream(model=REASONING_MODEL, input="log me too") as stream:
        streamed = stream.get_final_response()

    # Then each log entry has the response id and exactly the usage the client saw
    first, second = fake.requests(path="/v1/responses")
    for record, response in ((first, plain), (second, streamed)):
        assert response.usage is not None
        assert record["id"] == response.id and record["status"] == 200 and record["usage_reported"] is True
        assert record["usage"] == response.usage.model_dump(exclude_none=True)
    assert second["stream"] is True and second["model"] == REASONING_MODEL


def test_input_tokens_endpoint_counts_what_a_request_bills(oai: openai.OpenAI) -> None:
    # Given a request with instructions, tools and a conversation
    tools: Any = [{"type": "function", "name": "lookup", "parameters": {"type": "object"}, "strict": False}]
    request: Any = {"model": OPENAI_MODEL, "instructions": "Be brief.", "tools": tools, "input": "What is new?"}

    # When its input is counted, then the count equals the input tokens the response bills
    counted = oai.responses.input_tokens.count(**request)
    billed = oai.responses.create(**request).usage
    assert counted.object == "response.input_tokens"
    assert billed is not None and counted.input_tokens == billed.input_tokens


# --- Faults and context windows ---------------------------------------------------------------------


def test_status_and_timeout_faults_apply_to_responses(fake: FakeUpstreamServer, oai: openai.OpenAI) -> None:
    # Given a 429 for the Responses path only, then a stall for any path
    fake.add_faults({"kind": "status", "status": 429, "retry_after": 1}, match={"path": "/v1/responses"})

    # When a chat completion comes first, then it is not affected, while the response gets the 429
    assert oai.chat.completions.create(model=OPENAI_MODEL, messages=[{"role": "user", "content": "x"}]).choices
    with pytest.raises(openai.RateLimitError) as limited:
        oai.responses.create(model=OPENAI_MODEL, input="x")
    assert limited.value.code == "rate_limit_exceeded" and limited.value.response.headers["retry-after"] == "1"

    # And a timeout fault makes the client time out
    fake.add_faults({"kind": "timeout", "seconds": 5})
    with pytest.raises(openai.APITimeoutError):
        oai.with_options(timeout=0.3).responses.create(model=OPENAI_MODEL, input="x")


def test_cut_fault_drops_a_response_stream_after_n_tokens(fake: FakeUpstreamServer) -> None:
    # Given a fault cutting the next stream after 3 output tokens
    fake.add_faults({"kind": "cut", "after_tokens": 3})

    # When the stream is read, then the connection breaks after 3 text deltas, before any final event
    with pytest.raises(httpx.RemoteProtocolError):
        stream_events(fake, {"model": OPENAI_MODEL, "input": "cut me"})
    record = fake.requests()[0]
    assert record["usage"]["output_tokens"] == 3 and record["usage_reported"] is False


def test_malformed_fault_sends_an_unparseable_response(fake: FakeUpstreamServer) -> None:
    # Given a malformed fault, when a response is requested, then its 200 body does not parse
    fake.add_faults({"kind": "malformed"})
    response = post(fake, {"model": OPENAI_MODEL, "input": "x"})
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        response.json()


def test_context_overflow_is_a_400_or_a_failed_stream(fake: FakeUpstreamServer, oai: openai.OpenAI) -> None:
    # Given two requests the fake treats as too long for the model's window
    fake.add_faults({"kind": "context_length"}, {"kind": "context_length"})

    # When sent plainly, then it is OpenAI's 400 context_length_exceeded on the input
    with pytest.raises(openai.BadRequestError) as error:
        oai.responses.create(model=OPENAI_MODEL, input="hello")
    assert (error.value.code, error.value.param, error.value.type) == (
        "context_length_exceeded",
        "input",
        "invalid_request_error",
    )

    # When streamed, then the stream opens and fails with the same code, and nothing is billed
    events = list(oai.responses.create(model=OPENAI_MODEL, input="hello", stream=True))
    assert [event.type for event in events] == ["response.created", "response.in_progress", "response.failed"]
    failed = events[-1]
    assert failed.type == "response.failed" and failed.response.status == "failed"
    assert failed.response.error is not None and failed.response.error.code == "context_length_exceeded"
    assert [record["usage"] for record in fake.requests()] == [None, None]
