"""Sending a planned event stream: latency, client hang-ups, ``cut`` faults and the usage log.

Every dialect first plans its whole stream as a list of tagged events, then hands it here, so
the three streaming dialects fail, pace and account in exactly the same way:

* ``OPEN``: sent once the first token is ready (it waits for the first-token latency);
* ``TOKEN``: one output token; paced, counted, and where a ``cut``, ``stall`` or ``stream_error``
  fault strikes;
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
# The provider's error event in the middle of a stream, given how many events went out before it.
ErrorEvent = Callable[[int], bytes]


def paced_stream(
    exchange: Exchange,
    events: list[Event],
    usage_at: UsageAt,
    *,
    headers: dict[str, str],
    error_event: ErrorEvent,
    usage_reported: bool = True,
    media_type: str = "text/event-stream",
) -> EventStreamResponse:
    """Stream ``events``; the request log gets the usage of what actually went out.

    Faults strike before the output token ``after_tokens`` (0: before the first): ``cut`` drops the
    connection, ``stall`` goes silent for ``seconds`` then carries on, ``stream_error`` sends the
    provider's error event and ends the stream as the provider does.
    """
    record = exchange.record
    fault = exchange.fault if exchange.fault and exchange.fault.kind in ("cut", "stall", "stream_error") else None
    strike_at = fault.after_tokens if fault else None

    async def stream(receive: Receive) -> AsyncIterator[bytes]:
        emitted, opened = 0, False
        for sent, (kind, data) in enumerate(events):
            if fault and kind == TOKEN and emitted == strike_at:
                record.usage = usage_at(emitted)
                if fault.kind == "cut":
                    raise CutConnection
                if fault.kind == "stream_error":
                    yield error_event(sent)
                    return
                if await sleep_or_disconnect(receive, fault.seconds):
                    record.client_disconnected = True
                    return
            if kind in (OPEN, TOKEN):
                delay = _delay(exchange, emitted, opened)
                opened = True
                if await sleep_or_disconnect(receive, delay):
                    record.usage, record.client_disconnected = usage_at(emitted), True
                    return
                emitted += kind == TOKEN
            elif kind == FINAL:
                if fault is not None and fault.kind == "cut":
                    record.usage = usage_at(None)
                    raise CutConnection
                # Logged before the last bytes go out so a client that just read them finds it.
                record.usage, record.usage_reported = usage_at(None), usage_reported
            yield data

    return EventStreamResponse(stream, headers=headers, media_type=media_type)


def _delay(exchange: Exchange, emitted: int, opened: bool) -> float:
    """Time to wait before the next OPEN or TOKEN event."""
    if emitted:
        return exchange.per_token_s
    # The first token waits for the first-token latency; the events that open with it do not wait again.
    return 0.0 if opened else exchange.first_token_s
