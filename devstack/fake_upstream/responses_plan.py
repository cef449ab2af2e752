"""The deterministic plan of a Response: reasoning, then a message or tool calls.

Token accounting is the Chat dialect's: the same prompt costs the same, prefixes are cached
in 128-token steps by the same cache, and reasoning models spend the same hidden reasoning,
reported inside ``output_tokens``. A reasoning model's output starts with a ``reasoning``
item, with a summary when ``reasoning.summary`` asks for one and an opaque, verifiable
``encrypted_content`` when ``include`` asks for ``reasoning.encrypted_content``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from .common import Exchange, new_id
from .openai_plan import compact_json, is_reasoning_model, reasoning_tokens
from .responses_input import responses_conversation, text_format
from .signatures import seal
from .tokens import reply_tokens, stable_hash, stream_pieces
from .turns import PlannedCall, choose_tool_calls, plan_calls, reply_text, within_limit

SUMMARY_TOKENS = 12
SUMMARY_MODES = ("auto", "concise", "detailed")


@dataclass
class ReasoningPlan:
    """The hidden reasoning: its billed size, its optional summary and encrypted content."""

    id: str
    tokens: int
    summary: list[str] | None
    encrypted_content: str | None


@dataclass
class ResponsePlan:
    """Everything decided about a Response before any byte is sent."""

    id: str
    created_at: int
    body: dict[str, Any]
    input_tokens: int
    cached_tokens: int
    reasoning: ReasoningPlan | None
    message_id: str
    text: list[str]
    calls: list[PlannedCall]
    call_item_ids: list[str] = field(default_factory=list)
    incomplete: bool = False

    @property
    def visible_tokens(self) -> int:
        """Text and argument tokens."""
        return len(self.text) + sum(len(call.pieces) for call in self.calls)

    @property
    def status(self) -> str:
        """``incomplete`` when ``max_output_tokens`` cut the output."""
        return "incomplete" if self.incomplete else "completed"

    def usage(self, emitted: int | None = None) -> dict[str, Any]:
        """Responses usage; ``emitted`` overrides the visible count for partial replies."""
        reasoning = self.reasoning.tokens if self.reasoning else 0
        output = reasoning + (self.visible_tokens if emitted is None else emitted)
        return {
            "input_tokens": self.input_tokens,
            # Implicit caching writes for free: nothing is ever billed as a cache write.
            "input_tokens_details": {"cached_tokens": self.cached_tokens, "cache_write_tokens": 0},
            "output_tokens": output,
            "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": self.input_tokens + output,
        }

    def reasoning_item(self, *, final: bool = True) -> dict[str, Any]:
        """The ``reasoning`` output item, complete or as first announced."""
        assert self.reasoning is not None
        summary = [{"type": "summary_text", "text": "".join(self.reasoning.summary)}] if self.reasoning.summary else []
        item: dict[str, Any] = {"id": self.reasoning.id, "type": "reasoning", "summary": summary if final else []}
        if final and self.reasoning.encrypted_content is not None:
            item["encrypted_content"] = self.reasoning.encrypted_content
        return item

    def message_item(self, *, final: bool = True) -> dict[str, Any]:
        """The assistant ``message`` output item, complete or as first announced."""
        part = {"type": "output_text", "annotations": [], "logprobs": [], "text": "".join(self.text)}
        status = self.status if final else "in_progress"
        content = [part] if final else []
        return {"id": self.message_id, "type": "message", "status": status, "content": content, "role": "assistant"}

    def call_item(self, index: int, *, final: bool = True) -> dict[str, Any]:
        """A ``function_call`` or ``custom_tool_call`` output item, complete or as first announced."""
        call, item_id = self.calls[index], self.call_item_ids[index]
        sent = call.sent if final else ""
        if call.custom:
            return {"id": item_id, "type": "custom_tool_call", "call_id": call.id, "name": call.name, "input": sent}
        status = ("completed" if call.complete else "incomplete") if final else "in_progress"
        return {
            "id": item_id,
            "type": "function_call",
            "status": status,
            "arguments": sent,
            "call_id": call.id,
            "name": call.name,
        }

    def output(self) -> list[dict[str, Any]]:
        """Every output item of the complete response."""
        items = [self.reasoning_item()] if self.reasoning else []
        if self.text or not self.calls:
            items.append(self.message_item())
        return items + [self.call_item(index) for index in range(len(self.calls))]

    def response(self, status: str, *, output: list[dict[str, Any]], usage: dict[str, Any] | None) -> dict[str, Any]:
        """The ``response`` object with ``status``, echoing the request like the real API."""
        body = self.body
        text: dict[str, Any] = body["text"] if isinstance(body.get("text"), dict) else {}
        reasoning: dict[str, Any] = body["reasoning"] if isinstance(body.get("reasoning"), dict) else {}
        default_effort = "medium" if is_reasoning_model(body["model"]) else None
        response: dict[str, Any] = {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "background": False,
            "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "max_tool_calls": body.get("max_tool_calls"),
            "model": body["model"],
            "output": output,
            "parallel_tool_calls": body.get("parallel_tool_calls") is not False,
            "previous_response_id": None,
            "prompt_cache_key": body.get("prompt_cache_key"),
            "reasoning": {"effort": reasoning.get("effort", default_effort), "summary": reasoning.get("summary")},
            "safety_identifier": body.get("safety_identifier"),
            "service_tier": "default",
            "store": body.get("store") is not False,
            "temperature": body.get("temperature", 1.0),
            "text": {"format": text.get("format") or {"type": "text"}, "verbosity": text.get("verbosity", "medium")},
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools") or [],
            "top_logprobs": body.get("top_logprobs", 0),
            "top_p": body.get("top_p", 1.0),
            "truncation": body.get("truncation", "disabled"),
            "usage": usage,
            "user": body.get("user"),
            "metadata": body.get("metadata") or {},
        }
        if status == "completed":
            response["completed_at"] = int(time.time())
        return response

    def final_response(self) -> dict[str, Any]:
        """The complete response, with usage."""
        return self.response(self.status, output=self.output(), usage=self.usage())


def unplanned(body: dict[str, Any], input_tokens: int) -> ResponsePlan:
    """A response with no output, for a request refused before the model runs (nothing cached)."""
    return ResponsePlan(new_id("resp_"), int(time.time()), body, input_tokens, 0, None, new_id("msg_"), [], [])


def _reasoning(body: dict[str, Any], seed: int) -> ReasoningPlan | None:
    settings: dict[str, Any] = body["reasoning"] if isinstance(body.get("reasoning"), dict) else {}
    tokens = reasoning_tokens(body["model"], seed)
    if not tokens or settings.get("effort") == "none":
        return None
    hidden = "".join(reply_tokens(stable_hash(["reasoning", seed]), tokens))
    summary = None
    if settings.get("summary") in SUMMARY_MODES or settings.get("generate_summary") in SUMMARY_MODES:
        summary = stream_pieces(hidden)[:SUMMARY_TOKENS]
        summary[0] = summary[0].capitalize()
        summary.append(".")
    encrypted = seal("reasoning", hidden) if "reasoning.encrypted_content" in (body.get("include") or []) else None
    return ReasoningPlan(new_id("rs_"), tokens, summary, encrypted)


def plan_response(exchange: Exchange, prompt: list[str]) -> ResponsePlan:
    """Consult the prefix cache and choose reasoning, then text or tool calls."""
    body = exchange.body
    model: str = body["model"]
    cached = exchange.state.openai_cache.lookup_and_store(model, prompt)
    seed = stable_hash({"model": model, "instructions": body.get("instructions"), "input": body["input"]})
    reasoning = _reasoning(body, seed)
    conversation = responses_conversation(body)
    calls = plan_calls(choose_tool_calls(conversation, seed), lambda: new_id("call_"), compact_json)
    fmt = text_format(body)
    schema = fmt.get("schema") if fmt and fmt.get("type") == "json_schema" else None
    limit = body.get("max_output_tokens")
    cap = exchange.state.config.default_max_tokens if limit is None else None
    text = [] if calls else stream_pieces(reply_text(conversation, seed, schema=schema, natural_cap=cap))
    cut = False
    if limit is not None:
        if reasoning is not None:
            reasoning.tokens = min(reasoning.tokens, limit)
        text, calls, cut = within_limit(text, calls, limit - (reasoning.tokens if reasoning else 0))
    item_ids = [new_id("ctc_" if call.custom else "fc_") for call in calls]
    return ResponsePlan(
        id=new_id("resp_"),
        created_at=int(time.time()),
        body=body,
        input_tokens=len(prompt),
        cached_tokens=cached,
        reasoning=reasoning,
        message_id=new_id("msg_"),
        text=text,
        calls=calls,
        call_item_ids=item_ids,
        incomplete=cut,
    )
