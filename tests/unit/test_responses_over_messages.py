"""OpenAI Responses (Codex CLI, ``client.responses``) over Anthropic Messages.

Translated requests are checked against ``anthropic.types`` params, translated answers parse with
``openai.types.responses.Response``, and every translated stream event validates as a
``ResponseStreamEvent`` and is fed to the openai SDK's own accumulator (the one behind
``client.responses.stream()``), whose final response is what the client ends up with.
"""

from __future__ import annotations

import functools
import itertools
import json
from decimal import Decimal
from typing import Any

import httpx
import pytest
from anthropic.types import (
    DocumentBlockParam,
    ImageBlockParam,
    Message,
    RawMessageStreamEvent,
    RedactedThinkingBlockParam,
    TextBlockParam,
    ThinkingBlockParam,
    ToolParam,
    ToolResultBlockParam,
    ToolUseBlockParam,
)
from anthropic.types.message_create_params import MessageCreateParamsNonStreaming, MessageCreateParamsStreaming
from openai import omit
from openai.lib.streaming.responses import ResponseStreamState
from openai.types.responses import (
    Response,
    ResponseCustomToolCall,
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseReasoningItem,
    ResponseStreamEvent,
)
from pydantic import TypeAdapter
from starlette.testclient import TestClient

from meterway.accounts.dal.quota_store import Standing
from meterway.accounts.logic.key_secrets import hash_secret, mint_key
from meterway.accounts.models import KeyLimits
from meterway.core.errors import InvalidRequest, UpstreamError
from meterway.core.settings import ProxySettings, SecretText
from meterway.ledger.models import TokenUsage
from meterway.proxy.dal.upstream import Upstream
from meterway.proxy.handlers.app import create_app
from meterway.proxy.handlers.deps import ProxyDeps
from meterway.proxy.logic.catalog import ModelRoute
from meterway.proxy.providers import build_providers
from meterway.proxy.translate.responses_over_messages.bridge import ResponsesOverMessages
from tests.fakes import InMemoryKeyStore, InMemoryLedger, InMemorySpill

SONNET = ModelRoute("anthropic/claude-sonnet-4-5", "anthropic", "claude-sonnet-4-5")
OPUS_41 = ModelRoute("anthropic/claude-opus-4-1", "anthropic", "claude-opus-4-1")
HAIKU_35 = ModelRoute("anthropic/claude-3-5-haiku", "anthropic", "claude-3-5-haiku-20241022")
REQUEST_ID = "01JZ8Q4M3V7XK2"
CREATED = 1_760_000_000
BRIDGE = ResponsesOverMessages()
PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="

# ================================================================= what Codex sends

INSTRUCTIONS = "You are Codex, based on GPT-5. You are running as a coding agent in the Codex CLI."
PERMISSIONS = "<permissions instructions>Filesystem sandboxing: workspace-write.</permissions instructions>"
ENVIRONMENT = "<environment_context>\n  <cwd>/work/app</cwd>\n  <shell>bash</shell>\n</environment_context>"
SHELL_TOOL: dict[str, Any] = {
    "type": "function",
    "name": "shell",
    "description": "Runs a shell command and returns its output.",
    "strict": False,
    "parameters": {
        "type": "object",
        "properties": {
            "command": {"type": "array", "items": {"type": "string"}, "description": "The command to execute"},
            "workdir": {"type": "string", "description": "The working directory to execute the command in"},
            "timeout_ms": {"type": "number", "description": "The timeout for the command in milliseconds"},
        },
        "required": ["command"],
        "additionalProperties": False,
    },
}
UPDATE_PLAN_TOOL: dict[str, Any] = {
    "type": "function",
    "name": "update_plan",
    "description": "Updates the task plan.",
    "strict": False,
    "parameters": {
        "type": "object",
        "properties": {
            "explanation": {"type": "string"},
            "plan": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"step": {"type": "string"}, "status": {"type": "string"}},
                    "required": ["step", "status"],
                    "additionalProperties": False,
                },
            },
        },
        "required": ["plan"],
        "additionalProperties": False,
    },
}
APPLY_PATCH_GRAMMAR = (
    'start: begin_patch hunk+ end_patch\nbegin_patch: "*** Begin Patch" LF\nend_patch: "*** End Patch" LF?'
)
APPLY_PATCH_TOOL: dict[str, Any] = {
    "type": "custom",
    "name": "apply_patch",
    "description": "Use the `apply_patch` tool to edit files. This is a FREEFORM tool, so do not wrap the patch in JSON.",
    "format": {"type": "grammar", "syntax": "lark", "definition": APPLY_PATCH_GRAMMAR},
}
MULTI_AGENT_TOOL: dict[str, Any] = {
    "type": "namespace",
    "name": "multi_agent_v1",
    "description": "Tools to run sub-agents.",
    "tools": [
        {
            "type": "function",
            "name": "spawn_agent",
            "description": "Starts a sub-agent.",
            "strict": False,
            "parameters": {
                "type": "object",
                "properties": {"message": {"type": "string"}},
                "additionalProperties": False,
            },
        },
        {
            "type": "function",
            "name": "wait_agent",
            "description": "Waits for sub-agents.",
            "strict": False,
            "parameters": {
                "type": "object",
                "properties": {"targets": {"type": "array", "items": {"type": "string"}}},
                "required": ["targets"],
                "additionalProperties": False,
            },
        },
    ],
}
PATCH = "*** Begin Patch\n*** Update File: app/math.py\n@@\n-    return a - b\n+    return a + b\n*** End Patch\n"
THINKING_1 = "The user wants the failing test fixed. I should run the tests first."
SIGNATURE_1 = "EqQBCkgIBRABGAIiQL7bJ0qZ1rTnWq0kC9Q1x8a2Y5n0gTz2vLrM1bF3yQ8"
THINKING_2 = "add() subtracts; the patch is one line."
SIGNATURE_2 = "ErUBCkYIBxgCIkBZ8kq1rT0vM3pQyLw2xN9dF4hJ6sA1cE5gH7iK0lO2uR"


