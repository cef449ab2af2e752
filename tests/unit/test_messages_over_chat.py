"""Anthropic Messages clients on an OpenAI Chat Completions provider.

Translated requests are checked against the ``openai`` SDK's request types, translated answers parse
as ``anthropic.types.Message``, and translated streams are validated event by event as
``RawMessageStreamEvent`` and accumulated into a ``Message`` by the anthropic SDK's own accumulator.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import Message, RawMessageStreamEvent, TextBlock, ThinkingBlock, ToolUseBlock
from openai.types.chat import (
    ChatCompletion,
    ChatCompletionAssistantMessageParam,
    ChatCompletionChunk,
    ChatCompletionContentPartImageParam,
    ChatCompletionContentPartTextParam,
    ChatCompletionFunctionToolParam,
    ChatCompletionMessageFunctionToolCallParam,
    ChatCompletionSystemMessageParam,
    ChatCompletionToolMessageParam,
    ChatCompletionUserMessageParam,
)
from openai.types.chat.chat_completion_content_part_param import File
from openai.types.chat.completion_create_params import (
    CompletionCreateParamsNonStreaming,
    CompletionCreateParamsStreaming,
)
from pydantic import TypeAdapter

from meterway.core.errors import InvalidRequest, UpstreamError
from meterway.ledger.models import TokenUsage
from meterway.proxy.logic.catalog import CATALOG, ModelRoute
from meterway.proxy.translate.messages_over_chat.bridge import MessagesOverChat

REASONING = CATALOG["openai/gpt-5-mini"]
CLASSIC = CATALOG["openai/gpt-4.1-mini"]
REQUEST_ID = "gen-0199a3c4d5e6f00112233445566778"
CREATED = 1_760_000_000
PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
PDF_B64 = "JVBERi0xLjQKJcfsj6IKMSAwIG9iago8PC9UeXBlL0NhdGFsb2c+PgplbmRvYmoKdHJhaWxlcgo8PC9Sb290IDEgMCBSPj4KJSVFT0YK"
BRIDGE = MessagesOverChat()

# ================================================================= validation helpers

_MESSAGE_PARAMS: dict[str, Any] = {
    "system": ChatCompletionSystemMessageParam,
    "user": ChatCompletionUserMessageParam,
    "assistant": ChatCompletionAssistantMessageParam,
    "tool": ChatCompletionToolMessageParam,
}
_PART_PARAMS: dict[str, Any] = {
    "text": ChatCompletionContentPartTextParam,
    "image_url": ChatCompletionContentPartImageParam,
    "file": File,
}
_EVENT: TypeAdapter[Any] = TypeAdapter(RawMessageStreamEvent)


def assert_typed_dict(params_type: Any, value: dict[str, Any]) -> None:
    extra = set(value) - set(params_type.__annotations__)
    assert not extra, f"{params_type.__name__} has no keys {extra}"
    TypeAdapter(params_type).validate_python(value)


def assert_valid_chat_request(req: dict[str, Any]) -> None:
    """Check a translated request against the openai SDK's request types, block by block (the SDK
    declares lists as lazily validated ``Iterable``s), and Chat's rule that an assistant message's
    tool calls are answered by ``tool`` messages right after it."""
    assert_typed_dict(CompletionCreateParamsStreaming if req.get("stream") else CompletionCreateParamsNonStreaming, req)
    messages = req["messages"]
    for i, message in enumerate(messages):
        assert_typed_dict(_MESSAGE_PARAMS[message["role"]], message)
        if isinstance(message.get("content"), list):
            for part in message["content"]:
                assert_typed_dict(_PART_PARAMS[part["type"]], part)
        calls = message.get("tool_calls", [])
        for call in calls:
            assert_typed_dict(ChatCompletionMessageFunctionToolCallParam, call)
            json.loads(call["function"]["arguments"])
        answers = messages[i + 1 : i + 1 + len(calls)]
        assert [m["role"] for m in answers] == ["tool"] * len(calls)
        assert {m["tool_call_id"] for m in answers} == {call["id"] for call in calls}
    for tool in req.get("tools", []):
        assert_typed_dict(ChatCompletionFunctionToolParam, tool)


def translate(route: ModelRoute = CLASSIC, **body: Any) -> dict[str, Any]:
    body.setdefault("model", route.id)
    body.setdefault("max_tokens", 1024)
    req = BRIDGE.request(route, body)
    assert_valid_chat_request(req)
    return req


def refusal(route: ModelRoute = CLASSIC, **body: Any) -> str:
    body = {"model": route.id, "max_tokens": 1024, "messages": [{"role": "user", "content": "Hi"}], **body}
    with pytest.raises(InvalidRequest) as exc_info:
        BRIDGE.request(route, body)
    assert exc_info.value.status == 400
    return exc_info.value.message


# ================================================================= request: a Claude Code session

BASH_TOOL: dict[str, Any] = {
    "name": "Bash",
    "description": "Executes a given bash command in a persistent shell session.",
    "input_schema": {
        "type": "object",
        "properties": {
            "command": {"type": "string", "description": "The command to execute"},
            "timeout": {"type": "number", "description": "Optional timeout in milliseconds"},
            "description": {"type": "string"},
        },
        "required": ["command"],
        "additionalProperties": False,
        "$schema": "http://json-schema.org/draft-07/schema#",
    },
}
READ_TOOL: dict[str, Any] = {
    "name": "Read",
    "description": "Reads a file from the local filesystem.",
    "input_schema": {
        "type": "object",
        "properties": {"file_path": {"type": "string"}, "offset": {"type": "number"}},
        "required": ["file_path"],
        "additionalProperties": False,
    },
    "cache_control": {"type": "ephemeral"},
}
CLAUDE_CODE_USER_ID = (
    "user_5f1c0e9a0d3b4c6e8f7a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6a"
    "_account_3f2b1a0c-9d8e-4f7a-b6c5-d4e3f2a1b0c9_session_8e7d6c5b-4a39-4281-9f0e-1d2c3b4a5968"
)
SESSION: dict[str, Any] = {
    "model": "openai/gpt-5-mini",
    "max_tokens": 32000,
    "stream": True,
    "temperature": 1,
    "metadata": {"user_id": CLAUDE_CODE_USER_ID},
    "thinking": {"type": "enabled", "budget_tokens": 31999},
    "system": [
        {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.37.d1e; cc_entrypoint=cli; cch=9f2c1;"},
        {
            "type": "text",
            "text": "You are Claude Code, Anthropic's official CLI for Claude.",
            "cache_control": {"type": "ephemeral"},
        },
        {
            "type": "text",
            "text": "You are an interactive CLI tool that helps users with software engineering tasks.",
            "cache_control": {"type": "ephemeral"},
        },
    ],
    "tools": [BASH_TOOL, READ_TOOL],
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "<system-reminder>\n# claudeMd\nUse pytest.\n</system-reminder>"},
                {
                    "type": "text",
                    "text": "Why does tests/test_app.py fail?",
                    "cache_control": {"type": "ephemeral"},
                },
            ],
        },
        {
            "role": "assistant",
            "content": [
                {
                    "type": "thinking",
                    "thinking": "Read the test, then run it.",
                    "signature": "EqQBCgIYAhIM1gbcDa9GTBw",
                },
                {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix"},
                {"type": "text", "text": "I'll read the test and run it."},
                {
                    "type": "tool_use",
                    "id": "toolu_01A09q90qw90lq917835lq9",
                    "name": "Read",
                    "input": {"file_path": "/repo/tests/test_app.py"},
                },
                {
                    "type": "tool_use",
                    "id": "toolu_01B7vX2bxuZ5Jv1n3fKpQ2mT",
                    "name": "Bash",
                    "input": {"command": "pytest -q tests/test_app.py", "description": "Run the test"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "<system-reminder>Todo list is empty.</system-reminder>"},
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_01A09q90qw90lq917835lq9",
                    "content": [
                        {"type": "text", "text": "     1\tdef test_add():\n     2\t    assert add(2, 2) == 5\n"}
                    ],
                },
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_01B7vX2bxuZ5Jv1n3fKpQ2mT",
                    "content": "FAILED tests/test_app.py::test_add - assert 4 == 5",
                    "is_error": True,
                    "cache_control": {"type": "ephemeral"},
                },
            ],
        },
    ],
}


def test_a_claude_code_session_becomes_a_chat_request() -> None:
    # When a Claude Code turn (system blocks, thinking, a parallel tool round trip) is translated
    req = translate(REASONING, **SESSION)

    # Then the system prompt leads without the per-request billing header, cache_control gone
    assert req["messages"][0] == {
        "role": "system",
        "content": "You are Claude Code, Anthropic's official CLI for Claude.\n\n"
        "You are an interactive CLI tool that helps users with software engineering tasks.",
    }
    # And the turns keep their text, the thinking blocks are gone and the calls carry JSON arguments
    assert req["messages"][1:3] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "<system-reminder>\n# claudeMd\nUse pytest.\n</system-reminder>"},
                {"type": "text", "text": "Why does tests/test_app.py fail?"},
            ],
        },
        {
            "role": "assistant",
            "content": "I'll read the test and run it.",
            "tool_calls": [
                {
                    "id": "toolu_01A09q90qw90lq917835lq9",
                    "type": "function",
                    "function": {"name": "Read", "arguments": '{"file_path": "/repo/tests/test_app.py"}'},
                },
                {
                    "id": "toolu_01B7vX2bxuZ5Jv1n3fKpQ2mT",
                    "type": "function",
                    "function": {
                        "name": "Bash",
                        "arguments": '{"command": "pytest -q tests/test_app.py", "description": "Run the test"}',
                    },
                },
            ],
        },
    ]
    # And the results follow the calls, before the turn's own text, the error visible as such
    assert req["messages"][3:] == [
        {
            "role": "tool",
            "tool_call_id": "toolu_01A09q90qw90lq917835lq9",
            "content": "     1\tdef test_add():\n     2\t    assert add(2, 2) == 5\n",
        },
        {
            "role": "tool",
            "tool_call_id": "toolu_01B7vX2bxuZ5Jv1n3fKpQ2mT",
            "content": "Error: FAILED tests/test_app.py::test_add - assert 4 == 5",
        },
        {"role": "user", "content": "<system-reminder>Todo list is empty.</system-reminder>"},
    ]
    # And the tools are functions, the generation parameters Chat's
    assert req["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "Bash",
                "parameters": BASH_TOOL["input_schema"],
                "description": BASH_TOOL["description"],
            },
        },
        {
            "type": "function",
            "function": {
                "name": "Read",
                "parameters": READ_TOOL["input_schema"],
                "description": READ_TOOL["description"],
            },
        },
    ]
    assert req["model"] == "gpt-5-mini"
    assert req["max_completion_tokens"] == 32000
    assert req["stream_options"] == {"include_usage": True}
    assert req["reasoning_effort"] == "high"
    # And Claude Code's 150-character user id becomes a stable id OpenAI accepts
    assert req["user"] == hashlib.sha256(CLAUDE_CODE_USER_ID.encode()).hexdigest()
    # And a reasoning model gets no sampling parameters: OpenAI accepts only their defaults
    assert "temperature" not in req


def test_consecutive_turns_of_one_role_merge_and_tool_results_still_lead_their_turn() -> None:
    req = translate(
        messages=[
            {"role": "user", "content": "What is in /tmp?"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "call_1", "name": "Bash", "input": {"command": "ls /tmp"}}],
            },
            {"role": "user", "content": "Also, be brief."},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "a.txt"}]},
        ],
        tools=[BASH_TOOL],
    )

    assert [m["role"] for m in req["messages"]] == ["user", "assistant", "tool", "user"]
    assert req["messages"][2] == {"role": "tool", "tool_call_id": "call_1", "content": "a.txt"}
    assert req["messages"][3] == {"role": "user", "content": "Also, be brief."}


def test_images_and_documents_become_content_parts() -> None:
    req = translate(
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Compare the screenshot, the photo and the spec."},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
                    {
                        "type": "image",
                        "source": {"type": "url", "url": "https://example.com/cat.jpg"},
                        "cache_control": {"type": "ephemeral"},
                    },
                    {
                        "type": "document",
                        "title": "spec.pdf",
                        "source": {"type": "base64", "media_type": "application/pdf", "data": PDF_B64},
                    },
                    {
                        "type": "document",
                        "source": {"type": "text", "media_type": "text/plain", "data": "Rule 1: be kind."},
                    },
                ],
            }
        ]
    )

    assert req["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Compare the screenshot, the photo and the spec."},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
                {
                    "type": "file",
                    "file": {"filename": "spec.pdf", "file_data": f"data:application/pdf;base64,{PDF_B64}"},
                },
                {"type": "text", "text": "Rule 1: be kind."},
            ],
        }
    ]


def test_an_image_returned_by_a_tool_follows_the_tool_message_in_the_user_turn() -> None:
    # Given Claude Code's Read tool returning a screenshot (a tool message can hold text only)
    req = translate(
        messages=[
            {"role": "user", "content": "What does the screenshot show?"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "toolu_img", "name": "Read", "input": {"file_path": "/s.png"}}],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_img",
                        "content": [
                            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}}
                        ],
                    },
                    {"type": "text", "text": "Focus on the error dialog."},
                ],
            },
        ],
        tools=[READ_TOOL],
    )

    # Then the tool message points at the image, which comes next, labelled, before the user's own text
    assert req["messages"][2:] == [
        {"role": "tool", "tool_call_id": "toolu_img", "content": "[1 attachment(s): see the next user message]"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Attachments of the result of tool call toolu_img:"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
                {"type": "text", "text": "Focus on the error dialog."},
            ],
        },
    ]


def test_an_empty_tool_result_and_an_error_without_text() -> None:
    req = translate(
        messages=[
            {"role": "user", "content": "Clear both caches."},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "call_a", "name": "clear", "input": {}},
                    {"type": "tool_use", "id": "call_b", "name": "clear", "input": {"all": True}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "call_a"},
                    {"type": "tool_result", "tool_use_id": "call_b", "is_error": True, "content": []},
                ],
            },
        ]
    )

    assert req["messages"][1]["tool_calls"][0]["function"]["arguments"] == "{}"
    assert "content" not in req["messages"][1]
    assert req["messages"][2:] == [
        {"role": "tool", "tool_call_id": "call_a", "content": ""},
        {"role": "tool", "tool_call_id": "call_b", "content": "Error"},
    ]


def test_a_system_string_and_system_turns_become_system_messages() -> None:
    req = translate(
        system="Be terse.",
        messages=[
            {"role": "user", "content": "Hi"},
            {"role": "system", "content": [{"type": "text", "text": "The user is an expert."}]},
            {"role": "user", "content": "Explain monads."},
        ],
    )

    assert req["messages"] == [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "Hi"},
        {"role": "system", "content": "The user is an expert."},
        {"role": "user", "content": "Explain monads."},
    ]


# ================================================================= request: parameters


@pytest.mark.parametrize(
    ("thinking", "output_config", "effort"),
    [
        ({"type": "enabled", "budget_tokens": 1024}, None, "low"),
        ({"type": "enabled", "budget_tokens": 4000}, None, "low"),
        ({"type": "enabled", "budget_tokens": 10000}, None, "medium"),
        ({"type": "enabled", "budget_tokens": 31999}, None, "high"),
        ({"type": "adaptive"}, {"effort": "medium"}, "medium"),
        ({"type": "adaptive"}, {"effort": "max"}, "high"),
        ({"type": "enabled", "budget_tokens": 31999}, {"effort": "low"}, "low"),
        ({"type": "adaptive"}, None, None),
        ({"type": "disabled"}, None, None),
    ],
)
def test_thinking_and_effort_become_reasoning_effort_on_reasoning_models(
    thinking: dict[str, Any], output_config: dict[str, Any] | None, effort: str | None
) -> None:
    params: dict[str, Any] = {"thinking": thinking, "max_tokens": 32000}
    if output_config:
        params["output_config"] = output_config

    req = translate(REASONING, messages=[{"role": "user", "content": "Prove it."}], **params)

    assert req.get("reasoning_effort") == effort


def test_a_model_that_does_not_reason_drops_thinking_and_keeps_sampling() -> None:
    req = translate(
        CLASSIC,
        messages=[{"role": "user", "content": "Write a haiku."}],
        thinking={"type": "enabled", "budget_tokens": 2048},
        output_config={"effort": "high"},
        temperature=0.7,
        top_p=0.9,
        top_k=40,
        stop_sequences=["\n\n", "END"],
        metadata={"user_id": "user-7f3a"},
    )

    assert "reasoning_effort" not in req
    assert (req["temperature"], req["top_p"], req["stop"], req["user"]) == (0.7, 0.9, ["\n\n", "END"], "user-7f3a")
    assert "top_k" not in req
    assert "stream" not in req
    assert "stream_options" not in req


@pytest.mark.parametrize(
    ("tool_choice", "expected"),
    [
        ({"type": "auto"}, {"tool_choice": "auto"}),
        ({"type": "any"}, {"tool_choice": "required"}),
        ({"type": "none"}, {"tool_choice": "none"}),
        ({"type": "tool", "name": "Bash"}, {"tool_choice": {"type": "function", "function": {"name": "Bash"}}}),
        ({"type": "any", "disable_parallel_tool_use": True}, {"tool_choice": "required", "parallel_tool_calls": False}),
        ({"type": "auto", "disable_parallel_tool_use": True}, {"tool_choice": "auto", "parallel_tool_calls": False}),
        ({"type": "none", "disable_parallel_tool_use": True}, {"tool_choice": "none"}),
    ],
)
def test_tool_choice_variants(tool_choice: dict[str, Any], expected: dict[str, Any]) -> None:
    req = translate(messages=[{"role": "user", "content": "List /tmp."}], tools=[BASH_TOOL], tool_choice=tool_choice)

    assert {name: req[name] for name in ("tool_choice", "parallel_tool_calls") if name in req} == expected


def test_tool_choice_without_tools_is_dropped() -> None:
    req = translate(messages=[{"role": "user", "content": "Hi"}], tool_choice={"type": "any"})

    assert "tool_choice" not in req
    assert "tools" not in req


def test_tool_search_is_dropped_and_deferred_tools_are_sent_directly() -> None:
    req = translate(
        messages=[{"role": "user", "content": "Open the issue tracker."}],
        tools=[
            {"type": "tool_search_tool_regex_20251119", "name": "tool_search_tool_regex"},
            {**BASH_TOOL, "defer_loading": True, "strict": True},
        ],
    )

    assert req["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "Bash",
                "parameters": BASH_TOOL["input_schema"],
                "description": BASH_TOOL["description"],
                "strict": True,
            },
        }
    ]


@pytest.mark.parametrize(
    "tool",
    [
        {"type": "web_search_20250305", "name": "web_search", "max_uses": 8},
        {"type": "web_fetch_20250910", "name": "web_fetch"},
        {"type": "code_execution_20250825", "name": "code_execution"},
        {"type": "bash_20250124", "name": "bash"},
        {"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"},
    ],
)
def test_anthropic_server_and_built_in_tools_are_refused(tool: dict[str, Any]) -> None:
    # Leaving them out would have the model answer as if it had searched or run code
    message = refusal(tools=[BASH_TOOL, tool])

    assert f"tools[1]: Anthropic's built-in tool '{tool['type']}' is not available" in message


def test_structured_output_becomes_a_strict_json_schema_response_format() -> None:
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string"}},
        "required": ["answer"],
        "additionalProperties": False,
    }

    req = translate(
        messages=[{"role": "user", "content": "Answer in JSON."}],
        output_config={"format": {"type": "json_schema", "schema": schema}},
    )

    assert req["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": schema, "strict": True},
    }


def test_fields_that_only_tune_anthropic_are_dropped() -> None:
    req = translate(
        messages=[{"role": "user", "content": "Hi"}],
        cache_control={"type": "ephemeral"},
        context_management={"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        service_tier="auto",
        speed="fast",
        diagnostics={"previous_message_id": "msg_01"},
        top_k=5,
        container=None,
    )

    assert set(req) == {"model", "messages", "max_completion_tokens"}


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"container": {"skills": [{"type": "anthropic", "skill_id": "pptx"}]}}, "`container`"),
        ({"mcp_servers": [{"type": "url", "url": "https://mcp.example.com/sse", "name": "x"}]}, "`mcp_servers`"),
        ({"inference_geo": "eu"}, "`inference_geo`"),
        ({"frequency_penalty": 0.5}, "`frequency_penalty` is not supported"),
        ({"output_config": {"format": {"type": "regex", "pattern": "a+"}}}, "output_config.format must be"),
        ({"output_config": {"effort": "extreme"}}, "output_config.effort must be one of"),
        ({"tool_choice": {"type": "function"}, "tools": [BASH_TOOL]}, "tool_choice.type must be one of"),
        ({"tools": [{"name": "Bash"}]}, "tools[0].input_schema"),
        ({"stop_sequences": "END"}, "stop_sequences must be a list"),
        ({"temperature": "hot"}, "temperature must be a number"),
    ],
)
def test_parameters_whose_meaning_would_be_lost_are_refused(params: dict[str, Any], fragment: str) -> None:
    assert fragment in refusal(**params)


def test_invalid_thinking_budget_is_refused_on_a_reasoning_model() -> None:
    assert "thinking.budget_tokens" in refusal(REASONING, thinking={"type": "enabled", "budget_tokens": "lots"})


@pytest.mark.parametrize(
    ("messages", "fragment"),
    [
        (
            [{"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "file_011C"}}]}],
            "messages[0].content[0].source: images must be base64 data or a url",
        ),
        (
            [
                {
                    "role": "user",
                    "content": [{"type": "document", "source": {"type": "url", "url": "https://x.test/a.pdf"}}],
                }
            ],
            "messages[0].content[0].source: documents must be",
        ),
        (
            [{"role": "user", "content": [{"type": "search_result", "source": "s", "title": "t", "content": []}]}],
            "messages[0].content[0]: content blocks of type 'search_result'",
        ),
        (
            [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": "x=1"}]},
            ],
            "messages[1].content[0].input must be an object",
        ),
        (
            [
                {"role": "user", "content": "Search"},
                {
                    "role": "assistant",
                    "content": [{"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}}],
                },
            ],
            "messages[1].content[0]: assistant blocks of type 'server_tool_use'",
        ),
        (
            [{"role": "user", "content": [{"type": "tool_result", "content": "4C"}]}],
            "messages[0].content[0].tool_use_id",
        ),
        ([{"role": "function", "content": "{}"}], "messages[0].role must be one of"),
        ([{"role": "user", "content": [{"text": "no type"}]}], "messages[0].content[0] must be a content block"),
        (
            [{"role": "user", "content": "Say hi"}, {"role": "assistant", "content": "Hello, "}],
            "messages[1]: a conversation ending with assistant text (a prefill)",
        ),
    ],
)
def test_unusable_content_is_refused_naming_where_it_is(messages: list[dict[str, Any]], fragment: str) -> None:
    assert fragment in refusal(messages=messages)


def test_a_short_user_id_is_kept_as_the_client_sent_it() -> None:
    req = translate(messages=[{"role": "user", "content": "Hi"}], metadata={"user_id": "7f3a9c"})

    assert req["user"] == "7f3a9c"


# ================================================================= answers

USAGE = {
    "prompt_tokens": 1860,
    "completion_tokens": 412,
    "total_tokens": 2272,
    "prompt_tokens_details": {"cached_tokens": 1536, "audio_tokens": 0},
    "completion_tokens_details": {
        "reasoning_tokens": 256,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    },
}


def completion(message: dict[str, Any], finish_reason: str, usage: dict[str, Any] | None = USAGE) -> dict[str, Any]:
    payload = {
        "id": "chatcmpl-CAbc123",
        "object": "chat.completion",
        "created": CREATED,
        "model": "gpt-5-mini-2025-08-07",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "refusal": None, "annotations": [], **message},
                "finish_reason": finish_reason,
                "logprobs": None,
            }
        ],
        "service_tier": "default",
        "system_fingerprint": None,
    }
    if usage is not None:
        payload["usage"] = usage
    ChatCompletion.model_validate(payload)
    return payload


def test_a_text_answer_becomes_an_anthropic_message() -> None:
    payload = completion({"content": "The test expects 2 + 2 to be 5."}, "stop")

    answer = BRIDGE.answer(REASONING, payload, REQUEST_ID, CREATED)

    message = Message.model_validate(answer.body)
    assert (message.id, message.model, message.role) == (f"msg_{REQUEST_ID}", "openai/gpt-5-mini", "assistant")
    assert [block.type for block in message.content] == ["text"]
    assert isinstance(message.content[0], TextBlock)
    assert message.content[0].text == "The test expects 2 + 2 to be 5."
    assert (message.stop_reason, message.stop_sequence) == ("end_turn", None)
    # And the usage is Anthropic's: input excludes the cached prompt tokens, thinking is shown apart
    assert answer.body["usage"] == {
        "input_tokens": 324,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 1536,
        "output_tokens": 412,
        "output_tokens_details": {"thinking_tokens": 256},
    }
    assert answer.tokens == TokenUsage(
        input_tokens=324, output_tokens=412, reasoning_tokens=256, cache_read_tokens=1536
    )
    assert answer.finish_reason == "end_turn"
    assert answer.output_chars == len("The test expects 2 + 2 to be 5.")


def test_tool_calls_become_tool_use_blocks_after_the_reasoning_and_the_text() -> None:
    payload = completion(
        {
            "content": "Let me look.",
            "reasoning_content": "Two files to read.",
            "tool_calls": [
                {
                    "id": "call_DdmNt9VXz7q5L1Gv0lWuVHFN",
                    "type": "function",
                    "function": {"name": "Read", "arguments": '{"file_path": "/repo/app.py"}'},
                },
                {
                    "id": "call_8Yp3sQ1vMwK0rT2uN6xZ4hLb",
                    "type": "function",
                    "function": {"name": "Read", "arguments": '{"file_path": "/repo/tests/test_app.py"}'},
                },
            ],
        },
        "tool_calls",
    )

    answer = BRIDGE.answer(REASONING, payload, REQUEST_ID, CREATED)

    message = Message.model_validate(answer.body)
    thinking, text, *calls = message.content
    assert isinstance(thinking, ThinkingBlock)
    assert thinking.thinking == "Two files to read."
    assert isinstance(text, TextBlock)
    assert text.text == "Let me look."
    assert all(isinstance(call, ToolUseBlock) for call in calls)
    assert [(c.id, c.name, c.input) for c in calls if isinstance(c, ToolUseBlock)] == [
        ("call_DdmNt9VXz7q5L1Gv0lWuVHFN", "Read", {"file_path": "/repo/app.py"}),
        ("call_8Yp3sQ1vMwK0rT2uN6xZ4hLb", "Read", {"file_path": "/repo/tests/test_app.py"}),
    ]
    assert message.stop_reason == "tool_use"
    assert answer.output_chars == len("Two files to read.Let me look.") + len('{"file_path": "/repo/app.py"}') + len(
        '{"file_path": "/repo/tests/test_app.py"}'
    )


def test_arguments_that_are_not_a_json_object_are_kept_raw_instead_of_failing_the_answer() -> None:
    payload = completion(
        {
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "Bash", "arguments": '{"command": "ls'}},
                {"id": "call_2", "type": "function", "function": {"name": "Bash", "arguments": '["ls"]'}},
                {"id": "call_3", "type": "function", "function": {"name": "now", "arguments": ""}},
            ],
        },
        "tool_calls",
    )

    message = Message.model_validate(BRIDGE.answer(CLASSIC, payload, REQUEST_ID, CREATED).body)

    assert [block.input for block in message.content if isinstance(block, ToolUseBlock)] == [
        {"_raw_arguments": '{"command": "ls'},
        {"_raw_arguments": '["ls"]'},
        {},
    ]


@pytest.mark.parametrize(
    ("finish_reason", "message", "stop_reason"),
    [
        ("length", {"content": "The answer is lon"}, "max_tokens"),
        ("content_filter", {"content": ""}, "refusal"),
        ("stop", {"content": None, "refusal": "I can't help with that."}, "refusal"),
        # Some OpenAI-compatible servers end a turn of tool calls with "stop"
        (
            "stop",
            {
                "content": None,
                "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
            },
            "tool_use",
        ),
    ],
)
def test_finish_reasons_become_stop_reasons(finish_reason: str, message: dict[str, Any], stop_reason: str) -> None:
    answer = BRIDGE.answer(CLASSIC, completion(message, finish_reason), REQUEST_ID, CREATED)

    assert Message.model_validate(answer.body).stop_reason == stop_reason
    assert answer.finish_reason == stop_reason


def test_an_answer_without_usage_has_no_tokens_so_the_gateway_estimates() -> None:
    answer = BRIDGE.answer(CLASSIC, completion({"content": "Hello!"}, "stop", usage=None), REQUEST_ID, CREATED)

    message = Message.model_validate(answer.body)
    assert (message.usage.input_tokens, message.usage.output_tokens) == (0, 0)
    assert answer.tokens is None
    assert answer.output_chars == len("Hello!")


def test_an_error_inside_a_200_answer_is_an_upstream_error() -> None:
    with pytest.raises(UpstreamError) as exc_info:
        BRIDGE.answer(CLASSIC, {"error": {"message": "Provider overloaded", "code": 502}}, REQUEST_ID, CREATED)

    assert exc_info.value.upstream_message == "Provider overloaded"


# ================================================================= streams


def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    data = {
        "id": "chatcmpl-CAbc123",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": "gpt-5-mini-2025-08-07",
        "service_tier": "default",
        "system_fingerprint": None,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        "usage": None,
        "obfuscation": "Xq3",
    }
    ChatCompletionChunk.model_validate(data)
    return data


def usage_chunk(usage: dict[str, Any] = USAGE) -> dict[str, Any]:
    data = {**chunk({}), "choices": [], "usage": usage}
    ChatCompletionChunk.model_validate(data)
    return data


def tool_start(index: int, call_id: str, name: str) -> dict[str, Any]:
    call = {"index": index, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}
    return chunk({"tool_calls": [call]})


def tool_args(index: int, arguments: str) -> dict[str, Any]:
    return chunk({"tool_calls": [{"index": index, "function": {"arguments": arguments}}]})


TEXT_STREAM: list[Any] = [
    chunk({"role": "assistant", "content": "", "refusal": None}),
    chunk({"content": "The test"}),
    chunk({"content": " expects 5."}),
    chunk({}, "stop"),
    usage_chunk(),
    "[DONE]",
]
TOOL_STREAM: list[Any] = [
    chunk({"role": "assistant", "content": None, "refusal": None}),
    chunk({"content": "Reading both files."}),
    tool_start(0, "call_DdmNt9VXz7q5L1Gv0lWuVHFN", "Read"),
    tool_args(0, '{"file_'),
    tool_args(0, 'path": "/repo/app.py"}'),
    tool_start(1, "call_8Yp3sQ1vMwK0rT2uN6xZ4hLb", "Bash"),
    tool_args(1, '{"command": "pytest'),
    tool_args(1, ' -q"}'),
    chunk({}, "tool_calls"),
    usage_chunk(),
    "[DONE]",
]


def run(events: list[Any], route: ModelRoute = REASONING) -> tuple[Any, list[list[dict[str, Any]]]]:
    """Feed a recorded stream event by event; every event out must be a valid Anthropic event."""
    adapter = BRIDGE.stream(route, REQUEST_ID, CREATED)
    out = [adapter.feed("", event if isinstance(event, str) else json.dumps(event)) for event in events]
    for event in (event for batch in out for event in batch):
        _EVENT.validate_python(event)
    return adapter, out


def accumulate(out: list[list[dict[str, Any]]]) -> Message:
    """The anthropic SDK's own accumulator (what ``MessageStream`` runs) over the events sent."""
    snapshot: Any = None
    json_bufs: dict[int, bytes] = {}
    for event in (event for batch in out for event in batch):
        snapshot = accumulate_event(event=_EVENT.validate_python(event), current_snapshot=snapshot, json_bufs=json_bufs)
    return Message.model_validate(snapshot.model_dump())


