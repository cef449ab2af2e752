"""Amazon Bedrock, signed with SigV4 by the function's own IAM role: no provider key.

Every client reaches Bedrock through Anthropic Messages (natively for a Messages client, by the
Chat and Responses translations otherwise), and Bedrock gets it in one of two forms:

- Anthropic's models take the Messages body itself through InvokeModel and
  InvokeModelWithResponseStream, so it passes through (thinking, tools, ``cache_control``; the
  ``anthropic-beta`` header becomes the body's ``anthropic_beta``). The model goes in the URL; the
  body names Bedrock's ``anthropic_version`` and neither the model nor ``stream``.
- The others (Nova, Llama…) take Converse and ConverseStream: the Messages body is told in
  Converse's words, and the answer and the stream are told back as Anthropic's
  (``translate.messages_over_converse``).

A streamed answer is AWS's binary event stream, not server-sent events: InvokeModel's ``chunk``
events each hold one Anthropic event (base64 JSON), ConverseStream's are read into Anthropic's, and
a failure mid-stream (an ``exception`` message) is read as Anthropic's own ``error`` event, so that
every bridge handles it as it does Anthropic's.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from meterway.core.errors import UpstreamError
from meterway.proxy.logic.catalog import ModelRoute
from meterway.proxy.models import Format, UpstreamRequest
from meterway.proxy.providers.base import Provider, status_error
from meterway.proxy.providers.sse import BodyEvents, Event

if TYPE_CHECKING:
    import httpx

    from meterway.proxy.translate.base import Answer

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

    def __init__(
        self,
        region: str,
        endpoint_url: str | None,
        credentials: Callable[[], Any],
        *,
        enabled: frozenset[str] | None = None,
    ):
        self._region = region
        self._base_url = (endpoint_url or f"https://bedrock-runtime.{region}.amazonaws.com").rstrip("/")
        self._credentials = credentials
        self._enabled = enabled

    def serves(self, route: ModelRoute) -> bool:
        """Only the models and inference profiles the role may invoke (all of them when not said)."""
        return self._enabled is None or route.upstream_model in self._enabled

    def endpoint(self, fmt: Format, *, stream: bool, client_headers: Mapping[str, str]) -> tuple[str, dict[str, str]]:
        # The model and the operation make the path, and the signature the headers: see ``request``.
        del fmt, stream, client_headers
        return "", {}

    def request(
        self, fmt: Format, route: ModelRoute, body: dict[str, Any], client_headers: Mapping[str, str]
    ) -> UpstreamRequest:
        messages = super().request(fmt, route, body, client_headers).body
        stream = bool(body.get("stream"))
        if takes_messages(route.upstream_model):
            operation = "invoke-with-response-stream" if stream else "invoke"
            sent = _invoke_body(messages, client_headers)
        else:
            # The Converse translation is imported on the first model that needs it (see BRIDGES).
            from meterway.proxy.translate.messages_over_converse.request import messages_to_converse

            operation = "converse-stream" if stream else "converse"
            sent = self.translated(fmt, route, lambda: messages_to_converse(messages, route.upstream_model))
        url = f"{self._base_url}/model/{quote(route.upstream_model, safe='')}/{operation}"
        content = json.dumps(sent, separators=(",", ":")).encode()
        return UpstreamRequest(url, sent, self._signed(url, content, stream=stream), content)

    def answer(self, fmt: Format, route: ModelRoute, payload: dict[str, Any], request_id: str, created: int) -> Answer:
        if not takes_messages(route.upstream_model):
            from meterway.proxy.translate.messages_over_converse.response import converse_to_message

            payload = converse_to_message(payload, message_id=_message_id(), model=route.upstream_model)
        return super().answer(fmt, route, payload, request_id, created)

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

    def events(self, response: httpx.Response) -> BodyEvents:
        return BodyEvents(response, partial(anthropic_events, model=_model_of(response)))


def model_ids(arns: str) -> frozenset[str]:
    """The model and inference-profile ids of comma-separated Bedrock ARNs
    (``arn:aws:bedrock:*::foundation-model/amazon.nova-pro-v1:0`` → ``amazon.nova-pro-v1:0``)."""
    return frozenset(arn.strip().split(":", 5)[-1].split("/", 1)[-1] for arn in arns.split(",") if arn.strip())


def takes_messages(model_id: str) -> bool:
    """Whether InvokeModel takes Anthropic's Messages body for this model or inference profile
    (``anthropic.…``, ``us.anthropic.…``); the others are spoken to in Converse."""
    return model_id.startswith("anthropic.") or ".anthropic." in model_id


def _invoke_body(messages: dict[str, Any], client_headers: Mapping[str, str]) -> dict[str, Any]:
    invoke = {name: value for name, value in messages.items() if name not in ("model", "stream")}
    invoke["anthropic_version"] = ANTHROPIC_VERSION
    betas = [beta.strip() for beta in client_headers.get("anthropic-beta", "").split(",") if beta.strip()]
    if betas:
        invoke["anthropic_beta"] = betas
    return invoke


def _message_id() -> str:
    """An id for a message Converse gave none, shaped as Bedrock's Claude ids are."""
    return f"msg_bdrk_{uuid.uuid4().hex[:24]}"


async def anthropic_events(body: AsyncIterator[bytes], model: str) -> AsyncIterator[Event]:
    """The Anthropic events a streamed answer's ``body`` carries (InvokeModel's chunks, or
    ConverseStream's events told as Anthropic's, of ``model``), as they arrive."""
    from botocore.eventstream import EventStreamBuffer

    from meterway.proxy.translate.messages_over_converse.response import ConverseEvents

    buffer: Any = EventStreamBuffer()
    converse: ConverseEvents | None = None
    async for data in body:
        buffer.add_data(data)
        for message in buffer:
            headers: Mapping[str, Any] = message.headers
            payload: dict[str, Any] = json.loads(message.payload or b"{}")
            kind, event_type = headers.get(":message-type"), str(headers.get(":event-type"))
            if kind in ("exception", "error"):
                yield _error_event(headers, payload)
            elif kind == "event" and event_type == "chunk":
                event = json.loads(base64.b64decode(payload["bytes"]))
                event.pop("amazon-bedrock-invocationMetrics", None)
                yield Event(str(event.get("type")), json.dumps(event, separators=(",", ":")))
            elif kind == "event":
                converse = converse or ConverseEvents(message_id=_message_id(), model=model)
                for name, anthropic in converse.feed(event_type, payload):
                    yield Event(name, json.dumps(anthropic, separators=(",", ":")))


def _model_of(response: httpx.Response) -> str:
    """The model a Bedrock answer is from: the path's ``/model/{id}/…``."""
    from urllib.parse import unquote

    return unquote(response.request.url.raw_path.decode().split("/")[2])


def _error_event(headers: Mapping[str, Any], payload: Mapping[str, Any]) -> Event:
    """Bedrock's in-stream exception as Anthropic's ``error`` event (529: ``overloaded_error``)."""

    name = str(headers.get(":exception-type") or headers.get(":error-code") or "")
    kind = _STREAM_ERROR_TYPES.get(name, "api_error")
    if payload.get("originalStatusCode") == 529:
        kind = "overloaded_error"
    message = str(payload.get("message") or headers.get(":error-message") or "The model's stream failed.")
    error = {"type": "error", "error": {"type": kind, "message": message}}
    return Event("error", json.dumps(error))


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
