"""An ASGI response for server-sent events that notices a client leaving and always closes its
generator.

uvicorn drops writes to a closed connection without an error, so a relay that only writes would
keep draining (and paying for) the upstream after the client has gone. This response listens for
``http.disconnect`` while it streams and then cancels the relay. The proxy's generator settles the
usage record in its ``finally``, so it is closed at once, shielded from that cancellation.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send


class EventStreamResponse(Response):
    media_type = "text/event-stream"

    def __init__(self, events: AsyncGenerator[bytes, None], headers: Mapping[str, str] | None = None):
        self.events = events
        self.status_code = 200
        self.background = None
        self.init_headers({"cache-control": "no-cache", "x-accel-buffering": "no", **(headers or {})})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(self._cancel_on_disconnect, receive, group.cancel_scope)
                await self._relay(send)
                group.cancel_scope.cancel()
        except OSError:
            # The client went away mid-write; the generator's finally records the request as partial.
            return
        finally:
            with anyio.CancelScope(shield=True):
                await self.events.aclose()

    async def _relay(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        async for chunk in self.events:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    @staticmethod
    async def _cancel_on_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                scope.cancel()
                return
