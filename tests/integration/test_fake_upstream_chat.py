"""Chat Completions beyond plain text: tool calls, ``n`` choices, structured output, context limits.

The model calls a tool when the last user message names it, quotes tool results once they come
back, and follows ``tool_choice``; the SDK's own helpers (``chat.completions.stream``,
``chat.completions.parse``, ``pydantic_function_tool``) must accept everything it sends.
"""

from __future__ import annotations

import enum
import json
from typing import Any, Literal

import httpx
import jsonschema
import openai
import pydantic
import pytest

from devstack.fake_upstream import FakeUpstreamServer, count_tokens
from tests.integration.conftest import user

MODEL = "gpt-4o-mini"
WEATHER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "minLength": 10},
        "units": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 3, "maximum": 10},
        "stations": {
            "type": "array",
            "minItems": 2,
            "items": {
                "type": "object",
                "properties": {"id": {"type": "integer"}, "tags": {"type": "array", "items": {"type": "string"}}},
                "required": ["id", "tags"],
                "additionalProperties": False,
            },
        },
        "verbose": {"type": "boolean"},
        "note": {"type": ["string", "null"]},
    },
    "required": ["city", "units", "days", "stations", "verbose", "note"],
    "additionalProperties": False,
}
TIME_SCHEMA: dict[str, Any] = {"type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]}
TOOLS: Any = [
    {"type": "function", "function": {"name": "get_weather", "parameters": WEATHER_SCHEMA}},
    {"type": "function", "function": {"name": "get_time", "parameters": TIME_SCHEMA}},
]


def chunks_of(fake: FakeUpstreamServer, body: dict[str, Any]) -> list[dict[str, Any]]:
    url, headers = f"{fake.openai_base_url}/chat/completions", {"authorization": "Bearer k"}
    with httpx.stream("POST", url, json={**body, "stream": True}, headers=headers) as response:
        lines = [line.removeprefix("data: ") for line in response.iter_lines() if line.startswith("data: {")]
    return [json.loads(line) for line in lines]


# --- Tool calls ---------------------------------------------------------------------------------------


def test_the_named_tool_is_called_with_arguments_valid_for_its_schema(oai: openai.OpenAI) -> None:
    # Given tools, and a user message naming one of them
    reply = oai.chat.completions.create(model=MODEL, messages=user("Please use get_weather for Paris"), tools=TOOLS)

    # Then the model calls it, with arguments that validate against the tool's schema
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls or []
    assert call.type == "function" and call.id.startswith("call_") and call.function.name == "get_weather"
    jsonschema.validate(json.loads(call.function.arguments), WEATHER_SCHEMA)
    # And the arguments are what it billed as output
    assert reply.usage is not None and reply.usage.completion_tokens == count_tokens(call.function.arguments)

    # When a name only appears inside a longer word, then no tool is called
    plain = oai.chat.completions.create(model=MODEL, messages=user("Read my_get_weather notes"), tools=TOOLS)
    assert plain.choices[0].finish_reason == "stop" and plain.choices[0].message.tool_calls is None


def test_tool_calls_stream_in_openais_delta_form(fake: FakeUpstreamServer, oai: openai.OpenAI) -> None:
    # Given the same tool call requested as a raw stream and plainly
    body = {"model": MODEL, "messages": user("get_weather now"), "tools": TOOLS}
    chunks = chunks_of(fake, body)
    plain = oai.chat.completions.create(model=MODEL, messages=user("get_weather now"), tools=TOOLS)

    # Then the first delta opens the call with its index, id, type and name, and empty arguments
    first = chunks[0]["choices"][0]["delta"]
    header = first["tool_calls"][0]
    assert first["role"] == "assistant" and first["content"] is None
    assert header["index"] == 0 and header["type"] == "function" and header["id"].startswith("call_")
    assert header["function"] == {"name": "get_weather", "arguments": ""}
    # And argument fragments follow, carrying only the index, then the finish reason
    fragments = [c["choices"][0]["delta"] for c in chunks[1:-1]]
    assert all(set(d) == {"tool_calls"} and set(d["tool_calls"][0]) == {"index", "function"} for d in fragments)
    arguments = "".join(d["tool_calls"][0]["function"]["arguments"] for d in fragments)
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    (call,) = plain.choices[0].message.tool_calls or []
    assert call.type == "function" and arguments == call.function.arguments


class GetWeather(pydantic.BaseModel):
    city: str
    units: Literal["celsius", "fahrenheit"]
    days: int = pydantic.Field(ge=3)


def test_sdk_stream_helper_parses_a_strict_tool_call(oai: openai.OpenAI) -> None:
    # Given a strict tool built from a Pydantic model
    tools = [openai.pydantic_function_tool(GetWeather, name="get_weather")]

    # When its call is streamed through the SDK helper
    with oai.chat.completions.stream(model=MODEL, messages=user("call get_weather"), tools=tools) as stream:
        done = [event for event in stream if event.type == "tool_calls.function.arguments.done"]
        final = stream.get_final_completion()

    # Then the helper accumulates the call and parses its arguments into the model
    (call,) = final.choices[0].message.tool_calls or []
    assert call.function.parsed_arguments == GetWeather(city="example", units="celsius", days=3)
    assert [event.name for event in done] == ["get_weather"]


def test_a_tool_round_trip_ends_with_text_quoting_the_result(oai: openai.OpenAI) -> None:
    # Given a call, and the result the client computed for it
    messages: Any = user("What is the weather? Use get_weather.")
    call_reply = oai.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
    assistant = call_reply.choices[0].message.model_dump(exclude_none=True)
    call_id = assistant["tool_calls"][0]["id"]
    messages += [assistant, {"role": "tool", "tool_call_id": call_id, "content": "21 degrees and sunny"}]

    # When the conversation goes back, then the model answers text quoting the result
    answer = oai.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS).choices[0]
    assert answer.finish_reason == "stop" and answer.message.tool_calls is None
    assert answer.message.content == "The get_weather tool returned: 21 degrees and sunny"