def codex_body(input_items: list[dict[str, Any]], **overrides: Any) -> dict[str, Any]:
    """A Codex CLI request as the gateway's front door hands it over (validated, None fields dropped);
    like Codex 0.171 (tests/e2e/clients/FINDINGS.md) it has no ``instructions``: its system prompt is
    the first input item, a developer message."""
    hosted = [{"type": "web_search", "external_web_access": False}, {"type": "local_shell"}]
    return {
        "model": SONNET.id,
        "input": input_items,
        "tools": [SHELL_TOOL, UPDATE_PLAN_TOOL, APPLY_PATCH_TOOL, MULTI_AGENT_TOOL, *hosted],
        "tool_choice": "auto",
        "parallel_tool_calls": True,
        "reasoning": {"effort": "medium", "summary": "auto"},
        "store": False,
        "stream": True,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "019a3c1e-7d2f-7c41-b8a0-5e6f7a8b9c0d",
        "client_metadata": {"thread_id": "019a3c1e-7d2f-7c41-b8a0-5e6f7a8b9c0d", "turn_id": "019a3c1e-8e30"},
    } | overrides


def opening_items(task: str = "Fix the failing test in tests/test_math.py") -> list[dict[str, Any]]:
    """Codex's first items, each with the client-made ``id`` it sends despite ``store: false``."""
    texts = [("developer", INSTRUCTIONS), ("developer", PERMISSIONS), ("user", ENVIRONMENT), ("user", task)]
    return [
        {"type": "message", "id": f"msg_5e1c94d2-{i}", "role": role, "content": [{"type": "input_text", "text": text}]}
        for i, (role, text) in enumerate(texts)
    ]


# ================================================================= Anthropic request checks

_BLOCK_PARAMS: dict[str, Any] = {
    "text": TextBlockParam,
    "image": ImageBlockParam,
    "document": DocumentBlockParam,
    "tool_use": ToolUseBlockParam,
    "tool_result": ToolResultBlockParam,
    "thinking": ThinkingBlockParam,
    "redacted_thinking": RedactedThinkingBlockParam,
}


@functools.cache
def _adapter(params_type: Any) -> TypeAdapter[Any]:
    return TypeAdapter(params_type)


def assert_typed_dict(params_type: Any, value: dict[str, Any]) -> None:
    extra = set(value) - set(params_type.__annotations__)
    assert not extra, f"{params_type.__name__} has no keys {extra}"
    _adapter(params_type).validate_python(value)


def assert_valid_anthropic_request(req: dict[str, Any]) -> None:
    """The anthropic SDK's request types (lists are ``Iterable`` there, so blocks are checked one by
    one), plus Anthropic's rules: alternating roles, tool results first in a user turn, every
    tool_use answered in the next turn. SDK 2.x no longer declares ``temperature``/``top_p``."""
    sampling = {name: req[name] for name in ("temperature", "top_p") if name in req}
    assert all(0 <= value <= 1 for value in sampling.values()), sampling
    params_type = MessageCreateParamsStreaming if req.get("stream") else MessageCreateParamsNonStreaming
    assert_typed_dict(params_type, {name: value for name, value in req.items() if name not in sampling})
    for block in req.get("system", []):
        assert_typed_dict(TextBlockParam, block)
    roles = [message["role"] for message in req["messages"]]
    assert all(a != b for a, b in itertools.pairwise(roles)), roles
    for i, message in enumerate(req["messages"]):
        assert set(message) == {"role", "content"} and message["content"]
        kinds = [block["type"] for block in message["content"]]
        assert kinds == sorted(kinds, key=lambda kind: kind != "tool_result"), kinds
        for block in message["content"]:
            assert_typed_dict(_BLOCK_PARAMS[block["type"]], block)
        calls = {block["id"] for block in message["content"] if block["type"] == "tool_use"}
        if calls and i + 1 < len(req["messages"]):
            answers = {b["tool_use_id"] for b in req["messages"][i + 1]["content"] if b["type"] == "tool_result"}
            assert answers == calls
    for tool in req.get("tools", []):
        assert_typed_dict(ToolParam, tool)
    if "thinking" in req:
        assert 1024 <= req["thinking"]["budget_tokens"] < req["max_tokens"]


def translate(body: dict[str, Any], route: ModelRoute = SONNET) -> dict[str, Any]:
    req = BRIDGE.request(route, body)
    assert_valid_anthropic_request(req)
    return req


def envelope_of(events: list[dict[str, Any]]) -> str:
    """The encrypted_content of the first reasoning item a translated stream finished."""
    done = [e["item"] for e in events if e["type"] == "response.output_item.done" and e["item"]["type"] == "reasoning"]
    return str(done[0]["encrypted_content"])


# ================================================================= streams as Anthropic sends them


def message_start(input_tokens: int = 2310, cache_read: int = 11_264, cache_write: int = 0) -> tuple[str, Any]:
    usage = {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": cache_write,
        "cache_read_input_tokens": cache_read,
        "output_tokens": 4,
    }
    message = {
        "id": "msg_01HpL8KxW2nS5qT4vB7cE9fG",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": usage,
    }
    return ("message_start", {"type": "message_start", "message": message})


def block_start(index: int, block: dict[str, Any]) -> tuple[str, Any]:
    return ("content_block_start", {"type": "content_block_start", "index": index, "content_block": block})


def delta(index: int, body: dict[str, Any]) -> tuple[str, Any]:
    return ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": body})


def block_stop(index: int) -> tuple[str, Any]:
    return ("content_block_stop", {"type": "content_block_stop", "index": index})


