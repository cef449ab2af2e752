"""Anthropic Messages response or SSE stream -> OpenAI ``chat.completion`` / ``chat.completion.chunk``.

Thinking text is returned under ``message.reasoning`` / ``delta.reasoning`` (OpenRouter's name).
Anthropic's usage is read into the ledger's token classes here, so that the disjoint classes the
ledger keeps and the OpenAI-shaped ``usage`` the client sees come from the same numbers.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from meterway.core.errors import UpstreamError
from meterway.proxy.formats.base import event_data
from meterway.proxy.formats.chat import openai_usage
from meterway.proxy.formats.messages import MessagesStreamState, ReadsMessagesStream, anthropic_token_usage

JsonDict = dict[str, Any]

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    # A paused server-tool turn is complete from the client's point of view; it may resend to continue.
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

_MAX_ERROR_MESSAGE_CHARS = 1000


def openai_finish_reason(stop_reason: str | None) -> str | None:
    """Map Anthropic's ``stop_reason`` to OpenAI's ``finish_reason``; unknown reasons become "stop"."""
    if stop_reason is None:
        return None
    return FINISH_REASONS.get(stop_reason, "stop")


def messages_to_chat(resp: dict[str, Any], *, model: str, request_id: str, created: int) -> JsonDict:
    """Translate a non-streaming Anthropic Messages response into an OpenAI ``chat.completion``.

    ``model`` is the client-facing id (``anthropic/claude-sonnet-4-5``), not Anthropic's.
    """
    return {
        "id": request_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": _assistant_message(resp.get("content") or []),
                "finish_reason": openai_finish_reason(resp.get("stop_reason")) or "stop",
                "logprobs": None,
            }
        ],
        "usage": openai_usage(anthropic_token_usage(resp.get("usage") or {})),
    }


def _assistant_message(blocks: list[JsonDict]) -> JsonDict:
    texts: list[str] = []
    reasoning: list[str] = []
    tool_calls: list[JsonDict] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text") or "")
        elif kind == "thinking":
            reasoning.append(block.get("thinking") or "")
        elif kind == "tool_use":
            tool_calls.append(_tool_call(block))
    # Text blocks are split around citations, not paragraphs, so they join without a separator.
    message: JsonDict = {"role": "assistant", "content": "".join(texts) if texts else None, "refusal": None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    if reasoning:
        message["reasoning"] = "".join(reasoning)
    return message


def _tool_call(block: JsonDict) -> JsonDict:
    return {
        "id": block.get("id"),
        "type": "function",
        "function": {"name": block.get("name"), "arguments": json.dumps(block.get("input") or {})},
    }


def anthropic_error_to_message(status: int, body: bytes) -> str:
    """Extract a readable message from an Anthropic error body ``{"type": "error", "error": {...}}``."""
    try:
        parsed = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        parsed = None
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if isinstance(error, dict) and (error.get("message") or error.get("type")):
        return _describe_error(f"Anthropic API error {status}", error)
    if isinstance(error, str) and error:
        return f"Anthropic API error {status}: {error[:_MAX_ERROR_MESSAGE_CHARS]}"
    return f"Anthropic API error {status} (no readable error message)"


def _describe_error(prefix: str, error: JsonDict) -> str:
    kind = error.get("type") or "error"
    message = str(error.get("message") or "no message")[:_MAX_ERROR_MESSAGE_CHARS]
    return f"{prefix} ({kind}): {message}"


class MessagesStreamTranslator(ReadsMessagesStream):
    """Turns Anthropic SSE events into OpenAI ``chat.completion.chunk`` dicts, one event at a time.

    The final usage chunk is not produced here: the gateway appends one for every provider, built
    from ``usage`` (and from ``output_chars`` when the stream broke before usage was reported).
    """

    def __init__(self, *, model: str, request_id: str, created: int) -> None:
        self._model = model
        self._request_id = request_id
        self._created = created
        self._state = MessagesStreamState()
        # Anthropic numbers all content blocks; OpenAI numbers only the tool calls.
        self._tool_indexes: dict[int, int] = {}
        self._handlers: dict[str, Callable[[JsonDict], list[JsonDict]]] = {
            "message_start": self._on_message_start,
            "content_block_start": self._on_block_start,
            "content_block_delta": self._on_block_delta,
            "message_delta": self._on_message_delta,
            "error": self._on_error,
        }

    @property
    def finish_reason(self) -> str | None:
        """The OpenAI ``finish_reason`` once ``message_delta`` reported a stop reason."""
        return openai_finish_reason(self._state.stop_reason)

    def feed(self, event: str, data: str) -> list[JsonDict]:
        """Translate one SSE event (its name and JSON data); returns the chunks to send, possibly none.

        ``ping``, ``content_block_stop`` and event types Anthropic may add later yield nothing.
        Raises ``UpstreamError`` on an ``error`` event, ``ValueError`` on data that is not JSON.
        """
        parsed = event_data(data)
        if not isinstance(parsed, dict):
            return []
        return self._translate(event, parsed)

    def _translate(self, event: str, data: JsonDict) -> list[JsonDict]:
        # The payload's own type wins so that a caller whose SSE parser drops event names still works.
        kind = str(data.get("type") or event)
        if kind != "error":
            self._state.observe(data | {"type": kind})
        handler = self._handlers.get(kind)
        return handler(data) if handler else []

    def _chunk(self, delta: JsonDict, finish_reason: str | None = None) -> JsonDict:
        return {
            "id": self._request_id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}],
        }

    def _emit(self, key: str, text: Any) -> list[JsonDict]:
        if not isinstance(text, str) or not text:
            return []
        return [self._chunk({key: text})]

    def _on_message_start(self, data: JsonDict) -> list[JsonDict]:
        return [self._chunk({"role": "assistant", "content": ""})]

    def _on_block_start(self, data: JsonDict) -> list[JsonDict]:
        block = data.get("content_block") or {}
        kind = block.get("type")
        if kind == "text":
            return self._emit("content", block.get("text"))
        if kind == "thinking":
            return self._emit("reasoning", block.get("thinking"))
        if kind != "tool_use":
            # Server tools and redacted thinking have no OpenAI counterpart.
            return []
        tool_index = len(self._tool_indexes)
        self._tool_indexes[int(data.get("index", -1))] = tool_index
        call = {
            "index": tool_index,
            "id": block.get("id"),
            "type": "function",
            "function": {"name": block.get("name"), "arguments": ""},
        }
        return [self._chunk({"tool_calls": [call]})]

    def _on_block_delta(self, data: JsonDict) -> list[JsonDict]:
        delta = data.get("delta") or {}
        kind = delta.get("type")
        if kind == "text_delta":
            return self._emit("content", delta.get("text"))
        if kind == "thinking_delta":
            return self._emit("reasoning", delta.get("thinking"))
        tool_index = self._tool_indexes.get(int(data.get("index", -1)))
        fragment = delta.get("partial_json")
        if kind != "input_json_delta" or tool_index is None or not isinstance(fragment, str) or not fragment:
            return []
        call = {"index": tool_index, "function": {"arguments": fragment}}
        return [self._chunk({"tool_calls": [call]})]

    def _on_message_delta(self, data: JsonDict) -> list[JsonDict]:
        if (data.get("delta") or {}).get("stop_reason") is None:
            return []
        return [self._chunk({}, self.finish_reason)]

    def _on_error(self, data: JsonDict) -> list[JsonDict]:
        error = data.get("error")
        if not isinstance(error, dict):
            error = {"message": str(error or "unknown error")}
        raise UpstreamError(
            _describe_error("Anthropic stream error", error),
            upstream_status=None,
            code=error.get("type") or None,
        )
