"""A client that hangs up once it has the answer's last event, while the upstream's connection is
still closing (an Anthropic stream has no end marker: it ends when the connection does), leaves a
whole answer on the ledger; one that hangs up before that event leaves a partial one, and so does
a Chat client before the gateway's own last frames (its usage chunk and ``[DONE]``)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import anyio
import httpx
import pytest

from meterway.ledger.models import UsageRecord
from meterway.proxy.formats.chat import ChatChunks, ChatEncoder
from meterway.proxy.formats.messages import MessageEvents, MessagesEncoder
from meterway.proxy.logic.catalog import BUILT_IN
from meterway.proxy.logic.proxy_call import ProxyCall
from meterway.proxy.logic.relay import relay
from meterway.proxy.logic.time_limits import TimeBudget, TimeLimits
from meterway.proxy.providers.sse import Event
from tests.ledger_factory import KEYS

SONNET = "anthropic/claude-sonnet-4-5"
# An Anthropic stream in its real order, usage in ``message_start`` and ``message_delta``.
EVENTS = [
    ("message_start", {"message": {"id": "msg_1", "usage": {"input_tokens": 12, "output_tokens": 1}}}),
    ("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
    ("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "Metered."}}),
    ("content_block_stop", {"index": 0}),
    ("message_delta", {"delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 3}}),
    ("message_stop", {}),
]


# An OpenAI Chat stream that asked for usage: its usage chunk (``choices: []``), then ``[DONE]``.
CHUNKS = [
    {"choices": [{"index": 0, "delta": {"role": "assistant", "content": "Metered."}}]},
    {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    {"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}},
]


class upstream:
    """The events up to the ``until``-th, then a connection that stays open (still closing after
    the last event; stalled before it)."""

    def __init__(self, events: list[Event], until: int):
        self._events, self._until = events, until

    async def __aiter__(self) -> Any:
        for number, event in enumerate(self._events):
            yield event
            if number == self._until:
                await anyio.sleep_forever()

    async def finish(self, seconds: float) -> None:
        """The rest of a body that never ends: nothing, after ``seconds``."""
        await anyio.sleep(seconds)


def anthropic_until(last_sent: str) -> tuple[Any, MessageEvents, type[MessagesEncoder], bytes]:
    events = [Event(name, json.dumps({"type": name, **data})) for name, data in EVENTS]
    until = [name for name, _ in EVENTS].index(last_sent)
    return upstream(events, until), MessageEvents(SONNET), MessagesEncoder, f"event: {last_sent}\n".encode()


async def relay_until(last_sent: str) -> UsageRecord:
    stream, adapter, encoder_type, last_frame = anthropic_until(last_sent)
    return await relayed(stream, adapter, lambda record: encoder_type(record), last_frame)


async def relayed(stream: Any, adapter: Any, encoder_for: Any, last_frame: bytes) -> UsageRecord:
    """Relay ``stream`` to a client that hangs up once it has a frame holding ``last_frame``, as
    the proxy's response does: each frame sent, then the next one asked for, until the client's
    disconnect cancels it (``EventStreamResponse``)."""
    record = UsageRecord("gen-1", datetime(2026, 12, 3, tzinfo=UTC), KEYS[0], SONNET, "anthropic", "messages", True)
    call = ProxyCall(BUILT_IN.resolve(SONNET), {}, record, time.perf_counter())
    settled: list[UsageRecord] = []

    async def settle(done: UsageRecord) -> None:
        settled.append(done)

    limits = TimeLimits(first_byte_s=5, idle_s=5, function_timeout_s=60, settle_margin_s=1)
    budget = TimeBudget.starting(limits, time.perf_counter())
    frames = relay(call, httpx.Response(200), stream, adapter, encoder_for(record), settle, budget)
    sent: list[bytes] = []

    async def serve() -> None:
        async for frame in frames:
            sent.append(frame)

    async with anyio.create_task_group() as server:
        server.start_soon(serve)
        with anyio.fail_after(5):
            while not sent or last_frame not in sent[-1]:
                await anyio.sleep(0.001)
        await anyio.sleep(0.01)  # the server has asked for the next frame
        server.cancel_scope.cancel()  # the client's disconnect
    await frames.aclose()
    assert len(settled) == 1
    return settled[0]


def test_a_client_that_leaves_after_the_last_event_has_a_whole_answer_on_the_ledger():
    record = anyio.run(relay_until, "message_stop")

    assert (record.status, record.error_code, record.finish_reason) == ("ok", None, "end_turn")
    assert (record.tokens.input_tokens, record.tokens.output_tokens, record.usage_estimated) == (12, 3, False)
    assert record.cost_usd > 0


@pytest.mark.parametrize("last_taken", ["content_block_delta", "message_delta"])
def test_a_client_that_leaves_before_the_last_event_has_a_partial_answer(last_taken):
    record = anyio.run(relay_until, last_taken)

    assert (record.status, record.error_code) == ("partial", "client_disconnected")


def test_a_chat_client_that_leaves_before_the_gateways_usage_chunk_has_a_partial_answer():
    # The upstream's usage chunk came, its [DONE] did not yet: the client had the content only
    events = [Event("", json.dumps(chunk)) for chunk in CHUNKS] + [Event("", "[DONE]")]
    adapter = ChatChunks(model=SONNET, request_id="gen-1", created=0)

    finish = b'"finish_reason":"stop"'
    record = anyio.run(relayed, upstream(events, 2), adapter, lambda record: ChatEncoder(record, SONNET, 0), finish)

    assert (record.status, record.error_code) == ("partial", "client_disconnected")
    assert (record.tokens.input_tokens, record.tokens.output_tokens, record.usage_estimated) == (12, 3, False)