def message_end(stop_reason: str, output_tokens: int) -> list[tuple[str, Any]]:
    return [
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": output_tokens},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]


TEXT_STREAM: list[tuple[str, Any]] = [
    message_start(input_tokens=25, cache_read=0),
    block_start(0, {"type": "text", "text": ""}),
    ("ping", {"type": "ping"}),
    delta(0, {"type": "text_delta", "text": "Hello! How can I"}),
    delta(0, {"type": "text_delta", "text": " help with your code today?"}),
    block_stop(0),
    *message_end("end_turn", 14),
]

# Thinking with its signature, a preamble, then a shell call whose input arrives in fragments.
TOOL_STREAM: list[tuple[str, Any]] = [
    message_start(),
    block_start(0, {"type": "thinking", "thinking": "", "signature": ""}),
    delta(0, {"type": "thinking_delta", "thinking": THINKING_1[:30]}),
    delta(0, {"type": "thinking_delta", "thinking": THINKING_1[30:]}),
    delta(0, {"type": "signature_delta", "signature": SIGNATURE_1}),
    block_stop(0),
    block_start(1, {"type": "text", "text": ""}),
    delta(1, {"type": "text_delta", "text": "I'll run the tests."}),
    block_stop(1),
    block_start(2, {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "shell", "input": {}}),
    delta(2, {"type": "input_json_delta", "partial_json": ""}),
    delta(2, {"type": "input_json_delta", "partial_json": '{"command": ["pyt'}),
    delta(2, {"type": "input_json_delta", "partial_json": 'est", "-q"], "workd'}),
    delta(2, {"type": "input_json_delta", "partial_json": 'ir": "/work/app"}'}),
    block_stop(2),
    *message_end("tool_use", 187),
]

# The freeform apply_patch call: its JSON-encoded text split inside escapes and a surrogate pair.
PATCH_WITH_ESCAPES = (
    '*** Begin Patch\n*** Update File: app/math.py\n+    """Sum of "a" and b: été 😀"""\n*** End Patch\n'
)
PATCH_FRAGMENTS = [
    "",
    '{"freeform_in',
    'put": "*** Begin Patch\\',
    'n*** Update File: app/math.py\\n+    \\"\\"\\"Sum of \\',
    '"a\\" and b: \\u00',
    "e9t\\u00e9 \\ud83d",
    '\\ude00\\"\\"\\"\\n*** End Patch\\n"}',
]
CUSTOM_STREAM: list[tuple[str, Any]] = [
    message_start(),
    block_start(0, {"type": "thinking", "thinking": "", "signature": ""}),
    delta(0, {"type": "thinking_delta", "thinking": THINKING_2}),
    delta(0, {"type": "signature_delta", "signature": SIGNATURE_2}),
    block_stop(0),
    block_start(1, {"type": "tool_use", "id": "toolu_01PatchQ7yR2sT4uV6wX8zA", "name": "apply_patch", "input": {}}),
    *(delta(1, {"type": "input_json_delta", "partial_json": fragment}) for fragment in PATCH_FRAGMENTS),
    block_stop(1),
    *message_end("tool_use", 96),
]

EVENT_ADAPTER: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)


def run_stream(
    events: list[tuple[str, Any]], route: ModelRoute = SONNET
) -> tuple[Any, list[dict[str, Any]], list[Any]]:
    """Feed recorded Anthropic events to the bridge's adapter and its output to the openai SDK's
    accumulator; returns the adapter, the translated events and what the accumulator emitted."""
    adapter = BRIDGE.stream(route, REQUEST_ID, CREATED)
    state: ResponseStreamState[Any] = ResponseStreamState(input_tools=omit, text_format=omit)
    out: list[dict[str, Any]] = []
    accumulated: list[Any] = []
    for name, data in events:
        for event in adapter.feed(name, json.dumps(data)):
            out.append(event)
            accumulated += state.handle_event(EVENT_ADAPTER.validate_python(event))
    assert [event["sequence_number"] for event in out] == list(range(len(out)))
    return adapter, out, accumulated


def final_response(accumulated: list[Any], kind: str = "response.completed") -> Response:
    finals = [event.response for event in accumulated if event.type == kind]
    assert len(finals) == 1
    return Response.model_validate(finals[0].model_dump())


def test_recorded_stream_fixtures_match_the_anthropic_sdk_event_types() -> None:
    adapter: TypeAdapter[Any] = TypeAdapter(RawMessageStreamEvent)
    for name, data in TEXT_STREAM + TOOL_STREAM + CUSTOM_STREAM:
        if name != "ping":
            adapter.validate_python(data)
    assert json.loads("".join(PATCH_FRAGMENTS)) == {"freeform_input": PATCH_WITH_ESCAPES}


# ================================================================= request: a Codex turn


