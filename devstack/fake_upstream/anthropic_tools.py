"""Messages requests with tools, thinking history and structured output.

Besides extracting the ``Conversation`` the shared rules decide on, this enforces what the real
API enforces on multi-turn tool use with extended thinking, since that is where gateways that
translate or re-serialise conversations go wrong:

* thinking blocks passed back must carry the signature the model gave them, unaltered;
* with thinking on, the assistant turn that made the pending tool calls must start with its
  thinking block;
* thinking cannot be combined with a ``tool_choice`` that forces tool use.
"""

from __future__ import annotations

from typing import Any

from .signatures import seal, unseal
from .turns import AUTO, NONE, REQUIRED, Conversation, ToolResult, ToolSpec, content_text

THINKING_BLOCKS = ("thinking", "redacted_thinking")


def thinking_signature(thinking: str) -> str:
    """The signature of a thinking block: it vouches for the block's full text."""
    return seal("thinking", thinking)


def anthropic_tools(body: dict[str, Any]) -> list[ToolSpec]:
    """Client tools (those with an ``input_schema``); server tools are never called by the fake."""
    return [
        ToolSpec(tool["name"], tool["input_schema"])
        for tool in body.get("tools") or []
        if isinstance(tool.get("name"), str) and isinstance(tool.get("input_schema"), dict)
    ]


def _blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    content = message.get("content")
    return [block for block in content if isinstance(block, dict)] if isinstance(content, list) else []


def anthropic_conversation(body: dict[str, Any]) -> Conversation:
    """Tools, tool choice, the last user text and the tool results that end a Messages request."""
    choice: dict[str, Any] = body["tool_choice"] if isinstance(body.get("tool_choice"), dict) else {}
    kind = choice.get("type", "auto")
    conversation = Conversation(
        tools=anthropic_tools(body),
        mode={"none": NONE, "any": REQUIRED}.get(kind, AUTO),
        forced=str(choice.get("name")) if kind == "tool" else None,
        parallel=not choice.get("disable_parallel_tool_use"),
    )
    messages: list[dict[str, Any]] = body["messages"]
    names = {
        block.get("id"): block.get("name")
        for message in messages
        if message.get("role") == "assistant"
        for block in _blocks(message)
        if block.get("type") == "tool_use"
    }
    last = messages[-1]
    if last.get("role") == "user":
        for block in _blocks(last):
            if block.get("type") == "tool_result":
                name = names.get(block.get("tool_use_id"))
                conversation.tool_results.append(ToolResult(name, content_text(block.get("content"))))
    user = next((message for message in reversed(messages) if message.get("role") == "user"), None)
    if user is not None and not conversation.tool_results:
        texts = [block for block in _blocks(user) if block.get("type") == "text"]
        conversation.last_user_text = content_text(user["content"] if isinstance(user["content"], str) else texts)
    return conversation


def output_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON schema ``output_config.format`` asks the reply to follow, if any."""
    config = body.get("output_config")
    fmt = config.get("format") if isinstance(config, dict) else None
    return fmt["schema"] if isinstance(fmt, dict) and isinstance(fmt.get("schema"), dict) else None


def validate_tool_use(body: dict[str, Any], thinking_on: bool) -> str | None:
    """First problem with tools, output format or thinking history, worded like the real API."""
    config = body.get("output_config")
    fmt = config.get("format") if isinstance(config, dict) else None
    if fmt is not None and (not isinstance(fmt, dict) or fmt.get("type") != "json_schema"):
        return "output_config.format.type: Input should be 'json_schema'"
    if isinstance(fmt, dict) and not isinstance(fmt.get("schema"), dict):
        return "output_config.format.schema: Field required"
    choice: dict[str, Any] = body["tool_choice"] if isinstance(body.get("tool_choice"), dict) else {}
    tools = body.get("tools") or []
    if not isinstance(tools, list):
        return "tools: Input should be a valid list"
    for index, tool in enumerate(tools):
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            return f"tools.{index}.custom.name: Input should be a valid string"
    names = {tool["name"] for tool in tools}
    if choice and not names:
        return "tool_choice may only be specified while providing tools."
    if choice.get("type") == "tool" and choice.get("name") not in names:
        return f"tool_choice.name: Tool '{choice.get('name')}' not found in tools"
    if thinking_on and choice.get("type") in ("any", "tool"):
        return "Thinking may not be enabled when tool_choice forces tool use."
    return _check_signatures(body["messages"]) or (_check_thinking_first(body["messages"]) if thinking_on else None)


def _check_signatures(messages: list[dict[str, Any]]) -> str | None:
    for i, message in enumerate(messages):
        if message.get("role") != "assistant":
            continue
        for j, block in enumerate(_blocks(message)):
            if block.get("type") != "thinking":
                continue
            if "signature" not in block:
                return f"messages.{i}.content.{j}.thinking.signature: Field required"
            signed = unseal("thinking", block["signature"])
            # Omitted thinking comes back empty: the signature alone carries it.
            if signed is None or block.get("thinking") not in ("", signed):
                return f"messages.{i}.content.{j}: Invalid `signature` in `thinking` block"
    return None


def _check_thinking_first(messages: list[dict[str, Any]]) -> str | None:
    last = len(messages) - 1
    if last < 1 or not any(b.get("type") == "tool_result" for b in _blocks(messages[last])):
        return None
    caller = messages[last - 1]
    blocks = _blocks(caller)
    if caller.get("role") != "assistant" or not any(b.get("type") == "tool_use" for b in blocks):
        return None
    first = blocks[0].get("type")
    if first in THINKING_BLOCKS:
        return None
    return (
        f"messages.{last - 1}.content.0.type: Expected `thinking` or `redacted_thinking`, but found `{first}`. "
        "When `thinking` is enabled, a final `assistant` message must start with a thinking block "
        "(preceeding the lastmost set of `tool_use` and `tool_result` blocks). We recommend you include "
        "thinking blocks from previous turns. To avoid this requirement, disable `thinking`. Please consult "
        "our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking"
    )
