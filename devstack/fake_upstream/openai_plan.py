"""The deterministic plan of a chat completion: one reply per requested choice (``n``)."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any

from .common import Exchange, new_id
from .tokens import stable_hash, stream_pieces
from .turns import (
    AUTO,
    Conversation,
    PlannedCall,
    ToolResult,
    ToolSpec,
    choose_tool_calls,
    content_text,
    plan_calls,
    reply_text,
    within_limit,
)

# Reasoning families (gpt-5.x and later included); the "-chat" variants are plain chat models.
_REASONING_RE = re.compile(r"^(o1|o3|o4|gpt-5|gpt-6)(?!.*-chat)")
SYSTEM_FINGERPRINT = "fp_fake"


def is_reasoning_model(model: str) -> bool:
    """Whether ``model`` spends hidden reasoning tokens (o-series, gpt-5 and later)."""
    return bool(_REASONING_RE.match(model))


def reasoning_tokens(model: str, seed: int) -> int:
    """Hidden reasoning a reply spends before its first visible token (0 for non-reasoning models)."""
    return 8 + stable_hash(["reasoning", seed]) % 57 if is_reasoning_model(model) else 0


def compact_json(value: Any) -> str:
    """JSON as OpenAI models write function arguments: no spaces."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@dataclass
class ChoicePlan:
    """One choice: hidden reasoning, then either text or tool calls."""

    index: int
    reasoning_tokens: int
    content: list[str]
    tool_calls: list[PlannedCall]
    finish_reason: str

    @property
    def output_tokens(self) -> int:
        """Visible tokens: text pieces and argument pieces."""
        return len(self.content) + sum(len(call.pieces) for call in self.tool_calls)


@dataclass
class ChatPlan:
    """Everything decided about a chat completion before any byte is sent."""

    id: str
    created: int
    model: str
    prompt_tokens: int
    cached_tokens: int
    choices: list[ChoicePlan]

    def usage(self, content_tokens: int | None = None) -> dict[str, Any]:
        """OpenAI usage, summed over every choice; ``content_tokens`` overrides the visible count."""
        reasoning = sum(choice.reasoning_tokens for choice in self.choices)
        visible = sum(c.output_tokens for c in self.choices) if content_tokens is None else content_tokens
        completion = visible + reasoning
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": reasoning,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }


def chat_tools(body: dict[str, Any]) -> list[ToolSpec]:
    """Offered function tools (custom tools are accepted but never called)."""
    specs = []
    for tool in body.get("tools") or []:
        function = tool.get("function") if isinstance(tool, dict) and tool.get("type") == "function" else None
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            specs.append(ToolSpec(function["name"], function.get("parameters") or {"type": "object"}))
    return specs


def chat_conversation(body: dict[str, Any]) -> Conversation:
    """Tools, tool choice, the last user text and trailing tool results of a chat request."""
    conversation = Conversation(tools=chat_tools(body), parallel=body.get("parallel_tool_calls") is not False)
    choice = body.get("tool_choice")
    if isinstance(choice, str):
        conversation.mode = choice
    elif isinstance(choice, dict) and choice.get("type") == "function":
        conversation.forced = str((choice.get("function") or {}).get("name"))
    elif isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        allowed = choice.get("allowed_tools") or {}
        allowed_names = {(tool.get("function") or {}).get("name") for tool in allowed.get("tools") or []}
        conversation.tools = [tool for tool in conversation.tools if tool.name in allowed_names]
        conversation.mode = str(allowed.get("mode", AUTO))
    messages: list[dict[str, Any]] = body["messages"]
    names = {
        call.get("id"): (call.get("function") or {}).get("name")
        for message in messages
        if message.get("role") == "assistant"
        for call in message.get("tool_calls") or []
        if isinstance(call, dict)
    }
    trailing = len(messages)
    while trailing and messages[trailing - 1].get("role") in ("tool", "function"):
        trailing -= 1
    for message in messages[trailing:]:
        name = names.get(message.get("tool_call_id")) or message.get("name")
        conversation.tool_results.append(ToolResult(name, content_text(message.get("content"))))
    user = next((m for m in reversed(messages[:trailing]) if m.get("role") == "user"), None)
    if user is not None and not conversation.tool_results:
        conversation.last_user_text = content_text(user.get("content"))
    return conversation


def response_format(body: dict[str, Any]) -> tuple[dict[str, Any] | None, bool]:
    """(JSON schema the reply must follow, whether the reply must be a JSON object)."""
    fmt = body.get("response_format")
    if not isinstance(fmt, dict):
        return None, False
    if fmt.get("type") == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema")
        return (schema if isinstance(schema, dict) else {"type": "object"}), False
    return None, fmt.get("type") == "json_object"


def plan_chat(exchange: Exchange, prompt: list[str]) -> ChatPlan:
    """Consult the prefix cache and choose every choice's reply."""
    body = exchange.body
    model: str = body["model"]
    cached = exchange.state.openai_cache.lookup_and_store(model, prompt)
    seed = stable_hash({"model": model, "messages": body["messages"]})
    conversation = chat_conversation(body)
    choices = [
        _plan_choice(exchange, conversation, index, seed if index == 0 else stable_hash([seed, index]))
        for index in range(int(body.get("n") or 1))
    ]
    return ChatPlan(new_id("chatcmpl-"), int(time.time()), model, len(prompt), cached, choices)


def _plan_choice(exchange: Exchange, conversation: Conversation, index: int, seed: int) -> ChoicePlan:
    body = exchange.body
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    reasoning = reasoning_tokens(body["model"], seed)
    calls = plan_calls(choose_tool_calls(conversation, seed), lambda: new_id("call_"), compact_json)
    schema, json_object = response_format(body)
    # Without an explicit limit the default cap stands for the model's own length: no truncation.
    cap = exchange.state.config.default_max_tokens if limit is None else None
    text = (
        []
        if calls
        else stream_pieces(reply_text(conversation, seed, schema=schema, json_object=json_object, natural_cap=cap))
    )
    cut = False
    if limit is not None:
        # Hidden reasoning is spent first and counts against the completion limit.
        reasoning = min(reasoning, limit)
        text, calls, cut = within_limit(text, calls, limit - reasoning)
    # A named tool_choice ends with "stop", like the real API; a chosen or required call with "tool_calls".
    finish = "length" if cut else "tool_calls" if calls and conversation.forced is None else "stop"
    return ChoicePlan(index, reasoning, text, calls, finish)


def completion_body(plan: ChatPlan) -> dict[str, Any]:
    """The non-stream ``chat.completion`` object."""
    choices = []
    for choice in plan.choices:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": None if choice.tool_calls else "".join(choice.content),
            "refusal": None,
            "annotations": [],
        }
        if choice.tool_calls:
            message["tool_calls"] = [
                {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.sent}}
                for call in choice.tool_calls
            ]
        choices.append(
            {"index": choice.index, "message": message, "logprobs": None, "finish_reason": choice.finish_reason}
        )
    return {
        "id": plan.id,
        "object": "chat.completion",
        "created": plan.created,
        "model": plan.model,
        "choices": choices,
        "usage": plan.usage(),
        "service_tier": "default",
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }
