"""OpenAI Responses: the request clients send (Codex CLI, ``client.responses``), the usage it
reports, the pass-through to a provider that speaks it, and how answers, streams and errors look.

A non-streamed answer is a ``response`` whose ``usage`` also carries the cost. A stream is
server-sent events named after their ``type``, each with a ``sequence_number``, relayed as they
arrive; the ``response.completed`` (or ``response.incomplete``) event that carries the final usage
gets the cost added. The gateway is stateless: ``previous_response_id`` is refused.
"""

from __future__ import annotations

from typing import Any, ClassVar

from meterway.core.errors import MeterwayError, UpstreamError
from meterway.ledger.models import TokenUsage, UsageRecord
from meterway.proxy.formats.base import (
    OpenAIDoorRequest,
    OutputTokens,
    PositiveCount,
    event_data,
    invalid_field,
    typed_event,
)
from meterway.proxy.logic.catalog import ModelRoute
from meterway.proxy.models import Format
from meterway.proxy.translate.base import Answer

# The events that end a response, each carrying the whole response with its usage.
FINAL_EVENTS = frozenset({"response.completed", "response.incomplete"})
# Reasoning items the gateway made from another provider's thinking carry ``encrypted_content``
# that starts with this: only that provider can read them back.
GATEWAY_REASONING_PREFIX = "mw-"


class ResponsesRequest(OpenAIDoorRequest, kw_only=True):
    """``POST /v1/responses``; what the gateway reads of it (the rest goes through as sent)."""

    OUTPUT_LIMITS: ClassVar[tuple[str, ...]] = ("max_output_tokens",)

    input: str | list[dict[str, Any]]
    max_output_tokens: OutputTokens | None = None
    max_tool_calls: PositiveCount | None = None
    background: bool | None = None
    previous_response_id: str | None = None

    def __post_init__(self) -> None:
        if self.previous_response_id is not None:
            raise invalid_field(
                "previous_response_id",
                "the gateway keeps no responses: send the whole conversation in 'input' "
                "(with store: false) instead of previous_response_id",
            )


def read_usage(usage: dict[str, Any]) -> TokenUsage:
    """Normalise a Responses ``usage`` object: ``input_tokens`` includes the cached ones and
    ``output_tokens`` the reasoning ones."""
    prompt = _count(usage.get("input_tokens"))
    cached = min(_count((usage.get("input_tokens_details") or {}).get("cached_tokens")), prompt)
    output = _count(usage.get("output_tokens"))
    reasoning = _count((usage.get("output_tokens_details") or {}).get("reasoning_tokens"))
    return TokenUsage(
        input_tokens=prompt - cached,
        output_tokens=output,
        reasoning_tokens=min(reasoning, output),
        cache_read_tokens=cached,
    )


def responses_usage(u: TokenUsage) -> dict[str, Any]:
    """Render normalised usage as a Responses ``usage`` object (cache writes count as input)."""
    prompt = u.input_tokens + u.cache_creation_tokens + u.cache_read_tokens
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": u.cache_read_tokens, "cache_write_tokens": u.cache_creation_tokens},
        "output_tokens": u.output_tokens,
        "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
        "total_tokens": prompt + u.output_tokens,
    }


def _count(value: Any) -> int:
    return value if isinstance(value, int) and value > 0 else 0


def priced_usage(usage: dict[str, Any], record: UsageRecord) -> dict[str, Any]:
    block = dict(usage) | {"cost": float(record.cost_usd)}
    if record.usage_estimated:
        block["estimated"] = True
    return block


def output_chars(output: list[Any]) -> int:
    """Characters of text, reasoning summaries and call arguments in a response's ``output``."""
    chars = 0
    for item in output:
        if not isinstance(item, dict):
            continue
        chars += len(item.get("arguments") or "") + len(item.get("input") or "")
        for part in (item.get("content") or []) + (item.get("summary") or []):
            if isinstance(part, dict):
                chars += len(part.get("text") or "")
    return chars


