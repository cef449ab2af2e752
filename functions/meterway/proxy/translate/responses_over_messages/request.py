"""OpenAI Responses request -> Anthropic Messages request.

``instructions`` and the ``input`` items become the system blocks and turns (see ``items``).

Tools: ``function`` -> an Anthropic tool; ``custom`` (freeform) -> a tool whose input schema is one
string property (``CUSTOM_TOOL_INPUT``) described with the tool's grammar; ``namespace`` -> its
functions and custom tools, each named "<namespace>--<name>" (``NAMESPACE_SEPARATOR``) and described
with the namespace's description too; the tools of an ``additional_tools`` input item likewise.
Every other type (``web_search``, ``local_shell``, ``file_search``, ``mcp``, ``tool_search``…) runs
on OpenAI's side or needs it, and is left out. When no tool remains but the history has tool blocks
(Codex's compaction turn), the tools it used are declared back as placeholders with
``tool_choice: none``, because Anthropic refuses tool blocks in a request without tools.

Parameters (see ``responses_to_messages``) are translated, dropped when they only steer OpenAI's
bookkeeping, or refused with ``InvalidRequest`` when dropping them would change the answer.
"""

from __future__ import annotations

from typing import Any

from meterway.core.errors import InvalidRequest
from meterway.proxy.translate.chat_over_messages.request import THINKING_BUDGETS
from meterway.proxy.translate.responses_over_messages.items import Conversation, text_blocks
from meterway.proxy.translate.responses_over_messages.response import CUSTOM_TOOL_INPUT, upstream_tool_name

JsonDict = dict[str, Any]

# Without max_output_tokens: Anthropic requires max_tokens; this, capped at the model's own limit.
DEFAULT_MAX_TOKENS = 32_000
# Room kept for the answer beside a thinking budget (Anthropic wants budget_tokens < max_tokens).
ANSWER_ROOM = 4096
MIN_THINKING_BUDGET = 1024
# Output limits (and whether thinking is available) by model id prefix, most specific first;
# other models: DEFAULT_MAX_TOKENS, no clamping, thinking available.
MODEL_LIMITS: tuple[tuple[str, int, bool], ...] = (
    ("claude-opus-4-5", 64_000, True),
    ("claude-opus-4-1", 32_000, True),
    ("claude-opus-4-0", 32_000, True),
    ("claude-opus-4-2025", 32_000, True),
    ("claude-sonnet-4", 64_000, True),
    ("claude-haiku-4", 64_000, True),
    ("claude-3-7-sonnet", 64_000, True),
    ("claude-3-5-", 8192, False),
    ("claude-3-", 4096, False),
)

_REFUSED_PARAMS = {
    "background": "background responses need a stored response; the gateway keeps none",
    "conversation": "the gateway keeps no conversations: send the whole conversation in 'input'",
    "prompt": "stored prompt templates are not available for Anthropic models",
}
_EFFORTS_WITHOUT_THINKING = frozenset({"none", "minimal"})
_TOOL_CHOICES = {"auto": "auto", "none": "none", "required": "any"}


def responses_to_messages(body: JsonDict, upstream_model: str) -> JsonDict:
    """Translate a Responses request body into an Anthropic Messages request body.

    ``max_output_tokens`` -> ``max_tokens`` (clamped to the model's limit; ``DEFAULT_MAX_TOKENS``
    when absent); ``reasoning.effort`` -> thinking with a ``THINKING_BUDGETS`` budget (none/minimal:
    no thinking; ``max_tokens`` raised to budget + ``ANSWER_ROOM`` when it leaves no room);
    ``temperature`` clamped to 1, ``top_p`` kept unless ``temperature`` is sent too (recent models
    refuse both), both dropped with thinking; ``text.format`` json_schema -> ``output_config.format``;
    ``safety_identifier``/``user`` -> ``metadata.user_id``; ``prompt_cache_key`` -> a top-level
    ``cache_control`` breakpoint (1-hour with ``prompt_cache_retention: 24h``), since OpenAI caches
    on its own and Anthropic only when asked. Thinking is left off when Anthropic would refuse it:
    with a forced ``tool_choice``, or to continue a tool call made without thinking.

    Dropped: ``store``, ``include`` (reasoning items always carry ``encrypted_content``),
    ``service_tier``, ``truncation``, ``metadata``, ``stream_options``, ``client_metadata``,
    ``context_management``, ``max_tool_calls`` (it counts hosted tools, which are left out),
    ``text.verbosity``, ``reasoning.summary`` (the thinking is the summary), and any parameter the
    gateway does not know: Codex adds OpenAI-only fields over time and must not fail on them.
    Refused: ``background``, ``conversation``, ``prompt``, ``top_logprobs`` and logprobs in
    ``include``, ``text.format`` json_object, and a ``tool_choice`` that forces a hosted tool.
    """
    params = {name: value for name, value in body.items() if value is not None}
    _refuse(params)
    system = text_blocks(params.get("instructions"), "instructions")
    conversation = Conversation()
    conversation.add_input(params.get("input"))
    system.extend(conversation.system)
    messages = conversation.messages()
    out: JsonDict = {"model": upstream_model, "messages": messages}
    if system:
        out["system"] = system
    tools, choice = _tool_params(params, messages, conversation.tools)
    cap, can_think = next(
        ((limit, t) for prefix, limit, t in MODEL_LIMITS if upstream_model.startswith(prefix)), (None, True)
    )
    max_tokens = _max_tokens(params.get("max_output_tokens"), cap)
    thinking = _thinking(params.get("reasoning"), cap)
    if not can_think or _forces_tool(choice) or _continues_tool_call_without_thinking(messages):
        thinking = None
    if thinking:
        out["thinking"] = thinking
        if max_tokens <= thinking["budget_tokens"]:  # thinking counts toward max_tokens, and must stay below it
            max_tokens = thinking["budget_tokens"] + ANSWER_ROOM
    else:
        out.update(_sampling(params))
    out["max_tokens"] = max_tokens
    if tools:
        out["tools"] = tools
    if choice:
        out["tool_choice"] = choice
    out.update(_other_params(params))
    return out


