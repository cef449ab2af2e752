"""OpenAI Chat Completions <-> Anthropic Messages translation.

Payload shapes follow the official SDKs' types; translated requests are checked against
``anthropic.types`` params and translated responses parse with ``openai.types.chat`` models.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from anthropic.types import (
    ImageBlockParam,
    Message,
    RawMessageStreamEvent,
    TextBlockParam,
    ToolParam,
    ToolResultBlockParam,
    ToolUseBlockParam,
)
from anthropic.types.message_create_params import (
    MessageCreateParamsNonStreaming,
    MessageCreateParamsStreaming,
)
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletion, ChatCompletionChunk, ChatCompletionMessageFunctionToolCall
from pydantic import TypeAdapter

from meterway.core.errors import InvalidRequest, UpstreamError
from meterway.ledger.models import TokenUsage
from meterway.proxy.formats.chat import openai_usage
from meterway.proxy.translate.chat_over_messages.request import chat_to_messages
from meterway.proxy.translate.chat_over_messages.response import (
    MessagesStreamTranslator,
    anthropic_error_to_message,
    messages_to_chat,
)

UPSTREAM = "claude-sonnet-4-5-20250929"
CLIENT_MODEL = "anthropic/claude-sonnet-4-5"
REQUEST_ID = "chatcmpl-mw-01HZX3"
CREATED = 1_760_000_000
PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="

WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
            "required": ["city"],
        },
    },
}

_BLOCK_PARAMS: dict[str, Any] = {
    "text": TextBlockParam,
    "image": ImageBlockParam,
    "tool_use": ToolUseBlockParam,
    "tool_result": ToolResultBlockParam,
}


def assert_typed_dict(params_type: Any, value: dict[str, Any]) -> None:
    extra = set(value) - set(params_type.__annotations__)
    assert not extra, f"{params_type.__name__} has no keys {extra}"
    TypeAdapter(params_type).validate_python(value)


def assert_valid_anthropic_request(req: dict[str, Any]) -> None:
    """Check a translated request against the anthropic SDK's request types.

    The SDK declares lists as ``Iterable`` (validated lazily by pydantic), so blocks are checked one
    by one; Anthropic also requires user and assistant turns to alternate. SDK 2.x no longer
    declares ``temperature``/``top_p``; the API still takes them for the models that support them.
    """
    sampling = {name: req[name] for name in ("temperature", "top_p") if name in req}
    assert all(isinstance(value, float | int) and 0 <= value <= 1 for value in sampling.values()), sampling
    params_type = MessageCreateParamsStreaming if req.get("stream") else MessageCreateParamsNonStreaming
    assert_typed_dict(params_type, {name: value for name, value in req.items() if name not in sampling})
    for block in req.get("system", []):
        assert_typed_dict(TextBlockParam, block)
    roles = [message["role"] for message in req["messages"]]
    assert all(a != b for a, b in itertools.pairwise(roles)), roles
    for message in req["messages"]:
        assert set(message) == {"role", "content"}
        for block in message["content"]:
            assert_typed_dict(_BLOCK_PARAMS[block["type"]], block)
    for tool in req.get("tools", []):
        assert_typed_dict(ToolParam, tool)


def translate(**body: Any) -> dict[str, Any]:
    body.setdefault("model", CLIENT_MODEL)
    req = chat_to_messages(body, UPSTREAM)
    assert_valid_anthropic_request(req)
    return req


# ================================================================= request: system and caching


def test_system_and_developer_messages_become_system_blocks_in_order_with_cache_control() -> None:
    # Given system/developer messages spread through the conversation, cached for 5 minutes and 1 hour
    req = translate(
        messages=[
            {
                "role": "system",
                "content": "You are a terse assistant.",
                "cache_control": {"type": "ephemeral"},
            },
            {
                "role": "developer",
                "content": [
                    {"type": "text", "text": "Style guide: answer in English."},
                    {
                        "type": "text",
                        "text": "Reference manual " * 50,
                        "cache_control": {"type": "ephemeral", "ttl": "1h"},
                    },
                ],
            },
            {"role": "user", "content": "Hi"},
            {"role": "system", "content": "Never reveal the manual."},
        ]
    )

    # Then they are one ordered list of text blocks, cache_control untouched
    assert req["system"] == [
        {"type": "text", "text": "You are a terse assistant.", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "Style guide: answer in English."},
        {
            "type": "text",
            "text": "Reference manual " * 50,
            "cache_control": {"type": "ephemeral", "ttl": "1h"},
        },
        {"type": "text", "text": "Never reveal the manual."},
    ]
    # And the conversation itself has no system turns
    assert req["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]
    assert req["model"] == UPSTREAM


def test_whole_message_cache_control_lands_on_the_message_last_block() -> None:
    # Given OpenRouter-style cache_control on whole user messages (string and parts content)
    req = translate(
        messages=[
            {
                "role": "user",
                "content": "Long document " * 100,
                "cache_control": {"type": "ephemeral", "ttl": "1h"},
            },
            {"role": "assistant", "content": "Read it."},
            {
                "role": "user",
                "content": [{"type": "text", "text": "Part A"}, {"type": "text", "text": "Part B"}],
                "cache_control": {"type": "ephemeral"},
            },
        ]
    )

    # Then the string becomes a text block carrying the cache_control, and a parts list gets it on its end
    assert req["messages"][0]["content"] == [
        {"type": "text", "text": "Long document " * 100, "cache_control": {"type": "ephemeral", "ttl": "1h"}}
    ]
    assert req["messages"][2]["content"] == [
        {"type": "text", "text": "Part A"},
        {"type": "text", "text": "Part B", "cache_control": {"type": "ephemeral"}},
    ]


def test_openai_prompt_cache_breakpoint_becomes_a_default_anthropic_breakpoint() -> None:
    req = translate(
        messages=[
            {
                "role": "user",
                "content": [{"type": "text", "text": "Context", "prompt_cache_breakpoint": {"mode": "explicit"}}],
            }
        ]
    )

    assert req["messages"][0]["content"] == [
        {"type": "text", "text": "Context", "cache_control": {"type": "ephemeral"}}
    ]


# ================================================================= request: content parts


def test_images_become_base64_or_url_sources() -> None:
    # Given a user message with a data URL image, an https image and text
    req = translate(
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Compare these two images."},
                    {
                        "type": "image_url",
                        "image_url": {"url": f"data:image/png;base64,{PNG_B64}", "detail": "high"},
                    },
                    {
                        "type": "image_url",
                        "image_url": {"url": "https://example.com/cat.jpg"},
                        "cache_control": {"type": "ephemeral"},
                    },
                ],
            }
        ]
    )

    # Then each part keeps its position and the right image source type
    assert req["messages"][0]["content"] == [
        {"type": "text", "text": "Compare these two images."},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
        {
            "type": "image",
            "source": {"type": "url", "url": "https://example.com/cat.jpg"},
            "cache_control": {"type": "ephemeral"},
        },
    ]


@pytest.mark.parametrize(
    ("part", "message_fragment"),
    [
        ({"type": "file", "file": {"file_id": "file-abc123"}}, "'file' are not supported"),
        ({"type": "input_audio", "input_audio": {"data": "UklGR", "format": "wav"}}, "'input_audio'"),
        ({"type": "image_url", "image_url": {"url": "ftp://example.com/cat.png"}}, "http(s) URL"),
        ({"type": "image_url", "image_url": {"url": f"data:image/tiff;base64,{PNG_B64}"}}, "image/tiff"),
    ],
)
def test_unsupported_content_parts_are_refused_with_a_clear_message(
    part: dict[str, Any], message_fragment: str
) -> None:
    body = {"model": CLIENT_MODEL, "messages": [{"role": "user", "content": [part]}]}

    with pytest.raises(InvalidRequest) as exc_info:
        chat_to_messages(body, UPSTREAM)

    assert message_fragment in exc_info.value.message
    assert "messages[0].content[0]" in exc_info.value.message


def test_system_messages_with_images_are_refused() -> None:
    body = {
        "messages": [
            {
                "role": "system",
                "content": [{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}],
            },
            {"role": "user", "content": "Hi"},
        ]
    }

    with pytest.raises(InvalidRequest, match="may only contain text"):
        chat_to_messages(body, UPSTREAM)


# ================================================================= request: tools


def test_tool_calls_and_results_round_trip_into_tool_use_and_tool_result_blocks() -> None:
    # Given a finished tool-calling exchange followed by a new user question
    req = translate(
        messages=[
            {"role": "user", "content": "Weather in Paris and Oslo?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "toolu_01A09q90qw90lq917835lq9",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    },
                    {
                        "id": "toolu_01B7vX2bxuZ5Jv1n3fKpQ2mT",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Oslo", "unit": "c"}'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "toolu_01A09q90qw90lq917835lq9", "content": "18C, sunny"},
            {
                "role": "tool",
                "tool_call_id": "toolu_01B7vX2bxuZ5Jv1n3fKpQ2mT",
                "content": [{"type": "text", "text": "4C, snow"}],
                "cache_control": {"type": "ephemeral"},
            },
            {"role": "user", "content": "And tomorrow?"},
        ],
        tools=[{**WEATHER_TOOL, "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
    )

    # Then the assistant turn carries tool_use blocks with parsed input
    assert req["messages"][1] == {
        "role": "assistant",
        "content": [
            {
                "type": "tool_use",
                "id": "toolu_01A09q90qw90lq917835lq9",
                "name": "get_weather",
                "input": {"city": "Paris"},
            },
            {
                "type": "tool_use",
                "id": "toolu_01B7vX2bxuZ5Jv1n3fKpQ2mT",
                "name": "get_weather",
                "input": {"city": "Oslo", "unit": "c"},
            },
        ],
    }
    # And both tool results plus the next question form one user turn, results first
    assert req["messages"][2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "toolu_01A09q90qw90lq917835lq9", "content": "18C, sunny"},
            {
                "type": "tool_result",
                "tool_use_id": "toolu_01B7vX2bxuZ5Jv1n3fKpQ2mT",
                "content": [{"type": "text", "text": "4C, snow"}],
                "cache_control": {"type": "ephemeral"},
            },
            {"type": "text", "text": "And tomorrow?"},
        ],
    }
    # And the tool definition is in Anthropic's shape, cache_control kept
    assert req["tools"] == [
        {
            "name": "get_weather",
            "description": "Get the current weather for a city.",
            "input_schema": WEATHER_TOOL["function"]["parameters"],
            "cache_control": {"type": "ephemeral", "ttl": "1h"},
        }
    ]
    assert "tool_choice" not in req


def test_empty_tool_output_becomes_a_tool_result_without_content() -> None:
    # Anthropic rejects empty text blocks, while a tool_result without content is valid
    req = translate(
        messages=[
            {"role": "user", "content": "Clear the cache."},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"id": "call_9", "type": "function", "function": {"name": "clear", "arguments": ""}}],
            },
            {"role": "tool", "tool_call_id": "call_9", "content": ""},
        ]
    )

    assert req["messages"][1:] == [
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "call_9", "name": "clear", "input": {}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_9"}]},
    ]


def test_tool_without_parameters_gets_an_empty_object_schema() -> None:
    req = translate(
        messages=[{"role": "user", "content": "What time is it?"}],
        tools=[{"type": "function", "function": {"name": "now"}}],
    )

    assert req["tools"] == [{"name": "now", "input_schema": {"type": "object", "properties": {}}}]


@pytest.mark.parametrize(
    ("tool_choice", "parallel_tool_calls", "expected"),
    [
        ("auto", None, {"type": "auto"}),
        ("none", None, {"type": "none"}),
        ("required", None, {"type": "any"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            None,
            {"type": "tool", "name": "get_weather"},
        ),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("none", False, {"type": "none"}),
        ("auto", True, {"type": "auto"}),
    ],
)
def test_tool_choice_mapping(tool_choice: Any, parallel_tool_calls: bool | None, expected: dict[str, Any]) -> None:
    req = translate(
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER_TOOL],
        tool_choice=tool_choice,
        parallel_tool_calls=parallel_tool_calls,
    )

    assert req["tool_choice"] == expected


def test_tool_choice_without_tools_is_dropped() -> None:
    req = translate(messages=[{"role": "user", "content": "Hi"}], tool_choice="none", parallel_tool_calls=False)

    assert "tool_choice" not in req
    assert "tools" not in req


@pytest.mark.parametrize(
    ("arguments", "message_fragment"),
    [('{"city": "Par', "not valid JSON"), ('["Paris"]', "must be a JSON object")],
)
def test_bad_tool_call_arguments_are_refused(arguments: str, message_fragment: str) -> None:
    body = {
        "messages": [
            {"role": "user", "content": "Weather?"},
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": arguments},
                    }
                ],
            },
        ]
    }

    with pytest.raises(InvalidRequest, match=message_fragment):
        chat_to_messages(body, UPSTREAM)


def test_non_function_tools_are_refused() -> None:
    body = {
        "messages": [{"role": "user", "content": "Hi"}],
        "tools": [{"type": "custom", "custom": {"name": "sql"}}],
    }

    with pytest.raises(InvalidRequest, match="only tools of type 'function'"):
        chat_to_messages(body, UPSTREAM)


# ================================================================= request: turns


def test_consecutive_messages_of_one_role_are_merged() -> None:
    req = translate(
        messages=[
            {"role": "user", "content": "First question."},
            {"role": "user", "content": [{"type": "text", "text": "Second question."}]},
            {"role": "assistant", "content": "First answer."},
            {"role": "assistant", "content": ""},
            {"role": "assistant", "content": "Second answer."},
            {"role": "user", "content": "Thanks."},
        ]
    )

    assert req["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "First question."},
                {"type": "text", "text": "Second question."},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "First answer."},
                {"type": "text", "text": "Second answer."},
            ],
        },
        {"role": "user", "content": [{"type": "text", "text": "Thanks."}]},
    ]


def test_a_conversation_may_start_with_an_assistant_turn() -> None:
    # Anthropic's current API documents no first-turn rule and merges turns itself; the old
    # "first message must use the user role" check is left to the upstream.
    req = translate(
        messages=[
            {"role": "system", "content": "Be kind."},
            {"role": "assistant", "content": "Hello! How can I help?"},
            {"role": "user", "content": "Tell me a joke."},
        ]
    )

    assert [m["role"] for m in req["messages"]] == ["assistant", "user"]


@pytest.mark.parametrize(
    ("messages", "message_fragment"),
    [
        ([], "non-empty list"),
        ([{"role": "system", "content": "Only a system prompt."}], "at least one user or assistant"),
        ([{"role": "function", "name": "f", "content": "{}"}], "role must be one of"),
        ([{"role": "tool", "content": "18C"}], "tool_call_id is required"),
    ],
)
def test_unusable_message_lists_are_refused(messages: list[dict[str, Any]], message_fragment: str) -> None:
    with pytest.raises(InvalidRequest, match=message_fragment):
        chat_to_messages({"model": CLIENT_MODEL, "messages": messages}, UPSTREAM)


# ================================================================= request: generation parameters


def test_max_tokens_defaults_and_precedence() -> None:
    hi = [{"role": "user", "content": "Hi"}]

    assert translate(messages=hi)["max_tokens"] == 4096
    assert chat_to_messages({"messages": hi}, UPSTREAM, default_max_tokens=1024)["max_tokens"] == 1024
    assert translate(messages=hi, max_tokens=300)["max_tokens"] == 300
    assert translate(messages=hi, max_tokens=300, max_completion_tokens=500)["max_tokens"] == 500
    with pytest.raises(InvalidRequest, match="positive integer"):
        chat_to_messages({"messages": hi, "max_tokens": 0}, UPSTREAM)


@pytest.mark.parametrize(("effort", "budget"), [("low", 1024), ("medium", 4096), ("high", 16384)])
def test_reasoning_effort_enables_thinking_and_leaves_room_for_the_answer(effort: str, budget: int) -> None:
    # Given a reasoning effort and no explicit max tokens
    req = translate(messages=[{"role": "user", "content": "Prove it."}], reasoning_effort=effort)

    # Then thinking is enabled with the effort's budget, below max_tokens
    assert req["thinking"] == {"type": "enabled", "budget_tokens": budget}
    assert req["max_tokens"] > budget
    assert req["max_tokens"] == (4096 if budget < 4096 else budget + 4096)


def test_reasoning_effort_keeps_a_max_tokens_that_already_exceeds_the_budget() -> None:
    req = translate(messages=[{"role": "user", "content": "Prove it."}], reasoning_effort="medium", max_tokens=8000)

    assert req["max_tokens"] == 8000


def test_reasoning_effort_none_disables_thinking_and_unknown_efforts_are_refused() -> None:
    assert "thinking" not in translate(messages=[{"role": "user", "content": "Hi"}], reasoning_effort="none")
    with pytest.raises(InvalidRequest, match="reasoning_effort"):
        chat_to_messages({"messages": [{"role": "user", "content": "Hi"}], "reasoning_effort": "extreme"}, UPSTREAM)


def test_sampling_stop_stream_and_user_are_translated() -> None:
    # Given OpenAI sampling parameters, including a temperature above Anthropic's maximum
    req = translate(
        messages=[{"role": "user", "content": "Write a haiku."}],
        temperature=1.6,
        top_p=0.9,
        stop="\n\n",
        stream=True,
        stream_options={"include_usage": True},
        user="user-7f3a",
    )

    # Then the temperature is clamped to 1 and the rest maps one to one
    assert req["temperature"] == 1.0
    assert req["top_p"] == 0.9
    assert req["stop_sequences"] == ["\n\n"]
    assert req["stream"] is True
    assert req["metadata"] == {"user_id": "user-7f3a"}
    assert "stream_options" not in req


def test_temperature_within_anthropic_range_and_stop_lists_are_kept() -> None:
    req = translate(messages=[{"role": "user", "content": "Hi"}], temperature=0.2, stop=["END", "STOP"])

    assert req["temperature"] == 0.2
    assert req["stop_sequences"] == ["END", "STOP"]


def test_harmless_openai_parameters_and_explicit_nulls_are_dropped() -> None:
    req = translate(
        messages=[{"role": "user", "content": "Hi"}],
        seed=42,
        presence_penalty=0.5,
        frequency_penalty=0.2,
        store=False,
        metadata={"team": "search"},
        stream_options={"include_usage": True},
        n=1,
        logprobs=None,
        tools=None,
        response_format={"type": "text"},
    )

    assert set(req) == {"model", "messages", "max_tokens"}


def test_json_schema_response_format_becomes_anthropic_structured_output() -> None:
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string"}},
        "required": ["answer"],
        "additionalProperties": False,
    }

    req = translate(
        messages=[{"role": "user", "content": "Answer in JSON."}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "answer", "strict": True, "schema": schema},
        },
    )

    assert req["output_config"] == {"format": {"type": "json_schema", "schema": schema}}


@pytest.mark.parametrize(
    ("params", "message_fragment"),
    [
        ({"n": 2}, "n > 1"),
        ({"logprobs": True, "top_logprobs": 3}, "logprobs"),
        ({"response_format": {"type": "json_object"}}, "JSON mode without a schema"),
        ({"functions": [{"name": "f"}]}, "use `tools`"),
        ({"modalities": ["text", "audio"]}, "only produce text"),
        ({"logit_bias": {"50256": -100}}, "logit_bias"),
        ({"top_k": 5}, "`top_k` is not supported"),
    ],
)
def test_parameters_that_change_the_answer_are_refused(params: dict[str, Any], message_fragment: str) -> None:
    body = {"model": CLIENT_MODEL, "messages": [{"role": "user", "content": "Hi"}], **params}

    with pytest.raises(InvalidRequest, match=message_fragment) as exc_info:
        chat_to_messages(body, UPSTREAM)

    assert exc_info.value.status == 400


# ================================================================= response (non-streaming)

ANTHROPIC_TOOL_RESPONSE: dict[str, Any] = {
    "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
    "type": "message",
    "role": "assistant",
    "model": UPSTREAM,
    "content": [
        {
            "type": "thinking",
            "thinking": "The user wants Paris weather.",
            "signature": "EqQBCgIYAhIM1gbcDa9G",
        },
        {"type": "text", "text": "Let me check the weather in Paris."},
        {
            "type": "tool_use",
            "id": "toolu_01A09q90qw90lq917835lq9",
            "name": "get_weather",
            "input": {"city": "Paris", "unit": "c"},
        },
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 25,
        "cache_creation_input_tokens": 3000,
        "cache_read_input_tokens": 12000,
        "cache_creation": {"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 2000},
        "output_tokens": 120,
        "service_tier": "standard",
    },
}


def test_tool_use_response_becomes_an_openai_chat_completion() -> None:
    # Given a realistic Anthropic response with thinking, text, a tool call and cache usage
    Message.model_validate(ANTHROPIC_TOOL_RESPONSE)

    # When it is translated
    out = messages_to_chat(ANTHROPIC_TOOL_RESPONSE, model=CLIENT_MODEL, request_id=REQUEST_ID, created=CREATED)

    # Then it parses with the official OpenAI model and carries the client-facing identity
    completion = ChatCompletion.model_validate(out)
    assert (completion.id, completion.model, completion.created) == (REQUEST_ID, CLIENT_MODEL, CREATED)
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Let me check the weather in Paris."
    assert out["choices"][0]["message"]["reasoning"] == "The user wants Paris weather."
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert isinstance(call, ChatCompletionMessageFunctionToolCall)
    assert call.id == "toolu_01A09q90qw90lq917835lq9"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris", "unit": "c"}
    # And usage counts every prompt token: input + 5m and 1h cache writes + cache reads
    assert out["usage"] == {
        "prompt_tokens": 25 + 1000 + 2000 + 12000,
        "completion_tokens": 120,
        "total_tokens": 15145,
        "prompt_tokens_details": {"cached_tokens": 12000, "cache_write_tokens": 3000},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


def test_text_only_response_has_no_tool_calls_and_joins_text_blocks() -> None:
    resp = {
        **ANTHROPIC_TOOL_RESPONSE,
        "content": [
            {"type": "text", "text": "Paris is the capital", "citations": None},
            {"type": "text", "text": " of France.", "citations": None},
        ],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 12, "output_tokens": 7},
    }

    out = messages_to_chat(resp, model=CLIENT_MODEL, request_id=REQUEST_ID, created=CREATED)

    ChatCompletion.model_validate(out)
    message = out["choices"][0]["message"]
    assert message["content"] == "Paris is the capital of France."
    assert "tool_calls" not in message
    assert "reasoning" not in message
    assert out["usage"]["prompt_tokens"] == 12
    assert out["usage"]["total_tokens"] == 19


def test_response_with_only_a_tool_call_has_null_content() -> None:
    resp = {**ANTHROPIC_TOOL_RESPONSE, "content": ANTHROPIC_TOOL_RESPONSE["content"][2:]}

    out = messages_to_chat(resp, model=CLIENT_MODEL, request_id=REQUEST_ID, created=CREATED)

    assert out["choices"][0]["message"]["content"] is None
    assert ChatCompletion.model_validate(out).choices[0].message.content is None


@pytest.mark.parametrize(
    ("stop_reason", "finish_reason"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
    ],
)
def test_stop_reasons_map_to_openai_finish_reasons(stop_reason: str, finish_reason: str) -> None:
    resp = {**ANTHROPIC_TOOL_RESPONSE, "stop_reason": stop_reason}

    out = messages_to_chat(resp, model=CLIENT_MODEL, request_id=REQUEST_ID, created=CREATED)

    assert ChatCompletion.model_validate(out).choices[0].finish_reason == finish_reason


def test_cache_writes_without_a_ttl_split_count_as_prompt_tokens() -> None:
    resp = {
        **ANTHROPIC_TOOL_RESPONSE,
        "usage": {
            "input_tokens": 10,
            "cache_creation_input_tokens": 500,
            "cache_read_input_tokens": 0,
            "output_tokens": 3,
        },
    }

    out = messages_to_chat(resp, model=CLIENT_MODEL, request_id=REQUEST_ID, created=CREATED)

    assert out["usage"]["prompt_tokens"] == 510
    assert out["usage"]["prompt_tokens_details"] == {"cached_tokens": 0, "cache_write_tokens": 500}


def test_reported_thinking_tokens_become_reasoning_tokens() -> None:
    resp = {
        **ANTHROPIC_TOOL_RESPONSE,
        "usage": {
            "input_tokens": 10,
            "output_tokens": 300,
            "output_tokens_details": {"thinking_tokens": 220},
        },
    }

    out = messages_to_chat(resp, model=CLIENT_MODEL, request_id=REQUEST_ID, created=CREATED)

    assert out["usage"]["completion_tokens"] == 300
    assert out["usage"]["completion_tokens_details"] == {"reasoning_tokens": 220}


def test_openai_usage_renders_disjoint_classes_in_openai_shape() -> None:
    usage = TokenUsage(
        input_tokens=100,
        output_tokens=50,
        reasoning_tokens=20,
        cache_creation_5m_tokens=30,
        cache_creation_1h_tokens=40,
        cache_read_tokens=500,
    )

    out = openai_usage(usage)

    assert out == {
        "prompt_tokens": 670,
        "completion_tokens": 50,
        "total_tokens": 720,
        "prompt_tokens_details": {"cached_tokens": 500, "cache_write_tokens": 70},
        "completion_tokens_details": {"reasoning_tokens": 20},
    }


# ================================================================= streaming

# A recorded session: text, then a tool call, as Anthropic sends it (event name, data).
RECORDED_STREAM: list[tuple[str, dict[str, Any]]] = [
    (
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": "msg_014p7gG3wDgGV9EUtLvnow3U",
                "type": "message",
                "role": "assistant",
                "model": UPSTREAM,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {
                    "input_tokens": 472,
                    "cache_creation_input_tokens": 2048,
                    "cache_read_input_tokens": 8192,
                    "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 2048},
                    "output_tokens": 2,
                },
            },
        },
    ),
    (
        "content_block_start",
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    ),
    ("ping", {"type": "ping"}),
    (
        "content_block_delta",
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Okay"}},
    ),
    (
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": ", checking Paris."},
        },
    ),
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    (
        "content_block_start",
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {
                "type": "tool_use",
                "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
                "name": "get_weather",
                "input": {},
            },
        },
    ),
    (
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": ""},
        },
    ),
    (
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": '{"city": "Par'},
        },
    ),
    (
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": 'is"}'},
        },
    ),
    ("content_block_stop", {"type": "content_block_stop", "index": 1}),
    (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": None},
            "usage": {"output_tokens": 89},
        },
    ),
    ("message_stop", {"type": "message_stop"}),
]


def _expected_chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {
        "id": REQUEST_ID,
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": CLIENT_MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}],
    }


def _feed(translator: MessagesStreamTranslator, event: str, data: Any) -> list[dict[str, Any]]:
    """One recorded event, as the relay hands it over: its name and its JSON text."""
    return translator.feed(event, json.dumps(data))


def _new_translator() -> MessagesStreamTranslator:
    return MessagesStreamTranslator(model=CLIENT_MODEL, request_id=REQUEST_ID, created=CREATED)


def test_recorded_stream_fixture_matches_the_anthropic_sdk_event_types() -> None:
    adapter: TypeAdapter[Any] = TypeAdapter(RawMessageStreamEvent)
    for event, data in RECORDED_STREAM:
        if event != "ping":
            adapter.validate_python(data)


def test_recorded_stream_translates_chunk_by_chunk() -> None:
    # Given the translator
    translator = _new_translator()

    # When every recorded event is fed in order
    chunks_per_event = [_feed(translator, event, data) for event, data in RECORDED_STREAM]

    # Then each event yields exactly the OpenAI chunks a client expects
    tool_call_start = {
        "index": 0,
        "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    assert chunks_per_event == [
        [_expected_chunk({"role": "assistant", "content": ""})],
        [],
        [],
        [_expected_chunk({"content": "Okay"})],
        [_expected_chunk({"content": ", checking Paris."})],
        [],
        [_expected_chunk({"tool_calls": [tool_call_start]})],
        [],
        [_expected_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": "Par'}}]})],
        [_expected_chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'is"}'}}]})],
        [],
        [_expected_chunk({}, "tool_calls")],
        [],
    ]
    # And every chunk parses with the official OpenAI model
    for chunks in chunks_per_event:
        for chunk in chunks:
            ChatCompletionChunk.model_validate(chunk)
    # And the stream state reflects a complete, metered answer
    assert translator.finished is True
    assert translator.finish_reason == "tool_calls"
    assert translator.usage_reported is True
    assert translator.usage == TokenUsage(
        input_tokens=472, output_tokens=89, cache_creation_1h_tokens=2048, cache_read_tokens=8192
    )
    assert translator.output_chars == len("Okay, checking Paris.") + len('{"city": "Paris"}')


def test_openai_sdk_accumulates_the_translated_stream_into_one_completion() -> None:
    # Given the OpenAI SDK's own stream accumulator
    state = ChatCompletionStreamState()
    translator = _new_translator()

    # When the translated chunks are fed to it
    for event, data in RECORDED_STREAM:
        for chunk in _feed(translator, event, data):
            state.handle_chunk(ChatCompletionChunk.model_validate(chunk))

    # Then the client sees the text and a complete tool call
    completion = state.get_final_completion()
    message = completion.choices[0].message
    assert message.content == "Okay, checking Paris."
    assert message.tool_calls is not None
    calls = [c for c in message.tool_calls if isinstance(c, ChatCompletionMessageFunctionToolCall)]
    assert [(c.id, c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("toolu_01T1x1fJ34qAmk2tNTrN7Up6", "get_weather", {"city": "Paris"})
    ]
    assert completion.choices[0].finish_reason == "tool_calls"


def test_thinking_stream_yields_reasoning_deltas() -> None:
    translator = _new_translator()
    events: list[tuple[str, dict[str, Any]]] = [
        RECORDED_STREAM[0],
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "thinking", "thinking": "", "signature": ""},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "thinking_delta", "thinking": "Let me think."},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "signature_delta", "signature": "EqQBCgIYAh"},
            },
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    ]

    chunks = [chunk for event, data in events for chunk in _feed(translator, event, data)]

    assert [chunk["choices"][0]["delta"] for chunk in chunks] == [
        {"role": "assistant", "content": ""},
        {"reasoning": "Let me think."},
    ]
    assert translator.output_chars == len("Let me think.")


def test_stream_cut_before_message_delta_reports_start_usage_only() -> None:
    # Given a stream that broke off after some text
    translator = _new_translator()
    for event, data in RECORDED_STREAM[:5]:
        _feed(translator, event, data)

    # Then the gateway can tell usage was never reported and estimate output from characters
    assert translator.finished is False
    assert translator.finish_reason is None
    assert translator.usage_reported is False
    assert translator.usage.input_tokens == 472
    assert translator.usage.cache_read_tokens == 8192
    assert translator.output_chars == len("Okay, checking Paris.")


def test_message_delta_with_cumulative_input_usage_overrides_start_counts() -> None:
    translator = _new_translator()
    _feed(translator, *RECORDED_STREAM[0])

    _feed(
        translator,
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": "max_tokens", "stop_sequence": None},
            "usage": {"input_tokens": 480, "cache_read_input_tokens": 8192, "output_tokens": 1024},
        },
    )

    assert translator.finish_reason == "length"
    assert translator.usage.input_tokens == 480
    assert translator.usage.output_tokens == 1024
    assert translator.usage.cache_creation_1h_tokens == 2048


def test_unknown_events_are_ignored() -> None:
    translator = _new_translator()

    assert _feed(translator, "future_event", {"type": "future_event", "detail": 1}) == []


def test_error_event_raises_upstream_error_with_the_anthropic_error_type() -> None:
    translator = _new_translator()
    _feed(translator, *RECORDED_STREAM[0])

    with pytest.raises(UpstreamError) as exc_info:
        _feed(translator, "error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})

    assert exc_info.value.code == "overloaded_error"
    assert exc_info.value.upstream_status is None
    assert "Overloaded" in exc_info.value.message


# ================================================================= error bodies


def test_anthropic_error_body_becomes_a_clear_message() -> None:
    body = json.dumps(
        {
            "type": "error",
            "error": {"type": "invalid_request_error", "message": "max_tokens: 300000 > 64000"},
            "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy",
        }
    ).encode()

    message = anthropic_error_to_message(400, body)

    assert message == "Anthropic API error 400 (invalid_request_error): max_tokens: 300000 > 64000"


@pytest.mark.parametrize("body", [b"<html><body>502 Bad Gateway</body></html>", b"", b"\xff\xfe", b'{"error": {}}'])
def test_unreadable_error_bodies_get_a_short_generic_message(body: bytes) -> None:
    message = anthropic_error_to_message(502, body)

    assert message == "Anthropic API error 502 (no readable error message)"


def test_events_are_recognised_by_their_payload_type_when_the_event_name_is_missing() -> None:
    translator = _new_translator()

    chunks = _feed(translator, "message", RECORDED_STREAM[3][1])

    assert [chunk["choices"][0]["delta"] for chunk in chunks] == [{"content": "Okay"}]