def kinds(batch: list[dict[str, Any]]) -> list[str]:
    return [event["delta"]["type"] if event["type"] == "content_block_delta" else event["type"] for event in batch]


def test_a_text_stream_is_relayed_delta_by_delta_and_ends_after_the_usage_chunk() -> None:
    adapter, out = run(TEXT_STREAM)

    # Each chunk's text goes out with that chunk; the end waits for the usage it must carry
    assert [kinds(batch) for batch in out] == [
        ["message_start"],
        ["content_block_start", "text_delta"],
        ["text_delta"],
        ["content_block_stop"],
        ["message_delta", "message_stop"],
        [],
    ]
    assert out[1][1]["delta"]["text"] == "The test"
    message = accumulate(out)
    assert message.model_dump(include={"id", "model", "stop_reason", "stop_sequence"}) == {
        "id": f"msg_{REQUEST_ID}",
        "model": "openai/gpt-5-mini",
        "stop_reason": "end_turn",
        "stop_sequence": None,
    }
    assert [block.text for block in message.content if isinstance(block, TextBlock)] == ["The test expects 5."]
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens, message.usage.output_tokens) == (
        324,
        1536,
        412,
    )
    assert (adapter.finished, adapter.ended, adapter.usage_reported) == (True, True, True)
    assert adapter.finish_reason == "end_turn"
    assert adapter.usage == TokenUsage(
        input_tokens=324, output_tokens=412, reasoning_tokens=256, cache_read_tokens=1536
    )
    assert adapter.output_chars == len("The test expects 5.")
    assert adapter.client_usage is None


