"""Anthropic Messages request -> OpenAI Chat Completions request.

Claude Code and the anthropic SDKs send ``POST /v1/messages``; a model whose provider only speaks
``POST /v1/chat/completions`` gets the same conversation in Chat's shape. Whatever cannot be said
in Chat without changing what the client asked for is refused with ``InvalidRequest`` naming the
field; whatever only tunes how Anthropic itself runs a request is dropped.

* ``system`` (a string or text blocks) leads as one ``system`` message, blocks joined by a blank
  line. Claude Code's ``x-anthropic-billing-header: …`` block is left out: it is Anthropic's
  attribution, changes on every request and, leading the prompt, would defeat OpenAI's prefix
  caching. ``system`` rather than ``developer`` for reasoning models too: OpenAI reads it as
  ``developer`` there, and every OpenAI-compatible server knows it.
* Turns (consecutive turns of one role merged, as Anthropic does): text, images (base64 → data URL,
  url → url) and PDF or plain-text documents become content parts; ``tool_use`` blocks become
  ``tool_calls`` (arguments a JSON string); ``tool_result`` blocks become ``tool`` messages ahead of
  the rest of their turn, so they follow the assistant message that made the calls: their text
  joined, ``is_error`` kept as an ``Error:`` prefix. A ``tool`` message holds text only, so images
  and documents of a tool result follow in the turn's ``user`` message, labelled with the call's
  id. ``thinking``/``redacted_thinking`` blocks are dropped (Chat has no place for them nor their
  signatures); ``cache_control`` and ``citations`` are dropped everywhere (OpenAI caches prefixes
  by itself). A conversation ending with assistant text (a prefill) is refused: Chat would answer
  it with a new message instead of continuing it.
* Tools: client tools (``name``, ``description``, ``input_schema``, ``strict``) become function
  tools. Tool search (``tool_search_tool_*``) is dropped and its deferred tools are sent directly:
  the model sees every tool the search could have found. Every other Anthropic-defined tool (web
  search and fetch, code execution, bash, text editor, computer, memory…) is refused: it runs on
  Anthropic's side or needs Anthropic's own schema, and leaving it out would have the model answer
  as if it had run. Claude Code defines its tools as client tools; its WebSearch tool asks for
  ``web_search`` in a separate request, which gets the 400 and reports it to the model as the
  tool's error while the session carries on. ``tool_choice`` ``auto``/``any``/``tool``/``none``
  become ``auto``/``required``/a named function/``none``; ``disable_parallel_tool_use`` becomes
  ``parallel_tool_calls: false``.
* Generation: ``max_tokens`` → ``max_completion_tokens``; ``stop_sequences`` → ``stop``;
  ``temperature`` and ``top_p`` as they are, except for reasoning models, which accept only the
  default sampling (OpenAI refuses any other value), so there they are dropped; ``top_k`` is
  dropped (Chat has none). ``stream`` asks for the usage chunk too (``stream_options``): a stream
  without it cannot be metered. ``metadata.user_id`` → ``user``, replaced by its SHA-256 when
  longer than 64 characters (Claude Code's is about 150; OpenAI refuses those).
* Reasoning, for reasoning models only (others drop it): ``output_config.effort`` →
  ``reasoning_effort`` (``xhigh`` and ``max`` → ``high``, the highest every reasoning model takes);
  else ``thinking`` ``enabled`` → ``reasoning_effort`` by budget, the inverse of the levels
  ``chat_over_messages`` maps to budgets; ``adaptive``/``disabled`` leave the model's default.
* ``output_config.format`` (or the beta ``output_format``) json_schema → ``response_format``
  json_schema with ``strict``: Anthropic guarantees the schema, so OpenAI is asked to as well.
* Dropped, as they only tune Anthropic's service: ``cache_control`` (automatic caching),
  ``context_management`` (Anthropic trimming old thinking and tool results: the whole conversation
  is sent), ``service_tier``, ``speed``, ``diagnostics``, ``user_profile_id``, ``workspace_id``,
  and the ``anthropic_version``/``anthropic_beta`` body fields of cloud platforms. Refused:
  ``container`` and ``mcp_servers`` (they run on Anthropic only), ``inference_geo`` (the region
  cannot be chosen here), and any field this translation does not know.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from meterway.core.errors import InvalidRequest
from meterway.proxy.logic.catalog import ModelRoute
from meterway.proxy.translate.chat_over_messages.request import THINKING_BUDGETS

JsonDict = dict[str, Any]
Located = tuple[str, Any]  # a content block and where it sits in the request, for error messages

_TRANSLATED = frozenset(
    {"max_tokens", "messages", "metadata", "model", "output_config", "output_format", "stop_sequences", "stream"}
    | {"system", "temperature", "thinking", "tool_choice", "tools", "top_k", "top_p"}
)
# They tune how Anthropic serves the request, not what the answer says (see the module's docstring).
_DROPPED = frozenset(
    {"anthropic_beta", "anthropic_version", "cache_control", "context_management", "diagnostics", "service_tier"}
    | {"speed", "user_profile_id", "workspace_id"}
)
_REFUSED = {
    "container": "`container` (code execution and skills containers) exists on Anthropic only",
    "mcp_servers": "`mcp_servers` (the MCP connector) runs on Anthropic only: declare the MCP tools as client tools",
    "inference_geo": "`inference_geo` cannot be honoured: this model's provider takes no region per request",
}
_PROVIDER = "for this model (its provider speaks OpenAI Chat Completions)"
_BILLING_HEADER = "x-anthropic-billing-header:"
_DROPPED_BLOCKS = frozenset({"thinking", "redacted_thinking"})
_TOOL_CHOICES = {"auto": "auto", "any": "required", "none": "none"}
_EFFORTS = {"low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high"}
_MAX_USER_CHARS = 64


def messages_to_chat(body: JsonDict, route: ModelRoute) -> JsonDict:
    """The Chat request for a (validated) Messages request; see the module's docstring."""
    params = {name: value for name, value in body.items() if value is not None}
    _reject_unsupported(params)
    out: JsonDict = {"model": route.upstream_model, "messages": _messages(params)}
    out.update(_generation(params, route))
    out.update(_tools(params))
    out.update(_response_format(params))
    return out


