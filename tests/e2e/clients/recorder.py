"""A recording stand-in for the Anthropic Messages API and the OpenAI Responses API.

Point a real client (Claude Code, Codex CLI) at it and every request it makes is written down:
method, path with query, every header, and the full body. It answers with minimal but valid
responses so that the client carries on:

* ``POST /v1/messages`` (any query, e.g. ``?beta=true``): an Anthropic Message, streamed as
  ``message_start``, ``ping``, ``content_block_start``/``_delta``/``_stop`` per block,
  ``message_delta`` (``stop_reason`` and ``usage``) and ``message_stop`` when ``stream`` is true,
  else one JSON Message.
* ``POST /v1/messages/count_tokens``: ``{"input_tokens": N}``.
* ``POST /v1/responses``: an OpenAI Response, streamed as ``response.created``,
  ``response.in_progress``, ``response.output_item.added``, ``response.content_part.added``,
  ``response.output_text.delta``, ``response.output_text.done``, ``response.content_part.done``,
  ``response.output_item.done``, ``response.completed`` (each with ``sequence_number``) when
  ``stream`` is true, else one JSON Response.
* ``GET /v1/models``: a model list in the Anthropic shape when the request carries an
  ``anthropic-version`` header, else in the OpenAI shape.
* anything else: 404 in the provider's error envelope (Anthropic's when ``anthropic-version`` is
  sent, else OpenAI's), and still recorded.

What the reply says is steered by the prompt, so that one recorder serves every scenario:

* the latest user turn contains ``CALL_TOOL <name> <json-object>`` and the request offers a tool of
  that name: the reply is a call of that tool with those arguments (an Anthropic ``tool_use`` block,
  or a Responses ``function_call`` item), so the client runs the tool and sends its result back;
* the latest user turn carries a tool result (``tool_result`` block, ``function_call_output``
  item): the reply is ``TOOL_RESULT_SEEN <first 300 characters of the result>``;
* otherwise: ``recorder reply <n> model=<model id of the request>``.

Faults can be injected (answered before the reply above) with ``--fail STATUS[xTIMES][@PATH][:MODE]``
(repeatable) or at run time with ``POST /_recorder/faults`` ``{"faults": [{"status": 529, "times": 2, "path": "/v1/messages",
"mode": "status"}]}``; ``mode`` is ``status`` (an error status in the provider's error envelope),
``sse_error`` (200, then an Anthropic ``error`` event or a ``response.failed`` mid-stream) or
``truncate`` (200, then the stream ends before the last block or item, without its end events). ``GET /_recorder/requests`` lists what was recorded; ``POST /_recorder/reset`` forgets it.
Nothing under ``/_recorder/`` is recorded.

``--emit-thinking`` adds a ``thinking`` block (with a ``signature``) when the request enables
thinking; ``--emit-reasoning`` adds a ``reasoning`` item (summary and ``encrypted_content``) to
Responses, so that what the clients send back of them can be seen. ``--extra-events`` adds an event
of an unknown type and unknown fields to every stream, to see what the clients make of them.
``--responses-events minimal`` sends only ``response.output_item.done`` and ``response.completed``;
``no_item_done`` sends all but ``response.output_item.done``.

Run::

    .venv/bin/python tests/e2e/clients/recorder.py --out /tmp/rec --port 0 --port-file /tmp/rec/port

Each request goes to ``<out>/NNNN-<METHOD>-<path>.json`` and, one line each, ``<out>/requests.jsonl``.
Use fake keys: headers are recorded as sent. From Python, ``running_recorder(out)`` runs it on a
thread for the duration of a ``with`` block.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

CALL_TOOL = re.compile(r"CALL_TOOL\s+([A-Za-z0-9_.:-]+)\s+(\{.*?\})\s*(?:$|\n)", re.DOTALL)

ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
OPENAI_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "invalid_request_error",
    404: "invalid_request_error",
    429: "rate_limit_exceeded",
}


@dataclass
class Fault:
    """Answer the next ``times`` model requests (on ``path``, if given) with an error."""

    status: int = 500
    times: int = 1
    path: str | None = None
    mode: str = "status"  # status | sse_error | truncate
    headers: dict[str, str] = field(default_factory=dict)

    def matches(self, path: str) -> bool:
        return self.times > 0 and (self.path is None or path.startswith(self.path))


@dataclass
class Options:
    emit_thinking: bool = False
    emit_reasoning: bool = False
    extra_events: bool = False
    reply_text: str | None = None
    delay_s: float = 0.0
    # Which Responses events to send: "full"; "minimal" (only response.output_item.done and
    # response.completed); "no_item_done" (all but response.output_item.done).
    responses_events: str = "full"


class Recorder:
    """The recorded requests, the options and the pending faults; shared by the ASGI app."""

    def __init__(self, out: Path, options: Options | None = None, faults: list[Fault] | None = None) -> None:
        self.out = out
        self.out.mkdir(parents=True, exist_ok=True)
        self.options = options or Options()
        self.faults = list(faults or [])
        self.records: list[dict[str, Any]] = []
        self.replies = 0
        self.seq = 0
        self._lock = threading.Lock()

    def record(self, request: Request, raw: bytes) -> dict[str, Any]:
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        with self._lock:
            self.seq += 1
            seq = self.seq
            entry = {
                "seq": seq,
                "time": time.time(),
                "method": request.method,
                "path": request.url.path,
                "query": request.url.query,
                "headers": [[name.decode("latin-1"), value.decode("latin-1")] for name, value in request.headers.raw],
                "body": body,
            }
            self.records.append(entry)
            slug = re.sub(r"[^A-Za-z0-9]+", "_", request.url.path).strip("_") or "root"
            (self.out / f"{seq:04d}-{request.method}-{slug}.json").write_text(json.dumps(entry, indent=2))
            with (self.out / "requests.jsonl").open("a") as log:
                log.write(json.dumps(entry) + "\n")
        return entry

    def take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.matches(path):
                    fault.times -= 1
                    return fault
        return None

    def next_reply_number(self) -> int:
        with self._lock:
            self.replies += 1
            return self.replies


# ---------------------------------------------------------------------------------------------------------------
# What to answer


@dataclass
class Plan:
    """What the reply holds: text, or one tool call."""

    text: str | None = None
    tool_name: str | None = None
    tool_arguments: dict[str, Any] | None = None


def _texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    out: list[str] = []
    for block in content or []:
        if isinstance(block, dict) and isinstance(block.get("text"), str):
            out.append(block["text"])
    return out


def _tool_result_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return " ".join(_texts(content)) if isinstance(content, list) else json.dumps(content)


def _plan(recorder: Recorder, model: str, user_texts: list[str], tool_result: str | None, tools: set[str]) -> Plan:
    if tool_result is not None:
        return Plan(text=f"TOOL_RESULT_SEEN {tool_result[:300]}")
    for text in reversed(user_texts):
        for match in CALL_TOOL.finditer(text):
            name, arguments = match.group(1), match.group(2)
            if name in tools:
                try:
                    return Plan(tool_name=name, tool_arguments=json.loads(arguments))
                except ValueError:
                    pass
    n = recorder.next_reply_number()
    return Plan(text=recorder.options.reply_text or f"recorder reply {n} model={model}")


def plan_messages(recorder: Recorder, body: dict[str, Any]) -> Plan:
    messages = body.get("messages") or []
    last = messages[-1] if messages else {}
    content = last.get("content") if isinstance(last, dict) else None
    tool_result = None
    if isinstance(content, list):
        results = [b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"]
        if results:
            tool_result = _tool_result_text(results[-1].get("content"))
    tools = {str(t.get("name")) for t in body.get("tools") or [] if isinstance(t, dict)}
    user_texts = _texts(content) if last.get("role") == "user" else []
    return _plan(recorder, str(body.get("model")), user_texts, tool_result, tools)


def plan_responses(recorder: Recorder, body: dict[str, Any]) -> Plan:
    items = body.get("input")
    if isinstance(items, str):
        items = [{"type": "message", "role": "user", "content": items}]
    items = items or []
    tool_result = None
    if (
        items
        and isinstance(items[-1], dict)
        and items[-1].get("type") in ("function_call_output", "custom_tool_call_output")
    ):
        tool_result = _tool_result_text(items[-1].get("output"))
    user_texts: list[str] = []
    for item in items:
        if isinstance(item, dict) and item.get("role") == "user":
            user_texts = _texts(item.get("content"))
    tools = {str(t.get("name")) for t in body.get("tools") or [] if isinstance(t, dict)}
    return _plan(recorder, str(body.get("model")), user_texts, tool_result, tools)


def _chunks(text: str, size: int = 12) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _estimate_tokens(body: Any) -> int:
    return max(1, len(json.dumps(body)) // 4)


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


# ---------------------------------------------------------------------------------------------------------------
# Anthropic Messages


def _thinking_wanted(recorder: Recorder, body: dict[str, Any]) -> bool:
    thinking = body.get("thinking")
    return (
        recorder.options.emit_thinking
        and isinstance(thinking, dict)
        and thinking.get("type") in ("enabled", "adaptive")
    )


def message_blocks(recorder: Recorder, body: dict[str, Any], plan: Plan) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if _thinking_wanted(recorder, body):
        blocks.append({"type": "thinking", "thinking": "The recorder thinks briefly.", "signature": "c2lnLXJlY29yZGVy"})
    if plan.tool_name:
        blocks.append(
            {
                "type": "tool_use",
                "id": f"toolu_rec{uuid.uuid4().hex[:20]}",
                "name": plan.tool_name,
                "input": plan.tool_arguments or {},
            }
        )
    else:
        blocks.append({"type": "text", "text": plan.text or ""})
    return blocks


def message_usage(body: dict[str, Any], output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": _estimate_tokens(body),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def message_json(recorder: Recorder, body: dict[str, Any], plan: Plan) -> dict[str, Any]:
    blocks = message_blocks(recorder, body, plan)
    return {
        "id": f"msg_rec{uuid.uuid4().hex[:20]}",
        "type": "message",
        "role": "assistant",
        "model": body.get("model"),
        "content": blocks,
        "stop_reason": "tool_use" if plan.tool_name else "end_turn",
        "stop_sequence": None,
        "usage": message_usage(body, 12),
    }


async def message_events(
    recorder: Recorder, body: dict[str, Any], plan: Plan, fault: Fault | None
) -> AsyncIterator[bytes]:
    message = message_json(recorder, body, plan)
    blocks = message.pop("content")
    start = dict(message, content=[], stop_reason=None, usage=message_usage(body, 1))
    yield _sse("message_start", {"type": "message_start", "message": start})
    yield _sse("ping", {"type": "ping"})
    if recorder.options.extra_events:
        yield _sse("meterway_unknown", {"type": "meterway_unknown", "note": "an event type no client knows"})
    for index, block in enumerate(blocks):
        if fault and fault.mode == "truncate" and index == len(blocks) - 1:
            return
        if fault and fault.mode == "sse_error":
            error = {"type": ANTHROPIC_ERROR_TYPES.get(fault.status, "api_error"), "message": "recorder: injected"}
            yield _sse("error", {"type": "error", "error": error})
            return
        kind = block["type"]
        if kind == "text":
            yield _sse(
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}},
            )
            for piece in _chunks(block["text"]):
                delta: dict[str, Any] = {"type": "text_delta", "text": piece}
                yield _sse("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
                await asyncio.sleep(recorder.options.delay_s)
        elif kind == "thinking":
            empty: dict[str, Any] = {"type": "thinking", "thinking": "", "signature": ""}
            yield _sse("content_block_start", {"type": "content_block_start", "index": index, "content_block": empty})
            delta = {"type": "thinking_delta", "thinking": block["thinking"]}
            yield _sse("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
            delta = {"type": "signature_delta", "signature": block["signature"]}
            yield _sse("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
        else:  # tool_use
            empty = {**block, "input": {}}
            yield _sse("content_block_start", {"type": "content_block_start", "index": index, "content_block": empty})
            for piece in _chunks(json.dumps(block["input"]), 16):
                delta = {"type": "input_json_delta", "partial_json": piece}
                yield _sse("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
        yield _sse("content_block_stop", {"type": "content_block_stop", "index": index})
    usage: dict[str, Any] = {"output_tokens": 12}
    if recorder.options.extra_events:
        usage["meterway_unknown_field"] = 1
    final = {"stop_reason": message["stop_reason"], "stop_sequence": None}
    yield _sse("message_delta", {"type": "message_delta", "delta": final, "usage": usage})
    yield _sse("message_stop", {"type": "message_stop"})


def anthropic_error(status: int, message: str) -> dict[str, Any]:
    error = {"type": ANTHROPIC_ERROR_TYPES.get(status, "api_error"), "message": message}
    return {"type": "error", "error": error, "request_id": f"req_rec{uuid.uuid4().hex[:20]}"}


# ---------------------------------------------------------------------------------------------------------------
# OpenAI Responses


def response_usage(body: dict[str, Any], reasoning: bool) -> dict[str, Any]:
    input_tokens = _estimate_tokens(body)
    output_tokens = 20
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 8 if reasoning else 0},
        "total_tokens": input_tokens + output_tokens,
    }


def response_object(
    body: dict[str, Any], response_id: str, status: str, output: list[Any], usage: Any
) -> dict[str, Any]:
    reasoning = body.get("reasoning") if isinstance(body.get("reasoning"), dict) else None
    return {
        "id": response_id,
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": body.get("model"),
        "output": output,
        "parallel_tool_calls": bool(body.get("parallel_tool_calls", True)),
        "previous_response_id": body.get("previous_response_id"),
        "prompt_cache_key": body.get("prompt_cache_key"),
        "reasoning": {"effort": (reasoning or {}).get("effort"), "summary": (reasoning or {}).get("summary")},
        "service_tier": "default",
        "store": bool(body.get("store", True)),
        "temperature": 1.0,
        "text": body.get("text") or {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice") or "auto",
        "tools": body.get("tools") or [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": usage,
        "user": None,
        "metadata": {},
    }


def _reasoning_wanted(recorder: Recorder, body: dict[str, Any]) -> bool:
    return recorder.options.emit_reasoning and isinstance(body.get("reasoning"), dict)


def response_items(recorder: Recorder, body: dict[str, Any], plan: Plan) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    if _reasoning_wanted(recorder, body):
        item: dict[str, Any] = {
            "id": f"rs_rec{uuid.uuid4().hex[:20]}",
            "type": "reasoning",
            "summary": [{"type": "summary_text", "text": "**Recording** the recorder reasons briefly."}],
        }
        if "reasoning.encrypted_content" in (body.get("include") or []):
            item["encrypted_content"] = "gAAAAA-recorder-opaque-reasoning-state"
        items.append(item)
    if plan.tool_name:
        items.append(
            {
                "id": f"fc_rec{uuid.uuid4().hex[:20]}",
                "type": "function_call",
                "status": "completed",
                "call_id": f"call_rec{uuid.uuid4().hex[:20]}",
                "name": plan.tool_name,
                "arguments": json.dumps(plan.tool_arguments or {}),
            }
        )
    else:
        text = {"type": "output_text", "text": plan.text or "", "annotations": [], "logprobs": []}
        items.append(
            {
                "id": f"msg_rec{uuid.uuid4().hex[:20]}",
                "type": "message",
                "status": "completed",
                "role": "assistant",
                "content": [text],
            }
        )
    return items


async def response_events(
    recorder: Recorder, body: dict[str, Any], plan: Plan, fault: Fault | None
) -> AsyncIterator[bytes]:
    response_id = f"resp_rec{uuid.uuid4().hex[:24]}"
    items = response_items(recorder, body, plan)
    seq = 0

    keep = {
        "full": lambda kind: True,
        "minimal": lambda kind: kind in ("response.output_item.done", "response.completed"),
        "no_item_done": lambda kind: kind != "response.output_item.done",
    }[recorder.options.responses_events]

    def event(data: dict[str, Any]) -> bytes:
        nonlocal seq
        if not keep(data["type"]):
            return b""
        data = dict(data, sequence_number=seq)
        seq += 1
        return _sse(data["type"], data)

    in_progress = response_object(body, response_id, "in_progress", [], None)
    yield event({"type": "response.created", "response": in_progress})
    yield event({"type": "response.in_progress", "response": in_progress})
    if recorder.options.extra_events:
        yield event({"type": "response.meterway_unknown", "note": "an event type no client knows"})
    if fault and fault.mode == "sse_error":
        failed = response_object(body, response_id, "failed", [], None)
        failed["error"] = {"code": "server_error", "message": "recorder: injected failure"}
        yield event({"type": "response.failed", "response": failed})
        return
    for index, item in enumerate(items):
        if fault and fault.mode == "truncate" and index == len(items) - 1:
            return
        kind = item["type"]
        if kind == "message":
            part = item["content"][0]
            added = dict(item, status="in_progress", content=[])
            yield event({"type": "response.output_item.added", "output_index": index, "item": added})
            common = {"item_id": item["id"], "output_index": index, "content_index": 0}
            empty_part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            yield event({"type": "response.content_part.added", **common, "part": empty_part})
            for piece in _chunks(part["text"]):
                yield event({"type": "response.output_text.delta", **common, "delta": piece, "logprobs": []})
                await asyncio.sleep(recorder.options.delay_s)
            yield event({"type": "response.output_text.done", **common, "text": part["text"], "logprobs": []})
            yield event({"type": "response.content_part.done", **common, "part": part})
        elif kind == "reasoning":
            added = {k: v for k, v in item.items() if k != "encrypted_content"}
            added["summary"] = []
            yield event({"type": "response.output_item.added", "output_index": index, "item": added})
            common = {"item_id": item["id"], "output_index": index, "summary_index": 0}
            summary = item["summary"][0]["text"]
            yield event(
                {
                    "type": "response.reasoning_summary_part.added",
                    **common,
                    "part": {"type": "summary_text", "text": ""},
                }
            )
            yield event({"type": "response.reasoning_summary_text.delta", **common, "delta": summary})
            yield event({"type": "response.reasoning_summary_text.done", **common, "text": summary})
            yield event(
                {
                    "type": "response.reasoning_summary_part.done",
                    **common,
                    "part": {"type": "summary_text", "text": summary},
                }
            )
        else:  # function_call
            added = dict(item, status="in_progress", arguments="")
            yield event({"type": "response.output_item.added", "output_index": index, "item": added})
            common = {"item_id": item["id"], "output_index": index}
            for piece in _chunks(item["arguments"], 16):
                yield event({"type": "response.function_call_arguments.delta", **common, "delta": piece})
            yield event({"type": "response.function_call_arguments.done", **common, "arguments": item["arguments"]})
        yield event({"type": "response.output_item.done", "output_index": index, "item": item})
    usage = response_usage(body, _reasoning_wanted(recorder, body))
    completed = response_object(body, response_id, "completed", items, usage)
    completed["completed_at"] = int(time.time())
    if recorder.options.extra_events:
        completed["meterway_unknown_field"] = {"nested": True}
    yield event({"type": "response.completed", "response": completed})


def openai_error(status: int, message: str) -> dict[str, Any]:
    kind = OPENAI_ERROR_TYPES.get(status, "server_error")
    code = {429: "rate_limit_exceeded", 401: "invalid_api_key"}.get(status)
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


# ---------------------------------------------------------------------------------------------------------------
# The app


def _models_list(anthropic: bool) -> dict[str, Any]:
    ids = ["claude-sonnet-4-5", "claude-haiku-4-5"] if anthropic else ["gpt-5-mini", "gpt-5"]
    if anthropic:
        data = [{"type": "model", "id": i, "display_name": i, "created_at": "2025-01-01T00:00:00Z"} for i in ids]
        return {"data": data, "has_more": False, "first_id": ids[0], "last_id": ids[-1]}
    return {"object": "list", "data": [{"id": i, "object": "model", "created": 0, "owned_by": "recorder"} for i in ids]}


def _model_reply(recorder: Recorder, body: dict[str, Any], path: str) -> Response:
    """The answer to ``POST .../messages`` or ``POST .../responses``: a pending fault, else the reply."""
    is_messages = path.endswith("/messages")
    fault = recorder.take_fault(path)
    if fault and fault.mode == "status":
        message = f"recorder: injected {fault.status}"
        payload = anthropic_error(fault.status, message) if is_messages else openai_error(fault.status, message)
        return JSONResponse(payload, status_code=fault.status, headers=fault.headers)
    stream: AsyncIterator[bytes]
    if is_messages:
        plan = plan_messages(recorder, body)
        if not body.get("stream"):
            return JSONResponse(message_json(recorder, body, plan), headers={"request-id": "req_rec"})
        stream = message_events(recorder, body, plan, fault)
    else:
        plan = plan_responses(recorder, body)
        if not body.get("stream"):
            items = response_items(recorder, body, plan)
            usage = response_usage(body, _reasoning_wanted(recorder, body))
            response_id = f"resp_rec{uuid.uuid4().hex[:24]}"
            return JSONResponse(response_object(body, response_id, "completed", items, usage))
        stream = response_events(recorder, body, plan, fault)
    headers = {"cache-control": "no-cache", "x-request-id": f"req_rec{uuid.uuid4().hex[:12]}"}
    return StreamingResponse(stream, media_type="text/event-stream", headers=headers)


def build_app(recorder: Recorder) -> Starlette:
    async def control(request: Request) -> Response:
        action = request.path_params["action"]
        if action == "requests":
            return JSONResponse(recorder.records)
        if action == "reset" and request.method == "POST":
            recorder.records.clear()
            recorder.faults.clear()
            return JSONResponse({"ok": True})
        if action == "faults" and request.method == "POST":
            payload = await request.json()
            recorder.faults = [Fault(**fault) for fault in payload.get("faults", [])]
            return JSONResponse({"ok": True})
        return JSONResponse({"error": "unknown control"}, status_code=404)

    async def anything(request: Request) -> Response:
        raw = await request.body()
        entry = recorder.record(request, raw)
        body = entry["body"] if isinstance(entry["body"], dict) else {}
        path = request.url.path.rstrip("/")
        anthropic = "anthropic-version" in request.headers
        if request.method == "POST" and path.endswith("/messages/count_tokens"):
            return JSONResponse({"input_tokens": _estimate_tokens(body.get("messages"))})
        if request.method == "GET" and path.endswith("/models"):
            return JSONResponse(_models_list(anthropic))
        if request.method == "POST" and (path.endswith("/messages") or path.endswith("/responses")):
            return _model_reply(recorder, body, path)
        message = f"recorder: no handler for {request.method} {request.url.path}"
        return JSONResponse(anthropic_error(404, message) if anthropic else openai_error(404, message), status_code=404)

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
    return Starlette(
        routes=[
            Route("/_recorder/{action}", control, methods=["GET", "POST"]),
            Route("/{path:path}", anything, methods=methods),
        ]
    )


# ---------------------------------------------------------------------------------------------------------------
# Running it


@dataclass
class RunningRecorder:
    recorder: Recorder
    port: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def records(self) -> list[dict[str, Any]]:
        return list(self.recorder.records)

    def set_faults(self, *faults: Fault) -> None:
        self.recorder.faults = list(faults)


def _bind(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(128)
    return sock


@contextmanager
def running_recorder(out: Path, options: Options | None = None, port: int = 0) -> Iterator[RunningRecorder]:
    """The recorder on 127.0.0.1 (a free port unless given), on a thread, until the block ends."""
    recorder = Recorder(out, options)
    sock = _bind(port)
    config = uvicorn.Config(build_app(recorder), log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield RunningRecorder(recorder, sock.getsockname()[1])
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def _parse_fault(text: str) -> Fault:
    """``STATUS[xTIMES][@PATH][:MODE]``, e.g. ``529x2@/v1/messages`` or ``500x1:sse_error``."""
    match = re.fullmatch(r"(\d{3})(?:x(\d+))?(?:@([^:]+))?(?::(\w+))?", text)
    if not match:
        raise argparse.ArgumentTypeError(f"bad fault {text!r}: STATUS[xTIMES][@PATH][:MODE]")
    status, times, path, mode = match.groups()
    return Fault(status=int(status), times=int(times or 1), path=path, mode=mode or "status")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="directory for the recorded requests")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: a free one)")
    parser.add_argument("--port-file", type=Path, help="write the port here once listening")
    parser.add_argument("--fail", type=_parse_fault, action="append", default=[], help="STATUS[xTIMES][@PATH][:MODE]")
    parser.add_argument("--emit-thinking", action="store_true")
    parser.add_argument("--emit-reasoning", action="store_true")
    parser.add_argument("--extra-events", action="store_true")
    parser.add_argument("--reply-text", help="the text of every plain reply")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds between text deltas")
    parser.add_argument("--responses-events", choices=["full", "minimal", "no_item_done"], default="full")
    args = parser.parse_args(argv)
    options = Options(
        args.emit_thinking, args.emit_reasoning, args.extra_events, args.reply_text, args.delay, args.responses_events
    )
    recorder = Recorder(args.out, options, args.fail)
    sock = _bind(args.port)
    port = sock.getsockname()[1]
    if args.port_file:
        args.port_file.write_text(str(port))
    print(f"recorder listening on http://127.0.0.1:{port}, writing to {args.out}", flush=True)
    config = uvicorn.Config(build_app(recorder), log_level="warning", access_log=False, lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
