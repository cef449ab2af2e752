"""Anthropic Messages streaming: ``message_start`` ... ``message_stop`` server-sent events.

Blocks stream in the documented order: ``content_block_start``, its deltas, then
``content_block_stop``. A thinking block ends with a ``signature_delta`` just before its stop;
a ``tool_use`` block opens with an empty ``input`` and streams its JSON as ``input_json_delta``
fragments (the first one empty, as the real API sends it).
"""

from __future__ import annotations

from typing import Any

from .anthropic_plan import MessagePlan
from .asgi import EventStreamResponse, sse_event
from .common import Exchange, new_id
from .pacing import FINAL, PLAIN, TOKEN, Event, UsageAt, paced_stream

_TOKEN_DELTAS = ("text_delta", "thinking_delta", "input_json_delta")
# An event before it is put on the wire: its pacing tag and its JSON data (whose "type" names it).
MessageEvent = tuple[str, dict[str, Any]]


def _block_events(index: int, block: dict[str, Any], deltas: list[dict[str, Any]]) -> list[MessageEvent]:
    items: list[MessageEvent] = [(PLAIN, {"type": "content_block_start", "index": index, "content_block": block})]
    if index == 0:
        # The real API sends a ping right after the first block opens.
        items.append((PLAIN, {"type": "ping"}))
    for delta in deltas:
        # An empty fragment carries no token.
        counted = delta["type"] in _TOKEN_DELTAS and delta.get("partial_json") != ""
        items.append((TOKEN if counted else PLAIN, {"type": "content_block_delta", "index": index, "delta": delta}))
    items.append((PLAIN, {"type": "content_block_stop", "index": index}))
    return items


def _content_events(plan: MessagePlan) -> list[MessageEvent]:
    blocks: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
    if plan.thinking is not None:
        deltas = [{"type": "thinking_delta", "thinking": t} for t in plan.thinking] if plan.thinking_visible else []
        deltas.append({"type": "signature_delta", "signature": plan.signature})
        blocks.append(({"type": "thinking", "thinking": "", "signature": ""}, deltas))
    if plan.text or not plan.tool_calls:
        blocks.append(({"type": "text", "text": ""}, [{"type": "text_delta", "text": token} for token in plan.text]))
    for call in plan.tool_calls:
        start = {"type": "tool_use", "id": call.id, "name": call.name, "input": {}}
        fragments = ["", *call.pieces]
        blocks.append((start, [{"type": "input_json_delta", "partial_json": piece} for piece in fragments]))
    return [item for index, (block, deltas) in enumerate(blocks) for item in _block_events(index, block, deltas)]


def message_events(plan: MessagePlan) -> list[MessageEvent]:
    """The whole event sequence of a reply, each tagged for pacing, before any framing."""
    items: list[MessageEvent] = [(PLAIN, {"type": "message_start", "message": plan.message(final=False)})]
    items += _content_events(plan)
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
    items.append((FINAL, message_delta))
    items.append((PLAIN, {"type": "message_stop"}))
    return items


def planned_events(plan: MessagePlan) -> list[Event]:
    """The reply as Anthropic's server-sent events, each tagged for pacing."""
    return [(tag, sse_event(data["type"], data)) for tag, data in message_events(plan)]


def streamed_usage(plan: MessagePlan) -> UsageAt:
    """The usage of a stream of ``plan`` cut after ``n`` output tokens (all of it for None)."""
    # Omitted thinking is billed but never streamed: it is all spent before the first text delta.
    hidden = len(plan.thinking or []) if not plan.thinking_visible else 0

    def usage_at(emitted: int | None) -> dict[str, Any]:
        return plan.usage(None if emitted is None else emitted + hidden if emitted else 0)

    return usage_at


def stream_message(exchange: Exchange, plan: MessagePlan) -> EventStreamResponse:
    """Stream ``plan``, honouring latency, client disconnects and a ``cut`` fault."""

    def error_event(_: int) -> bytes:
        message = (exchange.fault and exchange.fault.message) or "Overloaded"
        return sse_event("error", {"type": "error", "error": {"type": "overloaded_error", "message": message}})

    headers = {"request-id": new_id("req_")}
    return paced_stream(exchange, planned_events(plan), streamed_usage(plan), headers=headers, error_event=error_event)
