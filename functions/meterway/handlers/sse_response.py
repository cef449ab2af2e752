"""An ASGI response for server-sent events that always closes its generator.

Starlette's StreamingResponse leaves an abandoned generator to the garbage collector when the
client disconnects; the proxy's generator settles the usage record in its ``finally``, so it must
be closed at once, shielded from the cancellation that a disconnect may bring.
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
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            async for chunk in self.events:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            # The client went away; the generator's finally records the request as partial.
            return
        finally:
            with anyio.CancelScope(shield=True):
                await self.events.aclose()
