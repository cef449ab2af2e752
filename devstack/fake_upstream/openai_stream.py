"""Chat Completions streaming: ``chat.completion.chunk`` events, ending with ``[DONE]``.

Each chunk carries one choice. The choices open together, then their tokens interleave, as
the real API does with ``n > 1``. Tool calls stream in OpenAI's form: the first delta of a call
has its ``index``, ``id``, ``type`` and ``function.name`` with empty arguments, then argument
fragments follow with only the ``index``.
"""

from __future__ import annotations

from itertools import zip_longest
from typing import Any

from .asgi import EventStreamResponse, sse_data
from .common import Exchange, new_id
from .openai_plan import SYSTEM_FINGERPRINT, ChatPlan, ChoicePlan
from .pacing import FINAL, OPEN, PLAIN, TOKEN, Event, paced_stream


def _chunk(plan: ChatPlan, index: int, delta: dict[str, Any] | None, finish: str | None, usage_key: bool) -> Any:
    choices = [] if delta is None else [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}]
    chunk: dict[str, Any] = {
        "id": plan.id,
        "object": "chat.completion.chunk",
        "created": plan.created,
        "model": plan.model,
        "service_tier": "default",
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "choices": choices,
    }
    if usage_key:
        chunk["usage"] = None
    return chunk


def _deltas(choice: ChoicePlan) -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]:
    """The opening delta of a choice, then its other deltas tagged for pacing."""
    opening: dict[str, Any] = {"role": "assistant", "content": "", "refusal": None}
    if not choice.tool_calls:
        return opening, [(TOKEN, {"content": piece}) for piece in choice.content]
    items: list[tuple[str, dict[str, Any]]] = []
    for index, call in enumerate(choice.tool_calls):
        header = {"index": index, "id": call.id, "type": "function", "function": {"name": call.name, "arguments": ""}}
        if index == 0:
            opening = {"role": "assistant", "content": None, "tool_calls": [header], "refusal": None}
        else:
            items.append((PLAIN, {"tool_calls": [header]}))
        items += [(TOKEN, {"tool_calls": [{"index": index, "function": {"arguments": p}}]}) for p in call.pieces]
    return opening, items


def chat_events(plan: ChatPlan, include_usage: bool) -> list[Event]:
    """The whole chunk sequence of a completion."""
    openings, streams = zip(*(_deltas(choice) for choice in plan.choices), strict=True)
    events: list[Event] = [
        (OPEN, sse_data(_chunk(plan, choice.index, opening, None, include_usage)))
        for choice, opening in zip(plan.choices, openings, strict=True)
    ]
    for row in zip_longest(*streams):
        for choice, item in zip(plan.choices, row, strict=True):
            if item is not None:
                events.append((item[0], sse_data(_chunk(plan, choice.index, item[1], None, include_usage))))
    for position, choice in enumerate(plan.choices):
        finish = _chunk(plan, choice.index, {}, choice.finish_reason, include_usage)
        # The usage is logged just before the first finish chunk: a cut fault strikes before it.
        events.append((FINAL if position == 0 else PLAIN, sse_data(finish)))
    if include_usage:
        usage_chunk = _chunk(plan, 0, None, None, include_usage)
        usage_chunk["usage"] = plan.usage()
        events.append((PLAIN, sse_data(usage_chunk)))
    events.append((PLAIN, b"data: [DONE]\n\n"))
    return events


def stream_chat(exchange: Exchange, plan: ChatPlan, include_usage: bool) -> EventStreamResponse:
    """Stream ``plan``; the usage is logged whether or not the client asked for it."""
    return paced_stream(
        exchange,
        chat_events(plan, include_usage),
        plan.usage,
        headers={"x-request-id": new_id("req_")},
        error_event=lambda _: sse_data({"error": server_error(exchange)}),
        usage_reported=include_usage,
    )


def server_error(exchange: Exchange) -> dict[str, Any]:
    """OpenAI's error object for a failure on its side, in a stream as in a response."""
    message = (exchange.fault and exchange.fault.message) or (
        "The server had an error while processing your request. Sorry about that!"
    )
    return {"message": message, "type": "server_error", "param": None, "code": None}
