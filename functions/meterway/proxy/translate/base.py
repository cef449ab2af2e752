"""How a client's wire format reaches a provider that speaks another (or the same) one.

A bridge joins one client format to one upstream format: it builds the upstream body from the
client's, reads the upstream's non-streamed answer into the client's format, and adapts the
upstream's stream event by event. It reads the upstream's usage into the ledger's token classes.
It does no I/O, and it knows no provider: the provider adds where to send and how to sign.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from meterway.core.errors import UpstreamError
from meterway.ledger.models import TokenUsage
from meterway.proxy.logic.catalog import ModelRoute
from meterway.proxy.models import Format

# Error types OpenAI's and Anthropic's clients both know.
_SHARED_ERROR_TYPES = frozenset({"invalid_request_error", "rate_limit_error", "overloaded_error", "api_error"})


@dataclass(frozen=True, slots=True)
class Answer:
    """An upstream's non-streamed answer in the client's format (``body``, without the cost).

    ``tokens`` is the upstream's count, None when it sent none (the proxy then estimates from
    ``output_chars``); ``client_usage`` is the upstream's own usage block when it is already in the
    client's format.
    """

    body: dict[str, Any]
    tokens: TokenUsage | None
    output_chars: int = 0
    finish_reason: str | None = None
    client_usage: dict[str, Any] | None = None


class StreamAdapter(Protocol):
    """One upstream event stream, event by event, as the client's events.

    ``feed`` takes each server-sent event (its name and its raw data) and returns the client's
    events to send, possibly none; it raises ``UpstreamError`` for an error event and ``ValueError``
    for data it cannot parse. An event that carries the final usage is recognised by the client's
    encoder, which adds the cost to it (Chat's usage chunk is the encoder's own, appended at the end).
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
        """Whether the upstream sent its final output count."""

    @property
    def client_usage(self) -> dict[str, Any] | None:
        """The upstream's own usage block, when it is in the client's format already."""

    def feed(self, event: str, data: str) -> list[dict[str, Any]]: ...


class Bridge(Protocol):
    """A client format over an upstream format."""

    @property
    def upstream(self) -> Format:
        """The format the upstream is spoken to in."""

    def request(self, route: ModelRoute, body: dict[str, Any]) -> dict[str, Any]:
        """The upstream body for a client's (validated) body."""

    def answer(self, route: ModelRoute, payload: dict[str, Any], request_id: str, created: int) -> Answer:
        """The client's answer from the upstream's non-streamed one."""

    def stream(self, route: ModelRoute, request_id: str, created: int) -> StreamAdapter:
        """An adapter for the upstream's stream of one request."""


def upstream_error(error: Any) -> UpstreamError:
    """An error the upstream reported inside a 200 answer or chunk, in its own words; its type is
    kept where Anthropic's clients know it (OpenAI's ``server_error`` is Anthropic's ``api_error``)."""
    details = error if isinstance(error, dict) else {"message": str(error)}
    message = str(details.get("message") or "The upstream provider reported an error.")
    kind = details.get("type") or details.get("code")
    code = "api_error" if kind == "server_error" else kind if kind in _SHARED_ERROR_TYPES else None
    failure = UpstreamError(f"Upstream error: {message}", code=code)
    failure.upstream_message = message
    return failure
