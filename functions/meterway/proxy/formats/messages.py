"""Anthropic Messages: the request clients send (Claude Code, the anthropic SDKs), the usage
Anthropic reports, the pass-through to a provider that speaks it, and how answers, streams and
errors look to the client.

A non-streamed answer is a ``message`` whose ``usage`` also carries the cost. A stream is
server-sent events named after their ``type``, relayed as they arrive; the ``message_delta`` that
carries the final usage gets the cost added. Errors use Anthropic's envelope,
``{"type": "error", "error": {"type", "message"}}``, in a response and mid-stream alike.
"""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec

from meterway.core.errors import MeterwayError, UpstreamError
from meterway.ledger.models import TokenUsage, UsageRecord
from meterway.proxy.formats.base import Count, DoorRequest, Messages, ModelName, OutputTokens, event_data, typed_event
from meterway.proxy.logic.catalog import ModelRoute
from meterway.proxy.models import Format
from meterway.proxy.translate.base import Answer

# Anthropic's error types by status (https://docs.anthropic.com/en/api/errors).
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    529: "overloaded_error",
}
_KNOWN_TYPES = frozenset(_ERROR_TYPES.values()) | {"api_error"}


class MessagesRequest(DoorRequest, kw_only=True):
    """``POST /v1/messages``; what the gateway reads of it (the rest goes through as sent)."""

    OUTPUT_LIMITS: ClassVar[tuple[str, ...]] = ("max_tokens",)

    messages: Messages
    max_tokens: OutputTokens
    top_k: Count | None = None


class CountTokensRequest(msgspec.Struct, kw_only=True):
    """``POST /v1/messages/count_tokens``: a Messages request without ``max_tokens``."""

    model: ModelName
    messages: Messages


def message_start(message_id: str, model: str, usage: dict[str, Any]) -> dict[str, Any]:
    """The ``message_start`` event of a translated stream: its message, with no content yet."""
    message: dict[str, Any] = {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": usage,
    }
    return {"type": "message_start", "message": message}


def from_anthropic(usage: dict[str, Any]) -> TokenUsage:
    """Normalise an Anthropic ``usage`` object.

    ``input_tokens`` already excludes cache reads and writes. The 5-minute/1-hour split comes from
    ``cache_creation.ephemeral_5m_input_tokens`` / ``ephemeral_1h_input_tokens``; when only the
    total ``cache_creation_input_tokens`` is given, the writes are 5-minute ones (Anthropic's default).
    Server-side web searches come from ``server_tool_use.web_search_requests``.
    """
    created_total = _count(usage.get("cache_creation_input_tokens"))
    split = usage.get("cache_creation") or {}
    one_hour = _count(split.get("ephemeral_1h_input_tokens"))
    five_min = _count(split.get("ephemeral_5m_input_tokens"))
    if not split:
        five_min = created_total
    return TokenUsage(
        input_tokens=_count(usage.get("input_tokens")),
        output_tokens=_count(usage.get("output_tokens")),
        cache_creation_5m_tokens=five_min,
        cache_creation_1h_tokens=one_hour,
        cache_read_tokens=_count(usage.get("cache_read_input_tokens")),
        web_searches=_count((usage.get("server_tool_use") or {}).get("web_search_requests")),
    )


def anthropic_token_usage(usage: dict[str, Any]) -> TokenUsage:
    """Normalise an Anthropic ``usage`` block, keeping ``output_tokens_details.thinking_tokens`` if sent.

    Anthropic only sometimes reports how many output tokens were thinking; without that figure
    ``reasoning_tokens`` stays 0 (they are still billed inside ``output_tokens``).
    """
    normalised = from_anthropic(usage)
    thinking = (usage.get("output_tokens_details") or {}).get("thinking_tokens")
    if isinstance(thinking, int) and thinking > 0:
        return normalised.with_output(normalised.output_tokens, min(thinking, normalised.output_tokens))
    return normalised


