"""Sending a planned event stream: latency, client hang-ups, ``cut`` faults and the usage log.

Every dialect first plans its whole stream as a list of tagged events, then hands it here, so
the three streaming dialects fail, pace and account in exactly the same way:

* ``OPEN``: sent once the first token is ready (it waits for the first-token latency);
* ``TOKEN``: one output token; paced, counted, and where a ``cut`` fault strikes;
* ``FINAL``: the event that reports the usage; a ``cut`` fault that was not triggered by then
  drops the connection just before it;
* ``PLAIN``: anything else, sent as soon as it comes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.types import Receive

from .asgi import CutConnection, EventStreamResponse, sleep_or_disconnect
from .common import Exchange

OPEN, PLAIN, TOKEN, FINAL = "open", "plain", "token", "final"

Event = tuple[str, bytes]
# Usage after ``n`` emitted tokens, or the full usage for None.
UsageAt = Callable[[int | None], dict[str, Any]]


def paced_stream(
    exchange: Exchange,
    events: list[Event],
    usage_at: UsageAt,
    *,
    headers: dict[str, str],
    usage_reported: bool = True,
) -> EventStreamResponse:
    """Stream ``events``; the request log gets the usage of what actually went out."""
    record = exchange.record
    cut_after = exchange.fault.after_tokens if exchange.fault and exchange.fault.kind == "cut" else None

    async def stream(receive: Receive) -> AsyncIterator[bytes]:
        emitted, opened = 0, False
        for kind, data in events:
            if kind == TOKEN and emitted == cut_after:
                record.usage = usage_at(emitted)
                raise CutConnection
            if kind in (OPEN, TOKEN):
                delay = _delay(exchange, emitted, opened)
                opened = True
                if await sleep_or_disconnect(receive, delay):
                    record.usage, record.client_disconnected = usage_at(emitted), True
                    return
                emitted += kind == TOKEN
            elif kind == FINAL:
                if cut_after is not None:
                    record.usage = usage_at(None)
                    raise CutConnection
                # Logged before the last bytes go out so a client that just read them finds it.
                record.usage, record.usage_reported = usage_at(None), usage_reported
            yield data

    return EventStreamResponse(stream, headers=headers)


def _delay(exchange: Exchange, emitted: int, opened: bool) -> float:
    """Time to wait before the next OPEN or TOKEN event."""
    if emitted:
        return exchange.per_token_s
    # The first token waits for the first-token latency; the events that open with it do not wait again.
    return 0.0 if opened else exchange.first_token_s
