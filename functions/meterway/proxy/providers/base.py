"""What every provider module implements, so that the proxy never asks which provider it talks to.

A provider says which wire formats it speaks, where each is sent and how requests are signed,
and what its error answers mean. For a client's format it builds the upstream request, reads a
non-streamed answer, adapts a stream and reads the usage through the bridge that joins the two
formats (``BRIDGES``): a pass-through where it speaks the client's format, a translation where it
does not. It does no I/O: the HTTP sender (``meterway.proxy.dal.upstream``) sends what it builds.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from functools import cache
from importlib import import_module
from typing import TYPE_CHECKING, Any

from meterway.core.errors import InvalidRequest, UpstreamError
from meterway.core.observability import count, logger
from meterway.proxy.logic.catalog import ModelRoute
from meterway.proxy.models import Format, UpstreamRequest

if TYPE_CHECKING:
    import httpx

    from meterway.proxy.providers.sse import BodyEvents
    from meterway.proxy.translate.base import Answer, Bridge, StreamAdapter

# (client's format, the format the upstream is spoken to in) → the module and class of the bridge
# that joins them. Each is imported on its first use: a container mostly serves one kind of
# client, and the formats and translations it never uses stay off its cold start.
BRIDGES: dict[tuple[Format, Format], tuple[str, str]] = {
    ("chat", "chat"): ("meterway.proxy.formats.chat", "ChatPassThrough"),
    ("chat", "messages"): ("meterway.proxy.translate.chat_over_messages.bridge", "ChatOverMessages"),
    ("messages", "messages"): ("meterway.proxy.formats.messages", "MessagesPassThrough"),
    ("messages", "chat"): ("meterway.proxy.translate.messages_over_chat.bridge", "MessagesOverChat"),
    ("responses", "responses"): ("meterway.proxy.formats.responses", "ResponsesPassThrough"),
    ("responses", "messages"): ("meterway.proxy.translate.responses_over_messages.bridge", "ResponsesOverMessages"),
    ("embeddings", "embeddings"): ("meterway.proxy.formats.embeddings", "EmbeddingsPassThrough"),
}


@cache
def load_bridge(fmt: Format, upstream: Format) -> Bridge | None:
    """The bridge from ``fmt`` to ``upstream``, one instance made on first use; None if none."""
    found = BRIDGES.get((fmt, upstream))
    if found is None:
        return None
    module, name = found
    bridge: Bridge = getattr(import_module(module), name)()
    return bridge


# The provider's answers that the client can act on: its own words reach the client with its
# status (529 is Anthropic's "overloaded", which clients retry). A 404 is the client's only when it
# is about the model (``model_not_found``, "model: …"); on any other path it means the gateway's
# base URL is wrong.
CLIENT_FAULT_STATUSES = frozenset({400, 404, 413, 422, 429, 529})
# The provider refusing the gateway itself (its key, its account's billing or permissions, a
# proxy): the client cannot fix that, and must not read why, since the provider's words may name
# the key. The operators read them in the log, and alarm on the metric.
GATEWAY_FAULT_STATUSES = frozenset({401, 402, 403, 407})
GATEWAY_FAULT_MESSAGE = (
    "The gateway's configuration for this model's provider failed: the provider refused the "
    "gateway's own credentials or settings. This is not a problem with your request."
)
GATEWAY_FAULT_METRIC = "UpstreamCredentialError"
_MAX_MESSAGE_CHARS = 500
# Anything shaped like a provider key, masked or not (``sk-proj-****abcd``, ``sk-ant-api03-…``).
_KEY_LIKE = re.compile(r"\b(?:sk|key|mw)-[A-Za-z0-9_*\-]{4,}")


class Provider(ABC):
    """One upstream provider, configured with its base URL and credentials."""

    #: The formats it speaks, preferred first.
    native: tuple[Format, ...]
    #: Its name in the registry (the metrics' ``provider`` dimension).
    name: str = "upstream"
    _api_key: str | None = None

    @abstractmethod
    def endpoint(self, fmt: Format, *, stream: bool, client_headers: Mapping[str, str]) -> tuple[str, dict[str, str]]:
        """Where a request in ``fmt`` goes, and its headers (signature, version, what is accepted)."""

    def error(self, status: int, body: bytes, retry_after: str | None) -> UpstreamError:
        """The gateway's error for an upstream error answer (see ``status_error``)."""
        if status in GATEWAY_FAULT_STATUSES or (status == 404 and not _about_the_model(body)):
            return self.configuration_failed(status, error_message(body))
        return status_error(status, error_message(body), retry_after)

    def configuration_failed(self, status: int, detail: str | None) -> UpstreamError:
        """The provider refused the gateway itself: a bare 502 for the client; the provider's words,
        any key in them masked, for the log; one count of ``UpstreamCredentialError`` by provider."""
        logger.error(
            "the upstream provider refused the gateway's configuration",
            extra={
                "provider": self.name,
                "upstream_status": status,
                "upstream_message": _without_keys(detail, self._api_key),
            },
        )
        count(GATEWAY_FAULT_METRIC, provider=self.name)
        return UpstreamError(GATEWAY_FAULT_MESSAGE, upstream_status=status, gateway_fault=True)

    def serves(self, route: ModelRoute) -> bool:
        """Whether this deployment may send ``route``'s model to the provider."""
        del route
        return True

    def count_tokens(
        self, route: ModelRoute, body: dict[str, Any], client_headers: Mapping[str, str]
    ) -> UpstreamRequest | None:
        """The provider's own token-counting request for a Messages body; None where it has none."""
        del route, body, client_headers
        return None

    def bridge(self, fmt: Format) -> Bridge:
        """How a client speaking ``fmt`` reaches this provider."""
        for upstream in self.native:
            found = load_bridge(fmt, upstream)
            if found is not None:
                return found
        raise InvalidRequest(f"This model cannot be reached through the {fmt} endpoint.", code="unsupported_endpoint")

    def request(
        self, fmt: Format, route: ModelRoute, body: dict[str, Any], client_headers: Mapping[str, str]
    ) -> UpstreamRequest:
        """The upstream request for a client's (validated) body in ``fmt``.

        A translation reads fields the front door's model leaves open (content blocks, tools,
        ``reasoning_effort``…); one of a shape it cannot read is the client's error: a 400, before
        anything is reserved. It is logged, in case the shape was a valid one the translation
        does not know yet."""
        bridge = self.bridge(fmt)
        upstream_body = self.translated(fmt, route, lambda: bridge.request(route, body))
        url, headers = self.endpoint(bridge.upstream, stream=bool(body.get("stream")), client_headers=client_headers)
        return UpstreamRequest(url, upstream_body, headers)

    def translated(self, fmt: Format, route: ModelRoute, translate: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """What ``translate`` makes of a client's body in ``fmt``; a body of a shape it cannot read
        is the client's 400, logged (see ``request``)."""
        try:
            return translate()
        except (TypeError, AttributeError, KeyError, IndexError, ValueError) as exc:
            logger.warning(
                "a request the translation could not read",
                extra={"model": route.id, "format": fmt, "error": type(exc).__name__, "at": _where(exc)},
            )
            raise InvalidRequest(
                f"The request has a field of a type or shape the {fmt} format does not allow, so it cannot be "
                f"sent to {route.id}. Check its fields against the format's reference.",
                code="invalid_parameters",
            ) from exc

    def events(self, response: httpx.Response) -> BodyEvents:
        """A streamed answer's events, as they arrive: server-sent events, for most providers."""
        from meterway.proxy.providers.sse import server_sent_events

        return server_sent_events(response)

    def answer(self, fmt: Format, route: ModelRoute, payload: dict[str, Any], request_id: str, created: int) -> Answer:
        return self.bridge(fmt).answer(route, payload, request_id, created)

    def stream(self, fmt: Format, route: ModelRoute, request_id: str, created: int) -> StreamAdapter:
        return self.bridge(fmt).stream(route, request_id, created)


def status_error(status: int, message: str | None, retry_after: str | None) -> UpstreamError:
    """The gateway's error for a provider's error answer about the client's request or its own
    failure (its refusals of the gateway are ``Provider.configuration_failed``).

    Its answers about the client's request (400, 404, 413, 422, 429, 529) pass through with its
    status and words. Anything else (a 5xx) is a 502 that keeps the provider's words.
    """
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


def _where(exc: BaseException) -> str:
    """Where an exception was raised (``module.py:123``): the error's text may quote the prompt."""
    frame = exc.__traceback__
    while frame is not None and frame.tb_next is not None:
        frame = frame.tb_next
    return f"{frame.tb_frame.f_code.co_filename.rsplit('/', 1)[-1]}:{frame.tb_lineno}" if frame else "?"


def _without_keys(text: str | None, key: str | None) -> str:
    """``text`` with the provider's key, and anything shaped like a key, masked."""
    text = (text or "").replace(key, "[key]") if key else text or ""
    return _KEY_LIKE.sub("[key]", text)


def _about_the_model(body: bytes) -> bool:
    """Whether a 404 says the model is unknown (OpenAI's ``model_not_found``, Anthropic's
    ``model: …``) rather than the path (a wrong base URL: ``Invalid URL``, ``Not Found``)."""
    found = _error_object(body)
    return found.get("code") == "model_not_found" or "model" in str(found.get("message") or "").lower()


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