def merge_anthropic(start: dict[str, Any], delta: dict[str, Any]) -> dict[str, Any]:
    """Combine ``message_start``'s usage with a later ``message_delta`` usage.

    A ``message_delta`` carries cumulative counts; fields it leaves out keep their start values.
    """
    merged = dict(start)
    for name, value in delta.items():
        if value is not None:
            merged[name] = value
    return merged


def _count(value: Any) -> int:
    return value if isinstance(value, int) and value > 0 else 0


def error_type(error: MeterwayError) -> str:
    """Anthropic's error type for a gateway error: the upstream's own when it named one."""
    if isinstance(error, UpstreamError) and error.code in _KNOWN_TYPES:
        return str(error.code)
    return _ERROR_TYPES.get(error.status, "api_error")


def error_envelope(error: MeterwayError) -> dict[str, Any]:
    """Anthropic's envelope; an upstream's words about the request are relayed as it said them
    (Claude Code reads them: "prompt is too long", "Overloaded")."""
    message = getattr(error, "upstream_message", None) or error.message
    return {"type": "error", "error": {"type": error_type(error), "message": message}}


def priced_usage(usage: dict[str, Any], record: UsageRecord) -> dict[str, Any]:
    """Anthropic's usage block with the request's ``cost`` in USD (and ``estimated`` when it is)."""
    block = dict(usage) | {"cost": float(record.cost_usd)}
    if record.usage_estimated:
        block["estimated"] = True
    return block


class MessagesEncoder:
    """Frames one request's output in the Messages format (see the module's docstring)."""

    def __init__(self, record: UsageRecord):
        self._record = record

    def answer(self, body: dict[str, Any], client_usage: dict[str, Any] | None) -> dict[str, Any]:
        del client_usage  # the answer's own usage block is Anthropic's already
        return body | {"usage": priced_usage(body.get("usage") or {}, self._record)}

    def carries_usage(self, event: dict[str, Any]) -> bool:
        return event.get("type") == "message_delta" and isinstance(event.get("usage"), dict)

    def event(self, event: dict[str, Any]) -> bytes:
        if self.carries_usage(event):
            event = event | {"usage": priced_usage(event["usage"], self._record)}
        return typed_event(event)

    def closing(self, client_usage: dict[str, Any] | None) -> tuple[bytes, ...]:
        del client_usage  # message_stop, the last event, is the upstream's own
        return ()

    def error(self, error: MeterwayError) -> bytes:
        return typed_event(error_envelope(error))


class MessagesStreamState:
    """What an Anthropic stream has said so far: usage, the stop reason, whether it ended, and the
    characters of output it carried (for estimating usage it never reported)."""

    def __init__(self) -> None:
        self._start_usage: dict[str, Any] = {}
        self._delta_usage: dict[str, Any] = {}
        self.stop_reason: str | None = None
        self.output_chars = 0
        self.usage_reported = False
        self.finished = False

    @property
    def usage(self) -> TokenUsage:
        """``message_start``'s counts updated by the cumulative ``message_delta`` ones."""
        return anthropic_token_usage(merge_anthropic(self._start_usage, self._delta_usage))

    def observe(self, data: dict[str, Any]) -> None:
        kind = data.get("type")
        if kind == "message_start":
            self._start_usage = dict((data.get("message") or {}).get("usage") or {})
        elif kind == "content_block_start":
            block = data.get("content_block") or {}
            self.output_chars += sum(len(block.get(name) or "") for name in ("text", "thinking"))
        elif kind == "content_block_delta":
            delta = data.get("delta") or {}
            self.output_chars += sum(len(delta.get(name) or "") for name in ("text", "thinking", "partial_json"))
        elif kind == "message_delta":
            usage = data.get("usage") or {}
            self._delta_usage = merge_anthropic(self._delta_usage, usage)
            self.usage_reported = self.usage_reported or usage.get("output_tokens") is not None
            self.stop_reason = (data.get("delta") or {}).get("stop_reason") or self.stop_reason
        elif kind == "message_stop":
            self.finished = True


class MessagesPassThrough:
    """Messages clients on a provider that speaks Messages: the body goes through as the client
    sent it but for the model id, and the answer and events come back as they are, the model
    named as the client knows it."""

    upstream: Format = "messages"

    def request(self, route: ModelRoute, body: dict[str, Any]) -> dict[str, Any]:
        messages = [_without_unsigned_thinking(message) for message in body.get("messages") or []]
        return body | {"model": route.upstream_model, "messages": messages}

    def answer(self, route: ModelRoute, payload: dict[str, Any], request_id: str, created: int) -> Answer:
        del request_id, created  # the answer keeps the provider's message id
        blocks = payload.get("content") or []
        chars = sum(
            len(block.get("text") or block.get("thinking") or "") for block in blocks if isinstance(block, dict)
        )
        return Answer(
            body=payload | {"model": route.id},
            tokens=anthropic_token_usage(payload.get("usage") or {}),
            output_chars=chars,
            finish_reason=payload.get("stop_reason"),
        )

    def stream(self, route: ModelRoute, request_id: str, created: int) -> MessageEvents:
        del request_id, created
        return MessageEvents(route.id)


def _without_unsigned_thinking(message: Any) -> Any:
    """A conversation that moved here from another provider may hold thinking blocks the gateway made
    without a signature (from that provider's reasoning text): Anthropic would refuse them."""
    content = message.get("content") if isinstance(message, dict) and message.get("role") == "assistant" else None
    if not isinstance(content, list):
        return message
    kept = [block for block in content if not (isinstance(block, dict) and _unsigned_thinking(block))]
    return message if len(kept) == len(content) else message | {"content": kept}


def _unsigned_thinking(block: dict[str, Any]) -> bool:
    return block.get("type") == "thinking" and not block.get("signature")


class ReadsMessagesStream:
    """What every adapter of an upstream Messages stream says of it, from its ``MessagesStreamState``
    (``_state``): whether it finished, its output so far and its usage. It never has an end marker
    and its usage is not in any client format but Anthropic's."""

    ended = False  # an Anthropic stream ends when the connection does
    client_usage: dict[str, Any] | None = None
    _state: MessagesStreamState

    @property
    def finished(self) -> bool:
        """``message_stop`` arrived: the stream ended normally."""
        return self._state.finished

    @property
    def output_chars(self) -> int:
        return self._state.output_chars

    @property
    def usage(self) -> TokenUsage:
        return self._state.usage

    @property
    def usage_reported(self) -> bool:
        return self._state.usage_reported


class MessageEvents(ReadsMessagesStream):
    """An upstream's Messages events for a Messages client, relayed as they come (see
    ``StreamAdapter``); only ``message_start`` is touched, to name the model as the client knows it."""

    def __init__(self, model: str):
        self._model = model
        self._state = MessagesStreamState()

    @property
    def finish_reason(self) -> str | None:
        return self._state.stop_reason

    def feed(self, event: str, data: str) -> list[dict[str, Any]]:
        payload = event_data(data)
        if not isinstance(payload, dict):
            return []
        payload.setdefault("type", event)
        if payload["type"] == "error":
            raise _stream_error(payload.get("error"))
        self._state.observe(payload)
        if payload["type"] == "message_start" and isinstance(payload.get("message"), dict):
            payload["message"] = payload["message"] | {"model": self._model}
        return [payload]


def _stream_error(error: Any) -> UpstreamError:
    """An ``error`` event mid-stream (``overloaded_error``…), in the provider's own words."""
    details = error if isinstance(error, dict) else {}
    message = str(details.get("message") or "The upstream stream failed.")
    failure = UpstreamError(message, code=details.get("type"))
    failure.upstream_message = message
    return failure
