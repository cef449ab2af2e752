"""Anthropic Messages dialect: ``POST /v1/messages`` and ``POST /v1/messages/count_tokens``."""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive

from .anthropic_plan import MessagePlan, plan_message, validate_message_body
from .anthropic_stream import stream_message
from .asgi import EventStreamResponse
from .common import Exchange, KeyDialect, await_reply, begin, logged, new_id
from .context import Overflow, overflow
from .prompt import PromptError, anthropic_prompt_blocks

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


class AnthropicDialect(KeyDialect):
    """Anthropic's ``x-api-key`` auth and ``{"type": "error", "error": {...}}`` envelope."""

    def error(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        """An error in Anthropic's envelope (``param`` and ``code`` have no place in it)."""
        error_type = _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
        request_id = new_id("req_")
        payload = {
            "type": "error",
            "error": {"type": error_type, "message": message},
            "request_id": request_id,
        }
        return JSONResponse(payload, status_code=status, headers={"request-id": request_id, **(headers or {})})

    def api_key(self, request: Request) -> str | None:
        """``x-api-key``, or a bearer token as OAuth-style clients send."""
        key = request.headers.get("x-api-key", "").strip()
        if key:
            return key
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None

    def auth_error(self, key: str | None) -> Response:
        """401 ``authentication_error``."""
        return self.error(401, "x-api-key header is required" if not key else "invalid x-api-key")


ANTHROPIC = AnthropicDialect()


class MessageRefused(Exception):
    """A Messages request the model refuses (HTTP 400): invalid, or its prompt too long (``too_long``)."""

    def __init__(self, message: str, too_long: Overflow | None = None) -> None:
        super().__init__(message)
        self.too_long = too_long


def checked_plan(exchange: Exchange) -> MessagePlan:
    """Validate a Messages body, account its prompt and plan the reply; raises ``MessageRefused``."""
    problem = validate_message_body(exchange.body)
    if problem:
        raise MessageRefused(problem)
    try:
        prompt = anthropic_prompt_blocks(exchange.body)
    except PromptError as error:
        raise MessageRefused(str(error)) from error
    too_long = overflow(exchange, exchange.body["model"], sum(len(block.tokens) for block in prompt))
    if too_long:
        raise MessageRefused(f"prompt is too long: {too_long.tokens} tokens > {too_long.window} maximum", too_long)
    plan = plan_message(exchange, prompt)
    exchange.record.id = plan.id
    return plan


def malformed_message(plan: MessagePlan) -> str:
    """A reply cut in the middle of its JSON."""
    return f'{{"id":"{plan.id}","type":"message","role":"assistant","content":[{{"type":"text","te'


def _malformed(plan: MessagePlan, stream: bool) -> Response:
    if not stream:
        return Response(malformed_message(plan), media_type="application/json")

    async def events(receive: Receive) -> AsyncIterator[bytes]:
        head = 'event: message_start\ndata: {"type":"message_start",'
        yield f'{head}"message":{{"id":"{plan.id}"\n\n'.encode()

    return EventStreamResponse(events)


@logged
async def messages(request: Request) -> Response:
    """``POST /v1/messages``."""
    exchange = await begin(request, ANTHROPIC)
    if isinstance(exchange, Response):
        return exchange
    try:
        plan = checked_plan(exchange)
    except MessageRefused as refusal:
        return ANTHROPIC.error(400, str(refusal))
    stream = exchange.body.get("stream") is True
    if exchange.fault_kind() == "malformed":
        return _malformed(plan, stream)
    if stream:
        return stream_message(exchange, plan)
    ended = await await_reply(exchange, plan.output_tokens, plan.usage())
    return ended or JSONResponse(plan.message(), headers={"request-id": new_id("req_")})


@logged
async def count_message_tokens(request: Request) -> Response:
    """``POST /v1/messages/count_tokens``: the prompt size, without touching the cache."""
    exchange = await begin(request, ANTHROPIC)
    if isinstance(exchange, Response):
        return exchange
    problem = validate_message_body(exchange.body, require_max_tokens=False)
    if problem:
        return ANTHROPIC.error(400, problem)
    try:
        blocks = anthropic_prompt_blocks(exchange.body)
    except PromptError as error:
        return ANTHROPIC.error(400, str(error))
    return JSONResponse({"input_tokens": sum(len(block.tokens) for block in blocks)})