# ---------------------------------------------------------------- parameters


def _reject_unsupported(params: JsonDict) -> None:
    unknown = sorted(set(params) - _TRANSLATED - _DROPPED)
    if unknown:
        reasons = [_REFUSED.get(name, f"`{name}` is not supported {_PROVIDER}") for name in unknown]
        raise InvalidRequest("Unsupported parameter: " + "; ".join(reasons))


def _generation(params: JsonDict, route: ModelRoute) -> JsonDict:
    out: JsonDict = {"max_completion_tokens": params["max_tokens"]}
    if not route.reasoning:
        out.update({name: _number(params[name], name) for name in ("temperature", "top_p") if name in params})
    stop = params.get("stop_sequences")
    if stop is not None and (not isinstance(stop, list) or not all(isinstance(s, str) for s in stop)):
        raise InvalidRequest("stop_sequences must be a list of strings")
    if stop:
        out["stop"] = stop
    if params.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    user = _user(params.get("metadata"))
    if user:
        out["user"] = user
    effort = _reasoning_effort(params)  # checked for every model, sent to reasoning ones only
    if effort and route.reasoning:
        out["reasoning_effort"] = effort
    return out


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequest(f"{name} must be a number")
    return value


def _user(metadata: Any) -> str | None:
    user_id = metadata.get("user_id") if isinstance(metadata, dict) else None
    if not isinstance(user_id, str) or not user_id:
        return None
    # Stable per user and session, as the client meant it, within OpenAI's limit.
    return user_id if len(user_id) <= _MAX_USER_CHARS else hashlib.sha256(user_id.encode()).hexdigest()


def _reasoning_effort(params: JsonDict) -> str | None:
    effort = _output_config(params).get("effort")
    if effort is not None:
        if effort not in _EFFORTS:
            raise InvalidRequest(f"output_config.effort must be one of: {', '.join(_EFFORTS)}")
        return _EFFORTS[effort]
    thinking = params.get("thinking")
    if not isinstance(thinking, dict) or thinking.get("type") != "enabled":
        return None
    budget = thinking.get("budget_tokens")
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise InvalidRequest("thinking.budget_tokens must be a positive integer")
    if budget >= THINKING_BUDGETS["high"]:
        return "high"
    return "medium" if budget >= THINKING_BUDGETS["medium"] else "low"


def _output_config(params: JsonDict) -> JsonDict:
    config = params.get("output_config") or {}
    if not isinstance(config, dict):
        raise InvalidRequest("output_config must be an object")
    return config


def _response_format(params: JsonDict) -> JsonDict:
    where, fmt = "output_config.format", _output_config(params).get("format")
    if fmt is None:
        where, fmt = "output_format", params.get("output_format")
    if fmt is None:
        return {}
    schema = fmt.get("schema") if isinstance(fmt, dict) and fmt.get("type") == "json_schema" else None
    if not isinstance(schema, dict):
        raise InvalidRequest(f"{where} must be {{'type': 'json_schema', 'schema': {{...}}}} with a JSON schema object")
    return {
        "response_format": {"type": "json_schema", "json_schema": {"name": "output", "schema": schema, "strict": True}}
    }


# ---------------------------------------------------------------- tools


def _tools(params: JsonDict) -> JsonDict:
    tools = params.get("tools") or []
    if not isinstance(tools, list):
        raise InvalidRequest("tools must be a list")
    functions = [function for i, tool in enumerate(tools) if (function := _function_tool(tool, f"tools[{i}]"))]
    if not functions:
        # Without tools there is nothing for tool_choice to steer, and Chat refuses it alone.
        return {}
    return {"tools": functions, **_tool_choice(params.get("tool_choice"))}


def _function_tool(tool: Any, where: str) -> JsonDict | None:
    if not isinstance(tool, dict):
        raise InvalidRequest(f"{where} must be an object")
    kind = tool.get("type")
    if isinstance(kind, str) and kind.startswith("tool_search_tool"):
        return None
    if kind not in (None, "custom"):
        raise InvalidRequest(
            f"{where}: Anthropic's built-in tool {kind!r} is not available {_PROVIDER}; "
            "only client tools with a name and an input_schema are"
        )
    name, schema = tool.get("name"), tool.get("input_schema")
    if not isinstance(name, str) or not name:
        raise InvalidRequest(f"{where}.name is required")
    if not isinstance(schema, dict):
        raise InvalidRequest(f"{where}.input_schema must be a JSON schema object")
    function: JsonDict = {"name": name, "parameters": schema}
    if isinstance(tool.get("description"), str) and tool["description"]:
        function["description"] = tool["description"]
    if tool.get("strict") is True:
        function["strict"] = True
    return {"type": "function", "function": function}


def _tool_choice(choice: Any) -> JsonDict:
    if choice is None:
        return {}
    kind = choice.get("type") if isinstance(choice, dict) else None
    out: JsonDict
    if kind == "tool":
        name = choice.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidRequest("tool_choice.name is required when tool_choice.type is 'tool'")
        out = {"tool_choice": {"type": "function", "function": {"name": name}}}
    elif kind in _TOOL_CHOICES:
        out = {"tool_choice": _TOOL_CHOICES[kind]}
    else:
        raise InvalidRequest("tool_choice.type must be one of: auto, any, tool, none")
    if choice.get("disable_parallel_tool_use") is True and kind != "none":
        out["parallel_tool_calls"] = False
    return out


# ---------------------------------------------------------------- messages


