"""The inference routes: one pipeline, and one front door per wire format the clients speak.

A request goes: authenticate (cached key lookup) → parse the body into the front door's model →
resolve the model in the catalog → each of its routes' providers builds its upstream request →
reserve, once (awaited first, or for a stream of a key far from its limits while the upstream is
called, and before anything reaches the client) → send, falling back along the routes until one
answers (``fallbacks``) → a
non-streamed answer is charged, settled and encoded; a stream is relayed by the one streaming
core, which settles it exactly once. The failed attempts are settled with it, as records of
their own. Adding a front door is an encoder and a line below.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache, partial
from typing import TYPE_CHECKING, Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from meterway.accounts.logic.limits import check_model_allowed
from meterway.accounts.models import ApiKey
from meterway.core.clock import utc_now
from meterway.core.errors import MeterwayError, UpstreamError
from meterway.ledger.attribution import app_name, end_user
from meterway.ledger.models import UsageRecord
from meterway.proxy.handlers.deps import Admission, ProxyDeps
from meterway.proxy.handlers.http_io import REQUEST_ID_HEADER, read_json
from meterway.proxy.handlers.sse_response import EventStreamResponse
from meterway.proxy.logic.catalog import Endpoint, ModelRoute, check_output_limit
from meterway.proxy.logic.fallbacks import Attempts, Leg, ProviderPin, allowed_routes, first_answer, pin_of
from meterway.proxy.logic.proxy_call import ProxyCall, attempt_records, complete, fail, take
from meterway.proxy.logic.relay import Settle, relay
from meterway.proxy.models import Format, Wait

if TYPE_CHECKING:
    import msgspec

    from meterway.proxy.formats.base import Encoder


@dataclass(frozen=True, slots=True)
class DoorFormat:
    """How a front door's body is read and its output encoded (``record, model id, created`` →
    encoder)."""

    request_model: type[msgspec.Struct]
    encoder: Callable[[UsageRecord, str, int], Encoder]

    @property
    def output_limits(self) -> tuple[str, ...]:
        """The request's fields that bound the output (``max_tokens``…): the model's limit applies."""
        return tuple(getattr(self.request_model, "OUTPUT_LIMITS", ()))

    def parse(self, payload: Any) -> tuple[Any, dict[str, Any]]:
        """The body read into the door's model, and the body that goes on; any problem is a 400
        that names the field."""
        # Loaded with the door's own format, which imports it first.
        from meterway.proxy.formats.base import parse_request, request_body

        parsed = parse_request(self.request_model, payload)
        return parsed, request_body(payload, parsed)


@dataclass(frozen=True, slots=True)
class FrontDoor:
    """A wire format as a route serves it: what the ledger calls it, which models it serves, and
    its format, imported on the door's first request (``load``, cached): a container mostly serves
    one kind of client, and the other doors' models and encoders stay off its cold start."""

    format: Format
    endpoint: str
    models: Endpoint
    load: Callable[[], DoorFormat]


@cache
def _chat() -> DoorFormat:
    from meterway.proxy.formats.chat import ChatCompletionRequest, ChatEncoder

    return DoorFormat(ChatCompletionRequest, ChatEncoder)


@cache
def _messages() -> DoorFormat:
    from meterway.proxy.formats.messages import MessagesEncoder, MessagesRequest

    return DoorFormat(MessagesRequest, lambda record, _m, _c: MessagesEncoder(record))


@cache
def _responses() -> DoorFormat:
    from meterway.proxy.formats.responses import ResponsesEncoder, ResponsesRequest

    return DoorFormat(ResponsesRequest, lambda record, _m, _c: ResponsesEncoder(record))


@cache
def _embeddings() -> DoorFormat:
    from meterway.proxy.formats.embeddings import EmbeddingsEncoder, EmbeddingsRequest

    return DoorFormat(EmbeddingsRequest, lambda record, _m, _c: EmbeddingsEncoder(record))


CHAT = FrontDoor("chat", "chat.completions", "chat", _chat)
MESSAGES = FrontDoor("messages", "messages", "chat", _messages)
RESPONSES = FrontDoor("responses", "responses", "chat", _responses)
EMBEDDINGS = FrontDoor("embeddings", "embeddings", "embeddings", _embeddings)


