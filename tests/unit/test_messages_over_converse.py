"""Messages told as Converse and back: what a Converse model on Bedrock receives for a Messages
request, and the Anthropic message and events its answers become."""

from __future__ import annotations

import json
from typing import Any

import pytest

from meterway.core.errors import InvalidRequest
from meterway.proxy.translate.messages_over_converse.request import messages_to_converse
from meterway.proxy.translate.messages_over_converse.response import ConverseEvents, converse_to_message

NOVA = "amazon.nova-pro-v1:0"
PNG = {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}


def test_cache_breakpoints_become_cache_points_after_the_blocks_they_mark():
    body = {
        "max_tokens": 100,
        "system": [{"type": "text", "text": "rules", "cache_control": {"type": "ephemeral"}}],
        "tools": [{"name": "look", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "doc", "cache_control": {"type": "ephemeral"}}]}
        ],
    }

    converse = messages_to_converse(body, NOVA)

    point = {"cachePoint": {"type": "default"}}
    assert converse["system"] == [{"text": "rules"}, point]
    assert converse["toolConfig"]["tools"] == [
        {"toolSpec": {"name": "look", "inputSchema": {"json": {"type": "object"}}}},
        point,
    ]
    assert converse["messages"][0]["content"] == [{"text": "doc"}, point]
    assert converse["inferenceConfig"] == {"maxTokens": 100}


def test_a_tool_round_trip_and_an_image_are_told_in_converses_blocks():
    body = {
        "max_tokens": 50,
        "temperature": 0.2,
        "stop_sequences": ["END"],
        "tool_choice": {"type": "tool", "name": "look"},
        "tools": [{"name": "look", "description": "Looks", "input_schema": {"type": "object"}}],
        "messages": [
            {"role": "user", "content": [{"type": "image", "source": PNG}, {"type": "text", "text": "what?"}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "look", "input": {"at": 1}}]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "a cat", "is_error": True}],
            },
        ],
    }

    converse = messages_to_converse(body, NOVA)

    user, assistant, result = converse["messages"]
    assert user["content"][0] == {"image": {"format": "png", "source": {"bytes": PNG["data"]}}}
    assert assistant["content"] == [{"toolUse": {"toolUseId": "t1", "name": "look", "input": {"at": 1}}}]
    assert result["content"] == [{"toolResult": {"toolUseId": "t1", "content": [{"text": "a cat"}], "status": "error"}}]
    assert converse["toolConfig"]["toolChoice"] == {"tool": {"name": "look"}}
    assert converse["toolConfig"]["tools"][0]["toolSpec"]["description"] == "Looks"
    assert converse["inferenceConfig"] == {"maxTokens": 50, "temperature": 0.2, "stopSequences": ["END"]}


def test_thinking_is_dropped_and_a_request_wide_cache_breakpoint_caches_the_whole_conversation():
    body = {
        "max_tokens": 10,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "cache_control": {"type": "ephemeral"},
        "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
    }

    converse = messages_to_converse(body, NOVA)

    assert "thinking" not in json.dumps(converse) and "additionalModelRequestFields" not in converse
    assert converse["messages"][-1]["content"] == [{"text": "hello"}, {"cachePoint": {"type": "default"}}]


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"output_config": {"format": {"type": "json_schema", "schema": {}}}}, "structured output"),
        ({"output_format": {"type": "json_schema", "schema": {}}}, "structured output"),
        ({"top_k": 5}, "top_k"),
        ({"tool_choice": {"type": "none"}, "tools": [{"name": "a", "input_schema": {}}]}, "tool_choice 'none'"),
        ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "server tools"),
        ({"frobnicate": True}, "frobnicate"),
    ],
)
def test_what_converse_cannot_say_is_the_clients_400_naming_it(extra: dict[str, Any], named: str):
    body = {"max_tokens": 10, "messages": [{"role": "user", "content": "hi"}], **extra}

    with pytest.raises(InvalidRequest) as raised:
        messages_to_converse(body, NOVA)

    assert named in raised.value.message


@pytest.mark.parametrize(
    "block",
    [
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
        {"type": "image", "source": {**PNG, "media_type": "image/tiff"}},
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "x"}},
        {"type": "server_tool_use", "id": "s", "name": "web_search", "input": {}},
    ],
)
def test_a_block_converse_cannot_carry_is_a_400_that_says_where(block: dict[str, Any]):
    body = {"max_tokens": 10, "messages": [{"role": "user", "content": [block]}]}

    with pytest.raises(InvalidRequest) as raised:
        messages_to_converse(body, NOVA)

    assert "messages[0].content[0]" in raised.value.message


