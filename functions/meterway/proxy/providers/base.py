"""What every provider module implements, so that the proxy never asks which provider it talks to.

A provider says which wire formats it speaks, where each is sent and how requests are signed,
and what its error answers mean. For a client's format it builds the upstream request, reads a
non-streamed answer, adapts a stream and reads the usage through the bridge that joins the two
formats (``BRIDGES``): a pass-through where it speaks the client's format, a translation where it
does not. It does no I/O: the HTTP sender (``meterway.proxy.dal.upstream``) sends what it builds.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

from meterway.core.errors import InvalidRequest, UpstreamError
from meterway.core.observability import logger
from meterway.proxy.formats.chat import ChatPassThrough
from meterway.proxy.formats.embeddings import EmbeddingsPassThrough
from meterway.proxy.formats.messages import MessagesPassThrough
from meterway.proxy.formats.responses import ResponsesPassThrough
from meterway.proxy.logic.catalog import ModelRoute
from meterway.proxy.models import Format, UpstreamRequest
from meterway.proxy.translate.base import Answer, Bridge, StreamAdapter
from meterway.proxy.translate.chat_over_messages.bridge import ChatOverMessages
from meterway.proxy.translate.messages_over_chat.bridge import MessagesOverChat
from meterway.proxy.translate.responses_over_messages.bridge import ResponsesOverMessages

# (client's format, the format the upstream is spoken to in) → how one reaches the other.
BRIDGES: dict[tuple[Format, Format], Bridge] = {
    ("chat", "chat"): ChatPassThrough(),
    ("chat", "messages"): ChatOverMessages(),
    ("messages", "messages"): MessagesPassThrough(),
    ("messages", "chat"): MessagesOverChat(),
    ("responses", "responses"): ResponsesPassThrough(),
    ("responses", "messages"): ResponsesOverMessages(),
    ("embeddings", "embeddings"): EmbeddingsPassThrough(),
}

# The provider's answers that the client can act on: its own words reach the client with its
# status (529 is Anthropic's "overloaded", which clients retry).
CLIENT_FAULT_STATUSES = frozenset({400, 404, 413, 422, 429, 529})
# The provider refusing the gateway itself: the client cannot fix that, and must not read why.
GATEWAY_FAULT_STATUSES = frozenset({401, 402, 403, 407})
_MAX_MESSAGE_CHARS = 500


class Provider(ABC):
    """One upstream provider, configured with its base URL and credentials."""

    #: The formats it speaks, preferred first.
    native: tuple[Format, ...]

    @abstractmethod
    def endpoint(self, fmt: Format, *, stream: bool, client_headers: Mapping[str, str]) -> tuple[str, dict[str, str]]:
        """Where a request in ``fmt`` goes, and its headers (signature, version, what is accepted)."""

    @abstractmethod
    def error(self, status: int, body: bytes, retry_after: str | None) -> UpstreamError:
        """The gateway's error for an upstream error answer."""

    def count_tokens(
        self, route: ModelRoute, body: dict[str, Any], client_headers: Mapping[str, str]
    ) -> UpstreamRequest | None:
        """The provider's own token-counting request for a Messages body; None where it has none."""
        del route, body, client_headers
        return None

    def bridge(self, fmt: Format) -> Bridge:
        """How a client speaking ``fmt`` reaches this provider."""
        for upstream in self.native:
            found = BRIDGES.get((fmt, upstream))
            if found is not None:
                return found
        raise InvalidRequest(f"This model cannot be reached through the {fmt} endpoint.", code="unsupported_endpoint")

    def request(
        self, fmt: Format, route: ModelRoute, body: dict[str, Any], client_headers: Mapping[str, str]
    ) -> UpstreamRequest:
        """The upstream request for a client's (validated) body in ``fmt``."""
        bridge = self.bridge(fmt)
        upstream_body = bridge.request(route, body)
        url, headers = self.endpoint(bridge.upstream, stream=bool(body.get("stream")), client_headers=client_headers)
        return UpstreamRequest(url, upstream_body, headers)

    def answer(self, fmt: Format, route: ModelRoute, payload: dict[str, Any], request_id: str, created: int) -> Answer:
        return self.bridge(fmt).answer(route, payload, request_id, created)

    def stream(self, fmt: Format, route: ModelRoute, request_id: str, created: int) -> StreamAdapter:
        return self.bridge(fmt).stream(route, request_id, created)


def status_error(status: int, message: str | None, retry_after: str | None) -> UpstreamError:
    """The gateway's error for a provider's error answer.

    Its answers about the client's request (400, 404, 413, 422, 429, 529) pass through with its
    status and words. Its refusals of the gateway's own credentials or configuration become a bare
    502: the client cannot fix them, and the provider's words (which may name the key) stay in the
    log. Anything else is a 502 that keeps the provider's words.
    """
    if status in GATEWAY_FAULT_STATUSES:
        logger.error("upstream refused the gateway", extra={"upstream_status": status, "upstream_message": message})
        return UpstreamError(
            "The upstream provider refused the gateway's credentials or configuration.",
            upstream_status=status,
            code="upstream_auth_error",
        )
    text = message or f"The upstream provider answered {status}."
    error = UpstreamError(f"Upstream error: {text}", upstream_status=status)
    error.upstream_message = text
    if status in CLIENT_FAULT_STATUSES:
        error.status = status
        error.type = "rate_limit_error" if status == 429 else "invalid_request_error"
        error.code = "upstream_rate_limited" if status == 429 else "upstream_rejected"
        if retry_after:
            error.headers["retry-after"] = retry_after
    return error


def error_message(body: bytes) -> str | None:
    """``error.message`` of an error body, the shape OpenAI and Anthropic both use."""
    found = _error_object(body)
    return str(found["message"])[:_MAX_MESSAGE_CHARS] if isinstance(found.get("message"), str) else None


def error_type(body: bytes) -> str | None:
    """``error.type`` of an error body (Anthropic's ``overloaded_error``, OpenAI's ``invalid_request_error``)."""
    found = _error_object(body)
    return str(found["type"]) if isinstance(found.get("type"), str) else None


def _error_object(body: bytes) -> Mapping[str, Any]:
    try:
        payload = json.loads(body)
    except ValueError:
        return {}
    error = payload.get("error") if isinstance(payload, Mapping) else None
    return error if isinstance(error, Mapping) else {}