def _messages(params: JsonDict) -> list[JsonDict]:
    messages = params.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages must be a non-empty list")
    out = _system_prompt(params.get("system"))
    last: list[JsonDict] = []
    for role, blocks in _turns(messages):
        last = _CONVERTERS[role](blocks)
        out.extend(last)
    if last and last[-1]["role"] == "assistant" and "content" in last[-1] and "tool_calls" not in last[-1]:
        raise InvalidRequest(
            f"messages[{len(messages) - 1}]: a conversation ending with assistant text (a prefill) "
            f"cannot be continued {_PROVIDER}; end it with a user turn"
        )
    return out


def _system_prompt(system: Any) -> list[JsonDict]:
    if system is None:
        return []
    blocks = [("system", {"type": "text", "text": system})] if isinstance(system, str) else _located(system, "system")
    return _system_messages(blocks)


def _turns(messages: list[Any]) -> list[tuple[str, list[Located]]]:
    turns: list[tuple[str, list[Located]]] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        role = message.get("role") if isinstance(message, dict) else None
        if role not in _CONVERTERS:
            raise InvalidRequest(f"{where}.role must be one of: user, assistant, system")
        content = message.get("content")
        if isinstance(content, str):
            blocks = [(f"{where}.content", {"type": "text", "text": content})]
        else:
            blocks = _located(content, f"{where}.content")
        if turns and turns[-1][0] == role and role != "system":
            turns[-1][1].extend(blocks)
        else:
            turns.append((role, blocks))
    return turns


def _located(blocks: Any, where: str) -> list[Located]:
    if not isinstance(blocks, list):
        raise InvalidRequest(f"{where} must be a string or a list of content blocks")
    return [(f"{where}[{j}]", block) for j, block in enumerate(blocks)]


def _system_messages(blocks: list[Located]) -> list[JsonDict]:
    texts = []
    for where, block in blocks:
        if _kind(block, where) != "text":
            raise InvalidRequest(f"{where}: system prompts may only contain text blocks")
        text = _text(block, where)
        if text and not text.lstrip().startswith(_BILLING_HEADER):
            texts.append(text)
    return [{"role": "system", "content": "\n\n".join(texts)}] if texts else []


def _user_messages(blocks: list[Located]) -> list[JsonDict]:
    tool_messages: list[JsonDict] = []
    attachments: list[JsonDict] = []
    parts: list[JsonDict] = []
    for where, block in blocks:
        kind = _kind(block, where)
        if kind == "tool_result":
            message, media = _tool_result(block, where)
            tool_messages.append(message)
            attachments.extend(media)
        elif kind not in _DROPPED_BLOCKS:
            parts.extend(_part(block, where, kind))
    parts = attachments + parts
    if not parts:
        return tool_messages
    content: Any = parts[0]["text"] if len(parts) == 1 and parts[0]["type"] == "text" else parts
    return [*tool_messages, {"role": "user", "content": content}]


def _assistant_messages(blocks: list[Located]) -> list[JsonDict]:
    texts: list[str] = []
    calls: list[JsonDict] = []
    for where, block in blocks:
        kind = _kind(block, where)
        if kind == "text":
            texts.append(_text(block, where))
        elif kind == "tool_use":
            calls.append(_tool_call(block, where))
        elif kind not in _DROPPED_BLOCKS:
            raise InvalidRequest(f"{where}: assistant blocks of type {kind!r} are not supported {_PROVIDER}")
    message: JsonDict = {"role": "assistant"}
    # Anthropic splits a text around citations, not paragraphs: the pieces join as they are.
    if "".join(texts):
        message["content"] = "".join(texts)
    if calls:
        message["tool_calls"] = calls
    return [message] if len(message) > 1 else []


_CONVERTERS: dict[str, Callable[[list[Located]], list[JsonDict]]] = {
    "user": _user_messages,
    "assistant": _assistant_messages,
    "system": _system_messages,
}


