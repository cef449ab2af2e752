"""Anthropic Messages beyond plain text: tool use, signed thinking across turns, structured
output, token counting and the real error shapes (529 overloaded, prompt too long).

Everything goes through the official SDK, whose stream accumulator and ``messages.parse`` must
rebuild what the non-stream endpoint returns.
"""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx
import jsonschema
import pydantic
import pytest

from devstack.fake_upstream import FakeUpstreamConfig, FakeUpstreamServer, count_tokens
from tests.integration.conftest import user

CLAUDE = "claude-haiku-4-5"
THINKING: Any = {"type": "enabled", "budget_tokens": 1024}
WEATHER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "units": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 3},
        "stations": {"type": "array", "items": {"type": "integer"}, "minItems": 2},
    },
    "required": ["city", "units", "days", "stations"],
}
TOOLS: Any = [
    {"name": "get_weather", "description": "Weather forecast", "input_schema": WEATHER_SCHEMA},
    {
        "name": "get_time",
        "input_schema": {"type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]},
    },
]


# The module's fake upstream (tests/integration/conftest.py: fake_server).
FAKE_CONFIG = FakeUpstreamConfig(anthropic_cache_min_tokens=0)


def raw_events(fake: FakeUpstreamServer, body: dict[str, Any]) -> list[dict[str, Any]]:
    url, headers = f"{fake.base_url}/v1/messages", {"x-api-key": "k"}
    with httpx.stream("POST", url, json={**body, "stream": True}, headers=headers) as response:
        return [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]


def tool_round(claude: anthropic.Anthropic, prompt: str, **options: Any) -> tuple[list[Any], Any]:
    """A first turn that calls a tool: the conversation with the assistant turn as sent back, and the tool result."""
    first = claude.messages.create(model=CLAUDE, max_tokens=2000, messages=user(prompt), tools=TOOLS, **options)
    content = [block.model_dump(exclude_none=True) for block in first.content]
    call_id = next(block["id"] for block in content if block["type"] == "tool_use")
    result = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call_id, "content": "21 degrees"}]}
    return [*user(prompt), {"role": "assistant", "content": content}], result


# --- Tool use ---------------------------------------------------------------------------------------


def test_the_named_tool_is_called_with_a_valid_tool_use_block(claude: anthropic.Anthropic) -> None:
    # When the user names a tool
    message = claude.messages.create(model=CLAUDE, max_tokens=500, messages=user("Use get_weather."), tools=TOOLS)

    # Then the reply is one tool_use block whose input validates against the tool's schema
    (block,) = message.content
    assert block.type == "tool_use" and block.name == "get_weather" and block.id.startswith("toolu_")
    jsonschema.validate(block.input, WEATHER_SCHEMA)
    assert message.stop_reason == "tool_use"
    assert message.usage.output_tokens == count_tokens(json.dumps(block.input))


def test_tools_named_only_in_an_agents_context_tags_are_not_called(claude: anthropic.Anthropic) -> None:
    # Given a user turn whose agent context (Claude Code's system reminders) names a tool, but whose
    # request does not
    reminder = "<system-reminder>\nUse get_weather whenever the weather comes up.\n</system-reminder>"
    turn = [{"role": "user", "content": [{"type": "text", "text": reminder}, {"type": "text", "text": "Say hi."}]}]

    message = claude.messages.create(model=CLAUDE, max_tokens=500, messages=turn, tools=TOOLS)

    # Then the model answers, as a real one would, instead of calling the tool
    assert message.stop_reason == "end_turn" and [block.type for block in message.content] == ["text"]
    # And naming it in the request itself still calls it
    turn[0]["content"][1]["text"] = "Use get_weather."
    called = claude.messages.create(model=CLAUDE, max_tokens=500, messages=turn, tools=TOOLS)
    assert called.stop_reason == "tool_use"


def test_tool_use_streams_as_input_json_deltas(fake: FakeUpstreamServer, claude: anthropic.Anthropic) -> None:
    # Given the same tool call, streamed raw, through the SDK helper and sent plainly
    body = {"model": CLAUDE, "max_tokens": 500, "messages": user("Use get_weather."), "tools": TOOLS}
    events = raw_events(fake, body)
    with claude.messages.stream(**body) as stream:
        final = stream.get_final_message()
    plain = claude.messages.create(**body)

    # Then the block opens with an empty input, then streams its JSON, the first fragment empty
    start = events[1]
    assert start["type"] == "content_block_start"
    assert start["content_block"] == {
        "type": "tool_use",
        "id": start["content_block"]["id"],
        "name": "get_weather",
        "input": {},
    }
    (plain_block,), (final_block,) = plain.content, final.content
    assert plain_block.type == final_block.type == "tool_use"
    deltas = [e["delta"] for e in events if e["type"] == "content_block_delta"]
    assert {d["type"] for d in deltas} == {"input_json_delta"} and deltas[0]["partial_json"] == ""
    assert json.loads("".join(d["partial_json"] for d in deltas)) == plain_block.input
    assert events[-2]["delta"]["stop_reason"] == "tool_use"
    # And the SDK accumulates the same block and usage
    assert final_block.input == plain_block.input
    assert final.usage.output_tokens == plain.usage.output_tokens == len(deltas) - 1