def test_codex_tool_loop_turn_becomes_a_valid_anthropic_request() -> None:
    # Given Codex's second request of a turn: the first answer (thinking, preamble, shell call) and
    # the second (thinking, apply_patch) replayed with their outputs, as Codex stores them
    _, first, _ = run_stream(TOOL_STREAM)
    _, second, _ = run_stream(CUSTOM_STREAM)
    body = codex_body(
        [
            *opening_items(),
            {
                "type": "reasoning",
                "summary": [{"type": "summary_text", "text": THINKING_1}],
                "encrypted_content": envelope_of(first),
            },
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "I'll run the tests."}],
            },
            {
                "type": "function_call",
                "name": "shell",
                "arguments": '{"command":["pytest","-q"],"workdir":"/work/app"}',
                "call_id": "toolu_01A09q90qw90lq917835lq9",
            },
            {
                "type": "function_call_output",
                "call_id": "toolu_01A09q90qw90lq917835lq9",
                "output": "1 failed, 3 passed",
            },
            {
                "type": "reasoning",
                "summary": [{"type": "summary_text", "text": THINKING_2}],
                "encrypted_content": envelope_of(second),
            },
            {
                "type": "custom_tool_call",
                "status": "completed",
                "call_id": "toolu_01PatchQ7yR2sT4uV6wX8zA",
                "name": "apply_patch",
                "input": PATCH,
            },
            {
                "type": "custom_tool_call_output",
                "call_id": "toolu_01PatchQ7yR2sT4uV6wX8zA",
                "output": "Success. Updated the following files:\nM app/math.py\n",
            },
        ],
        parallel_tool_calls=False,
    )

    # When it is translated
    req = translate(body)

    # Then the developer messages are the system prompt, in order
    assert req["model"] == "claude-sonnet-4-5"
    assert req["system"] == [{"type": "text", "text": INSTRUCTIONS}, {"type": "text", "text": PERMISSIONS}]
    # And the conversation alternates, each answer's thinking coming back first with its signature
    assert req["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": ENVIRONMENT},
                {"type": "text", "text": "Fix the failing test in tests/test_math.py"},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": THINKING_1, "signature": SIGNATURE_1},
                {"type": "text", "text": "I'll run the tests."},
                {
                    "type": "tool_use",
                    "id": "toolu_01A09q90qw90lq917835lq9",
                    "name": "shell",
                    "input": {"command": ["pytest", "-q"], "workdir": "/work/app"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01A09q90qw90lq917835lq9", "content": "1 failed, 3 passed"}
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": THINKING_2, "signature": SIGNATURE_2},
                {
                    "type": "tool_use",
                    "id": "toolu_01PatchQ7yR2sT4uV6wX8zA",
                    "name": "apply_patch",
                    "input": {"freeform_input": PATCH},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_01PatchQ7yR2sT4uV6wX8zA",
                    "content": "Success. Updated the following files:\nM app/math.py\n",
                }
            ],
        },
    ]
    # And the function tools pass as they are, apply_patch as one string property with its grammar,
    # the namespace's functions as "<namespace>--<name>", and the hosted web_search and local_shell
    # are left out
    assert req["tools"][:2] == [
        {"name": "shell", "description": SHELL_TOOL["description"], "input_schema": SHELL_TOOL["parameters"]},
        {
            "name": "update_plan",
            "description": UPDATE_PLAN_TOOL["description"],
            "input_schema": UPDATE_PLAN_TOOL["parameters"],
        },
    ]
    patch_tool = req["tools"][2]
    assert (patch_tool["name"], patch_tool["description"]) == ("apply_patch", APPLY_PATCH_TOOL["description"])
    assert patch_tool["input_schema"]["required"] == ["freeform_input"]
    assert APPLY_PATCH_GRAMMAR in patch_tool["input_schema"]["properties"]["freeform_input"]["description"]
    assert [tool["name"] for tool in req["tools"][3:]] == ["multi_agent_v1--spawn_agent", "multi_agent_v1--wait_agent"]
    assert req["tools"][3]["description"] == "Starts a sub-agent.\n\n(multi_agent_v1: Tools to run sub-agents.)"
    # And parallel_tool_calls false, medium effort and the cache key are honoured
    assert req["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    assert req["thinking"] == {"type": "enabled", "budget_tokens": 4096}
    assert req["max_tokens"] == 32_000
    assert req["cache_control"] == {"type": "ephemeral"}
    # And OpenAI's bookkeeping (store, include, client_metadata…) is not sent on
    assert set(req) == {
        "model",
        "system",
        "messages",
        "tools",
        "tool_choice",
        "thinking",
        "max_tokens",
        "stream",
        "cache_control",
    }


def test_reasoning_items_this_translation_did_not_make_are_left_out() -> None:
    # Given a conversation begun on an OpenAI model, with its reasoning and a damaged envelope
    items = [
        {"type": "message", "role": "user", "content": "What does `git rebase -i` do?"},
        {
            "type": "reasoning",
            "summary": [{"type": "summary_text", "text": "**Explaining interactive rebase**"}],
            "encrypted_content": "gAAAAABo9xK2mQ4lJ8vR1tN6pW3sZ0yB5cH7dF2gA9eK4iL1oU6rT8qM3nV5xC0jP7bD2fG4hE9kS1aW6zY",
        },
        {"type": "reasoning", "summary": [], "encrypted_content": "mw-anthropic-thinking.v1.bm90IGpzb24="},
        {"type": "reasoning", "summary": [], "encrypted_content": None},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "It rewrites commits."}]},
        {"type": "message", "role": "user", "content": "Show an example."},
    ]

    req = translate(codex_body(items, reasoning={"effort": "high"}))

    # Then the turns hold no thinking, and thinking is still on for the new answer
    assert [[block["type"] for block in m["content"]] for m in req["messages"]] == [["text"], ["text"], ["text"]]
    assert req["thinking"] == {"type": "enabled", "budget_tokens": 16384}


def test_tool_results_come_first_in_a_user_turn_and_thinking_first_in_a_calling_assistant_turn() -> None:
    # Given parallel calls replayed in an order Anthropic refuses: text before the reasoning, and a
    # user message between the outputs
    _, events, _ = run_stream(TOOL_STREAM)
    items = [
        *opening_items(),
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking both."}]},
        {"type": "reasoning", "summary": [], "encrypted_content": envelope_of(events)},
        {"type": "function_call", "name": "shell", "arguments": '{"command":["ls"]}', "call_id": "call_a"},
        {"type": "function_call", "name": "shell", "arguments": '{"command":["pwd"]}', "call_id": "call_b"},
        {"type": "function_call_output", "call_id": "call_a", "output": "app tests"},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Also check git."}]},
        {"type": "function_call_output", "call_id": "call_b", "output": [{"type": "input_text", "text": "/work/app"}]},
    ]

    req = translate(codex_body(items))

    assistant, user = req["messages"][1:]
    assert [block["type"] for block in assistant["content"]] == ["thinking", "text", "tool_use", "tool_use"]
    assert user["content"] == [
        {"type": "tool_result", "tool_use_id": "call_a", "content": "app tests"},
        {"type": "tool_result", "tool_use_id": "call_b", "content": [{"type": "text", "text": "/work/app"}]},
        {"type": "text", "text": "Also check git."},
    ]


