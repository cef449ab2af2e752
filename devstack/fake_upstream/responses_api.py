"""OpenAI Responses dialect: ``POST /v1/responses``, stream and non-stream.

Same auth and error envelope as Chat Completions. The fake keeps no responses: a request
that continues one (``previous_response_id``) is refused as the real API refuses an unknown id,
so clients must send the whole conversation (as ``store: false`` clients such as Codex do).
A prompt longer than the model's window is a 400 ``context_length_exceeded``; when streaming,
the stream starts and ends with ``response.failed`` carrying that code instead.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive

from .asgi import EventStreamResponse
from .common import await_reply, begin, is_int, logged, new_id
from .context import overflow
from .openai_api import OPENAI, Problem
from .openai_plan import is_reasoning_model
from .responses_input import (
    CALL_ITEMS,
    MESSAGE_ROLES,
    OUTPUT_ITEMS,
    item_kind,
    responses_prompt_tokens,
    responses_tools,
    text_format,
)
from .responses_plan import ResponsePlan, plan_response, unplanned
from .responses_stream import failed_stream, stream_response
from .signatures import unseal

MIN_OUTPUT_TOKENS = 16
CONTEXT_MESSAGE = "Your input exceeds the context window of this model. Please adjust your input and try again."


def _missing(param: str) -> Problem:
    return (f"Missing required parameter: '{param}'.", param, "missing_required_parameter")


def _validate_items(raw: Any) -> Problem | None:
    if isinstance(raw, str):
        return None
    if not isinstance(raw, list):
        text = "Invalid type for 'input': expected one of a string or an array of input items."
        return (text, "input", "invalid_type")
    for index, item in enumerate(raw):
        kind = item_kind(item) if isinstance(item, dict) else None
        if kind is None:
            return _missing(f"input[{index}].type")
        if kind == "message" and item.get("role") not in MESSAGE_ROLES:
            text = f"Invalid value: '{item.get('role')}'. Supported values are: 'assistant', 'system', 'developer', and 'user'."
            return (text, f"input[{index}].role", "invalid_value")
        if kind in (*CALL_ITEMS, *OUTPUT_ITEMS) and not isinstance(item.get("call_id"), str):
            return _missing(f"input[{index}].call_id")
        if (
            kind == "reasoning"
            and "encrypted_content" in item
            and unseal("reasoning", item["encrypted_content"]) is None
        ):
            text = f"The encrypted content for item {item.get('id')} could not be verified."
            return (text, f"input[{index}].encrypted_content", "invalid_encrypted_content")
    return _validate_call_pairs(raw)


def _validate_call_pairs(items: list[dict[str, Any]]) -> Problem | None:
    """Every tool output answers a call in the input, and every call gets its output."""
    calls = [item["call_id"] for item in items if item_kind(item) in CALL_ITEMS]
    outputs = [item["call_id"] for item in items if item_kind(item) in OUTPUT_ITEMS]
    for call_id in outputs:
        if call_id not in calls:
            return (f"No tool call found for function call output with call_id {call_id}.", "input", None)
    for call_id in calls:
        if call_id not in outputs:
            return (f"No tool output found for function call {call_id}.", "input", None)
    return None


def _validate_options(body: dict[str, Any]) -> Problem | None:
    """Tools, tool choice, reasoning and the output format."""
    if body.get("tools") is not None and not isinstance(body["tools"], list):
        return ("Invalid type for 'tools': expected an array.", "tools", "invalid_type")
    for index, tool in enumerate(body.get("tools") or []):
        if not isinstance(tool, dict) or not isinstance(tool.get("type"), str):
            return _missing(f"tools[{index}].type")
        if tool["type"] in ("function", "custom") and not isinstance(tool.get("name"), str):
            return _missing(f"tools[{index}].name")
    choice = body.get("tool_choice")
    forced = choice.get("name") if isinstance(choice, dict) and choice.get("type") in ("function", "custom") else None
    if forced is not None and forced not in {tool.name for tool in responses_tools(body)}:
        return (f"Tool choice '{forced}' not found in 'tools' parameter.", "tool_choice", None)
    reasoning = body.get("reasoning")
    if isinstance(reasoning, dict) and reasoning.get("effort") and not is_reasoning_model(body["model"]):
        text = "Unsupported parameter: 'reasoning.effort' is not supported with this model."
        return (text, "reasoning.effort", "unsupported_parameter")
    fmt = text_format(body)
    if fmt and fmt.get("type") == "json_schema":
        for key in ("name", "schema"):
            if key not in fmt:
                return _missing(f"text.format.{key}")
    return None


def validate_responses(body: dict[str, Any]) -> Problem | None:
    """First problem of a Responses request body as (message, param, code), or None."""
    if not isinstance(body.get("model"), str) or not body["model"]:
        return _missing("model")
    if body.get("previous_response_id"):
        text = f"Previous response with id '{body['previous_response_id']}' not found."
        return (text, "previous_response_id", "previous_response_not_found")
    if body.get("input") is None:
        return _missing("input")
    limit = body.get("max_output_tokens")
    if limit is not None and not is_int(limit, MIN_OUTPUT_TOKENS):
        text = (
            "Invalid 'max_output_tokens': integer below minimum value. "
            f"Expected a value >= {MIN_OUTPUT_TOKENS}, but got {limit} instead."
        )
        return (text, "max_output_tokens", "integer_below_min_value")
    if "stream" in body and not isinstance(body["stream"], bool):
        return ("Invalid type for 'stream': expected a boolean.", "stream", "invalid_type")
    return _validate_items(body["input"]) or _validate_options(body)


def _malformed(plan: ResponsePlan, stream: bool) -> Response:
    if not stream:
        return Response(
            f'{{"id":"{plan.id}","object":"response","output":[{{"type":"mess', media_type="application/json"
        )

    async def events(receive: Receive) -> AsyncIterator[bytes]:
        yield f'event: response.created\ndata: {{"type":"response.created","response":{{"id":"{plan.id}"\n\n'.encode()

    return EventStreamResponse(events)


@logged
async def responses(request: Request) -> Response:
    """``POST /v1/responses``."""
    exchange = await begin(request, OPENAI)
    if isinstance(exchange, Response):
        return exchange
    body = exchange.body
    problem = validate_responses(body)
    if problem:
        message, param, code = problem
        return OPENAI.error(400, message, param=param, code=code)
    prompt = responses_prompt_tokens(body)
    stream = body.get("stream") is True
    if overflow(exchange, body["model"], len(prompt)):
        if not stream:
            return OPENAI.error(400, CONTEXT_MESSAGE, param="input", code="context_length_exceeded")
        refused = unplanned(body, len(prompt))
        exchange.record.id = refused.id
        return failed_stream(refused, {"code": "context_length_exceeded", "message": CONTEXT_MESSAGE})
    plan = plan_response(exchange, prompt)
    exchange.record.id = plan.id
    if exchange.fault_kind() == "malformed":
        return _malformed(plan, stream)
    if stream:
        return stream_response(exchange, plan)
    ended = await await_reply(exchange, max(plan.visible_tokens, 1), plan.usage())
    return ended or JSONResponse(plan.final_response(), headers={"x-request-id": new_id("req_")})


@logged
async def count_input_tokens(request: Request) -> Response:
    """``POST /v1/responses/input_tokens``: what a request would bill as input, without touching the cache."""
    exchange = await begin(request, OPENAI)
    if isinstance(exchange, Response):
        return exchange
    problem = _validate_items(exchange.body.get("input") or [])
    if problem:
        message, param, code = problem
        return OPENAI.error(400, message, param=param, code=code)
    tokens = len(responses_prompt_tokens(exchange.body))
    return JSONResponse({"object": "response.input_tokens", "input_tokens": tokens})