# ---------------------------------------------------------------- parameters


def _refuse(params: JsonDict) -> None:
    for name, reason in _REFUSED_PARAMS.items():
        if params.get(name):
            raise InvalidRequest(f"Unsupported parameter '{name}': {reason}.")
    if params.get("top_logprobs"):
        raise InvalidRequest("Unsupported parameter 'top_logprobs': logprobs are not available for Anthropic models.")
    if "message.output_text.logprobs" in (params.get("include") or []):
        raise InvalidRequest("include: 'message.output_text.logprobs' is not available for Anthropic models.")


def _max_tokens(requested: Any, cap: int | None) -> int:
    if requested is None:
        return min(DEFAULT_MAX_TOKENS, cap or DEFAULT_MAX_TOKENS)
    if isinstance(requested, bool) or not isinstance(requested, int) or requested < 1:
        raise InvalidRequest("max_output_tokens must be a positive integer")
    # More than the model can write is refused by Anthropic, and means no more than its limit.
    return min(requested, cap) if cap else requested


def _thinking(reasoning: Any, cap: int | None) -> JsonDict | None:
    if reasoning is not None and not isinstance(reasoning, dict):
        raise InvalidRequest("reasoning must be an object")
    effort = (reasoning or {}).get("effort")
    if effort is None or effort in _EFFORTS_WITHOUT_THINKING:
        return None
    if effort not in THINKING_BUDGETS:
        choices = ", ".join(sorted(_EFFORTS_WITHOUT_THINKING | set(THINKING_BUDGETS)))
        raise InvalidRequest(f"reasoning.effort must be one of: {choices}")
    # Within the model's limit, room is kept for the answer.
    budget = min(THINKING_BUDGETS[effort], cap - ANSWER_ROOM) if cap else THINKING_BUDGETS[effort]
    return {"type": "enabled", "budget_tokens": budget} if budget >= MIN_THINKING_BUDGET else None


def _sampling(params: JsonDict) -> JsonDict:
    out: JsonDict = {}
    for name in ("temperature", "top_p"):
        value = params.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise InvalidRequest(f"{name} must be a number")
    if "temperature" in params:
        out["temperature"] = min(params["temperature"], 1.0)
    elif "top_p" in params:
        out["top_p"] = params["top_p"]
    return out