def test_string_input_images_and_files_become_anthropic_content() -> None:
    assert translate({"model": SONNET.id, "input": "Hi", "stream": False})["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Hi"}]}
    ]
    content = [
        {"type": "input_text", "text": "What is wrong in this screenshot and report?"},
        {"type": "input_image", "image_url": f"data:image/png;base64,{PNG_B64}", "detail": "auto"},
        {"type": "input_image", "image_url": "https://example.com/screen.jpg"},
        {"type": "input_file", "filename": "report.pdf", "file_data": "data:application/pdf;base64,JVBERi0xLjQK"},
    ]

    req = translate({"model": SONNET.id, "input": [{"role": "user", "content": content}], "stream": False})

    assert req["messages"][0]["content"][1:] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/screen.jpg"}},
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0xLjQK"}},
    ]


def test_hosted_tool_calls_in_the_history_are_left_out_with_their_outputs() -> None:
    # Given a history from an OpenAI model that searched the web and ran local_shell
    items = [
        {"type": "message", "role": "user", "content": "Which Python is installed?"},
        {
            "type": "web_search_call",
            "id": "ws_1",
            "status": "completed",
            "action": {"type": "search", "query": "python"},
        },
        {
            "type": "local_shell_call",
            "id": "lsh_1",
            "call_id": "call_ls1",
            "status": "completed",
            "action": {"type": "exec", "command": ["python3", "--version"], "env": {}},
        },
        {"type": "function_call_output", "call_id": "call_ls1", "output": "Python 3.11.9"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Python 3.11.9."}]},
        {"type": "message", "role": "user", "content": "Thanks"},
    ]

    req = translate(codex_body(items))

    assert [m["content"] for m in req["messages"]] == [
        [{"type": "text", "text": "Which Python is installed?"}],
        [{"type": "text", "text": "Python 3.11.9."}],
        [{"type": "text", "text": "Thanks"}],
    ]


def test_a_namespaced_function_call_round_trips_with_its_namespace() -> None:
    # Given Claude calling a function of Codex's multi_agent_v1 namespace
    spawn = {
        "type": "tool_use",
        "id": "toolu_01Spawn",
        "name": "multi_agent_v1--spawn_agent",
        "input": {"message": "Lint"},
    }

    call = Response.model_validate(
        BRIDGE.answer(SONNET, {**TOOL_ANSWER, "content": [spawn]}, REQUEST_ID, CREATED).body
    ).output[0]

    # Then Codex gets the name and namespace it routes by
    assert isinstance(call, ResponseFunctionToolCall)
    assert (call.name, call.namespace, call.call_id) == ("spawn_agent", "multi_agent_v1", "toolu_01Spawn")
    # And replayed, the call is the tool Anthropic knows again
    replayed = call.model_dump(exclude={"id"}, exclude_none=True)
    output = {"type": "function_call_output", "call_id": "toolu_01Spawn", "output": "agent-7 started"}
    req = translate(codex_body([*opening_items(), replayed, output]))
    assert req["messages"][1]["content"] == [{**spawn}]


def test_client_responses_instructions_and_an_additional_tools_item() -> None:
    # Given instructions, and tools offered in an additional_tools input item
    body = {
        "model": SONNET.id,
        "instructions": "Answer in French.",
        "input": [
            {"type": "additional_tools", "role": "developer", "tools": [MULTI_AGENT_TOOL]},
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": "Start a helper agent."},
        ],
        "stream": False,
    }

    req = translate(body)

    assert req["system"] == [{"type": "text", "text": "Answer in French."}, {"type": "text", "text": "Be brief."}]
    assert [tool["name"] for tool in req["tools"]] == ["multi_agent_v1--spawn_agent", "multi_agent_v1--wait_agent"]


def test_a_call_cut_off_by_max_tokens_stays_readable_in_the_next_turn() -> None:
    # Given a streamed shell call cut off by max_tokens, which Codex keeps in its history
    cut = [*TOOL_STREAM[:12], block_stop(2), *message_end("max_tokens", 32_000)]
    _, events, _ = run_stream(cut)
    call = next(
        e["item"] for e in events if e["type"] == "response.output_item.done" and e["item"]["type"] == "function_call"
    )
    items = [
        *opening_items(),
        {k: v for k, v in call.items() if k != "id"},
        {"type": "function_call_output", "call_id": call["call_id"], "output": "failed to parse function arguments"},
    ]

    req = translate(codex_body(items))

    # Then the next request keeps the call as it was instead of failing every later turn
    assert req["messages"][1]["content"] == [
        {
            "type": "tool_use",
            "id": "toolu_01A09q90qw90lq917835lq9",
            "name": "shell",
            "input": {"invalid_json_arguments": '{"command": ["pyt'},
        }
    ]


def test_history_with_tool_calls_but_no_tools_declares_them_without_letting_the_model_call() -> None:
    # Given Codex's compaction request: the history with its tool calls, and no tools
    items = [
        *opening_items(),
        {"type": "function_call", "name": "shell", "arguments": '{"command":["ls"]}', "call_id": "call_a"},
        {"type": "function_call_output", "call_id": "call_a", "output": "app tests"},
        {"type": "message", "role": "user", "content": "Summarize the conversation so far."},
    ]

    req = translate(codex_body(items, tools=[], reasoning=None))

    # Then Anthropic gets the tools the history used (it refuses tool blocks without tools), unusable
    assert [tool["name"] for tool in req["tools"]] == ["shell"]
    assert req["tool_choice"] == {"type": "none"}


# ================================================================= request: parameters


@pytest.mark.parametrize(
    ("route", "overrides", "max_tokens", "thinking"),
    [
        (SONNET, {"reasoning": None}, 32_000, None),
        (SONNET, {"reasoning": {"effort": "minimal"}}, 32_000, None),
        (SONNET, {"reasoning": {"effort": "high"}}, 32_000, 16_384),
        (SONNET, {"max_output_tokens": 100_000, "reasoning": None}, 64_000, None),
        (SONNET, {"max_output_tokens": 2000, "reasoning": {"effort": "medium"}}, 4096 + 4096, 4096),
        (SONNET, {"max_output_tokens": 20_000, "reasoning": {"effort": "high"}}, 20_000, 16_384),
        (OPUS_41, {"reasoning": {"effort": "xhigh"}}, 32_000, 32_000 - 4096),
        (HAIKU_35, {"reasoning": {"effort": "high"}}, 8192, None),
    ],
)
def test_max_tokens_always_set_within_the_model_limit_and_above_the_thinking_budget(
    route: ModelRoute, overrides: dict[str, Any], max_tokens: int, thinking: int | None
) -> None:
    req = translate(codex_body([{"role": "user", "content": "Refactor utils.py"}], **overrides), route)

    assert req["max_tokens"] == max_tokens
    assert req.get("thinking", {}).get("budget_tokens") == thinking


def test_sampling_is_clamped_and_dropped_with_thinking() -> None:
    hi = [{"role": "user", "content": "Name a colour."}]

    plain = translate({"model": SONNET.id, "input": hi, "temperature": 1.4, "top_p": 0.9, "stream": False})
    only_top_p = translate({"model": SONNET.id, "input": hi, "top_p": 0.9, "stream": False})
    thinking = translate(codex_body(hi, temperature=0.2, top_p=0.9))

    # Recent Claude models refuse temperature and top_p together, and both with thinking
    assert (plain["temperature"], "top_p" in plain) == (1.0, False)
    assert only_top_p["top_p"] == 0.9
    assert "temperature" not in thinking and "top_p" not in thinking and "thinking" in thinking


@pytest.mark.parametrize(
    ("tool_choice", "parallel", "expected"),
    [
        ("auto", True, None),
        ("required", True, {"type": "any"}),
        ("none", False, {"type": "none"}),
        (
            {"type": "function", "name": "shell"},
            False,
            {"type": "tool", "name": "shell", "disable_parallel_tool_use": True},
        ),
        ({"type": "custom", "name": "apply_patch"}, True, {"type": "tool", "name": "apply_patch"}),
    ],
)
def test_tool_choice_mapping(tool_choice: Any, parallel: bool, expected: dict[str, Any] | None) -> None:
    body = codex_body([{"role": "user", "content": "Go"}], tool_choice=tool_choice, parallel_tool_calls=parallel)

    req = translate(body)

    assert req.get("tool_choice") == expected
    # Anthropic refuses thinking with a forced tool call: the tool call wins
    assert ("thinking" in req) is (expected is None or expected["type"] in ("auto", "none"))


def test_allowed_tools_narrow_the_tools_sent() -> None:
    choice = {"type": "allowed_tools", "mode": "required", "tools": [{"type": "function", "name": "update_plan"}]}

    req = translate(codex_body([{"role": "user", "content": "Plan it"}], tool_choice=choice, reasoning=None))

    assert [tool["name"] for tool in req["tools"]] == ["update_plan"]
    assert req["tool_choice"] == {"type": "any"}


def test_thinking_stays_off_to_continue_a_tool_call_made_without_it() -> None:
    # Given a tool call answered without thinking (effort was minimal), continued at high effort
    items = [
        *opening_items(),
        {"type": "function_call", "name": "shell", "arguments": '{"command":["ls"]}', "call_id": "call_a"},
        {"type": "function_call_output", "call_id": "call_a", "output": "app tests"},
    ]

    req = translate(codex_body(items, reasoning={"effort": "high"}))

    # Then thinking waits for the next turn: Anthropic refuses to switch it on mid-turn
    assert "thinking" not in req


def test_json_schema_format_user_and_cache_retention() -> None:
    schema = {
        "type": "object",
        "properties": {"ok": {"type": "boolean"}},
        "required": ["ok"],
        "additionalProperties": False,
    }
    body = codex_body(
        [{"role": "user", "content": "Did the tests pass?"}],
        text={
            "verbosity": "low",
            "format": {"type": "json_schema", "name": "codex_output_schema", "strict": True, "schema": schema},
        },
        safety_identifier="user-4f1c",
        prompt_cache_retention="24h",
    )

    req = translate(body)

    assert req["output_config"] == {"format": {"type": "json_schema", "schema": schema}}
    assert req["metadata"] == {"user_id": "user-4f1c"}
    assert req["cache_control"] == {"type": "ephemeral", "ttl": "1h"}


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"background": True}, "'background'"),
        ({"conversation": "conv_68a1"}, "'conversation'"),
        ({"top_logprobs": 5}, "'top_logprobs'"),
        ({"include": ["message.output_text.logprobs"]}, "logprobs"),
        ({"text": {"format": {"type": "json_object"}}}, "text.format"),
        ({"reasoning": {"effort": "extreme"}}, "reasoning.effort"),
        ({"max_output_tokens": 0}, "max_output_tokens"),
        ({"tools": [{"type": "web_search"}], "tool_choice": "required"}, "tool_choice"),
        ({"tool_choice": {"type": "web_search_preview"}}, "hosted tools"),
        ({"input": [{"type": "compaction", "encrypted_content": "gAAAAB"}]}, "input[0]: a 'compaction' item"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0]: the gateway keeps no items"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file-1"}]}]},
            "input[0].content[0]",
        ),
        ({"input": [{"role": "user", "content": [{"type": "input_audio"}]}]}, "'input_audio'"),
        ({"input": [{"role": "system", "content": "Be brief."}]}, "at least one user or assistant"),
    ],
)
def test_what_would_change_the_answer_is_refused_naming_the_field(overrides: dict[str, Any], fragment: str) -> None:
    body = codex_body([{"role": "user", "content": "Hi"}]) | overrides

    with pytest.raises(InvalidRequest) as exc_info:
        BRIDGE.request(SONNET, body)

    assert fragment in exc_info.value.message
    assert exc_info.value.status == 400


# ================================================================= answers (non-streamed)

TOOL_ANSWER: dict[str, Any] = {
    "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5-20250929",
    "content": [
        {"type": "thinking", "thinking": THINKING_1, "signature": SIGNATURE_1},
        {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpP"},
        {"type": "text", "text": "I'll run the tests, then fix the code."},
        {
            "type": "tool_use",
            "id": "toolu_01A09q90qw90lq917835lq9",
            "name": "shell",
            "input": {"command": ["pytest", "-q"]},
        },
        {
            "type": "tool_use",
            "id": "toolu_01PatchQ7yR2sT4uV6wX8zA",
            "name": "apply_patch",
            "input": {"freeform_input": PATCH},
        },
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 310,
        "cache_creation_input_tokens": 2048,
        "cache_read_input_tokens": 9000,
        "cache_creation": {"ephemeral_5m_input_tokens": 2048, "ephemeral_1h_input_tokens": 0},
        "output_tokens": 240,
    },
}


def test_thinking_and_tool_calls_become_reasoning_function_and_custom_tool_call_items() -> None:
    Message.model_validate(TOOL_ANSWER)

    answer = BRIDGE.answer(SONNET, TOOL_ANSWER, REQUEST_ID, CREATED)

    response = Response.model_validate(answer.body)
    assert (response.id, response.model, response.created_at, response.status) == (
        f"resp_{REQUEST_ID}",
        SONNET.id,
        CREATED,
        "completed",
    )
    reasoning, redacted, message, call, patch = response.output
    assert isinstance(reasoning, ResponseReasoningItem) and isinstance(redacted, ResponseReasoningItem)
    assert [part.text for part in reasoning.summary] == [THINKING_1]
    assert redacted.summary == [] and redacted.encrypted_content
    assert (
        isinstance(message, ResponseOutputMessage) and response.output_text == "I'll run the tests, then fix the code."
    )
    assert isinstance(call, ResponseFunctionToolCall)
    assert (call.call_id, call.name, json.loads(call.arguments)) == (
        "toolu_01A09q90qw90lq917835lq9",
        "shell",
        {"command": ["pytest", "-q"]},
    )
    assert isinstance(patch, ResponseCustomToolCall)
    assert (patch.call_id, patch.name, patch.input) == ("toolu_01PatchQ7yR2sT4uV6wX8zA", "apply_patch", PATCH)
    assert len({item.id for item in response.output}) == 5
    # And usage counts every prompt token, cache reads and writes included
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.input_tokens_details.cached_tokens) == (310 + 2048 + 9000, 9000)
    assert (response.usage.output_tokens, response.usage.total_tokens) == (240, 11_598)
    assert answer.tokens == TokenUsage(
        input_tokens=310, output_tokens=240, cache_creation_5m_tokens=2048, cache_read_tokens=9000
    )
    assert answer.finish_reason == "completed"
    assert answer.output_chars == len(THINKING_1) + len("I'll run the tests, then fix the code.") + len(
        call.arguments
    ) + len(PATCH)


