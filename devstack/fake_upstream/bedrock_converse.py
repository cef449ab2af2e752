"""Bedrock's Converse API: ``POST /model/{modelId}/converse`` and ``/converse-stream``.

A Converse request is read as the Messages request it is equivalent to (``cachePoint`` blocks
become cache breakpoints on the block before them, ``toolUse``/``toolResult`` become
``tool_use``/``tool_result``), so the Messages dialect's validation, prompt cache, tool choice and
reply plan serve it unchanged; the answer is the plan written in Converse's shapes, and the
stream is Anthropic's event sequence told as ConverseStream events (messageStart,
contentBlockStart for a tool call, contentBlockDelta, contentBlockStop, messageStop, metadata).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .anthropic_plan import MessagePlan
from .anthropic_stream import message_events, streamed_usage
from .bedrock_api import BEDROCK, bedrock_begin, bedrock_plan, request_id
from .bedrock_stream import StreamEvent, malformed_stream, stream_events
from .common import Exchange, await_reply, logged

_ROLES = ("user", "assistant")
_NOT_USER_FIRST = (
    "A conversation must start with a user message. Try again with a conversation that starts with a user message."
)
_NOT_ALTERNATING = (
    "A conversation must alternate between user and assistant roles. "
    "Make sure the conversation alternates between user and assistant roles and try again."
)
# Without maxTokens a model writes up to its own output limit, far beyond the fake's replies.
DEFAULT_MAX_TOKENS = 4096
_NO_TOOL_CONFIG = "The toolConfig field must be defined when using toolUse and toolResult content blocks."


class ConverseRefused(ValueError):
    """A Converse request Bedrock answers with a ValidationException."""


def _result_content(content: Any) -> list[dict[str, Any]]:
    parts = []
    for part in content if isinstance(content, list) else []:
        if isinstance(part, dict) and "json" in part:
            parts.append({"type": "text", "text": json.dumps(part["json"])})
        elif isinstance(part, dict):
            parts.append({"type": "text", "text": str(part.get("text", ""))})
    return parts


def _block(block: dict[str, Any]) -> dict[str, Any]:
    """A Converse content block as the Messages block it stands for."""
    if "text" in block:
        return {"type": "text", "text": str(block["text"])}
    if "toolUse" in block:
        use = block["toolUse"]
        return {"type": "tool_use", "id": use.get("toolUseId"), "name": use.get("name"), "input": use.get("input", {})}
    if "toolResult" in block:
        result = block["toolResult"]
        return {
            "type": "tool_result",
            "tool_use_id": result.get("toolUseId"),
            "content": _result_content(result.get("content")),
            "is_error": result.get("status") == "error",
        }
    if "image" in block:
        return {"type": "image", "source": block["image"].get("source")}
    # Documents, reasoning and the rest count as their JSON text.
    kind = next(iter(block), "unknown")
    return {"type": kind, kind: block.get(kind)}


def _with_cache_points(blocks: Any, convert: Any, where: str) -> list[dict[str, Any]]:
    """Convert ``blocks``; a ``cachePoint`` makes the block before it a cache breakpoint."""
    if not isinstance(blocks, list) or not all(isinstance(block, dict) and len(block) == 1 for block in blocks):
        raise ConverseRefused(f"{where}: each block must be an object with exactly one member")
    converted: list[dict[str, Any]] = []
    for block in blocks:
        if "cachePoint" in block:
            if converted:
                converted[-1]["cache_control"] = {"type": "ephemeral", "ttl": block["cachePoint"].get("ttl", "5m")}
            continue
        converted.append(convert(block))
    return converted


def _messages(messages: Any) -> list[dict[str, Any]]:
    if not isinstance(messages, list) or not messages or not isinstance(messages[0], dict):
        raise ConverseRefused(_NOT_USER_FIRST)
    converted = []
    for index, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in _ROLES or (index == 0 and role != "user"):
            raise ConverseRefused(
                _NOT_USER_FIRST if index == 0 else f"messages.{index}.role: must be user or assistant"
            )
        if index and role == messages[index - 1].get("role"):
            raise ConverseRefused(_NOT_ALTERNATING)
        content = _with_cache_points(message.get("content"), _block, f"messages.{index}.content")
        converted.append({"role": role, "content": content})
    return converted


def _tool(tool: dict[str, Any]) -> dict[str, Any]:
    spec = tool.get("toolSpec") or {}
    schema = (spec.get("inputSchema") or {}).get("json", {"type": "object"})
    described = {"description": spec["description"]} if spec.get("description") else {}
    return {"name": spec.get("name"), "input_schema": schema, **described}


def _tool_choice(choice: Any) -> dict[str, Any] | None:
    if not isinstance(choice, dict) or not choice:
        return None
    if "tool" in choice:
        return {"type": "tool", "name": (choice["tool"] or {}).get("name")}
    return {"type": "any" if "any" in choice else "auto"}


def _uses_tools(messages: list[dict[str, Any]]) -> bool:
    return any(block["type"] in ("tool_use", "tool_result") for message in messages for block in message["content"])


def messages_body(model_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """The Messages request a Converse request stands for; raises ``ConverseRefused``."""
    messages = _messages(body.get("messages"))
    config = body.get("inferenceConfig") or {}
    temperature = config.get("temperature")
    if temperature is not None and not (isinstance(temperature, int | float) and 0 <= temperature <= 1):
        raise ConverseRefused("inferenceConfig.temperature: must be between 0 and 1")
    request: dict[str, Any] = {
        "model": model_id,
        "max_tokens": config.get("maxTokens", DEFAULT_MAX_TOKENS),
        "messages": messages,
    }
    if body.get("system"):
        request["system"] = _with_cache_points(body["system"], _block, "system")
    tool_config = body.get("toolConfig")
    if isinstance(tool_config, dict):
        request["tools"] = _with_cache_points(tool_config.get("tools"), _tool, "toolConfig.tools")
        choice = _tool_choice(tool_config.get("toolChoice"))
        if choice:
            request["tool_choice"] = choice
    elif _uses_tools(messages):
        raise ConverseRefused(_NO_TOOL_CONFIG)
    return request


def converse_usage(usage: dict[str, Any]) -> dict[str, int]:
    """Anthropic's usage in Converse's words: ``inputTokens`` leaves cache reads and writes out."""
    counts = {
        "inputTokens": usage["input_tokens"],
        "outputTokens": usage["output_tokens"],
        "cacheReadInputTokens": usage["cache_read_input_tokens"],
        "cacheWriteInputTokens": usage["cache_creation_input_tokens"],
    }
    return {**counts, "totalTokens": sum(counts.values())}


def _content(plan: MessagePlan) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for block in plan.content():
        if block["type"] == "text":
            blocks.append({"text": block["text"]})
        elif block["type"] == "tool_use":
            blocks.append({"toolUse": {"toolUseId": block["id"], "name": block["name"], "input": block["input"]}})
        else:
            reasoning = {"text": block["thinking"], "signature": block["signature"]}
            blocks.append({"reasoningContent": {"reasoningText": reasoning}})
    return blocks


def _latency_ms(exchange: Exchange, plan: MessagePlan) -> int:
    return round(exchange.generation_time(plan.output_tokens) * 1000)


def converse_response(exchange: Exchange, plan: MessagePlan) -> dict[str, Any]:
    """The Converse answer to ``plan``."""
    return {
        "output": {"message": {"role": "assistant", "content": _content(plan)}},
        "stopReason": plan.stop_reason,
        "usage": converse_usage(plan.usage()),
        "metrics": {"latencyMs": _latency_ms(exchange, plan)},
    }


def _delta(delta: dict[str, Any]) -> dict[str, Any] | None:
    kind = delta["type"]
    if kind == "text_delta":
        return {"text": delta["text"]}
    if kind == "input_json_delta":
        # Converse sends no empty first fragment.
        return {"toolUse": {"input": delta["partial_json"]}} if delta["partial_json"] else None
    if kind == "thinking_delta":
        return {"reasoningContent": {"text": delta["thinking"]}}
    return {"reasoningContent": {"signature": delta["signature"]}}


def _converse_event(data: dict[str, Any], exchange: Exchange, plan: MessagePlan) -> tuple[str, dict[str, Any]] | None:
    """The ConverseStream event an Anthropic event stands for, if any (pings and text starts have none)."""
    kind = data["type"]
    if kind == "message_start":
        return "messageStart", {"role": "assistant"}
    block = data.get("content_block") or {}
    if kind == "content_block_start" and block.get("type") == "tool_use":
        start = {"toolUse": {"toolUseId": block["id"], "name": block["name"]}}
        return "contentBlockStart", {"contentBlockIndex": data["index"], "start": start}
    delta = _delta(data["delta"]) if kind == "content_block_delta" else None
    if delta is not None:
        return "contentBlockDelta", {"contentBlockIndex": data["index"], "delta": delta}
    if kind == "content_block_stop":
        return "contentBlockStop", {"contentBlockIndex": data["index"]}
    if kind == "message_delta":
        return "messageStop", {"stopReason": data["delta"]["stop_reason"]}
    if kind == "message_stop":
        metadata = {"usage": converse_usage(plan.usage()), "metrics": {"latencyMs": _latency_ms(exchange, plan)}}
        return "metadata", metadata
    return None


def converse_events(exchange: Exchange, plan: MessagePlan) -> list[StreamEvent]:
    """The ConverseStream events of ``plan``, in Bedrock's order, tagged for pacing."""
    events = []
    for tag, data in message_events(plan):
        event = _converse_event(data, exchange, plan)
        if event is not None:
            events.append((tag, *event))
    return events


@logged
async def converse(request: Request) -> Response:
    """``POST /model/{modelId}/converse`` and ``/converse-stream``."""
    exchange = await bedrock_begin(request)
    if isinstance(exchange, Response):
        return exchange
    model_id, stream = request.path_params["model_id"], exchange.record.stream
    try:
        exchange.body = messages_body(model_id, exchange.body)
    except ConverseRefused as refusal:
        return BEDROCK.error(400, str(refusal))
    plan = bedrock_plan(exchange, model_id, "tooluse_")
    if isinstance(plan, Response):
        return plan
    if exchange.fault_kind() == "malformed":
        if stream:
            return malformed_stream("messageStart", '{"role":"assis')
        return Response('{"output":{"message":{"role":"assistant","content":[{"te', media_type="application/json")
    usage = streamed_usage(plan)
    if stream:
        return stream_events(exchange, converse_events(exchange, plan), lambda n: converse_usage(usage(n)))
    ended = await await_reply(exchange, plan.output_tokens, converse_usage(plan.usage()))
    return ended or JSONResponse(converse_response(exchange, plan), headers=request_id())
