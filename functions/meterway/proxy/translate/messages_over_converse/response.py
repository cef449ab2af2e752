"""Converse's answers as Anthropic Messages: a whole answer as a ``message``, a ConverseStream as
Anthropic's event sequence, so that every bridge over Messages reads a Converse model unchanged.

Converse reports usage once, at the end (``metadata``, after ``messageStop``): the stream's
``message_start`` counts nothing yet, and its ``message_delta`` carries the whole usage, which the
Messages readers take as the final counts. ``inputTokens`` leaves cache reads and writes out, as
Anthropic's ``input_tokens`` does.
"""

from __future__ import annotations

from typing import Any

from meterway.proxy.formats.messages import message_start

JsonDict = dict[str, Any]
Event = tuple[str, JsonDict]

# Converse's stop reasons in Anthropic's words; a guardrail or content filter stopping the answer
# is a refusal.
_STOP_REASONS = {
    "end_turn": "end_turn",
    "tool_use": "tool_use",
    "max_tokens": "max_tokens",
    "stop_sequence": "stop_sequence",
    "guardrail_intervened": "refusal",
    "content_filtered": "refusal",
    "model_context_window_exceeded": "model_context_window_exceeded",
}


def anthropic_usage(usage: Any) -> JsonDict:
    """Converse's ``usage`` as Anthropic's."""
    usage = usage if isinstance(usage, dict) else {}
    return {
        "input_tokens": usage.get("inputTokens") or 0,
        "output_tokens": usage.get("outputTokens") or 0,
        "cache_creation_input_tokens": usage.get("cacheWriteInputTokens") or 0,
        "cache_read_input_tokens": usage.get("cacheReadInputTokens") or 0,
    }


def converse_to_message(answer: JsonDict, *, message_id: str, model: str) -> JsonDict:
    """A Converse answer as the Messages ``message`` it stands for."""
    content = ((answer.get("output") or {}).get("message") or {}).get("content") or []
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [block for block in map(_block, content) if block is not None],
        "stop_reason": _STOP_REASONS.get(str(answer.get("stopReason")), "end_turn"),
        "stop_sequence": None,
        "usage": anthropic_usage(answer.get("usage")),
    }


def _block(block: JsonDict) -> JsonDict | None:
    if "text" in block:
        return {"type": "text", "text": block["text"]}
    if "toolUse" in block:
        use = block["toolUse"]
        return {"type": "tool_use", "id": use["toolUseId"], "name": use["name"], "input": use.get("input") or {}}
    reasoning = block.get("reasoningContent")
    if isinstance(reasoning, dict) and "reasoningText" in reasoning:
        text = reasoning["reasoningText"]
        return {"type": "thinking", "thinking": text.get("text", ""), "signature": text.get("signature") or ""}
    if isinstance(reasoning, dict) and "redactedContent" in reasoning:
        return {"type": "redacted_thinking", "data": reasoning["redactedContent"]}
    return None


class ConverseEvents:
    """ConverseStream events in, the Anthropic events they stand for out (``feed``)."""

    def __init__(self, *, message_id: str, model: str):
        self._message_id = message_id
        self._model = model
        self._open: set[int] = set()
        self._stop_reason = "end_turn"

    def feed(self, event_type: str, payload: JsonDict) -> list[Event]:
        if event_type == "messageStart":
            return [self._message_start()]
        if event_type == "contentBlockStart":
            return self._start(payload["contentBlockIndex"], payload.get("start") or {})
        if event_type == "contentBlockDelta":
            return self._delta(payload["contentBlockIndex"], payload.get("delta") or {})
        if event_type == "contentBlockStop":
            self._open.discard(payload["contentBlockIndex"])
            return [("content_block_stop", {"type": "content_block_stop", "index": payload["contentBlockIndex"]})]
        if event_type == "messageStop":
            self._stop_reason = _STOP_REASONS.get(str(payload.get("stopReason")), "end_turn")
            return []
        if event_type == "metadata":
            delta = {"stop_reason": self._stop_reason, "stop_sequence": None}
            usage = anthropic_usage(payload.get("usage"))
            return [
                ("message_delta", {"type": "message_delta", "delta": delta, "usage": usage}),
                ("message_stop", {"type": "message_stop"}),
            ]
        return []

    def _message_start(self) -> Event:
        return "message_start", message_start(self._message_id, self._model, anthropic_usage({}))

    def _start(self, index: int, start: JsonDict) -> list[Event]:
        use = start.get("toolUse")
        if not isinstance(use, dict):
            return []
        self._open.add(index)
        block = {"type": "tool_use", "id": use["toolUseId"], "name": use["name"], "input": {}}
        return [("content_block_start", {"type": "content_block_start", "index": index, "content_block": block})]

    def _delta(self, index: int, delta: JsonDict) -> list[Event]:
        events: list[Event] = []
        reasoning = delta.get("reasoningContent") if isinstance(delta.get("reasoningContent"), dict) else None
        if index not in self._open:
            # Converse starts a text or reasoning block with its first delta.
            self._open.add(index)
            block = {"type": "thinking", "thinking": "", "signature": ""} if reasoning else {"type": "text", "text": ""}
            events.append(
                ("content_block_start", {"type": "content_block_start", "index": index, "content_block": block})
            )
        if "text" in delta:
            anthropic_delta: JsonDict = {"type": "text_delta", "text": delta["text"]}
        elif isinstance(delta.get("toolUse"), dict):
            anthropic_delta = {"type": "input_json_delta", "partial_json": delta["toolUse"].get("input", "")}
        elif reasoning and "text" in reasoning:
            anthropic_delta = {"type": "thinking_delta", "thinking": reasoning["text"]}
        elif reasoning and "signature" in reasoning:
            anthropic_delta = {"type": "signature_delta", "signature": reasoning["signature"]}
        else:
            return events
        events.append(
            ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": anthropic_delta})
        )
        return events
