"""Responses streaming: named server-sent events in the order the real API sends them.

``response.created`` and ``response.in_progress`` open the stream. Each output item is then
announced (``response.output_item.added``), filled and closed (``response.output_item.done``):

* reasoning with a summary: ``response.reasoning_summary_part.added``,
  ``response.reasoning_summary_text.delta``... ``.done``, ``response.reasoning_summary_part.done``;
* a message: ``response.content_part.added``, ``response.output_text.delta``...
  ``response.output_text.done``, ``response.content_part.done``;
* a function call: ``response.function_call_arguments.delta``... ``.done``; a custom tool call:
  ``response.custom_tool_call_input.delta``... ``.done``.

``response.completed`` (or ``response.incomplete``) ends it with the full response and its
usage. Every event carries a ``sequence_number``, counting from 0.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.types import Receive

from .asgi import EventStreamResponse, sse_event
from .common import Exchange, new_id
from .openai_stream import server_error
from .pacing import FINAL, OPEN, PLAIN, TOKEN, paced_stream
from .responses_plan import ResponsePlan

Planned = tuple[str, dict[str, Any]]
# The events inside one output item: (plan, index of the call, item_id and output_index).
Inner = Callable[[ResponsePlan, int, dict[str, Any]], list[Planned]]


def _reasoning_events(plan: ResponsePlan, _: int, where: dict[str, Any]) -> list[Planned]:
    assert plan.reasoning is not None
    summary = plan.reasoning.summary
    if not summary:
        return []
    at = {**where, "summary_index": 0}
    text = "".join(summary)
    events: list[Planned] = [
        (PLAIN, {"type": "response.reasoning_summary_part.added", **at, "part": {"type": "summary_text", "text": ""}})
    ]
    events += [(PLAIN, {"type": "response.reasoning_summary_text.delta", **at, "delta": piece}) for piece in summary]
    events.append((PLAIN, {"type": "response.reasoning_summary_text.done", **at, "text": text}))
    part = {"type": "summary_text", "text": text}
    events.append((PLAIN, {"type": "response.reasoning_summary_part.done", **at, "part": part}))
    return events


def _message_events(plan: ResponsePlan, _: int, where: dict[str, Any]) -> list[Planned]:
    at = {**where, "content_index": 0}
    part = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
    events: list[Planned] = [(PLAIN, {"type": "response.content_part.added", **at, "part": part})]
    events += [(TOKEN, {"type": "response.output_text.delta", **at, "delta": p, "logprobs": []}) for p in plan.text]
    text = "".join(plan.text)
    events.append((PLAIN, {"type": "response.output_text.done", **at, "text": text, "logprobs": []}))
    events.append((PLAIN, {"type": "response.content_part.done", **at, "part": {**part, "text": text}}))
    return events


def _call_events(plan: ResponsePlan, index: int, where: dict[str, Any]) -> list[Planned]:
    call = plan.calls[index]
    kind = "custom_tool_call_input" if call.custom else "function_call_arguments"
    field = "input" if call.custom else "arguments"
    events: list[Planned] = [(TOKEN, {"type": f"response.{kind}.delta", **where, "delta": p}) for p in call.pieces]
    events.append((PLAIN, {"type": f"response.{kind}.done", **where, field: call.sent}))
    return events


def _items(plan: ResponsePlan) -> list[tuple[dict[str, Any], dict[str, Any], Inner, int]]:
    """(item as announced, item when done, its inner events, call index) per output item."""
    items: list[tuple[dict[str, Any], dict[str, Any], Inner, int]] = []
    if plan.reasoning:
        items.append((plan.reasoning_item(final=False), plan.reasoning_item(), _reasoning_events, 0))
    if plan.text or not plan.calls:
        items.append((plan.message_item(final=False), plan.message_item(), _message_events, 0))
    for index in range(len(plan.calls)):
        items.append((plan.call_item(index, final=False), plan.call_item(index), _call_events, index))
    return items


def _numbered(events: list[Planned]) -> list[tuple[str, bytes]]:
    return [
        (kind, sse_event(payload["type"], {**payload, "sequence_number": n}))
        for n, (kind, payload) in enumerate(events)
    ]


def response_events(plan: ResponsePlan) -> list[tuple[str, bytes]]:
    """The whole event sequence of a response, tagged for pacing."""
    started = plan.response("in_progress", output=[], usage=None)
    events: list[Planned] = [
        (PLAIN, {"type": "response.created", "response": started}),
        (PLAIN, {"type": "response.in_progress", "response": started}),
    ]
    for output_index, (added, done, inner, call_index) in enumerate(_items(plan)):
        where = {"item_id": added["id"], "output_index": output_index}
        # The first item appears once the model has produced something: after the first-token latency.
        kind = OPEN if output_index == 0 else PLAIN
        events.append((kind, {"type": "response.output_item.added", "output_index": output_index, "item": added}))
        events += inner(plan, call_index, where)
        events.append((PLAIN, {"type": "response.output_item.done", "output_index": output_index, "item": done}))
    events.append((FINAL, {"type": f"response.{plan.status}", "response": plan.final_response()}))
    return _numbered(events)


def stream_response(exchange: Exchange, plan: ResponsePlan) -> EventStreamResponse:
    """Stream ``plan``, honouring latency, client disconnects and a ``cut`` fault."""

    def error_event(sequence_number: int) -> bytes:
        error = server_error(exchange)
        payload = {"type": "error", "code": "server_error", "message": error["message"], "param": None}
        return sse_event("error", {**payload, "sequence_number": sequence_number})

    headers = {"x-request-id": new_id("req_")}
    return paced_stream(exchange, response_events(plan), plan.usage, headers=headers, error_event=error_event)


def failed_stream(plan: ResponsePlan, error: dict[str, Any]) -> EventStreamResponse:
    """A stream that starts, then fails with ``error`` (``{"code", "message"}``) before any output."""
    started = plan.response("in_progress", output=[], usage=None)
    failed = {**plan.response("failed", output=[], usage=None), "error": error}
    events = _numbered(
        [
            (PLAIN, {"type": "response.created", "response": started}),
            (PLAIN, {"type": "response.in_progress", "response": started}),
            (PLAIN, {"type": "response.failed", "response": failed}),
        ]
    )

    async def stream(receive: Receive) -> AsyncIterator[bytes]:
        for _, data in events:
            yield data

    return EventStreamResponse(stream, headers={"x-request-id": new_id("req_")})
