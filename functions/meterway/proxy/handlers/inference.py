"""The inference routes: one pipeline, and one front door per wire format the clients speak.

A request goes: authenticate (cached key lookup) → parse the body into the front door's model →
resolve the model in the catalog → the provider builds the upstream request → reserve → send →
a non-streamed answer is charged, settled and encoded; a stream is relayed by the one streaming
core, which settles it exactly once. Adding a front door is an encoder and a line below.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from meterway.accounts.logic.limits import check_model_allowed
from meterway.core.clock import utc_now
from meterway.core.errors import UpstreamError
from meterway.ledger.models import UsageRecord
from meterway.proxy.formats.base import Encoder, parse_request
from meterway.proxy.formats.chat import ChatCompletionRequest, ChatEncoder
from meterway.proxy.formats.embeddings import EmbeddingsEncoder, EmbeddingsRequest
from meterway.proxy.formats.messages import MessagesEncoder, MessagesRequest
from meterway.proxy.formats.responses import ResponsesEncoder, ResponsesRequest
from meterway.proxy.handlers.deps import ProxyDeps
from meterway.proxy.handlers.http_io import REQUEST_ID_HEADER, read_json
from meterway.proxy.handlers.sse_response import EventStreamResponse
from meterway.proxy.logic.catalog import Endpoint, check_output_limit
from meterway.proxy.logic.proxy_call import ProxyCall, complete, fail
from meterway.proxy.logic.relay import Settle, relay
from meterway.proxy.models import Format


@dataclass(frozen=True, slots=True)
class FrontDoor:
    """A wire format as a route serves it: what the ledger calls it, which models it serves, how
    its body is read and how its output is encoded (``record, model id, created`` → encoder)."""

    format: Format
    endpoint: str
    models: Endpoint
    request_model: type[BaseModel]
    encoder: Callable[[UsageRecord, str, int], Encoder]

    @property
    def output_limits(self) -> tuple[str, ...]:
        """The request's fields that bound the output (``max_tokens``…): the model's limit applies."""
        return tuple(getattr(self.request_model, "OUTPUT_LIMITS", ()))


CHAT = FrontDoor("chat", "chat.completions", "chat", ChatCompletionRequest, ChatEncoder)
MESSAGES = FrontDoor("messages", "messages", "chat", MessagesRequest, lambda record, _m, _c: MessagesEncoder(record))
RESPONSES = FrontDoor("responses", "responses", "chat", ResponsesRequest, lambda r, _m, _c: ResponsesEncoder(r))
EMBEDDINGS = FrontDoor(
    "embeddings", "embeddings", "embeddings", EmbeddingsRequest, lambda r, _m, _c: EmbeddingsEncoder(r)
)


async def serve(request: Request, door: FrontDoor) -> Response:
    deps: ProxyDeps = request.app.state.deps
    key, key_hash = await deps.authenticate(request)
    parsed = parse_request(door.request_model, await read_json(request, deps.settings.max_body_bytes))
    route = deps.catalog.resolve(parsed.model, endpoint=door.models)
    check_model_allowed(key, route.id)
    check_output_limit(route, {name: getattr(parsed, name) for name in door.output_limits})
    body = parsed.model_dump(exclude_none=True)
    record = UsageRecord(
        request_id=request.state.request_id,
        created_at=utc_now(),
        key=key,
        model=route.id,
        provider=route.provider,
        endpoint=door.endpoint,
        streamed=parsed.stream,
        user=_user_of(body),
        app=request.headers.get("x-title") or request.headers.get("x-meterway-app"),
    )
    call = ProxyCall(route, body, record, request.state.started)
    provider = deps.providers.for_route(route)
    # Built before anything is reserved: a request the provider cannot take is a 400 that costs nothing.
    outbound = provider.request(door.format, route, body, request.headers)
    budget = deps.time_budget(request)
    reservation = await deps.reserve(key, key_hash)
    settle = partial(deps.settle, reservation)
    try:
        response = await deps.upstream.send(
            outbound, stream=parsed.stream, on_error=provider.error, wait=budget.first_byte()
        )
    except UpstreamError as exc:
        await _settle_failure(settle, call, exc)
        raise
    headers = {REQUEST_ID_HEADER: record.request_id}
    encoder = door.encoder(record, route.id, call.created)
    if parsed.stream:
        adapter = provider.stream(door.format, route, record.request_id, call.created)
        events = provider.events(response)
        return EventStreamResponse(relay(call, response, events, adapter, encoder, settle, budget), headers=headers)
    try:
        payload = response.json()
    except ValueError as exc:
        failure = UpstreamError("The upstream provider sent a response that is not JSON.")
        await _settle_failure(settle, call, failure)
        raise failure from exc
    answer = provider.answer(door.format, route, payload, record.request_id, call.created)
    complete(call, answer)
    await settle(record)
    return JSONResponse(encoder.answer(answer.body, answer.client_usage), headers=headers)


def _user_of(body: dict[str, Any]) -> str | None:
    """Who the client says the request is for: ``user``, or Anthropic's ``metadata.user_id``."""
    metadata = body.get("metadata")
    user = body.get("user") or (metadata.get("user_id") if isinstance(metadata, dict) else None)
    return str(user)[:256] if user else None


async def _settle_failure(settle: Settle, call: ProxyCall, error: UpstreamError) -> None:
    fail(call, error)
    await settle(call.record)


async def handle_chat_completions(request: Request) -> Response:
    return await serve(request, CHAT)


async def handle_messages(request: Request) -> Response:
    return await serve(request, MESSAGES)


async def handle_responses(request: Request) -> Response:
    return await serve(request, RESPONSES)


async def handle_embeddings(request: Request) -> Response:
    return await serve(request, EMBEDDINGS)
