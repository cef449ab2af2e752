"""OpenAI Chat Completions request -> Anthropic Messages request.

Clients speak OpenAI's ``POST /v1/chat/completions``; Anthropic models are called through their native
``POST /v1/messages`` so that prompt caching, thinking and the 5-minute/1-hour cache split stay
visible to metering. Anything the translation cannot express faithfully is refused with
``InvalidRequest`` rather than silently changing what the client asked for.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from meterway.core.errors import InvalidRequest
from meterway.proxy.translate.anthropic_content import content_blocks, image_block

JsonDict = dict[str, Any]

# OpenAI's reasoning_effort names a level, Anthropic's thinking wants a token budget (minimum 1024).
THINKING_BUDGETS = {
    "minimal": 1024,
    "low": 1024,
    "medium": 4096,
    "high": 16384,
    "xhigh": 32768,
    "max": 32768,
}

# These only tune sampling or OpenAI-side bookkeeping; leaving them out keeps the answer's meaning.
_DROPPED_PARAMS = frozenset(
    {
        "frequency_penalty",
        "metadata",
        "presence_penalty",
        "prompt_cache_key",
        "prompt_cache_options",
        "prompt_cache_retention",
        "safety_identifier",
        "seed",
        "service_tier",
        "store",
        "stream_options",
        "verbosity",
    }
)

_TRANSLATED_PARAMS = frozenset(
    {
        "cache_control",
        "logprobs",
        "max_completion_tokens",
        "max_tokens",
        "messages",
        "model",
        "modalities",
        "n",
        "parallel_tool_calls",
        "reasoning_effort",
        "response_format",
        "stop",
        "stream",
        "temperature",
        "tool_choice",
        "tools",
        "top_logprobs",
        "top_p",
        "user",
    }
)

_REJECTION_HINTS = {
    "functions": "use `tools` instead of the deprecated `functions`",
    "function_call": "use `tool_choice` instead of the deprecated `function_call`",
    "audio": "audio output is not available for Anthropic models",
    "logit_bias": "logit_bias is not available for Anthropic models",
    "prediction": "predicted outputs are not available for Anthropic models",
    "web_search_options": "web_search_options is not available for Anthropic models",
}

_TOOL_CHOICES = {"auto": "auto", "none": "none", "required": "any"}


def chat_to_messages(body: dict[str, Any], upstream_model: str, *, default_max_tokens: int = 4096) -> JsonDict:
    """Translate an OpenAI chat completions request body into an Anthropic Messages request body.

    ``system``/``developer`` messages become the top-level ``system`` blocks, tool calls and tool
    results become ``tool_use``/``tool_result`` blocks, and consecutive turns of one role are merged.
    ``cache_control`` found on messages, content parts and tools is passed through unchanged.
    ``temperature`` is clamped to 1 because Anthropic's range is 0-1 where OpenAI's is 0-2.
    ``reasoning_effort`` enables thinking with a budget from ``THINKING_BUDGETS``; ``max_tokens`` is
    raised to ``budget + default_max_tokens`` when it would not leave room for an answer.

    Raises ``InvalidRequest`` for empty or malformed messages and for parameters whose meaning
    Anthropic cannot honour (``n`` > 1, ``logprobs``, unknown parameters, ...).
    """
    params = {name: value for name, value in body.items() if value is not None}
    _reject_unsupported(params)
    system, messages = _convert_messages(params.get("messages"))
    out: JsonDict = {"model": upstream_model, "messages": messages}
    if system:
        out["system"] = system
    out.update(_generation_params(params, default_max_tokens))
    out.update(_tool_params(params))
    if "cache_control" in params:
        out["cache_control"] = params["cache_control"]
    return out


# ---------------------------------------------------------------- parameters


def _reject_unsupported(params: JsonDict) -> None:
    if params.get("n", 1) != 1:
        raise InvalidRequest("n > 1 is not supported for Anthropic models; send one request per completion")
    if params.get("logprobs") or params.get("top_logprobs"):
        raise InvalidRequest("logprobs are not available for Anthropic models")
    if set(params.get("modalities") or ["text"]) != {"text"}:
        raise InvalidRequest("Anthropic models only produce text; set modalities to ['text'] or leave it out")
    unknown = sorted(set(params) - _TRANSLATED_PARAMS - _DROPPED_PARAMS)
    if unknown:
        hints = [_REJECTION_HINTS.get(name, f"`{name}` is not supported for Anthropic models") for name in unknown]
        raise InvalidRequest("Unsupported parameter: " + "; ".join(hints))


def _generation_params(params: JsonDict, default_max_tokens: int) -> JsonDict:
    out: JsonDict = {"max_tokens": _max_tokens(params, default_max_tokens)}
    thinking = _thinking(params.get("reasoning_effort"))
    if thinking is not None:
        out["thinking"] = thinking
        # Thinking tokens count toward max_tokens and the budget must stay below it.
        if out["max_tokens"] <= thinking["budget_tokens"]:
            out["max_tokens"] = thinking["budget_tokens"] + default_max_tokens
    if "temperature" in params:
        out["temperature"] = min(_number(params["temperature"], "temperature"), 1.0)
    if "top_p" in params:
        out["top_p"] = _number(params["top_p"], "top_p")
    stop = params.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if "stream" in params:
        out["stream"] = bool(params["stream"])
    if "user" in params:
        out["metadata"] = {"user_id": str(params["user"])}
    output_config = _output_config(params.get("response_format"))
    if output_config is not None:
        out["output_config"] = output_config
    return out


def _max_tokens(params: JsonDict, default_max_tokens: int) -> int:
    value = params.get("max_completion_tokens", params.get("max_tokens", default_max_tokens))
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidRequest("max_completion_tokens / max_tokens must be a positive integer")
    return value


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequest(f"{name} must be a number")
    return value


def _thinking(effort: Any) -> JsonDict | None:
    if effort is None or effort == "none":
        return None
    if effort not in THINKING_BUDGETS:
        raise InvalidRequest(f"reasoning_effort must be one of: none, {', '.join(THINKING_BUDGETS)}")
    return {"type": "enabled", "budget_tokens": THINKING_BUDGETS[effort]}


def _output_config(response_format: Any) -> JsonDict | None:
    if response_format is None:
        return None
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "text":
        return None
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        if not isinstance(schema, dict):
            raise InvalidRequest("response_format.json_schema.schema must be a JSON schema object")
        return {"format": {"type": "json_schema", "schema": schema}}
    raise InvalidRequest(
        "response_format must be 'text' or 'json_schema' for Anthropic models; "
        "JSON mode without a schema is not available"
    )


def _tool_params(params: JsonDict) -> JsonDict:
    tools = params.get("tools")
    if not tools:
        # Without tools there is nothing for tool_choice or parallel_tool_calls to steer.
        return {}
    if not isinstance(tools, list):
        raise InvalidRequest("tools must be a list")
    out: JsonDict = {"tools": [_convert_tool(tool, f"tools[{i}]") for i, tool in enumerate(tools)]}
    choice = _tool_choice(params.get("tool_choice"), params.get("parallel_tool_calls"))
    if choice is not None:
        out["tool_choice"] = choice
    return out


def _convert_tool(tool: Any, where: str) -> JsonDict:
    function = tool.get("function") if isinstance(tool, dict) and tool.get("type") == "function" else None
    if not isinstance(function, dict):
        raise InvalidRequest(f"{where}: only tools of type 'function' are supported for Anthropic models")
    name = function.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidRequest(f"{where}.function.name is required")
    out: JsonDict = {"name": name}
    if function.get("description"):
        out["description"] = function["description"]
    out["input_schema"] = function.get("parameters") or {"type": "object", "properties": {}}
    if function.get("strict") is True:
        out["strict"] = True
    cache_control = tool.get("cache_control") or function.get("cache_control")
    if cache_control:
        out["cache_control"] = cache_control
    return out


def _tool_choice(choice: Any, parallel_tool_calls: Any) -> JsonDict | None:
    if choice is None and parallel_tool_calls is not False:
        return None
    out = _anthropic_tool_choice("auto" if choice is None else choice)
    if parallel_tool_calls is False and out["type"] != "none":
        out["disable_parallel_tool_use"] = True
    return out


def _anthropic_tool_choice(choice: Any) -> JsonDict:
    if isinstance(choice, str) and choice in _TOOL_CHOICES:
        return {"type": _TOOL_CHOICES[choice]}
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        if not isinstance(name, str) or not name:
            raise InvalidRequest("tool_choice.function.name is required")
        return {"type": "tool", "name": name}
    raise InvalidRequest("tool_choice must be 'auto', 'none', 'required' or a named function")


# ---------------------------------------------------------------- messages


def _convert_messages(messages: Any) -> tuple[list[JsonDict], list[JsonDict]]:
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages must be a non-empty list")
    system: list[JsonDict] = []
    turns: list[JsonDict] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        role = message.get("role") if isinstance(message, dict) else None
        if role in ("system", "developer"):
            system.extend(_system_blocks(message, where))
        elif role in _TURN_BUILDERS:
            anthropic_role, build = _TURN_BUILDERS[role]
            _append_turn(turns, anthropic_role, _with_message_cache_control(build(message, where), message))
        else:
            raise InvalidRequest(f"{where}.role must be one of system, developer, user, assistant, tool")
    if not turns:
        raise InvalidRequest("messages must contain at least one user or assistant message")
    # Anthropic wants a user turn's tool_result blocks before any other content.
    for turn in turns:
        turn["content"].sort(key=lambda block: block["type"] != "tool_result")
    return system, turns


def _append_turn(turns: list[JsonDict], role: str, blocks: list[JsonDict]) -> None:
    if not blocks:
        return
    # Anthropic merges consecutive same-role turns anyway; doing it here keeps the request tidy.
    if turns and turns[-1]["role"] == role:
        turns[-1]["content"].extend(blocks)
    else:
        turns.append({"role": role, "content": blocks})


def _system_blocks(message: JsonDict, where: str) -> list[JsonDict]:
    blocks = _content_blocks(message.get("content"), where)
    if any(block["type"] != "text" for block in blocks):
        raise InvalidRequest(f"{where}: system and developer messages may only contain text")
    return _with_message_cache_control(blocks, message)


def _user_blocks(message: JsonDict, where: str) -> list[JsonDict]:
    return _content_blocks(message.get("content"), where)


def _assistant_blocks(message: JsonDict, where: str) -> list[JsonDict]:
    blocks = _content_blocks(message.get("content"), where)
    tool_calls = message.get("tool_calls") or []
    if not isinstance(tool_calls, list):
        raise InvalidRequest(f"{where}.tool_calls must be a list")
    blocks.extend(_tool_use_block(call, f"{where}.tool_calls[{i}]") for i, call in enumerate(tool_calls))
    return blocks


def _tool_result_blocks(message: JsonDict, where: str) -> list[JsonDict]:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise InvalidRequest(f"{where}.tool_call_id is required on tool messages")
    result: JsonDict = {"type": "tool_result", "tool_use_id": call_id}
    content = message.get("content")
    # Anthropic rejects empty text; a tool_result without content is a valid empty result.
    if isinstance(content, list):
        blocks = _content_blocks(content, where)
        if blocks:
            result["content"] = blocks
    elif content:
        result["content"] = str(content)
    return [result]


_TURN_BUILDERS: dict[str, tuple[str, Callable[[JsonDict, str], list[JsonDict]]]] = {
    "user": ("user", _user_blocks),
    "assistant": ("assistant", _assistant_blocks),
    "tool": ("user", _tool_result_blocks),
}


def _tool_use_block(call: Any, where: str) -> JsonDict:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or call.get("type", "function") != "function":
        raise InvalidRequest(f"{where}: only function tool calls are supported for Anthropic models")
    if not call.get("id") or not function.get("name"):
        raise InvalidRequest(f"{where}: id and function.name are required")
    arguments = function.get("arguments") or "{}"
    try:
        tool_input = json.loads(arguments)
    except (TypeError, json.JSONDecodeError) as exc:
        raise InvalidRequest(f"{where}.function.arguments is not valid JSON") from exc
    if not isinstance(tool_input, dict):
        raise InvalidRequest(f"{where}.function.arguments must be a JSON object")
    return {"type": "tool_use", "id": call["id"], "name": function["name"], "input": tool_input}


# ---------------------------------------------------------------- content


def _content_blocks(content: Any, where: str) -> list[JsonDict]:
    return content_blocks(content, f"{where}.content", _content_block)


def _content_block(part: Any, where: str) -> JsonDict | None:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in ("text", "refusal"):
        text = part.get(kind)
        if not isinstance(text, str):
            raise InvalidRequest(f"{where}.{kind} must be a string")
        if not text:
            return None
        block: JsonDict = {"type": "text", "text": text}
    elif kind == "image_url":
        block = _image_block(part.get("image_url"), where)
    else:
        raise InvalidRequest(
            f"{where}: content parts of type {kind!r} are not supported for Anthropic models "
            "(supported: text, image_url)"
        )
    cache_control = _cache_control(part)
    if cache_control:
        block["cache_control"] = cache_control
    return block


def _image_block(image_url: Any, where: str) -> JsonDict:
    url = image_url.get("url") if isinstance(image_url, dict) else image_url
    if not isinstance(url, str):
        raise InvalidRequest(f"{where}.image_url.url is required")
    return image_block(url, where, "image_url.url")


def _cache_control(part: JsonDict) -> Any:
    if part.get("cache_control"):
        return part["cache_control"]
    # OpenAI's own breakpoint marker carries the same intent; its TTLs have no Anthropic
    # equivalent, so it becomes the default (5-minute) breakpoint.
    if part.get("prompt_cache_breakpoint"):
        return {"type": "ephemeral"}
    return None


def _with_message_cache_control(blocks: list[JsonDict], message: JsonDict) -> list[JsonDict]:
    """Put a whole-message ``cache_control`` (OpenRouter style) on the message's last block."""
    cache_control = message.get("cache_control")
    if cache_control and blocks and "cache_control" not in blocks[-1]:
        blocks[-1] = {**blocks[-1], "cache_control": cache_control}
    return blocks