def test_text_then_two_parallel_tool_calls_accumulate_into_complete_tool_uses() -> None:
    adapter, out = run(TOOL_STREAM)

    message = accumulate(out)
    text, *calls = message.content
    assert isinstance(text, TextBlock)
    assert text.text == "Reading both files."
    assert [(c.id, c.name, c.input) for c in calls if isinstance(c, ToolUseBlock)] == [
        ("call_DdmNt9VXz7q5L1Gv0lWuVHFN", "Read", {"file_path": "/repo/app.py"}),
        ("call_8Yp3sQ1vMwK0rT2uN6xZ4hLb", "Bash", {"command": "pytest -q"}),
    ]
    assert message.stop_reason == "tool_use"
    # And every argument fragment went out with its chunk, in blocks that follow one another
    assert [kinds(batch) for batch in out[2:9]] == [
        ["content_block_stop", "content_block_start"],
        ["input_json_delta"],
        ["input_json_delta"],
        ["content_block_stop", "content_block_start"],
        ["input_json_delta"],
        ["input_json_delta"],
        ["content_block_stop"],
    ]
    assert [e["index"] for batch in out for e in batch if e["type"] == "content_block_start"] == [0, 1, 2]
    assert adapter.output_chars == len("Reading both files.") + len('{"file_path": "/repo/app.py"}') + len(
        '{"command": "pytest -q"}'
    )