def test_answer_reasoning_items_come_back_as_the_same_thinking_blocks() -> None:
    answer = BRIDGE.answer(SONNET, TOOL_ANSWER, REQUEST_ID, CREATED)
    replayed = [{k: v for k, v in item.items() if k != "id"} for item in answer.body["output"]]
    outputs = [
        {"type": "function_call_output", "call_id": "toolu_01A09q90qw90lq917835lq9", "output": "1 failed"},
        {"type": "custom_tool_call_output", "call_id": "toolu_01PatchQ7yR2sT4uV6wX8zA", "output": "Success."},
    ]

    req = translate(codex_body([*opening_items(), *replayed, *outputs]))

    assert req["messages"][1]["content"] == TOOL_ANSWER["content"]


def test_text_answer_and_max_tokens_stop() -> None:
    text = {**TOOL_ANSWER, "content": [{"type": "text", "text": "Done."}], "stop_reason": "end_turn"}
    cut = {**TOOL_ANSWER, "content": [{"type": "text", "text": "The fix is to"}], "stop_reason": "max_tokens"}

    done = Response.model_validate(BRIDGE.answer(SONNET, text, REQUEST_ID, CREATED).body)
    answer = BRIDGE.answer(SONNET, cut, REQUEST_ID, CREATED)
    incomplete = Response.model_validate(answer.body)

    assert (done.status, done.incomplete_details, done.output_text) == ("completed", None, "Done.")
    assert incomplete.status == "incomplete"
    assert incomplete.incomplete_details is not None and incomplete.incomplete_details.reason == "max_output_tokens"
    assert incomplete.output_text == "The fix is to"
    assert answer.finish_reason == "max_output_tokens"


# ================================================================= streams


