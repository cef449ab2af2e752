"""Low-level response helpers: SSE streaming, disconnect-aware sleeping, abrupt connection drops."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from starlette.background import BackgroundTask
from starlette.responses import Response
from starlette.types import Receive, Scope, Send


class CutConnection(Exception):
    """Raised by a stream generator to make the response end with a dropped connection."""


def sse_data(payload: Any) -> bytes:
    """An OpenAI style server-sent event: ``data: <json>``."""
    return f"data: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()


def sse_event(event: str, payload: Any) -> bytes:
    """An Anthropic style server-sent event: ``event: <type>`` then ``data: <json>``."""
    return f"event: {event}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()


async def wait_for_disconnect(receive: Receive) -> None:
    """Return once the client has gone away (the request body must already be consumed)."""
    while (await receive())["type"] != "http.disconnect":
        continue


async def sleep_or_disconnect(receive: Receive, seconds: float) -> bool:
    """Sleep, but wake up early if the client disconnects. Returns True on disconnect."""
    if seconds <= 0:
        return False
    try:
        async with asyncio.timeout(seconds):
            await wait_for_disconnect(receive)
    except TimeoutError:
        return False
    return True


async def drop_connection(receive: Receive) -> bool:
    """Close the TCP connection under the current request, without a proper HTTP ending.

    ASGI has no way to do this, so this reaches into uvicorn: ``receive`` is a bound method of
    its request cycle, which holds the transport. Returns False when that is not available.
    """
    transport = getattr(getattr(receive, "__self__", None), "transport", None)
    if transport is None or not callable(getattr(transport, "close", None)):
        return False
    transport.close()
    # Wait until uvicorn has noticed, otherwise it would try to answer a 500 of its own.
    await wait_for_disconnect(receive)
    return True


class DroppedResponse(Response):
    """Closes the connection without sending a single response byte."""

    def __init__(self, fallback_body: bytes = b"{") -> None:
        super().__init__(content=fallback_body, status_code=200, media_type="application/json")
        self._fallback_body = fallback_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if await drop_connection(receive):
            return
        # Not running on uvicorn: announce a longer body than we send and stop, which makes the
        # server abort the connection.
        headers = [(b"content-type", b"application/json"), (b"content-length", b"1048576")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": self._fallback_body, "more_body": True})


StreamFactory = Callable[[Receive], AsyncIterator[bytes]]


class EventStreamResponse(Response):
    """A ``text/event-stream`` response (or another streamed ``media_type``) fed by ``stream(receive)``.

    The generator gets ``receive`` so it can notice client disconnects while sleeping, and may
    raise ``CutConnection`` to end the response with a dropped connection.
    """

    def __init__(
        self, stream: StreamFactory, headers: Mapping[str, str] | None = None, media_type: str = "text/event-stream"
    ) -> None:
        self._stream = stream
        self.status_code = 200
        self.media_type = media_type
        self.background: BackgroundTask | None = None
        self.init_headers(headers)
        self.headers.setdefault("cache-control", "no-cache")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        try:
            async for chunk in self._stream(receive):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except CutConnection:
            # Without uvicorn, returning with the body unfinished also makes the server abort.
            await drop_connection(receive)
            return
        await send({"type": "http.response.body", "body": b"", "more_body": False})