def test_reasoning_text_is_relayed_as_a_thinking_block_before_the_answer() -> None:
    # Given an OpenAI-compatible server that streams its reasoning (DeepSeek, vLLM: reasoning_content)
    _, out = run(
        [
            chunk({"role": "assistant", "content": None, "reasoning_content": ""}),
            chunk({"reasoning_content": "2 + 2 is 4, "}),
            chunk({"reasoning_content": "so the test is wrong."}),
            chunk({"content": "The test is wrong."}),
            chunk({}, "stop"),
            usage_chunk(),
            "[DONE]",
        ]
    )

    message = accumulate(out)
    thinking, text = message.content
    assert isinstance(thinking, ThinkingBlock)
    assert (thinking.thinking, thinking.signature) == ("2 + 2 is 4, so the test is wrong.", "")
    assert isinstance(text, TextBlock)
    assert text.text == "The test is wrong."
    assert message.usage.output_tokens_details is not None
    assert message.usage.output_tokens_details.thinking_tokens == 256


def test_done_without_a_usage_chunk_still_ends_the_message() -> None:
    adapter, out = run([*TEXT_STREAM[:4], "[DONE]"])

    assert kinds(out[-1]) == ["message_delta", "message_stop"]
    message = accumulate(out)
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (0, 0)
    # And the gateway knows to estimate from the characters relayed
    assert (adapter.finished, adapter.ended, adapter.usage_reported) == (True, True, False)
    assert adapter.usage == TokenUsage()
    assert adapter.output_chars == len("The test expects 5.")


