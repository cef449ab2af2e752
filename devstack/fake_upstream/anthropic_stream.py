"""Anthropic Messages streaming: ``message_start`` ... ``message_stop`` server-sent events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from starlette.types import Receive

from .anthropic_plan import MessagePlan
from .asgi import CutConnection, EventStreamResponse, sleep_or_disconnect, sse_event
from .common import Exchange, new_id

# What an item of the planned event sequence is, for pacing and fault handling.
PLAIN, TOKEN, FINAL = "plain", "token", "final"


def _block_events(index: int, block: dict[str, Any], deltas: list[dict[str, Any]]) -> list[tuple[str, bytes]]:
    items = [
        (
            PLAIN,
            sse_event("content_block_start", {"type": "content_block_start", "index": index, "content_block": block}),
        )
    ]
    if index == 0:
        # The real API sends a ping right after the first block opens.
        items.append((PLAIN, sse_event("ping", {"type": "ping"})))
    for delta in deltas:
        kind = TOKEN if delta["type"] in ("text_delta", "thinking_delta") else PLAIN
        items.append(
            (
                kind,
                sse_event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}),
            )
        )
    items.append((PLAIN, sse_event("content_block_stop", {"type": "content_block_stop", "index": index})))
    return items


def planned_events(plan: MessagePlan) -> list[tuple[str, bytes]]:
    """The whole event sequence of a reply, each tagged PLAIN, TOKEN or FINAL."""
    items = [(PLAIN, sse_event("message_start", {"type": "message_start", "message": plan.message(final=False)}))]
    index = 0
    if plan.thinking is not None:
        deltas = [{"type": "thinking_delta", "thinking": t} for t in plan.thinking] if plan.thinking_visible else []
        deltas.append({"type": "signature_delta", "signature": plan.signature})
        items += _block_events(index, {"type": "thinking", "thinking": "", "signature": ""}, deltas)
        index += 1
    text_deltas = [{"type": "text_delta", "text": token} for token in plan.text]
    items += _block_events(index, {"type": "text", "text": ""}, text_deltas)
    usage = plan.usage()
    # message_delta carries cumulative counts, input and cache fields included, like the current API.
    delta_usage = {
        key: usage[key]
        for key in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens")
    }
    if "output_tokens_details" in usage:
        delta_usage["output_tokens_details"] = usage["output_tokens_details"]
    message_delta = {
        "type": "message_delta",
        "delta": {"stop_reason": plan.stop_reason, "stop_sequence": None},
        "usage": delta_usage,
    }
    items.append((FINAL, sse_event("message_delta", message_delta)))
    items.append((PLAIN, sse_event("message_stop", {"type": "message_stop"})))
    return items


def _token_count(plan: MessagePlan, emitted: int) -> int:
    # Omitted thinking is billed but never streamed: it is all spent before the first text delta.
    hidden = len(plan.thinking or []) if not plan.thinking_visible else 0
    return emitted + hidden if emitted else 0


def stream_message(exchange: Exchange, plan: MessagePlan) -> EventStreamResponse:
    """Stream ``plan``, honouring latency, client disconnects and a ``cut`` fault."""
    record = exchange.record
    cut_after = exchange.fault.after_tokens if exchange.fault and exchange.fault.kind == "cut" else None

    async def events(receive: Receive) -> AsyncIterator[bytes]:
        emitted = 0
        for kind, data in planned_events(plan):
            if kind == TOKEN:
                if emitted == cut_after:
                    record.usage = plan.usage(_token_count(plan, emitted))
                    raise CutConnection
                delay = exchange.first_token_s if emitted == 0 else exchange.per_token_s
                if await sleep_or_disconnect(receive, delay):
                    record.usage, record.client_disconnected = plan.usage(_token_count(plan, emitted)), True
                    return
                emitted += 1
            elif kind == FINAL:
                if cut_after is not None:
                    record.usage = plan.usage()
                    raise CutConnection
                # Logged before the last bytes go out so a client that just read message_stop finds it.
                record.usage, record.usage_reported = plan.usage(), True
            yield data

    return EventStreamResponse(events, headers={"request-id": new_id("req_")})