async def serve(request: Request, door: FrontDoor) -> Response:
    deps: ProxyDeps = request.app.state.deps
    key, key_hash = await deps.authenticate(request)
    early = await deps.check_early(key, key_hash)
    try:
        return await _serve(request, door, deps, key, key_hash, early)
    except BaseException:
        if early is not None:
            early.abandon()
        raise


async def _serve(
    request: Request, door: FrontDoor, deps: ProxyDeps, key: ApiKey, key_hash: str, early: Admission | None
) -> Response:
    raw = await read_json(request, deps.settings.max_body_bytes)
    pin = pin_of(raw, request.headers) if isinstance(raw, dict) else ProviderPin()
    wire = door.load()
    parsed, body = wire.parse(raw)
    model = deps.catalog.resolve(parsed.model, endpoint=door.models)
    check_model_allowed(key, model.id)
    # Built before anything is reserved: a request no route can take is a 4xx that costs nothing.
    limits = {name: getattr(parsed, name) for name in wire.output_limits}
    legs = _legs(deps, door, model, pin, body, limits, request.headers)
    record = UsageRecord(
        request_id=request.state.request_id,
        created_at=utc_now(),
        key=key,
        model=model.id,
        provider=legs[0].route.provider,
        endpoint=door.endpoint,
        streamed=parsed.stream,
        user=end_user(body),
        app=app_name(request.headers),
    )
    call = ProxyCall(legs[0].as_requested, body, record, request.state.started)
    budget = deps.time_budget(request)
    admission = await deps.admit(key, key_hash, streamed=parsed.stream, early=early)
    attempts = Attempts()

    async def send(leg: Leg, wait: Wait) -> httpx.Response:
        return await deps.upstream.send(leg.outbound, stream=parsed.stream, on_error=leg.provider.error, wait=wait)

    try:
        leg, response = await first_answer(legs, send, budget.first_byte, deps.retry, attempts)
    except UpstreamError as exc:
        reservation = await admission.reservation()
        take(call, attempts.failures[-1].leg, attempts.count)
        fail(call, exc)
        await deps.settle(reservation, record, attempt_records(record, attempts.failures[:-1]))
        raise
    except BaseException:
        admission.abandon()
        raise
    try:
        reservation = await admission.reservation()
    except MeterwayError as refused:
        # Refused while the upstream was called: nothing of its answer was read or is sent.
        await response.aclose()
        take(call, leg, attempts.count + 1)
        fail(call, UpstreamError(refused.message, code=refused.code, upstream_status=response.status_code))
        await deps.record_refused(record)
        raise
    take(call, leg, attempts.count + 1)
    settle = partial(deps.settle, reservation, attempts=attempt_records(record, attempts.failures))
    headers = {REQUEST_ID_HEADER: record.request_id}
    encoder = wire.encoder(record, model.id, call.created)
    if parsed.stream:
        adapter = leg.provider.stream(door.format, leg.as_requested, record.request_id, call.created)
        events = leg.provider.events(response)
        return EventStreamResponse(relay(call, response, events, adapter, encoder, settle, budget), headers=headers)
    try:
        payload = response.json()
    except ValueError as exc:
        failure = UpstreamError("The upstream provider sent a response that is not JSON.")
        await _settle_failure(settle, call, failure)
        raise failure from exc
    answer = leg.provider.answer(door.format, leg.as_requested, payload, record.request_id, call.created)
    complete(call, answer)
    await settle(record)
    return JSONResponse(encoder.answer(answer.body, answer.client_usage), headers=headers)


def _legs(
    deps: ProxyDeps,
    door: FrontDoor,
    model: ModelRoute,
    pin: ProviderPin,
    body: dict[str, Any],
    limits: dict[str, Any],
    client_headers: Mapping[str, str],
) -> list[Leg]:
    """The routes this request may take, in order, each with its upstream request built. A route
    that cannot take it (not served here, its output limit passed, the format or a field it cannot
    carry) is left out; when none can, the first one's reason is the answer."""
    legs: list[Leg] = []
    refusals: list[MeterwayError] = []
    for route in allowed_routes(model, deps.catalog.routes_for(model), pin):
        try:
            provider = deps.providers.for_route(route)
            check_output_limit(route, limits)
            legs.append(Leg.of(model, route, provider, provider.request(door.format, route, body, client_headers)))
        except MeterwayError as refused:
            refusals.append(refused)
    if not legs:
        raise refusals[0]
    return legs


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