@pytest.mark.parametrize(
    ("prompt", "choice", "names"),
    [
        ("hello", {"type": "any"}, ["get_weather"]),
        ("hello", {"type": "tool", "name": "get_time"}, ["get_time"]),
        ("get_weather please", {"type": "none"}, []),
        ("get_time then get_weather", {"type": "auto"}, ["get_time", "get_weather"]),
        ("get_time then get_weather", {"type": "auto", "disable_parallel_tool_use": True}, ["get_time"]),
    ],
)
def test_tool_choice_decides_which_tools_are_called(
    claude: anthropic.Anthropic, prompt: str, choice: Any, names: list[str]
) -> None:
    # When the prompt and tool_choice are sent, then exactly these tools are called, in this order
    message = claude.messages.create(
        model=CLAUDE, max_tokens=500, messages=user(prompt), tools=TOOLS, tool_choice=choice
    )
    assert [block.name for block in message.content if block.type == "tool_use"] == names
    assert message.stop_reason == ("tool_use" if names else "end_turn")


def test_a_round_trip_with_thinking_sends_the_signed_thinking_back(claude: anthropic.Anthropic) -> None:
    # Given a first turn with thinking that calls a tool
    history, result = tool_round(claude, "Use get_weather.", thinking=THINKING)
    assert [block["type"] for block in history[1]["content"]] == ["thinking", "tool_use"]

    # When the thinking block goes back untouched with the tool's result
    with claude.messages.stream(
        model=CLAUDE, max_tokens=2000, thinking=THINKING, messages=[*history, result], tools=TOOLS
    ) as stream:
        events = [event.type for event in stream]
        answer = stream.get_final_message()

    # Then the model answers text quoting the result, after a new signed thinking block
    new_thinking, text = answer.content
    assert text.type == "text" and text.text == "The get_weather tool returned: 21 degrees"
    assert new_thinking.type == "thinking" and new_thinking.signature and answer.stop_reason == "end_turn"
    # And the thinking block's signature arrived just before it stopped
    assert events[events.index("content_block_stop") - 1] == "signature"


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (lambda content: content[1:], "Expected `thinking` or `redacted_thinking`, but found `tool_use`"),
        (
            lambda content: [{**content[0], "signature": "c2lnbmF0dXJl"}, *content[1:]],
            "Invalid `signature` in `thinking` block",
        ),
        (
            lambda content: [{**content[0], "thinking": "edited"}, *content[1:]],
            "Invalid `signature` in `thinking` block",
        ),
    ],
)
def test_thinking_history_must_come_back_intact(claude: anthropic.Anthropic, change: Any, fragment: str) -> None:
    # Given a thinking turn that called a tool, sent back dropped, forged or edited
    history, result = tool_round(claude, "Use get_weather.", thinking=THINKING)
    history[1]["content"] = change(history[1]["content"])

    # When the conversation continues, then it is refused as the real API refuses it
    with pytest.raises(anthropic.BadRequestError) as error:
        claude.messages.create(
            model=CLAUDE, max_tokens=2000, thinking=THINKING, messages=[*history, result], tools=TOOLS
        )
    assert fragment in str(error.value.api_message) and error.value.type == "invalid_request_error"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"tools": TOOLS, "tool_choice": {"type": "tool", "name": "nope"}},
            "tool_choice.name: Tool 'nope' not found in tools",
        ),
        ({"tool_choice": {"type": "auto"}}, "tool_choice may only be specified while providing tools."),
    ],
)
def test_a_tool_choice_without_its_tool_is_refused(claude: anthropic.Anthropic, options: Any, message: str) -> None:
    # When tool_choice names a tool that is not offered, or comes without tools, then it is a 400
    with pytest.raises(anthropic.BadRequestError) as error:
        claude.messages.create(model=CLAUDE, max_tokens=50, messages=user("hi"), **options)
    assert error.value.api_message == message