def test_a_stream_cut_before_done_is_not_finished() -> None:
    adapter, out = run(TOOL_STREAM[:7])

    assert "message_stop" not in [event["type"] for batch in out for event in batch]
    assert (adapter.finished, adapter.ended, adapter.usage_reported) == (False, False, False)
    assert adapter.finish_reason is None
    assert adapter.output_chars == len("Reading both files.") + len('{"file_path": "/repo/app.py"}{"command": "pytest')


def test_a_tool_call_whose_name_comes_late_starts_its_block_once_it_is_known() -> None:
    _, out = run(
        [
            chunk({"role": "assistant", "content": None}),
            chunk({"tool_calls": [{"index": 0, "id": "call_x", "type": "function", "function": {"arguments": "{"}}]}),
            chunk({"tool_calls": [{"index": 0, "function": {"name": "now", "arguments": "}"}}]}),
            chunk({}, "tool_calls"),
            usage_chunk(),
        ]
    )

    assert kinds(out[1]) == []
    assert kinds(out[2]) == ["content_block_start", "input_json_delta"]
    [call] = accumulate(out).content
    assert isinstance(call, ToolUseBlock)
    assert (call.id, call.name, call.input) == ("call_x", "now", {})


def test_interleaved_tool_call_fragments_break_the_stream_instead_of_misplacing_arguments() -> None:
    adapter = BRIDGE.stream(REASONING, REQUEST_ID, CREATED)
    for event in [tool_start(0, "call_a", "Read"), tool_start(1, "call_b", "Read")]:
        adapter.feed("", json.dumps(event))

    with pytest.raises(ValueError, match="tool call 0"):
        adapter.feed("", json.dumps(tool_args(0, '{"file_path": "a"}')))


def test_an_error_chunk_raises_an_upstream_error_and_bad_data_a_value_error() -> None:
    adapter = BRIDGE.stream(CLASSIC, REQUEST_ID, CREATED)
    adapter.feed("", json.dumps(TEXT_STREAM[1]))
    # OpenRouter's mid-stream error: a chunk with an error and finish_reason "error"
    error = {
        "id": "gen-1760000000-abc",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": "openai/gpt-5-mini",
        "provider": "OpenAI",
        "error": {"code": "server_error", "message": "Upstream overloaded"},
        "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}],
    }

    with pytest.raises(UpstreamError) as exc_info:
        adapter.feed("", json.dumps(error))
    assert exc_info.value.upstream_message == "Upstream overloaded"
    assert exc_info.value.code == "api_error"
    with pytest.raises(ValueError):
        adapter.feed("", '{"choices": [')
    assert adapter.finished is False
