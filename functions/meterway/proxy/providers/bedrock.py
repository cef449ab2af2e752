"""Amazon Bedrock, signed with SigV4 by the function's own IAM role: no provider key.

Anthropic models on Bedrock take Anthropic's Messages body through InvokeModel and
InvokeModelWithResponseStream, so a Messages client's request passes through (thinking, tools,
``cache_control``; the ``anthropic-beta`` header becomes the body's ``anthropic_beta``) and Chat and
Responses clients reach them by the Messages translations. The model goes in the URL, the body
names Bedrock's ``anthropic_version`` and neither the model nor ``stream``.

A streamed answer is AWS's binary event stream, not server-sent events: each ``chunk`` event holds
one Anthropic event (base64 JSON), and a failure mid-stream is an ``exception`` message, which is
read here as Anthropic's own ``error`` event so that every bridge handles it as it does Anthropic's.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from meterway.core.errors import UpstreamError
from meterway.proxy.logic.catalog import ModelRoute
from meterway.proxy.models import Format, UpstreamRequest
from meterway.proxy.providers.base import Provider, status_error

if TYPE_CHECKING:
    import httpx
    from httpx_sse import ServerSentEvent

ANTHROPIC_VERSION = "bedrock-2023-05-31"
SIGNING_NAME = "bedrock"
EVENT_STREAM = "application/vnd.amazon.eventstream"
# Bedrock's answers that say the gateway's role or configuration is wrong, not the request:
# AccessDeniedException (no model access, or the role lacks bedrock:InvokeModel),
# UnrecognizedClientException and ExpiredTokenException, and ResourceNotFoundException (a model
# the account or region does not have).
_GATEWAY_FAULTS = frozenset({401, 403, 404})
# In-stream exceptions as the Anthropic error types the bridges know.
_STREAM_ERROR_TYPES = {
    "throttlingException": "rate_limit_error",
    "serviceUnavailableException": "overloaded_error",
    "validationException": "invalid_request_error",
}


class Bedrock(Provider):
    """The Bedrock Runtime of ``region`` (or ``endpoint_url``), signing with ``credentials()``."""

    native: tuple[Format, ...] = ("messages",)

    def __init__(self, region: str, endpoint_url: str | None, credentials: Callable[[], Any]):
        self._region = region
        self._base_url = (endpoint_url or f"https://bedrock-runtime.{region}.amazonaws.com").rstrip("/")
        self._credentials = credentials

    def endpoint(self, fmt: Format, *, stream: bool, client_headers: Mapping[str, str]) -> tuple[str, dict[str, str]]:
        # The model is part of the path: ``request`` adds it.
        del fmt, client_headers
        return ("/invoke-with-response-stream" if stream else "/invoke"), {}

    def request(
        self, fmt: Format, route: ModelRoute, body: dict[str, Any], client_headers: Mapping[str, str]
    ) -> UpstreamRequest:
        messages = super().request(fmt, route, body, client_headers)
        stream = bool(body.get("stream"))
        invoke = {name: value for name, value in messages.body.items() if name not in ("model", "stream")}
        invoke["anthropic_version"] = ANTHROPIC_VERSION
        betas = [beta.strip() for beta in client_headers.get("anthropic-beta", "").split(",") if beta.strip()]
        if betas:
            invoke["anthropic_beta"] = betas
        url = f"{self._base_url}/model/{quote(route.upstream_model, safe='')}{messages.url}"
        content = json.dumps(invoke, separators=(",", ":")).encode()
        return UpstreamRequest(url, invoke, self._signed(url, content, stream=stream), content)

    def _signed(self, url: str, content: bytes, *, stream: bool) -> dict[str, str]:
        """The headers of a request signed with SigV4 by the function's role."""
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        credentials = self._credentials()
        if credentials is None:
            raise self.configuration_failed(0, "no AWS credentials to sign the Bedrock request with")
        headers = {"content-type": "application/json", "accept": EVENT_STREAM if stream else "application/json"}
        signed = AWSRequest(method="POST", url=url, data=content, headers=headers)
        SigV4Auth(credentials, SIGNING_NAME, self._region).add_auth(signed)
        return dict(signed.headers.items())

    def error(self, status: int, body: bytes, retry_after: str | None) -> UpstreamError:
        message = aws_error_message(body)
        if status in _GATEWAY_FAULTS:
            return self.configuration_failed(status, message)
        return status_error(status, message, retry_after)

    def events(self, response: httpx.Response) -> AsyncIterator[ServerSentEvent]:
        return anthropic_events(response)


async def anthropic_events(response: httpx.Response) -> AsyncIterator[ServerSentEvent]:
    """The Anthropic events an InvokeModelWithResponseStream answer carries, as they arrive."""
    from botocore.eventstream import EventStreamBuffer
    from httpx_sse import ServerSentEvent

    buffer: Any = EventStreamBuffer()
    async for data in response.aiter_bytes():
        buffer.add_data(data)
        for message in buffer:
            headers: Mapping[str, Any] = message.headers
            payload: dict[str, Any] = json.loads(message.payload or b"{}")
            if headers.get(":message-type") == "event" and headers.get(":event-type") == "chunk":
                event = json.loads(base64.b64decode(payload["bytes"]))
                event.pop("amazon-bedrock-invocationMetrics", None)
                yield ServerSentEvent(event=str(event.get("type")), data=json.dumps(event, separators=(",", ":")))
            elif headers.get(":message-type") in ("exception", "error"):
                yield _error_event(headers, payload)


def _error_event(headers: Mapping[str, Any], payload: Mapping[str, Any]) -> ServerSentEvent:
    """Bedrock's in-stream exception as Anthropic's ``error`` event (529: ``overloaded_error``)."""
    from httpx_sse import ServerSentEvent

    name = str(headers.get(":exception-type") or headers.get(":error-code") or "")
    kind = _STREAM_ERROR_TYPES.get(name, "api_error")
    if payload.get("originalStatusCode") == 529:
        kind = "overloaded_error"
    message = str(payload.get("message") or headers.get(":error-message") or "The model's stream failed.")
    error = {"type": "error", "error": {"type": kind, "message": message}}
    return ServerSentEvent(event="error", data=json.dumps(error))


def aws_error_message(body: bytes) -> str | None:
    """The ``message`` (or ``Message``) of an AWS JSON error body."""
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    if not isinstance(payload, Mapping):
        return None
    found = payload.get("message", payload.get("Message"))
    return str(found)[:500] if isinstance(found, str) else None