def test_a_whole_answer_becomes_a_message_with_anthropics_usage_and_stop_reason():
    answer = {
        "output": {
            "message": {
                "role": "assistant",
                "content": [
                    {"reasoningContent": {"reasoningText": {"text": "hmm", "signature": "sig"}}},
                    {"text": "Hello"},
                    {"toolUse": {"toolUseId": "t1", "name": "look", "input": {"at": 1}}},
                ],
            }
        },
        "stopReason": "tool_use",
        "usage": {"inputTokens": 12, "outputTokens": 7, "cacheReadInputTokens": 100, "cacheWriteInputTokens": 3},
    }

    message = converse_to_message(answer, message_id="msg_1", model=NOVA)

    assert [block["type"] for block in message["content"]] == ["thinking", "text", "tool_use"]
    assert message["content"][0]["signature"] == "sig"
    assert message["stop_reason"] == "tool_use"
    assert message["usage"] == {
        "input_tokens": 12,
        "output_tokens": 7,
        "cache_creation_input_tokens": 3,
        "cache_read_input_tokens": 100,
    }


def test_a_guardrail_stopping_the_answer_is_a_refusal():
    answer = {"output": {"message": {"content": [{"text": "no"}]}}, "stopReason": "guardrail_intervened", "usage": {}}

    assert converse_to_message(answer, message_id="m", model=NOVA)["stop_reason"] == "refusal"


def test_a_converse_stream_becomes_anthropics_event_sequence_with_the_usage_at_the_end():
    converse = ConverseEvents(message_id="msg_1", model=NOVA)
    stream = [
        ("messageStart", {"role": "assistant"}),
        ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hel"}}),
        ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "lo"}}),
        ("contentBlockStop", {"contentBlockIndex": 0}),
        ("contentBlockStart", {"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "t1", "name": "look"}}}),
        ("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": '{"at":'}}}),
        ("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": "1}"}}}),
        ("contentBlockStop", {"contentBlockIndex": 1}),
        ("messageStop", {"stopReason": "tool_use"}),
        ("metadata", {"usage": {"inputTokens": 9, "outputTokens": 4, "totalTokens": 13}, "metrics": {"latencyMs": 5}}),
    ]

    events = [event for name, payload in stream for event in converse.feed(name, payload)]

    assert [name for name, _ in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[1][1]["content_block"] == {"type": "text", "text": ""}
    assert events[5][1]["content_block"] == {"type": "tool_use", "id": "t1", "name": "look", "input": {}}
    assert "".join(e["delta"].get("partial_json", "") for n, e in events if n == "content_block_delta") == '{"at":1}'
    delta = events[-2][1]
    assert delta["delta"]["stop_reason"] == "tool_use"
    assert (delta["usage"]["input_tokens"], delta["usage"]["output_tokens"]) == (9, 4)


def test_reasoning_in_a_converse_stream_is_a_thinking_block_with_its_signature():
    converse = ConverseEvents(message_id="m", model=NOVA)

    events = converse.feed("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "so"}}})
    events += converse.feed(
        "contentBlockDelta", {"contentBlockIndex": 0, "delta": {"reasoningContent": {"signature": "sig"}}}
    )

    assert events[0][1]["content_block"]["type"] == "thinking"
    assert [payload["delta"] for _, payload in events[1:]] == [
        {"type": "thinking_delta", "thinking": "so"},
        {"type": "signature_delta", "signature": "sig"},
    ]


def test_a_system_turn_joins_the_system_prompt_and_the_turns_around_it_become_one():
    body = {
        "max_tokens": 10,
        "system": "be brief",
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "system", "content": [{"type": "text", "text": "the date is 2026-12-02"}]},
            {"role": "user", "content": "what day is it?"},
        ],
    }

    converse = messages_to_converse(body, NOVA)

    assert converse["system"] == [{"text": "be brief"}, {"text": "the date is 2026-12-02"}]
    assert converse["messages"] == [{"role": "user", "content": [{"text": "hi"}, {"text": "what day is it?"}]}]