@pytest.mark.parametrize(
    ("prompt", "options", "names", "finish"),
    [
        ("hello", {"tool_choice": {"type": "function", "function": {"name": "get_time"}}}, ["get_time"], "stop"),
        ("hello", {"tool_choice": "required"}, ["get_weather"], "tool_calls"),
        ("use get_weather", {"tool_choice": "none"}, [], "stop"),
        ("get_time, then get_weather", {}, ["get_time", "get_weather"], "tool_calls"),
        ("get_time, then get_weather", {"parallel_tool_calls": False}, ["get_time"], "tool_calls"),
    ],
)
def test_tool_choice_and_parallel_calls_decide_which_tools_are_called(
    oai: openai.OpenAI, prompt: str, options: dict[str, Any], names: list[str], finish: str
) -> None:
    # When the prompt and the options are sent, then exactly these tools are called, in this order
    choice = oai.chat.completions.create(model=MODEL, messages=user(prompt), tools=TOOLS, **options).choices[0]
    assert [call.function.name for call in choice.message.tool_calls or []] == names
    # A forced function ends with "stop", as the real API does; a chosen or required one with "tool_calls"
    assert choice.finish_reason == finish


@pytest.mark.parametrize(
    ("messages", "param", "fragment"),
    [
        ([*user("x"), {"role": "tool", "tool_call_id": "call_1", "content": "y"}], "messages.[1].role", "preceeding"),
        (
            [
                *user("x"),
                {
                    "role": "assistant",
                    "tool_calls": [
                        {"id": "call_1", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}
                    ],
                },
                *user("and?"),
            ],
            "messages.[1].role",
            "call_1",
        ),
    ],
)
def test_tool_messages_must_answer_the_calls_before_them(
    fake: FakeUpstreamServer, messages: list[Any], param: str, fragment: str
) -> None:
    # When a tool result answers no call, or a call gets no result, then the request is refused
    body = {"model": MODEL, "messages": messages, "tools": TOOLS}
    response = httpx.post(f"{fake.openai_base_url}/chat/completions", json=body, headers={"authorization": "Bearer k"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == param and fragment in error["message"]


# --- Several choices, structured output, context window ----------------------------------------------


def test_n_choices_are_distinct_and_all_billed(fake: FakeUpstreamServer, oai: openai.OpenAI) -> None:
    # Given three choices asked plainly and streamed
    plain = oai.chat.completions.create(model=MODEL, messages=user("Tell me a story"), n=3)
    chunks = chunks_of(
        fake, {"model": MODEL, "messages": user("Tell me a story"), "n": 3, "stream_options": {"include_usage": True}}
    )

    # Then there are three different replies, each with its own index
    texts = [choice.message.content or "" for choice in plain.choices]
    assert [choice.index for choice in plain.choices] == [0, 1, 2] and len(set(texts)) == 3
    # And the usage counts every choice's tokens, as OpenAI does
    assert plain.usage is not None and plain.usage.completion_tokens == sum(count_tokens(t) for t in texts)
    # And the stream carries the same three replies, one choice per chunk, with the same usage
    streamed = ["", "", ""]
    for chunk in chunks[:-1]:
        (choice,) = chunk["choices"]
        streamed[choice["index"]] += choice["delta"].get("content") or ""
    assert streamed == texts and chunks[-1]["usage"] == plain.usage.model_dump(exclude_none=True)
    # And the SDK's stream accumulator rebuilds every choice
    with oai.chat.completions.stream(model=MODEL, messages=user("Tell me a story"), n=3) as stream:
        final = stream.get_final_completion()
    assert [choice.message.content for choice in final.choices] == texts


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Line(pydantic.BaseModel):
    sku: str
    quantity: int
    tags: list[str]
    color: Color


class Invoice(pydantic.BaseModel):
    number: int
    lines: list[Line]
    note: str | None
    paid: bool


def test_parse_returns_an_instance_of_the_requested_model(oai: openai.OpenAI) -> None:
    # When a completion is parsed into a nested model, plainly and through the stream helper
    parsed = oai.chat.completions.parse(model=MODEL, messages=user("Invoice please"), response_format=Invoice)
    with oai.chat.completions.stream(model=MODEL, messages=user("Invoice please"), response_format=Invoice) as stream:
        streamed = stream.get_final_completion()

    # Then the reply is JSON for the schema: required fields filled, enums at their first value
    invoice = parsed.choices[0].message.parsed
    assert isinstance(invoice, Invoice) and invoice.lines and invoice.lines[0].color is Color.RED
    assert streamed.choices[0].message.parsed == invoice
    assert parsed.usage is not None and parsed.usage.completion_tokens == count_tokens(
        parsed.choices[0].message.content or ""
    )


def test_a_prompt_longer_than_the_window_is_refused_with_context_length_exceeded(oai: openai.OpenAI) -> None:
    # Given a prompt just over gpt-4o-mini's 128k-token window
    messages = user("word " * 128_000)

    # When it is sent, then OpenAI's error names both sizes, the code and the parameter
    with pytest.raises(openai.BadRequestError) as error:
        oai.chat.completions.create(model=MODEL, messages=messages)
    assert (error.value.code, error.value.param, error.value.type) == (
        "context_length_exceeded",
        "messages",
        "invalid_request_error",
    )
    assert error.value.body["message"] == (  # type: ignore[index]
        "This model's maximum context length is 128000 tokens. However, your messages resulted in "
        "128006 tokens. Please reduce the length of the messages."
    )
    # And a window as large as gpt-4.1's takes it
    assert oai.chat.completions.create(model="gpt-4.1", messages=messages).choices


def test_context_length_fault_reports_the_chosen_prompt_size(fake: FakeUpstreamServer, oai: openai.OpenAI) -> None:
    # Given a context_length fault reporting a 130k-token prompt
    fake.add_faults({"kind": "context_length", "tokens": 130_000})

    # When a short request comes, then it is refused as if it were that long
    with pytest.raises(openai.BadRequestError) as error:
        oai.chat.completions.create(model=MODEL, messages=user("hi"))
    assert error.value.code == "context_length_exceeded"
    assert "maximum context length is 128000 tokens" in error.value.message and "130000 tokens" in error.value.message
    # And a fault reporting no tokens at all is not accepted
    refused = httpx.post(f"{fake.base_url}/_fake/faults", json={"faults": [{"kind": "context_length", "tokens": 0}]})
    assert refused.status_code == 400 and "tokens" in refused.json()["error"]
