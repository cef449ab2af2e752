"""Bedrock's streamed answers: planned events framed as AWS event-stream messages and paced.

InvokeModelWithResponseStream and ConverseStream both go through ``stream_events``, so they pace,
fail and account exactly as the other dialects' streams (``pacing.paced_stream``); a provider
failure in the middle of a stream is a ``modelStreamErrorException`` message, as Bedrock sends it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

from starlette.types import Receive

from .asgi import EventStreamResponse
from .common import Exchange
from .eventstream import MEDIA_TYPE, event_frame, event_message, exception_message
from .pacing import UsageAt, paced_stream

# (pacing tag, event type, JSON payload) of one event before it is framed.
StreamEvent = tuple[str, str, dict[str, Any]]
_OVERLOADED = 529


def stream_events(
    exchange: Exchange, events: list[StreamEvent], usage_at: UsageAt, *, content_type: bool = False
) -> EventStreamResponse:
    """Stream ``events`` as event-stream messages (InvokeModel also names the chunks' content type)."""
    framed = [(tag, event_message(event_type, payload, seed)) for seed, (tag, event_type, payload) in enumerate(events)]

    def error_event(_: int) -> bytes:
        message = (exchange.fault and exchange.fault.message) or "Overloaded"
        payload = {"message": message, "originalStatusCode": _OVERLOADED, "originalMessage": message}
        return exception_message("modelStreamErrorException", payload)

    headers = {"x-amzn-RequestId": str(uuid.uuid4())}
    if content_type:
        headers["x-amzn-bedrock-content-type"] = "application/json"
    return paced_stream(exchange, framed, usage_at, headers=headers, error_event=error_event, media_type=MEDIA_TYPE)


def malformed_stream(event_type: str, payload: str) -> EventStreamResponse:
    """A stream whose only event carries ``payload``, a JSON text cut short."""

    async def events(receive: Receive) -> AsyncIterator[bytes]:
        yield event_frame(event_type, payload.encode())

    return EventStreamResponse(events, media_type=MEDIA_TYPE)
