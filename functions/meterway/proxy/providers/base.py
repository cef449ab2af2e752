"""What every provider module implements, so that the proxy never asks which provider it talks to.

A provider builds the upstream request for a client's chat request, reads a non-streamed answer
and adapts a stream into Chat completion chunks, reads the provider's own usage into the
ledger's token classes, and maps the provider's error answers. It does no I/O: the HTTP sender
(``meterway.proxy.dal.upstream``) sends what it builds.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from meterway.core.errors import UpstreamError
from meterway.ledger.models import TokenUsage
from meterway.proxy.logic.catalog import ModelRoute
from meterway.proxy.models import UpstreamRequest

# The provider's answers that the client can act on: its own words reach the client with its status.
CLIENT_FAULT_STATUSES = frozenset({400, 404, 413, 422, 429})
_MAX_MESSAGE_CHARS = 500


@dataclass(frozen=True, slots=True)
class ChatAnswer:
    """A provider's non-streamed answer as the client's ``chat.completion`` (without ``usage``,
    which the encoder writes with the cost).

    ``tokens`` is the provider's count, None when it sent none (the proxy then estimates from
    ``output_chars``); ``chat_usage`` is the provider's own usage block when it is already in
    Chat's shape, so that fields Meterway does not model still reach the client.
    """

    body: dict[str, Any]
    tokens: TokenUsage | None
    output_chars: int = 0
    finish_reason: str | None = None
    chat_usage: dict[str, Any] | None = None


class StreamAdapter(Protocol):
    """One upstream event stream, event by event, as Chat completion chunks.

    ``feed`` takes each server-sent event (its name and its raw data) and returns the chunks to
    send, possibly none; it raises ``UpstreamError`` for an error event and ``ValueError`` for
    data it cannot parse. The provider's own final usage is never among the chunks: the encoder
    appends one usage chunk, with the cost, for every provider alike.
    """

    @property
    def finished(self) -> bool:
        """The stream ended normally (its last event seen)."""

    @property
    def ended(self) -> bool:
        """The upstream's end-of-stream marker was seen: read no further."""

    @property
    def finish_reason(self) -> str | None: ...

    @property
    def output_chars(self) -> int:
        """Characters of text, reasoning and tool arguments sent, for estimating unreported usage."""

    @property
    def usage(self) -> TokenUsage:
        """The usage reported so far, in the ledger's token classes."""

    @property
    def usage_reported(self) -> bool:
        """Whether the provider sent its final output count."""

    @property
    def chat_usage(self) -> dict[str, Any] | None:
        """The provider's own usage block, when it is in Chat's shape already."""

    def feed(self, event: str, data: str) -> list[dict[str, Any]]: ...


class Provider(Protocol):
    """One upstream provider, configured with its base URL and key."""

    def chat_request(self, route: ModelRoute, body: dict[str, Any]) -> UpstreamRequest:
        """The upstream request for a client's chat completion request (validated, with defaults)."""

    def chat_answer(self, route: ModelRoute, payload: dict[str, Any], request_id: str, created: int) -> ChatAnswer:
        """The client's ``chat.completion`` from the upstream's non-streamed answer."""

    def chat_stream(self, route: ModelRoute, request_id: str, created: int) -> StreamAdapter:
        """An adapter for the upstream's stream of one request."""

    def error(self, status: int, body: bytes, retry_after: str | None) -> UpstreamError:
        """The gateway's error for an upstream error answer."""


def status_error(status: int, message: str | None, retry_after: str | None) -> UpstreamError:
    """The gateway's error for a provider's error answer: its 400/404/413/422/429 pass through with
    its message; auth failures and 5xx are the gateway's problem (502), the client cannot fix them."""
    text = message or f"The upstream provider answered {status}."
    error = UpstreamError(f"Upstream error: {text}", upstream_status=status)
    if status in CLIENT_FAULT_STATUSES:
        error.status = status
        error.type = "rate_limit_error" if status == 429 else "invalid_request_error"
        error.code = "upstream_rate_limited" if status == 429 else "upstream_rejected"
        if retry_after:
            error.headers["retry-after"] = retry_after
    return error


def error_message(body: bytes) -> str | None:
    """``error.message`` of an error body, the shape OpenAI and Anthropic both use."""
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    error = payload.get("error") if isinstance(payload, Mapping) else None
    if isinstance(error, Mapping) and isinstance(error.get("message"), str):
        return str(error["message"])[:_MAX_MESSAGE_CHARS]
    return None
