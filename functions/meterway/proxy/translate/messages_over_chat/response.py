"""OpenAI ``chat.completion`` -> Anthropic ``message``, and what the stream shares with it.

* ``content``: a ``thinking`` block first when the upstream returned reasoning text
  (``reasoning_content``, DeepSeek's and vLLM's name, or ``reasoning``, OpenRouter's; OpenAI's own
  models return none), then the text (a ``refusal`` is text too), then one ``tool_use`` block per
  tool call. The gateway cannot sign reasoning, so a thinking block's ``signature`` is empty: the
  SDKs accept it, and a client that sends the block back reaches this bridge again, which drops it.
* A tool call's ``input`` is its arguments parsed; arguments that are not a JSON object are kept,
  as the model wrote them, under ``input["_raw_arguments"]``: the client's tool then refuses them
  as invalid input, and the model sees why, where failing the whole answer would lose it.
* ``stop_reason``: ``stop`` → ``end_turn``, ``length`` → ``max_tokens``, ``tool_calls`` (and the
  legacy ``function_call``) → ``tool_use``, ``content_filter`` or a refusal → ``refusal``. A turn
  with tool calls is ``tool_use`` even where a server ends it with ``stop``: Anthropic clients run
  the tools on that reason. OpenAI does not say which stop sequence matched, so ``stop_sequence``
  stays null and such a stop is ``end_turn``.
* ``usage`` in Anthropic's classes: ``input_tokens`` are the prompt tokens not read from the
  cache, ``cache_read_input_tokens`` the cached ones, no cache writes; reasoning tokens are part of
  ``output_tokens`` and also shown as ``output_tokens_details.thinking_tokens``.
"""

from __future__ import annotations

import json
from typing import Any

from meterway.ledger.models import TokenUsage
from meterway.proxy.formats.chat import read_usage
from meterway.proxy.translate.base import upstream_error

JsonDict = dict[str, Any]

STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
RAW_ARGUMENTS = "_raw_arguments"


def message_id(request_id: str) -> str:
    return f"msg_{request_id}"


def tool_use_id(request_id: str, index: int) -> str:
    """An id for a tool call the upstream sent without one (Anthropic's ids start ``toolu_``)."""
    return f"toolu_{request_id}_{index}"


def stop_reason(finish_reason: str | None, *, called_tools: bool, refused: bool) -> str:
    """Anthropic's ``stop_reason`` for OpenAI's ``finish_reason``; unknown or missing ones end the turn."""
    if refused:
        return "refusal"
    reason = STOP_REASONS.get(finish_reason or "stop", "end_turn")
    return "tool_use" if called_tools and reason == "end_turn" else reason


def anthropic_usage(tokens: TokenUsage) -> JsonDict:
    """The ledger's token classes as Anthropic's ``usage`` block."""
    usage: JsonDict = {
        "input_tokens": tokens.input_tokens,
        "cache_creation_input_tokens": tokens.cache_creation_tokens,
        "cache_read_input_tokens": tokens.cache_read_tokens,
        "output_tokens": tokens.output_tokens,
    }
    if tokens.reasoning_tokens:
        usage["output_tokens_details"] = {"thinking_tokens": tokens.reasoning_tokens}
    return usage


def reasoning_text(message: JsonDict) -> str:
    """The reasoning text of a message or a chunk's delta; servers that send both names repeat it."""
    for name in ("reasoning_content", "reasoning"):
        value = message.get(name)
        if isinstance(value, str) and value:
            return value
    return ""


def tool_input(arguments: Any) -> JsonDict:
    """A tool call's arguments as Anthropic's ``input`` object (see the module's docstring)."""
    if isinstance(arguments, dict):
        return arguments
    if not isinstance(arguments, str) or not arguments.strip():
        return {}
    try:
        parsed = json.loads(arguments)
    except ValueError:
        parsed = None
    return parsed if isinstance(parsed, dict) else {RAW_ARGUMENTS: arguments}


def chat_to_message(payload: JsonDict, *, model: str, request_id: str) -> tuple[JsonDict, int]:
    """Anthropic's ``message`` for a ``chat.completion``, and the characters of output it holds.

    ``model`` is the client-facing id. Raises ``UpstreamError`` for an answer that is an error.
    """
    if payload.get("error"):
        raise upstream_error(payload["error"])
    choice = (payload.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    blocks: list[JsonDict] = []
    reasoning = reasoning_text(message)
    if reasoning:
        blocks.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    refusal = message.get("refusal")
    refusal = refusal if isinstance(refusal, str) else ""
    text = _text(message.get("content")) + refusal
    if text:
        blocks.append({"type": "text", "text": text})
    calls = [call for call in message.get("tool_calls") or [] if isinstance(call, dict)]
    blocks.extend(_tool_use(call, tool_use_id(request_id, i)) for i, call in enumerate(calls))
    usage = payload.get("usage")
    body = {
        "id": message_id(request_id),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": blocks,
        "stop_reason": stop_reason(choice.get("finish_reason"), called_tools=bool(calls), refused=bool(refusal)),
        "stop_sequence": None,
        "usage": anthropic_usage(read_usage(usage) if isinstance(usage, dict) else TokenUsage()),
    }
    arguments = sum(len(str((call.get("function") or {}).get("arguments") or "")) for call in calls)
    return body, len(reasoning) + len(text) + arguments


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    # A few OpenAI-compatible servers answer with content parts.
    parts = content if isinstance(content, list) else []
    return "".join(part["text"] for part in parts if isinstance(part, dict) and isinstance(part.get("text"), str))


def _tool_use(call: JsonDict, fallback_id: str) -> JsonDict:
    function = call.get("function") or {}
    call_id = call.get("id")
    return {
        "type": "tool_use",
        "id": call_id if isinstance(call_id, str) and call_id else fallback_id,
        "name": str(function.get("name") or ""),
        "input": tool_input(function.get("arguments")),
    }
