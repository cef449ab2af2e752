"""The pass-throughs send a client's body as it came, but for what the provider would refuse of a
conversation that began with another provider."""

from __future__ import annotations

from meterway.proxy.formats.messages import MessagesPassThrough
from meterway.proxy.formats.responses import ResponsesPassThrough
from meterway.proxy.logic.catalog import resolve_model
from meterway.proxy.translate.responses_over_messages.bridge import ResponsesOverMessages


def test_a_messages_body_goes_through_but_for_the_model_and_thinking_only_the_gateway_made():
    body = {
        "model": "anthropic/claude-sonnet-4-5",
        "max_tokens": 100,
        "messages": [
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "from gpt-5", "signature": ""},
                    {"type": "thinking", "thinking": "from claude", "signature": "EqQBCkYIBxgCKkD"},
                    {"type": "text", "text": "hello"},
                ],
            },
            {"role": "user", "content": [{"type": "text", "text": "more", "cache_control": {"type": "ephemeral"}}]},
        ],
        "context_management": {"edits": []},
    }

    sent = MessagesPassThrough().request(resolve_model("anthropic/claude-sonnet-4-5"), body)

    assert sent["model"] == "claude-sonnet-4-5"
    assert [block["thinking"] for block in sent["messages"][1]["content"] if block["type"] == "thinking"] == [
        "from claude"
    ]
    assert sent["messages"][2] == body["messages"][2] and sent["context_management"] == {"edits": []}


def test_reasoning_made_from_anthropics_thinking_is_not_sent_to_openai():
    # Given a conversation whose first turn an Anthropic model answered through the translation
    claude = resolve_model("anthropic/claude-sonnet-4-5")
    translated = ResponsesOverMessages().answer(
        claude,
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5",
            "content": [
                {"type": "thinking", "thinking": "Let me think.", "signature": "EqQBCkYIBxgCKkD"},
                {"type": "text", "text": "Done."},
            ],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 10, "output_tokens": 5},
        },
        "gen-1",
        1_764_000_000,
    )
    own = {"type": "reasoning", "id": "rs_2", "summary": [], "encrypted_content": "gAAAAABoOpenAIsOwn"}
    history = [{"role": "user", "content": "hi"}, *translated.body["output"], own]

    # When the conversation continues on an OpenAI model
    sent = ResponsesPassThrough().request(resolve_model("openai/gpt-5-mini"), {"model": "x", "input": history})

    # Then OpenAI gets the words and its own reasoning, not Anthropic's
    kinds = [item.get("type", "message") for item in sent["input"]]
    assert kinds == ["message", "message", "reasoning"] and sent["input"][-1] == own
