"""Validation of Messages requests and the deterministic plan of a reply."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .anthropic_tools import anthropic_conversation, output_schema, thinking_signature, validate_tool_use
from .cache import AnthropicCacheUsage
from .common import Exchange, is_int, new_id
from .prompt import PromptBlock
from .tokens import reply_tokens, stable_hash, stream_pieces
from .turns import PlannedCall, choose_tool_calls, plan_calls, reply_text, within_limit

_MIN_THINKING_BUDGET = 1024


def _validate_content(content: Any, where: str) -> str | None:
    if isinstance(content, str):
        return None
    if not isinstance(content, list):
        return f"{where}: Input should be a valid string or a list of content blocks"
    for index, block in enumerate(content):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            return f"{where}.{index}: Input should be a content block object with a 'type'"
    return None


def _validate_messages(messages: Any) -> str | None:
    if messages is None:
        return "messages: Field required"
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            return f"messages.{index}.role: Input should be 'user' or 'assistant'"
        problem = _validate_content(message.get("content"), f"messages.{index}.content")
        if problem:
            return problem
    return None


def _is_text_blocks(system: Any) -> bool:
    return isinstance(system, list) and all(isinstance(block, dict) and block.get("type") == "text" for block in system)


def _validate_system_and_tools(body: dict[str, Any]) -> str | None:
    system = body.get("system")
    if system is not None and not isinstance(system, str) and not _is_text_blocks(system):
        return "system: Input should be a valid string or a list of text blocks"
    tools = body.get("tools")
    if tools is not None and (not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools)):
        return "tools: Input should be a valid list"
    return None


def thinking_budget(body: dict[str, Any]) -> tuple[int | None, str | None]:
    """(thinking budget or None when thinking is off, validation error)."""
    thinking = body.get("thinking")
    if thinking is None:
        return None, None
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    if kind in ("disabled", "between_tools"):
        return None, None
    if kind == "adaptive":
        return body["max_tokens"] - 1, None
    if kind != "enabled":
        return None, "thinking.type: Input should be 'enabled', 'disabled' or 'adaptive'"
    budget = thinking.get("budget_tokens")
    if not is_int(budget, _MIN_THINKING_BUDGET):
        return (
            None,
            f"thinking.enabled.budget_tokens: Input should be greater than or equal to {_MIN_THINKING_BUDGET}",
        )
    if budget >= body["max_tokens"]:
        return None, "`max_tokens` must be greater than `thinking.budget_tokens`."
    return budget, None


def validate_message_body(body: dict[str, Any], *, require_max_tokens: bool = True) -> str | None:
    """First problem of a Messages request body, worded like the real API, or None."""
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "model: Field required"
    if require_max_tokens and not is_int(body.get("max_tokens")):
        present = body.get("max_tokens") is not None
        return "max_tokens: Input should be greater than or equal to 1" if present else "max_tokens: Field required"
    if "stream" in body and not isinstance(body["stream"], bool):
        return "stream: Input should be a valid boolean"
    problem = _validate_messages(body.get("messages")) or _validate_system_and_tools(body)
    if problem or not require_max_tokens:
        return problem
    budget, problem = thinking_budget(body)
    return problem or validate_tool_use(body, budget is not None)


@dataclass
class MessagePlan:
    """Everything decided about a Messages reply before any byte is sent."""

    id: str
    model: str
    cache: AnthropicCacheUsage
    thinking: list[str] | None
    thinking_visible: bool
    signature: str
    text: list[str]
    stop_reason: str
    tool_calls: list[PlannedCall] = field(default_factory=list)

    @property
    def output_tokens(self) -> int:
        """Thinking, text and tool input tokens, as billed."""
        return len(self.thinking or []) + len(self.text) + sum(len(call.pieces) for call in self.tool_calls)

    def usage(self, output_tokens: int | None = None) -> dict[str, Any]:
        """Anthropic usage object; ``output_tokens`` overrides the count for partial replies."""
        output = self.output_tokens if output_tokens is None else output_tokens
        usage: dict[str, Any] = {
            "input_tokens": self.cache.input_tokens,
            "cache_creation_input_tokens": self.cache.cache_creation_input_tokens,
            "cache_read_input_tokens": self.cache.cache_read_input_tokens,
            "cache_creation": {
                "ephemeral_5m_input_tokens": self.cache.ephemeral_5m_input_tokens,
                "ephemeral_1h_input_tokens": self.cache.ephemeral_1h_input_tokens,
            },
            "output_tokens": output,
            "service_tier": "standard",
        }
        if self.thinking is not None:
            usage["output_tokens_details"] = {"thinking_tokens": min(output, len(self.thinking))}
        return usage

    def content(self) -> list[dict[str, Any]]:
        """Content blocks of the complete reply."""
        blocks: list[dict[str, Any]] = []
        if self.thinking is not None:
            text = "".join(self.thinking) if self.thinking_visible else ""
            blocks.append({"type": "thinking", "thinking": text, "signature": self.signature})
        if self.text or not self.tool_calls:
            blocks.append({"type": "text", "text": "".join(self.text)})
        for call in self.tool_calls:
            # A tool call cut by max_tokens has no usable input.
            tool_input = json.loads(call.arguments) if call.complete else {}
            blocks.append({"type": "tool_use", "id": call.id, "name": call.name, "input": tool_input})
        return blocks

    def message(self, *, final: bool = True) -> dict[str, Any]:
        """The ``message`` object: complete, or as announced by ``message_start``."""
        return {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": self.content() if final else [],
            "stop_reason": self.stop_reason if final else None,
            "stop_sequence": None,
            "usage": self.usage() if final else self.usage(1),
        }


def plan_message(exchange: Exchange, prompt: list[PromptBlock]) -> MessagePlan:
    """Account the prompt against the cache and choose thinking, then text or tool calls."""
    body = exchange.body
    model: str = body["model"]
    max_tokens: int = body["max_tokens"]
    cache = exchange.state.anthropic_cache.apply(model, prompt)
    seed = stable_hash({"model": model, "system": body.get("system"), "messages": body["messages"]})
    budget, _ = thinking_budget(body)
    thinking = None
    if budget is not None:
        # Keep room for at least one text token, as the API requires max_tokens > budget_tokens.
        length = min(8 + stable_hash(["thinking", seed]) % 41, budget, max_tokens - 1)
        thinking = reply_tokens(stable_hash(["thinking", seed]), length)
    conversation = anthropic_conversation(body)
    calls = plan_calls(choose_tool_calls(conversation, seed), lambda: new_id("toolu_01"), json.dumps)
    text = [] if calls else stream_pieces(reply_text(conversation, seed, schema=output_schema(body)))
    text, calls, cut = within_limit(text, calls, max_tokens - len(thinking or []))
    return MessagePlan(
        id=new_id("msg_"),
        model=model,
        cache=cache,
        thinking=thinking,
        thinking_visible=(body.get("thinking") or {}).get("display") != "omitted",
        signature=thinking_signature("".join(thinking or [])),
        text=text,
        stop_reason="max_tokens" if cut else "tool_use" if calls else "end_turn",
        tool_calls=calls,
    )
