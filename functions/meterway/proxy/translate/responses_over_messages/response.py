"""Anthropic Messages answer -> OpenAI Responses ``response``, and what the answer and the stream
share: the output items built from content blocks, the response object, its usage block, and the
envelope that carries a thinking block through the client as a reasoning item's ``encrypted_content``.

Content blocks become output items in their order:

* ``thinking`` -> a ``reasoning`` item: the thinking text is its one ``summary_text`` (Claude 4
  models return summarised thinking already); ``encrypted_content`` is the envelope below, always
  sent (the gateway keeps nothing, so the client must carry it, asked for in ``include`` or not).
  ``redacted_thinking`` -> a ``reasoning`` item with no summary and the envelope of its data.
* ``text`` -> an assistant ``message`` item with one ``output_text`` part.
* ``tool_use`` -> a ``function_call`` (``call_id`` is the tool_use id, ``arguments`` its input as
  JSON), or a ``custom_tool_call`` when its input is the one ``CUSTOM_TOOL_INPUT`` string property
  that ``request`` gives every freeform (``custom``) tool: that string is the call's ``input``. A
  name "<namespace>--<name>" (a function of a ``namespace`` tool) gives ``name`` and ``namespace``.
* server-tool blocks cannot occur (no server tools are sent) and are skipped.

``stop_reason`` ``max_tokens`` and ``model_context_window_exceeded`` make the response
``incomplete`` with ``max_output_tokens``, ``refusal`` ``incomplete`` with ``content_filter``;
anything else is ``completed``. The bridge's ``answer`` and ``stream`` are not given the request,
so a response reports ``tools: []``, ``tool_choice: "auto"`` and ``parallel_tool_calls: true``.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from meterway.ledger.models import TokenUsage
from meterway.proxy.formats.messages import anthropic_token_usage
from meterway.proxy.formats.responses import GATEWAY_REASONING_PREFIX, responses_usage

JsonDict = dict[str, Any]

# The one property of the input schema a freeform tool gets; a tool_use whose input is exactly this
# string property is a custom tool call. A name no ordinary function parameter is likely to have.
CUSTOM_TOOL_INPUT = "freeform_input"

# A function of a ``namespace`` tool is offered to Anthropic as "<namespace>--<name>" (its names
# allow letters, digits, "_" and "-" only); a tool_use name with this separator is split back.
NAMESPACE_SEPARATOR = "--"

# Versioned envelope: prefix + url-safe base64 of the Anthropic block as JSON. OpenAI's own
# encrypted_content (Fernet, "gAAAA...") never starts with it, so such items are told apart cheaply.
ENVELOPE_PREFIX = f"{GATEWAY_REASONING_PREFIX}anthropic-thinking.v1."

INCOMPLETE_REASONS = {
    "max_tokens": "max_output_tokens",
    "model_context_window_exceeded": "max_output_tokens",
    "refusal": "content_filter",
}

ITEM_PREFIXES = {"message": "msg", "reasoning": "rs", "function_call": "fc", "custom_tool_call": "ctc"}


# ---------------------------------------------------------------- thinking envelope


def thinking_envelope(block: JsonDict) -> str | None:
    """The ``encrypted_content`` for a thinking or redacted_thinking block; None for a thinking
    block without a signature (Anthropic would refuse it back, so it is not offered)."""
    kind = block.get("type")
    if kind == "thinking" and isinstance(block.get("signature"), str) and block["signature"]:
        payload: JsonDict = {
            "type": "thinking",
            "thinking": block.get("thinking") or "",
            "signature": block["signature"],
        }
    elif kind == "redacted_thinking" and isinstance(block.get("data"), str) and block["data"]:
        payload = {"type": "redacted_thinking", "data": block["data"]}
    else:
        return None
    encoded = base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode()
    return ENVELOPE_PREFIX + encoded


def read_thinking_envelope(value: Any) -> JsonDict | None:
    """The Anthropic block inside an ``encrypted_content`` this translation made; None for anything
    else (another provider's reasoning, a damaged or foreign value)."""
    if not isinstance(value, str) or not value.startswith(ENVELOPE_PREFIX):
        return None
    try:
        block = json.loads(base64.urlsafe_b64decode(value[len(ENVELOPE_PREFIX) :].encode()))
    except (ValueError, binascii.Error):
        return None
    if not isinstance(block, dict):
        return None
    if block.get("type") == "thinking" and isinstance(block.get("thinking"), str):
        signature = block.get("signature")
        if isinstance(signature, str) and signature:
            return {"type": "thinking", "thinking": block["thinking"], "signature": signature}
    if block.get("type") == "redacted_thinking" and isinstance(block.get("data"), str) and block["data"]:
        return {"type": "redacted_thinking", "data": block["data"]}
    return None


# ---------------------------------------------------------------- items


def item_id(kind: str, request_id: str, output_index: int) -> str:
    return f"{ITEM_PREFIXES[kind]}_{request_id}_{output_index}"


def output_text_part(text: str) -> JsonDict:
    return {"type": "output_text", "text": text, "annotations": []}


def message_item(identifier: str, text: str, status: str = "completed") -> JsonDict:
    content = [output_text_part(text)] if status == "completed" else []
    return {"id": identifier, "type": "message", "role": "assistant", "status": status, "content": content}


def reasoning_item(identifier: str, block: JsonDict) -> JsonDict:
    thinking = block.get("thinking") or ""
    item: JsonDict = {
        "id": identifier,
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": thinking}] if thinking else [],
    }
    envelope = thinking_envelope(block)
    if envelope is not None:
        item["encrypted_content"] = envelope
    return item


def upstream_tool_name(name: str, namespace: Any = None) -> str:
    return f"{namespace}{NAMESPACE_SEPARATOR}{name}" if isinstance(namespace, str) and namespace else name


def client_tool_name(name: str) -> JsonDict:
    """``name`` (and ``namespace``) of a call item, from the name a tool_use block carries."""
    namespace, separator, function = name.partition(NAMESPACE_SEPARATOR)
    return {"name": function, "namespace": namespace} if separator and namespace and function else {"name": name}


def custom_tool_input(tool_input: Any) -> str | None:
    """The freeform input of a tool_use made for a custom tool; None for a function call."""
    if isinstance(tool_input, dict) and set(tool_input) == {CUSTOM_TOOL_INPUT}:
        value = tool_input[CUSTOM_TOOL_INPUT]
        return value if isinstance(value, str) else None
    return None


def function_call_item(identifier: str, call_id: str, name: str, arguments: str, status: str = "completed") -> JsonDict:
    """``name`` is the tool_use block's (a namespaced function's is split back into its two names)."""
    item = {"id": identifier, "type": "function_call", "call_id": call_id, **client_tool_name(name)}
    return item | {"arguments": arguments, "status": status}


def custom_tool_call_item(identifier: str, call_id: str, name: str, tool_input: str) -> JsonDict:
    item = {"id": identifier, "type": "custom_tool_call", "call_id": call_id, **client_tool_name(name)}
    return item | {"input": tool_input}


def output_item(block: JsonDict, request_id: str, output_index: int) -> JsonDict | None:
    """The output item of one complete content block; None for blocks with no Responses counterpart."""
    kind = block.get("type")
    if kind == "text":
        return message_item(item_id("message", request_id, output_index), block.get("text") or "")
    if kind in ("thinking", "redacted_thinking"):
        return reasoning_item(item_id("reasoning", request_id, output_index), block)
    if kind != "tool_use":
        return None
    call_id, name = str(block.get("id") or ""), str(block.get("name") or "")
    freeform = custom_tool_input(block.get("input"))
    if freeform is not None:
        return custom_tool_call_item(item_id("custom_tool_call", request_id, output_index), call_id, name, freeform)
    arguments = json.dumps(block.get("input") or {}, ensure_ascii=False)
    return function_call_item(item_id("function_call", request_id, output_index), call_id, name, arguments)


# ---------------------------------------------------------------- the response


def incomplete_reason(stop_reason: str | None) -> str | None:
    return INCOMPLETE_REASONS.get(stop_reason or "")


def finish_reason(stop_reason: str | None) -> str | None:
    """``completed``, or why the response is incomplete; None before Anthropic said why it stopped."""
    if stop_reason is None:
        return None
    return incomplete_reason(stop_reason) or "completed"


def usage_block(tokens: TokenUsage) -> JsonDict:
    """The Responses ``usage`` of the tokens Anthropic reported."""
    return responses_usage(tokens)


def response_object(
    *,
    request_id: str,
    created: int,
    model: str,
    output: list[JsonDict],
    status: str,
    usage: JsonDict | None,
    reason: str | None = None,
) -> JsonDict:
    """A ``response`` with the fields the openai SDK's ``Response`` requires."""
    return {
        "id": "resp_" + request_id,
        "object": "response",
        "created_at": created,
        "model": model,
        "status": status,
        "error": None,
        "incomplete_details": {"reason": reason} if reason else None,
        "instructions": None,
        "metadata": {},
        "output": output,
        "parallel_tool_calls": True,
        "temperature": None,
        "top_p": None,
        "tool_choice": "auto",
        "tools": [],
        "usage": usage,
    }


def messages_to_response(payload: JsonDict, *, model: str, request_id: str, created: int) -> JsonDict:
    """Translate a non-streamed Anthropic message into a Responses ``response`` (``model`` is the
    client-facing id)."""
    output: list[JsonDict] = []
    for block in payload.get("content") or []:
        item = output_item(block, request_id, len(output)) if isinstance(block, dict) else None
        if item is not None:
            output.append(item)
    reason = incomplete_reason(payload.get("stop_reason"))
    return response_object(
        request_id=request_id,
        created=created,
        model=model,
        output=output,
        status="incomplete" if reason else "completed",
        usage=usage_block(anthropic_token_usage(payload.get("usage") or {})),
        reason=reason,
    )
