"""The input of a Responses request: its items, their tokens and the conversation they tell.

Counting follows the Chat dialect so that the same conversation costs the same in both:
``instructions`` count like a system message, each message gets the 3-token header, and
the reply is primed with the assistant header.
"""

from __future__ import annotations

from typing import Any

from .prompt import message_header
from .tokens import DOCUMENT_TOKENS, IMAGE_TOKENS, json_tokens, opaque_tokens, tokenize
from .turns import AUTO, Conversation, ToolResult, ToolSpec, content_text

CALL_ITEMS = ("function_call", "custom_tool_call")
OUTPUT_ITEMS = ("function_call_output", "custom_tool_call_output")
MESSAGE_ROLES = ("user", "assistant", "system", "developer")


def input_items(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The input as a list of items: a string input is one user message."""
    raw = body.get("input")
    if isinstance(raw, str):
        return [{"type": "message", "role": "user", "content": raw}]
    return [item for item in raw if isinstance(item, dict)] if isinstance(raw, list) else []


def item_kind(item: dict[str, Any]) -> str | None:
    """An item's type; the short ``{"role", "content"}`` form is a message."""
    kind = item.get("type")
    if kind is None and "role" in item:
        return "message"
    return kind if isinstance(kind, str) else None


def text_format(body: dict[str, Any]) -> dict[str, Any] | None:
    """``text.format`` when it asks for more than plain text."""
    text = body.get("text")
    fmt = text.get("format") if isinstance(text, dict) else None
    return fmt if isinstance(fmt, dict) and fmt.get("type") != "text" else None


def _part_tokens(part: Any) -> list[str]:
    if isinstance(part, str):
        return tokenize(part)
    if not isinstance(part, dict):
        return json_tokens(part)
    kind = part.get("type")
    if kind in ("input_text", "output_text", "text", "summary_text", "reasoning_text"):
        return tokenize(str(part.get("text", "")))
    if kind == "refusal":
        return tokenize(str(part.get("refusal", "")))
    if kind == "input_image":
        return opaque_tokens("image", part.get("image_url") or part.get("file_id"), IMAGE_TOKENS)
    if kind == "input_file":
        return opaque_tokens("file", part.get("file_data") or part.get("file_id"), DOCUMENT_TOKENS)
    return json_tokens(part)


def _content_tokens(content: Any) -> list[str]:
    if isinstance(content, list):
        return [token for part in content for token in _part_tokens(part)]
    return _part_tokens(content) if content is not None else []


def _item_tokens(item: dict[str, Any]) -> list[str]:
    kind = item_kind(item)
    if kind == "message":
        return message_header(str(item.get("role"))) + _content_tokens(item.get("content"))
    if kind == "function_call":
        return tokenize(str(item.get("name", ""))) + tokenize(str(item.get("arguments", "")))
    if kind == "custom_tool_call":
        return tokenize(str(item.get("name", ""))) + tokenize(str(item.get("input", "")))
    if kind in OUTPUT_ITEMS:
        return message_header("tool") + _content_tokens(item.get("output"))
    if kind == "reasoning":
        return _content_tokens(item.get("summary"))
    return json_tokens(item)


def responses_prompt_tokens(body: dict[str, Any]) -> list[str]:
    """Tools, output format, instructions, input items, then the reply primer."""
    tokens: list[str] = []
    if body.get("tools"):
        tokens += ["<|tools|>", *json_tokens(body["tools"])]
    fmt = text_format(body)
    if fmt:
        tokens += ["<|format|>", *json_tokens(fmt)]
    if isinstance(body.get("instructions"), str) and body["instructions"]:
        tokens += message_header("system") + tokenize(body["instructions"])
    for item in input_items(body):
        tokens += _item_tokens(item)
    return tokens + message_header("assistant")


def responses_tools(body: dict[str, Any]) -> list[ToolSpec]:
    """Function and custom tools; hosted tools (web search, file search...) are never called."""
    specs = []
    for tool in body.get("tools") or []:
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            continue
        if tool.get("type") == "function":
            specs.append(ToolSpec(tool["name"], tool.get("parameters") or {"type": "object"}))
        elif tool.get("type") == "custom":
            specs.append(ToolSpec(tool["name"], None))
    return specs


def responses_conversation(body: dict[str, Any]) -> Conversation:
    """Tools, tool choice, the last user text and the tool outputs that end the input."""
    conversation = Conversation(tools=responses_tools(body), parallel=body.get("parallel_tool_calls") is not False)
    choice = body.get("tool_choice")
    if isinstance(choice, str):
        conversation.mode = choice
    elif isinstance(choice, dict) and choice.get("type") in ("function", "custom"):
        conversation.forced = str(choice.get("name"))
    elif isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        allowed = {tool.get("name") for tool in choice.get("tools") or [] if isinstance(tool, dict)}
        conversation.tools = [tool for tool in conversation.tools if tool.name in allowed]
        conversation.mode = str(choice.get("mode", AUTO))
    items = input_items(body)
    names = {item.get("call_id"): item.get("name") for item in items if item_kind(item) in CALL_ITEMS}
    trailing = len(items)
    while trailing and item_kind(items[trailing - 1]) in OUTPUT_ITEMS:
        trailing -= 1
    for item in items[trailing:]:
        output = item.get("output")
        conversation.tool_results.append(ToolResult(names.get(item.get("call_id")), content_text(output)))
    user = next((i for i in reversed(items[:trailing]) if item_kind(i) == "message" and i.get("role") == "user"), None)
    if user is not None and not conversation.tool_results:
        conversation.last_user_text = content_text(user.get("content"))
    return conversation
