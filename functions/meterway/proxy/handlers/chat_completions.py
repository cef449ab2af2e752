"""``POST /v1/chat/completions``: the OpenAI Chat front door."""

from __future__ import annotations

from functools import partial

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from meterway.accounts.logic.limits import check_model_allowed
from meterway.core.clock import utc_now
from meterway.core.errors import UpstreamError
from meterway.ledger.models import UsageRecord
from meterway.proxy.encoders.chat import ChatEncoder
from meterway.proxy.handlers.deps import ProxyDeps
from meterway.proxy.handlers.http_io import REQUEST_ID_HEADER, read_json
from meterway.proxy.handlers.sse_response import EventStreamResponse
from meterway.proxy.logic.catalog import resolve_model
from meterway.proxy.logic.chat_request import ChatCompletionRequest, parse_request
from meterway.proxy.logic.proxy_call import ProxyCall, complete, fail
from meterway.proxy.logic.relay import Settle, relay


async def handle_chat_completions(request: Request) -> Response:
    deps: ProxyDeps = request.app.state.deps
    key, key_hash = await deps.authenticate(request)
    chat = parse_request(ChatCompletionRequest, await read_json(request, deps.settings.max_body_bytes))
    route = resolve_model(chat.model)
    check_model_allowed(key, route.id)
    body = chat.model_dump(exclude_none=True)
    record = UsageRecord(
        request_id=request.state.request_id,
        created_at=utc_now(),
        key=key,
        model=route.id,
        provider=route.provider,
        endpoint="chat.completions",
        streamed=chat.stream,
        user=chat.user,
        app=request.headers.get("x-title") or request.headers.get("x-meterway-app"),
    )
    call = ProxyCall(route, body, record, request.state.started)
    provider = deps.providers.for_route(route)
    # Built before anything is reserved: a request the provider cannot take is a 400 that costs nothing.
    outbound = provider.chat_request(route, body)
    reservation = await deps.reserve(key, key_hash)
    settle = partial(deps.settle, reservation)
    try:
        response = await deps.upstream.send(outbound, stream=chat.stream, on_error=provider.error)
    except UpstreamError as exc:
        await _settle_failure(settle, call, exc)
        raise
    headers = {REQUEST_ID_HEADER: record.request_id}
    encoder = ChatEncoder(record, route.id, call.created)
    if chat.stream:
        adapter = provider.chat_stream(route, record.request_id, call.created)
        return EventStreamResponse(relay(call, response, adapter, encoder, settle), headers=headers)
    try:
        payload = response.json()
    except ValueError as exc:
        failure = UpstreamError("The upstream provider sent a response that is not JSON.")
        await _settle_failure(settle, call, failure)
        raise failure from exc
    answer = provider.chat_answer(route, payload, record.request_id, call.created)
    complete(call, answer)
    await settle(record)
    return JSONResponse(encoder.answer(answer.body, answer.chat_usage), headers=headers)


async def _settle_failure(settle: Settle, call: ProxyCall, error: UpstreamError) -> None:
    fail(call, error)
    await settle(call.record)
