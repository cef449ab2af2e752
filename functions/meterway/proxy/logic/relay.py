"""The one streaming core that every adapter (Lambda, the local stack, tests) runs.

It reads the upstream's server-sent events as they arrive, hands each to the bridge's stream
adapter and each resulting event to the encoder of the client's wire format, and settles the
request exactly once, whatever happens: completed, cut by the upstream, or abandoned by the
client. The settle callback writes the ledger record; it runs shielded from cancellation, because
a client that hangs up must still leave a record of the tokens the upstream spent.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

import anyio
import httpx

from meterway.core.errors import MeterwayError, UpstreamError
from meterway.ledger.models import UsageRecord
from meterway.proxy.logic.proxy_call import ProxyCall, charge_reported
from meterway.proxy.logic.time_limits import TimeBudget
from meterway.proxy.providers.sse import Event
from meterway.proxy.translate.base import StreamAdapter

if TYPE_CHECKING:
    from meterway.proxy.formats.base import Encoder

Settle = Callable[[UsageRecord], Awaitable[None]]


# How long the rest of an upstream's body is waited for after its last event (``finish``).
FINISH_S = 0.1


class UpstreamEvents(Protocol):
    """A streamed answer's events, and the rest of its body once the last one is in
    (``meterway.proxy.providers.sse.BodyEvents``)."""

    def __aiter__(self) -> AsyncIterator[Event]: ...

    async def finish(self, seconds: float) -> None: ...


async def relay(
    call: ProxyCall,
    response: httpx.Response,
    upstream_events: UpstreamEvents,
    adapter: StreamAdapter,
    encoder: Encoder,
    settle: Settle,
    budget: TimeBudget,
) -> AsyncGenerator[bytes, None]:
    """Relay an upstream event stream (``upstream_events``, read from ``response`` by the provider)
    to the client, end it with the priced usage, settle once.

    Each upstream event is forwarded as soon as it arrives: nothing is buffered. If the upstream
    breaks off, stalls, or would outlive the function's time, the client gets an error event; if
    the client goes away, the generator is closed. Either way the record is settled as ``partial``
    with the upstream's counts where it sent them, else an estimate flagged as such.
    """
    record = call.record
    complete = False
    # Every event of the answer, its last one included, was handed to the client: one that hangs
    # up now (as a client that has its answer may, while the upstream's connection is still
    # closing: an Anthropic stream has no end marker) leaves a whole answer, not a partial one.
    delivered = False
    events = _timed_events(aiter(upstream_events), budget)
    try:
        async for event in events:
            if record.ttft_ms is None:
                record.ttft_ms = call.elapsed_ms()
            for chunk in adapter.feed(event.event, event.data):
                if encoder.carries_usage(chunk):
                    # The event that carries the final usage also carries the cost: price it now.
                    charge_reported(call, adapter.usage, adapter.usage_reported, adapter.output_chars)
                yield encoder.event(chunk)
            # (A format that ends with frames of its own, as Chat's usage chunk and ``[DONE]``,
            # has not delivered until they are sent, below.)
            delivered = adapter.finished and not encoder.closing(adapter.client_usage)
            if adapter.ended:
                break
        if not adapter.finished:
            raise UpstreamError("The upstream provider ended the stream before it finished.")
        complete = True
        _finish(call, adapter, complete=True)
        for frame in encoder.closing(adapter.client_usage):
            yield frame
    except (UpstreamError, httpx.HTTPError, ValueError) as exc:
        error = exc if isinstance(exc, MeterwayError) else UpstreamError("The upstream stream broke off.")
        record.error_code = error.code
        _finish(call, adapter, complete=False)
        yield encoder.error(error)
    finally:
        if delivered and not complete and record.status != "partial":
            # Closed from outside after the answer's last event: the client had all of it.
            _finish(call, adapter, complete=True)
        elif not complete and record.status != "partial":
            # Closed from outside: the client went away or the task was cancelled mid-stream.
            record.error_code = "client_disconnected"
            _finish(call, adapter, complete=False)
        with anyio.CancelScope(shield=True):
            await events.aclose()
            if complete:
                # The client has the whole answer; reading the body's end keeps its connection.
                await upstream_events.finish(FINISH_S)
            await response.aclose()
            await settle(record)


async def _timed_events(events: AsyncIterator[Event], budget: TimeBudget) -> AsyncGenerator[Event, None]:
    """The stream's events, each within its wait: the first within the first-byte timeout (its
    clock started when the request was sent), the others within the idle timeout, none past the
    deadline."""
    wait = budget.first_byte()
    while True:
        try:
            # asyncio's own timeout, which the app always runs on: it costs a third of anyio's
            # ``fail_after`` (≈5 µs against ≈16), and a long stream waits once per event.
            async with asyncio.timeout(wait.seconds):
                event = await anext(events)
        except StopAsyncIteration:
            return
        except TimeoutError as exc:
            raise wait.error from exc
        yield event
        wait = budget.next_event()


def _finish(call: ProxyCall, adapter: StreamAdapter, *, complete: bool) -> None:
    charge_reported(call, adapter.usage, adapter.usage_reported, adapter.output_chars)
    call.record.status = "ok" if complete else "partial"
    call.record.finish_reason = adapter.finish_reason