def _other_params(params: JsonDict) -> JsonDict:
    out: JsonDict = {"stream": bool(params.get("stream"))}
    user = params.get("safety_identifier") or params.get("user")
    if user:
        out["metadata"] = {"user_id": str(user)}
    if params.get("prompt_cache_key"):
        ttl = {"ttl": "1h"} if params.get("prompt_cache_retention") == "24h" else {}
        out["cache_control"] = {"type": "ephemeral"} | ttl
    text = params.get("text") or {}
    fmt = text.get("format") if isinstance(text, dict) else None
    kind = fmt.get("type") if isinstance(fmt, dict) else fmt
    if kind == "json_schema":
        schema = fmt.get("schema") if isinstance(fmt, dict) else None
        if not isinstance(schema, dict):
            raise InvalidRequest("text.format.schema must be a JSON schema object")
        out["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
    elif kind not in (None, "text"):
        raise InvalidRequest(
            "text.format must be 'text' or 'json_schema' for Anthropic models; JSON mode without a schema is not available"
        )
    return out


# ---------------------------------------------------------------- tools


def _tool_params(
    params: JsonDict, messages: list[JsonDict], extra: list[Any]
) -> tuple[list[JsonDict], JsonDict | None]:
    raw = params.get("tools") or []
    if not isinstance(raw, list):
        raise InvalidRequest("tools must be a list")
    offered = [*((tool, f"tools[{i}]") for i, tool in enumerate(raw)), *((tool, "additional_tools") for tool in extra)]
    tools = [out for tool, where in offered for out in _tools(tool, where)]
    choice = params.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        allowed = {t.get("name") for t in choice.get("tools") or [] if isinstance(t, dict)}
        tools = [tool for tool in tools if tool["name"] in allowed]
        choice = "required" if choice.get("mode") == "required" else "auto"
    if not tools:
        if choice not in (None, "auto", "none"):
            raise InvalidRequest("tool_choice forces a tool call, but no function or custom tool is offered")
        return _placeholder_tools(messages)
    out = _tool_choice("auto" if choice is None else choice)
    if params.get("parallel_tool_calls") is False and out["type"] != "none":
        out["disable_parallel_tool_use"] = True
    return tools, (None if out == {"type": "auto"} else out)


def _tools(tool: Any, where: str) -> list[JsonDict]:
    kind = tool.get("type") if isinstance(tool, dict) else None
    if kind in ("function", "custom"):
        return [_tool(tool, where)]
    if kind != "namespace" or not isinstance(tool.get("tools"), list):
        return []  # runs on OpenAI's side or needs it: left out (see the module's docstring)
    namespace = tool.get("name")
    if not isinstance(namespace, str) or not namespace:
        raise InvalidRequest(f"{where}.name is required")
    about = f"\n\n({namespace}: {tool['description']})" if tool.get("description") else ""
    nested = [(t, f"{where}.tools[{i}]") for i, t in enumerate(tool["tools"])]
    return [
        _tool(t, at, namespace, about)
        for t, at in nested
        if isinstance(t, dict) and t.get("type") in ("function", "custom")
    ]


def _tool(tool: JsonDict, where: str, namespace: str | None = None, about: str = "") -> JsonDict:
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidRequest(f"{where}.name is required")
    out: JsonDict = {"name": upstream_tool_name(name, namespace)}
    if tool.get("description") or about:
        out["description"] = (tool.get("description") or "") + about
    if tool.get("type") == "custom":
        out["input_schema"] = _freeform_schema(tool.get("format"))
        return out
    schema = dict(tool.get("parameters") or {"type": "object", "properties": {}})
    if schema.setdefault("type", "object") != "object":
        raise InvalidRequest(f"{where}.parameters must be a JSON schema of type 'object'")
    out["input_schema"] = schema
    if tool.get("strict") is True:
        out["strict"] = True
    return out


def _freeform_schema(fmt: Any) -> JsonDict:
    description = "The tool's whole input, as raw text (not JSON)."
    if isinstance(fmt, dict) and fmt.get("type") == "grammar" and fmt.get("definition"):
        description += f" It must follow this {fmt.get('syntax') or 'grammar'} grammar:\n{fmt['definition']}"
    return {
        "type": "object",
        "properties": {CUSTOM_TOOL_INPUT: {"type": "string", "description": description}},
        "required": [CUSTOM_TOOL_INPUT],
        "additionalProperties": False,
    }


def _tool_choice(choice: Any) -> JsonDict:
    if isinstance(choice, str) and choice in _TOOL_CHOICES:
        return {"type": _TOOL_CHOICES[choice]}
    if isinstance(choice, dict) and choice.get("type") in ("function", "custom"):
        if not isinstance(choice.get("name"), str) or not choice["name"]:
            raise InvalidRequest("tool_choice.name is required")
        return {"type": "tool", "name": choice["name"]}
    raise InvalidRequest(
        "tool_choice must be 'auto', 'none', 'required', a function or custom tool, or allowed_tools; "
        "hosted tools are not available for Anthropic models"
    )


def _forces_tool(choice: JsonDict | None) -> bool:
    return choice is not None and choice["type"] in ("any", "tool")


def _placeholder_tools(messages: list[JsonDict]) -> tuple[list[JsonDict], JsonDict | None]:
    names: dict[str, None] = {}
    uses_tools = False
    for message in messages:
        for block in message["content"]:
            uses_tools = uses_tools or block["type"] in ("tool_use", "tool_result")
            if block["type"] == "tool_use":
                names[block["name"]] = None
    if not uses_tools:
        return [], None
    description = "Used earlier in this conversation; not available now."
    schema = {"type": "object", "properties": {}}
    tools = [{"name": name, "description": description, "input_schema": schema} for name in names or ["tool"]]
    return tools, {"type": "none"}


def _continues_tool_call_without_thinking(messages: list[JsonDict]) -> bool:
    """Whether the request answers tool calls of an assistant turn that did not start by thinking:
    Anthropic refuses to turn thinking on in the middle of such a turn."""
    if len(messages) < 2 or not any(b["type"] == "tool_result" for b in messages[-1]["content"]):
        return False
    first = messages[-2]["content"][0]
    return messages[-2]["role"] == "assistant" and first["type"] not in ("thinking", "redacted_thinking")
