"""OpenAI Chat Completions dialect: ``POST /v1/chat/completions``, stream and non-stream."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive

from .asgi import CutConnection, DroppedResponse, EventStreamResponse, sleep_or_disconnect, sse_data
from .common import Exchange, begin, is_int, logged, new_id
from .prompt import last_user_text, openai_prompt_tokens
from .tokens import natural_reply_length, reply_tokens, stable_hash

# Reasoning families (gpt-5.x and later included); the "-chat" variants are plain chat models.
_REASONING_RE = re.compile(r"^(o1|o3|o4|gpt-5|gpt-6)(?!.*-chat)")
_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_ERROR_TYPES = {401: "invalid_request_error", 429: "requests"}
SYSTEM_FINGERPRINT = "fp_fake"


def is_reasoning_model(model: str) -> bool:
    """Whether ``model`` spends hidden reasoning tokens (o-series, gpt-5 and later)."""
    return bool(_REASONING_RE.match(model))


class OpenAIDialect:
    """OpenAI's ``Authorization: Bearer`` auth and ``{"error": {...}}`` envelope."""

    def error(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        """An error in OpenAI's envelope."""
        error_type = "server_error" if status >= 500 else _ERROR_TYPES.get(status, "invalid_request_error")
        if status == 429 and code is None:
            code = "rate_limit_exceeded"
        payload = {"error": {"message": message, "type": error_type, "param": param, "code": code}}
        all_headers = {"x-request-id": new_id("req_"), **(headers or {})}
        return JSONResponse(payload, status_code=status, headers=all_headers)

    def api_key(self, request: Request) -> str | None:
        """The bearer token, if any."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None

    def auth_error(self, key: str | None) -> Response:
        """401 as OpenAI words it, for a missing or an incorrect key."""
        if not key:
            message = (
                "You didn't provide an API key. You need to provide your API key in an Authorization "
                "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
            )
            return self.error(401, message)
        return self.error(401, f"Incorrect API key provided: {key[:3]}***{key[-4:]}.", code="invalid_api_key")


OPENAI = OpenAIDialect()


@dataclass
class ChatPlan:
    """Everything decided about a chat completion before any byte is sent."""

    id: str
    created: int
    model: str
    prompt_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    content: list[str]
    finish_reason: str

    def usage(self, content_tokens: int | None = None) -> dict[str, Any]:
        """OpenAI usage object; ``content_tokens`` overrides the visible count for partial replies."""
        visible = len(self.content) if content_tokens is None else content_tokens
        completion = visible + self.reasoning_tokens
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": self.reasoning_tokens,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }


def _validate_messages(messages: Any) -> tuple[str, str, str | None] | None:
    if not isinstance(messages, list):
        return ("'messages' is a required property and must be an array", "messages", None)
    if not messages:
        return ("[] is too short - 'messages'", "messages", "empty_array")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in _ROLES:
            return (f"Invalid value for 'messages[{index}].role'.", f"messages[{index}].role", None)
    return None


def validate_chat(body: dict[str, Any]) -> tuple[str, str | None, str | None] | None:
    """First problem of a chat completion body as (message, param, code), or None."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return ("you must provide a model parameter", "model", None)
    problem = _validate_messages(body.get("messages"))
    if problem:
        return problem
    for name in ("max_tokens", "max_completion_tokens"):
        if body.get(name) is not None and not is_int(body[name]):
            return (f"Invalid '{name}': integer below minimum value 1.", name, "integer_below_min_value")
    if body.get("max_tokens") is not None and is_reasoning_model(model):
        message = (
            "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead."
        )
        return (message, "max_tokens", "unsupported_parameter")
    if "stream" in body and not isinstance(body["stream"], bool):
        return ("Invalid type for 'stream': expected a boolean.", "stream", "invalid_type")
    if body.get("stream_options") is not None and body.get("stream") is not True:
        return (
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            "stream_options",
            None,
        )
    return None


def plan_chat(exchange: Exchange) -> ChatPlan:
    """Tokenize the prompt, consult the prefix cache and choose the reply."""
    body = exchange.body
    model: str = body["model"]
    prompt = openai_prompt_tokens(body)
    cached = exchange.state.openai_cache.lookup_and_store(model, prompt)
    seed = stable_hash({"model": model, "messages": body["messages"]})
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    reasoning = 8 + stable_hash(["reasoning", seed]) % 57 if is_reasoning_model(model) else 0
    if (last_user_text(body["messages"]) or "").strip() == "ping":
        words = ["pong"]
    elif limit is None:
        # Without an explicit limit the default cap stands for the model's own length: no truncation.
        words = reply_tokens(seed, min(natural_reply_length(seed), exchange.state.config.default_max_tokens))
    else:
        words = reply_tokens(seed, natural_reply_length(seed))
    visible = len(words)
    if limit is not None:
        # Hidden reasoning is spent first and counts against the completion limit.
        reasoning = min(reasoning, limit)
        visible = min(visible, limit - reasoning)
    return ChatPlan(
        id=new_id("chatcmpl-"),
        created=int(time.time()),
        model=model,
        prompt_tokens=len(prompt),
        cached_tokens=cached,
        reasoning_tokens=reasoning,
        content=words[:visible],
        finish_reason="length" if visible < len(words) else "stop",
    )


def completion_body(plan: ChatPlan) -> dict[str, Any]:
    """The non-stream ``chat.completion`` object."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(plan.content),
        "refusal": None,
        "annotations": [],
    }
    return {
        "id": plan.id,
        "object": "chat.completion",
        "created": plan.created,
        "model": plan.model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": plan.finish_reason}],
        "usage": plan.usage(),
        "service_tier": "default",
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }


def _chunk(plan: ChatPlan, delta: dict[str, Any] | None, finish: str | None, include_usage: bool) -> dict[str, Any]:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
    chunk: dict[str, Any] = {
        "id": plan.id,
        "object": "chat.completion.chunk",
        "created": plan.created,
        "model": plan.model,
        "service_tier": "default",
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "choices": choices,
    }
    if include_usage:
        chunk["usage"] = None
    return chunk


def stream_chat(exchange: Exchange, plan: ChatPlan, include_usage: bool) -> EventStreamResponse:
    """The ``chat.completion.chunk`` event stream, ending with ``[DONE]``."""
    record = exchange.record
    cut_after = exchange.fault.after_tokens if exchange.fault and exchange.fault.kind == "cut" else None

    async def events(receive: Receive) -> AsyncIterator[bytes]:
        if await sleep_or_disconnect(receive, exchange.first_token_s):
            record.usage, record.client_disconnected = plan.usage(0), True
            return
        yield sse_data(_chunk(plan, {"role": "assistant", "content": "", "refusal": None}, None, include_usage))
        for index, token in enumerate(plan.content):
            if index == cut_after:
                record.usage = plan.usage(index)
                raise CutConnection
            if index and await sleep_or_disconnect(receive, exchange.per_token_s):
                record.usage, record.client_disconnected = plan.usage(index), True
                return
            yield sse_data(_chunk(plan, {"content": token}, None, include_usage))
        if cut_after is not None:
            record.usage = plan.usage()
            raise CutConnection
        yield sse_data(_chunk(plan, {}, plan.finish_reason, include_usage))
        # Logged before the last bytes go out so a client that just read [DONE] finds it.
        record.usage, record.usage_reported = plan.usage(), include_usage
        if include_usage:
            usage_chunk = _chunk(plan, None, None, include_usage)
            usage_chunk["usage"] = plan.usage()
            yield sse_data(usage_chunk)
        yield b"data: [DONE]\n\n"

    return EventStreamResponse(events, headers={"x-request-id": new_id("req_")})


def malformed_chat(plan: ChatPlan, stream: bool) -> Response:
    """A 200 answer whose JSON is truncated mid-object."""
    if not stream:
        broken = f'{{"id":"{plan.id}","object":"chat.completion","choices":[{{"index":0,"message":{{"con'
        return Response(broken, media_type="application/json")

    async def events(receive: Receive) -> AsyncIterator[bytes]:
        head = f'data: {{"id":"{plan.id}","object":"chat.completion.chunk",'
        yield f'{head}"choices":[{{"delta":{{"con\n\n'.encode()
        yield b"data: [DONE]\n\n"

    return EventStreamResponse(events)


@logged
async def chat_completions(request: Request) -> Response:
    """``POST /v1/chat/completions``."""
    exchange = await begin(request, OPENAI)
    if isinstance(exchange, Response):
        return exchange
    problem = validate_chat(exchange.body)
    if problem:
        message, param, code = problem
        return OPENAI.error(400, message, param=param, code=code)
    plan = plan_chat(exchange)
    exchange.record.id = plan.id
    stream = exchange.body.get("stream") is True
    if exchange.fault_kind() == "malformed":
        return malformed_chat(plan, stream)
    if stream:
        include_usage = bool((exchange.body.get("stream_options") or {}).get("include_usage"))
        return stream_chat(exchange, plan, include_usage)
    if await sleep_or_disconnect(request.receive, exchange.generation_time(len(plan.content))):
        exchange.record.client_disconnected = True
        return DroppedResponse()
    exchange.record.usage = plan.usage()
    if exchange.fault_kind() == "cut":
        return DroppedResponse()
    exchange.record.usage_reported = True
    return JSONResponse(completion_body(plan), headers={"x-request-id": new_id("req_")})