class ResponsesEncoder:
    """Frames one request's output in the Responses format (see the module's docstring)."""

    def __init__(self, record: UsageRecord):
        self._record = record
        self._sequence = -1

    def answer(self, body: dict[str, Any], client_usage: dict[str, Any] | None) -> dict[str, Any]:
        del client_usage  # the response's own usage block is in this format already
        return body | {"usage": priced_usage(body.get("usage") or {}, self._record)}

    def carries_usage(self, event: dict[str, Any]) -> bool:
        return event.get("type") in FINAL_EVENTS and isinstance((event.get("response") or {}).get("usage"), dict)

    def event(self, event: dict[str, Any]) -> bytes:
        self._sequence = max(self._sequence, int(event.get("sequence_number", self._sequence)))
        if self.carries_usage(event):
            response = event["response"]
            event = event | {"response": response | {"usage": priced_usage(response["usage"], self._record)}}
        return typed_event(event)

    def closing(self, client_usage: dict[str, Any] | None) -> tuple[bytes, ...]:
        del client_usage  # the final event, with the usage, is the upstream's own
        return ()

    def error(self, error: MeterwayError) -> bytes:
        self._sequence += 1
        message = getattr(error, "upstream_message", None) or error.message
        return typed_event(
            {"type": "error", "code": error.code, "message": message, "param": None, "sequence_number": self._sequence}
        )


class ResponsesPassThrough:
    """Responses clients on a provider that speaks Responses: the body goes through as sent but for
    the model id; the answer and events come back as they are, the model named as the client
    knows it."""

    upstream: Format = "responses"

    def request(self, route: ModelRoute, body: dict[str, Any]) -> dict[str, Any]:
        upstream = body | {"model": route.upstream_model}
        if isinstance(body.get("input"), list):
            # A conversation that moved here from another provider keeps its words, not the other
            # provider's reasoning, which this one would refuse.
            upstream["input"] = [item for item in body["input"] if not _foreign_reasoning(item)]
        return upstream

    def answer(self, route: ModelRoute, payload: dict[str, Any], request_id: str, created: int) -> Answer:
        del request_id, created  # the answer keeps the provider's response id
        usage = payload.get("usage")
        return Answer(
            body=payload | {"model": route.id},
            tokens=read_usage(usage) if isinstance(usage, dict) else None,
            output_chars=output_chars(payload.get("output") or []),
            finish_reason=_finish_reason(payload),
        )

    def stream(self, route: ModelRoute, request_id: str, created: int) -> ResponseEvents:
        del request_id, created
        return ResponseEvents(route.id)


def _foreign_reasoning(item: Any) -> bool:
    encrypted = item.get("encrypted_content") if isinstance(item, dict) and item.get("type") == "reasoning" else None
    return isinstance(encrypted, str) and encrypted.startswith(GATEWAY_REASONING_PREFIX)


def _finish_reason(response: dict[str, Any]) -> str | None:
    """``completed``, or why the response is incomplete (``max_output_tokens``…)."""
    details = response.get("incomplete_details") or {}
    return details.get("reason") or response.get("status")


class ResponseEvents:
    """An upstream's Responses events for a Responses client, relayed as they come (see
    ``StreamAdapter``); the events that carry the whole response name the model as the client
    knows it."""

    ended = False  # the stream ends when the connection does
    client_usage: dict[str, Any] | None = None

    def __init__(self, model: str):
        self._model = model
        self._usage: dict[str, Any] | None = None
        self.finish_reason: str | None = None
        self.output_chars = 0
        self.finished = False

    @property
    def usage(self) -> TokenUsage:
        return read_usage(self._usage or {})

    @property
    def usage_reported(self) -> bool:
        return self._usage is not None

    def feed(self, event: str, data: str) -> list[dict[str, Any]]:
        payload = event_data(data)
        if not isinstance(payload, dict):
            return []
        kind = payload.setdefault("type", event)
        if kind in ("error", "response.failed"):
            raise _failure(payload)
        if kind.endswith(".delta") and isinstance(payload.get("delta"), str):
            self.output_chars += len(payload["delta"])
        response = payload.get("response")
        if isinstance(response, dict):
            payload["response"] = response = response | {"model": self._model}
            if kind in FINAL_EVENTS:
                self._usage = response.get("usage") if isinstance(response.get("usage"), dict) else {}
                self.finish_reason = _finish_reason(response)
                self.finished = True
        return [payload]


def _failure(payload: dict[str, Any]) -> UpstreamError:
    """The upstream's own failure event, in its words."""
    error = payload.get("error") or (payload.get("response") or {}).get("error") or payload
    message = str(error.get("message") or "The upstream response failed.") if isinstance(error, dict) else str(error)
    failure = UpstreamError(message, code=error.get("code") if isinstance(error, dict) else None)
    failure.upstream_message = message
    return failure