def test_forcing_a_tool_with_thinking_is_refused(claude: anthropic.Anthropic) -> None:
    # When thinking is combined with a tool_choice that forces a call, then it is a 400
    with pytest.raises(anthropic.BadRequestError) as error:
        claude.messages.create(
            model=CLAUDE,
            max_tokens=2000,
            thinking=THINKING,
            messages=user("hi"),
            tools=TOOLS,
            tool_choice={"type": "any"},
        )
    assert error.value.api_message == "Thinking may not be enabled when tool_choice forces tool use."


# --- Structured output and token counting ------------------------------------------------------------


class Forecast(pydantic.BaseModel):
    city: str
    temperatures: list[float]
    summary: str | None


def test_parse_follows_output_config_format(fake: FakeUpstreamServer, claude: anthropic.Anthropic) -> None:
    # When a message is parsed into a model, plainly and through the stream helper
    parsed = claude.messages.parse(model=CLAUDE, max_tokens=500, messages=user("Forecast"), output_format=Forecast)
    with claude.messages.stream(
        model=CLAUDE, max_tokens=500, messages=user("Forecast"), output_format=Forecast
    ) as stream:
        streamed = stream.get_final_message()

    # Then the text is JSON for the schema the SDK sent as output_config.format
    assert fake.requests()[0]["body"]["output_config"]["format"]["type"] == "json_schema"
    assert isinstance(parsed.parsed_output, Forecast) and parsed.parsed_output.temperatures
    assert streamed.parsed_output == parsed.parsed_output and parsed.stop_reason == "end_turn"


def test_count_tokens_counts_tools_system_history_and_format_as_billed(claude: anthropic.Anthropic) -> None:
    # Given a request with tools, a system prompt, a tool round and an output format
    history, result = tool_round(claude, "Use get_weather.")
    request: Any = {
        "model": CLAUDE,
        "system": "You are a forecaster.",
        "messages": [*history, result],
        "output_config": {"format": {"type": "json_schema", "schema": Forecast.model_json_schema()}},
    }

    # When it is counted with and without the tools
    counted = claude.messages.count_tokens(tools=TOOLS, **request).input_tokens
    without_tools = claude.messages.count_tokens(**request).input_tokens

    # Then the count is exactly what the request bills, and each tool costs its definition
    usage = claude.messages.create(max_tokens=500, tools=TOOLS, **request).usage
    assert counted == usage.input_tokens + (usage.cache_read_input_tokens or 0) + (
        usage.cache_creation_input_tokens or 0
    )
    assert counted - without_tools == sum(count_tokens(json.dumps(tool)) for tool in TOOLS)


# --- Error shapes -------------------------------------------------------------------------------------


def test_a_529_fault_is_anthropics_overloaded_error(fake: FakeUpstreamServer, claude: anthropic.Anthropic) -> None:
    # Given a 529 fault, when a message is requested, then the SDK raises its OverloadedError
    fake.add_faults({"kind": "status", "status": 529})
    with pytest.raises(anthropic.OverloadedError) as error:
        claude.messages.create(model=CLAUDE, max_tokens=5, messages=user("x"))

    # With Anthropic's exact envelope and request id
    assert error.value.status_code == 529 and isinstance(error.value, anthropic.InternalServerError)
    body: Any = error.value.body
    assert body["error"] == {"type": "overloaded_error", "message": "Overloaded"}
    assert body["type"] == "error" and body["request_id"] == error.value.request_id


def test_a_prompt_over_the_window_is_too_long(claude: anthropic.Anthropic) -> None:
    # Given a prompt over the 200k-token window, which count_tokens still measures
    messages = user("word " * 200_000)
    size = claude.messages.count_tokens(model=CLAUDE, messages=messages).input_tokens

    # When it is sent, then it is refused with the real message
    with pytest.raises(anthropic.BadRequestError) as error:
        claude.messages.create(model=CLAUDE, max_tokens=5, messages=messages)
    assert error.value.api_message == f"prompt is too long: {size} tokens > 200000 maximum"
    assert error.value.type == "invalid_request_error"

    # And the 1M-context beta lets it through
    long_context = {"anthropic-beta": "context-1m-2025-08-07"}
    assert claude.messages.create(model=CLAUDE, max_tokens=5, messages=messages, extra_headers=long_context).content


def test_context_length_fault_makes_a_short_prompt_too_long(
    fake: FakeUpstreamServer, claude: anthropic.Anthropic
) -> None:
    # Given a context_length fault, when a short message is sent, then it is one token over the window
    fake.add_faults({"kind": "context_length"}, match={"path": "/v1/messages"})
    with pytest.raises(anthropic.BadRequestError) as error:
        claude.messages.create(model=CLAUDE, max_tokens=5, messages=user("hi"))
    assert error.value.api_message == "prompt is too long: 200001 tokens > 200000 maximum"
    assert fake.requests()[0]["usage"] is None