def test_text_stream_accumulates_into_the_sdk_final_response() -> None:
    adapter, events, accumulated = run_stream(TEXT_STREAM)

    assert [event["type"] for event in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    response = final_response(accumulated)
    assert (response.id, response.model, response.status) == (f"resp_{REQUEST_ID}", SONNET.id, "completed")
    assert response.output_text == "Hello! How can I help with your code today?"
    assert response.usage is not None and (response.usage.input_tokens, response.usage.output_tokens) == (25, 14)
    assert adapter.finished and not adapter.ended
    assert (adapter.finish_reason, adapter.usage_reported, adapter.client_usage) == ("completed", True, None)
    assert adapter.usage == TokenUsage(input_tokens=25, output_tokens=14)
    assert adapter.output_chars == len("Hello! How can I help with your code today?")


def test_thinking_and_tool_call_stream_keeps_signature_and_arguments() -> None:
    adapter, events, accumulated = run_stream(TOOL_STREAM)

    response = final_response(accumulated)
    reasoning, message, call = response.output
    assert isinstance(reasoning, ResponseReasoningItem) and [p.text for p in reasoning.summary] == [THINKING_1]
    assert reasoning.encrypted_content and reasoning.encrypted_content == envelope_of(events)
    assert isinstance(message, ResponseOutputMessage) and response.output_text == "I'll run the tests."
    assert isinstance(call, ResponseFunctionToolCall)
    assert (call.call_id, call.name) == ("toolu_01A09q90qw90lq917835lq9", "shell")
    assert json.loads(call.arguments) == {"command": ["pytest", "-q"], "workdir": "/work/app"}
    # Codex reads the reasoning summary as it streams, and runs what each output_item.done carries
    summary = "".join(e["delta"] for e in events if e["type"] == "response.reasoning_summary_text.delta")
    arguments = "".join(e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta")
    assert (summary, json.loads(arguments)) == (THINKING_1, json.loads(call.arguments))
    done = [e["item"] for e in events if e["type"] == "response.output_item.done"]
    assert [item["type"] for item in done] == ["reasoning", "message", "function_call"]
    assert [e["output_index"] for e in events if e["type"] == "response.output_item.added"] == [0, 1, 2]
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.input_tokens_details.cached_tokens) == (2310 + 11_264, 11_264)
    assert (adapter.finish_reason, adapter.usage.output_tokens) == ("completed", 187)


def test_custom_tool_input_streams_as_decoded_text() -> None:
    _, events, accumulated = run_stream(CUSTOM_STREAM)

    response = final_response(accumulated)
    call = response.output[1]
    assert isinstance(call, ResponseCustomToolCall)
    assert (call.call_id, call.name, call.input) == ("toolu_01PatchQ7yR2sT4uV6wX8zA", "apply_patch", PATCH_WITH_ESCAPES)
    deltas = [e["delta"] for e in events if e["type"] == "response.custom_tool_call_input.delta"]
    assert "".join(deltas) == PATCH_WITH_ESCAPES
    assert len(deltas) > 1  # streamed, not held until the end
    # Every delta is valid text on its own (no half escape, no lone surrogate)
    assert all(delta.encode("utf-8") for delta in deltas)


def test_stream_cut_before_message_stop_has_no_final_event() -> None:
    adapter, events, _ = run_stream(TOOL_STREAM[:12])

    assert not adapter.finished
    assert (adapter.finish_reason, adapter.usage_reported) == (None, False)
    assert adapter.usage.cache_read_tokens == 11_264
    assert adapter.output_chars == len(THINKING_1) + len("I'll run the tests.") + len('{"command": ["pyt')
    assert not [e for e in events if e["type"] in ("response.completed", "response.incomplete")]


def test_max_tokens_stream_ends_incomplete() -> None:
    cut = [*TEXT_STREAM[:5], *message_end("max_tokens", 4096)]

    adapter, events, accumulated = run_stream(cut)

    assert events[-1]["type"] == "response.incomplete"
    response = final_response(accumulated, "response.incomplete")
    assert response.incomplete_details is not None and response.incomplete_details.reason == "max_output_tokens"
    assert response.output_text == "Hello! How can I help with your code today?"
    assert adapter.finish_reason == "max_output_tokens"


def test_error_event_raises_the_upstream_error() -> None:
    adapter = BRIDGE.stream(SONNET, REQUEST_ID, CREATED)
    adapter.feed(*_encoded(TEXT_STREAM[0]))

    with pytest.raises(UpstreamError) as exc_info:
        adapter.feed(
            "error", json.dumps({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
        )

    assert (exc_info.value.code, exc_info.value.upstream_message) == ("overloaded_error", "Overloaded")


def test_ping_and_unknown_events_yield_nothing() -> None:
    adapter = BRIDGE.stream(SONNET, REQUEST_ID, CREATED)
    adapter.feed(*_encoded(TEXT_STREAM[0]))

    assert adapter.feed("ping", '{"type": "ping"}') == []
    assert adapter.feed("future_event", '{"type": "future_event", "detail": 1}') == []


def _encoded(event: tuple[str, Any]) -> tuple[str, str]:
    return event[0], json.dumps(event[1])


# ================================================================= through the gateway


class _Quotas:
    async def reserve(self, reservation: Any, key_hash: str, now: Any) -> Standing:
        return Standing()

    def counters(self, reservation: Any) -> dict[str, dict[str, Any]]:
        return {}


def test_a_codex_turn_through_the_gateway_is_relayed_priced_and_metered() -> None:
    # Given the real app, an Anthropic upstream that streams TOOL_STREAM, and a Codex request
    sent: list[dict[str, Any]] = []

    def anthropic(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        body = "".join(f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in TOOL_STREAM)
        return httpx.Response(200, content=body.encode(), headers={"content-type": "text/event-stream"})

    settings = ProxySettings(
        keys_table="keys",
        ledger_table="ledger",
        spill_queue_url="http://queue.invalid/spill",
        openai_base_url="http://openai.upstream.test/v1",
        anthropic_base_url="http://anthropic.upstream.test",
        anthropic_api_key=SecretText("sk-ant-configured"),
    )
    keys, ledger = InMemoryKeyStore(), InMemoryLedger()
    key, secret = mint_key("acct", "codex", limits=KeyLimits(spend_limit_usd=Decimal(5), spend_period="daily"))
    keys.put(key, hash_secret(secret))

    def deps() -> ProxyDeps:
        http = httpx.AsyncClient(transport=httpx.MockTransport(anthropic))
        providers = build_providers(settings, {})
        return ProxyDeps(settings, keys, _Quotas(), ledger, InMemorySpill(), Upstream(http), providers)

    # When Codex posts its turn
    with TestClient(create_app(deps)) as client:
        response = client.post(
            "/v1/responses", json=codex_body(opening_items()), headers={"authorization": f"Bearer {secret}"}
        )

    # Then Anthropic got a valid Messages request, and Codex an event stream ending in response.completed
    assert response.status_code == 200
    assert_valid_anthropic_request(sent[0])
    events = [json.loads(frame.split("data: ", 1)[1]) for frame in response.text.split("\n\n") if frame]
    for event in events:
        EVENT_ADAPTER.validate_python(event)
    completed = events[-1]
    assert completed["type"] == "response.completed"
    assert [item["type"] for item in completed["response"]["output"]] == ["reasoning", "message", "function_call"]
    # And its usage carries the cost the ledger recorded for the Anthropic counts
    [record] = ledger.items.values()
    assert Decimal(str(completed["response"]["usage"]["cost"])) == record["cost_usd"] > 0
    assert (record["input_tokens"], record["cache_read_tokens"], record["output_tokens"]) == (2310, 11_264, 187)
    assert (record["status"], record["finish_reason"], record["endpoint"]) == ("ok", "completed", "responses")