def _tool_call(block: JsonDict, where: str) -> JsonDict:
    call_id, name, arguments = block.get("id"), block.get("name"), block.get("input")
    if not isinstance(call_id, str) or not call_id or not isinstance(name, str) or not name:
        raise InvalidRequest(f"{where}: tool_use blocks need an id and a name")
    if not isinstance(arguments, dict):
        raise InvalidRequest(f"{where}.input must be an object")
    function = {"name": name, "arguments": json.dumps(arguments, ensure_ascii=False)}
    return {"id": call_id, "type": "function", "function": function}


def _tool_result(block: JsonDict, where: str) -> tuple[JsonDict, list[JsonDict]]:
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str) or not call_id:
        raise InvalidRequest(f"{where}.tool_use_id is required")
    content = block.get("content")
    if isinstance(content, str):
        content = [{"type": "text", "text": content}]
    texts: list[str] = []
    media: list[JsonDict] = []
    for inner, item in _located(content or [], f"{where}.content"):
        kind = _kind(item, inner)
        if kind == "text":
            texts.append(_text(item, inner))
        elif kind in ("image", "document"):
            media.extend(_part(item, inner, kind))
        else:
            raise InvalidRequest(f"{inner}: tool results may hold text, images and documents, not {kind!r}")
    text = "\n".join(piece for piece in texts if piece)
    if block.get("is_error") is True:
        text = f"Error: {text}" if text else "Error"
    if media:
        note = f"[{len(media)} attachment(s): see the next user message]"
        text = f"{text}\n{note}" if text else note
        media.insert(0, {"type": "text", "text": f"Attachments of the result of tool call {call_id}:"})
    return {"role": "tool", "tool_call_id": call_id, "content": text}, media


# ---------------------------------------------------------------- content parts


def _kind(block: Any, where: str) -> str:
    kind = block.get("type") if isinstance(block, dict) else None
    if not isinstance(kind, str):
        raise InvalidRequest(f"{where} must be a content block with a 'type'")
    return kind


def _text(block: JsonDict, where: str) -> str:
    text = block.get("text")
    if not isinstance(text, str):
        raise InvalidRequest(f"{where}.text must be a string")
    return text


def _part(block: JsonDict, where: str, kind: str) -> list[JsonDict]:
    if kind == "text":
        text = _text(block, where)
        return [{"type": "text", "text": text}] if text else []
    if kind == "image":
        return [_image_part(block, where)]
    if kind == "document":
        return [_document_part(block, where)]
    raise InvalidRequest(
        f"{where}: content blocks of type {kind!r} are not supported {_PROVIDER} "
        "(supported in user turns: text, image, document, tool_result)"
    )


def _source(block: JsonDict, where: str) -> tuple[str | None, JsonDict]:
    source = block.get("source")
    if not isinstance(source, dict):
        raise InvalidRequest(f"{where}.source is required")
    return source.get("type"), source


def _image_part(block: JsonDict, where: str) -> JsonDict:
    kind, source = _source(block, where)
    if kind == "base64" and isinstance(source.get("data"), str) and isinstance(source.get("media_type"), str):
        url = f"data:{source['media_type']};base64,{source['data']}"
    elif kind == "url" and isinstance(source.get("url"), str):
        url = source["url"]
    else:
        raise InvalidRequest(f"{where}.source: images must be base64 data or a url {_PROVIDER}, not {kind!r}")
    return {"type": "image_url", "image_url": {"url": url}}


def _document_part(block: JsonDict, where: str) -> JsonDict:
    kind, source = _source(block, where)
    data = source.get("data")
    if kind == "text" and isinstance(data, str):
        return {"type": "text", "text": data}
    if kind == "base64" and source.get("media_type") == "application/pdf" and isinstance(data, str):
        title = block.get("title")
        filename = title if isinstance(title, str) and title else "document.pdf"
        return {"type": "file", "file": {"filename": filename, "file_data": f"data:application/pdf;base64,{data}"}}
    raise InvalidRequest(f"{where}.source: documents must be base64 PDFs or plain text {_PROVIDER}, not {kind!r}")
