"""The inference API (``/v1``) as an ASGI app.

In AWS it runs under uvicorn inside the Lambda Web Adapter with response streaming; locally the
dev stack serves the same app. Handlers stay thin: parse, call the logic, shape the response.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from meterway.config import ProxySettings, get_proxy_settings
from meterway.dal.key_store import CachedKeyStore, DynamoKeyStore, KeyStore
from meterway.dal.ledger_store import DynamoLedgerStore, LedgerStore, SpillQueue, SqsSpillQueue
from meterway.dal.quota_store import DynamoQuotaStore, QuotaStore
from meterway.dal.upstream import Upstream, build_client, load_credentials
from meterway.errors import InvalidRequest, MeterwayError, NotFound, PayloadTooLarge, UpstreamError
from meterway.handlers.sse_response import EventStreamResponse
from meterway.logic import pricing
from meterway.logic.auth import check_key, presented_hash
from meterway.logic.catalog import CATALOG, resolve_model
from meterway.logic.chat import ChatCall, Settle, complete_response, stream_chat, upstream_request
from meterway.logic.key_status import check_model_allowed, key_status
from meterway.logic.keys import ApiKey
from meterway.logic.quotas import Reservation
from meterway.logic.record_usage import UsageRecord, new_request_id, now_utc, settle_request
from meterway.models import ChatCompletionRequest, parse_request
from meterway.observability import logger

REQUEST_ID_HEADER = "x-meterway-request-id"


@dataclass(slots=True)
class ProxyDeps:
    """What the proxy talks to; real ones in AWS and the dev stack, fakes in unit tests."""

    settings: ProxySettings
    keys: KeyStore
    ledger: LedgerStore
    spill: SpillQueue | None
    upstream: Upstream
    quotas: QuotaStore

    async def authenticate(self, request: Request) -> tuple[ApiKey, str]:
        """The calling API key and the hash it was found by (the reservation checks it again)."""
        key_hash = presented_hash(request.headers)
        if isinstance(self.keys, CachedKeyStore):
            # A warm cache answers without I/O, so without the cost of a thread hop.
            hit, key = self.keys.cached(key_hash)
            if hit:
                return check_key(key, kind="api"), key_hash
        found = await anyio.to_thread.run_sync(self.keys.get_by_hash, key_hash)
        return check_key(found, kind="api"), key_hash

    async def reserve(self, key: ApiKey, key_hash: str) -> Reservation:
        return await anyio.to_thread.run_sync(self.quotas.reserve, key, key_hash, now_utc())

    async def settle(self, reservation: Reservation, record: UsageRecord) -> None:
        retention_days = self.settings.ledger_retention_days
        outcome = await anyio.to_thread.run_sync(
            settle_request, record, reservation, self.ledger, self.spill, retention_days
        )
        logger.info(
            "request settled",
            extra={
                "request_id": record.request_id,
                "model": record.model,
                "status": record.status,
                "total_tokens": record.usage.total_tokens,
                "cost_usd": str(record.cost_usd),
                "outcome": outcome,
            },
        )


def build_deps(settings: ProxySettings | None = None) -> ProxyDeps:
    settings = settings or get_proxy_settings()
    keys = CachedKeyStore(DynamoKeyStore(settings.keys_table), ttl_seconds=settings.key_cache_ttl_seconds)
    spill = SqsSpillQueue(settings.spill_queue_url) if settings.spill_queue_url else None
    upstream = Upstream(build_client(settings), settings, load_credentials(settings))
    ledger = DynamoLedgerStore(settings.ledger_table, counters_table=settings.keys_table)
    return ProxyDeps(settings, keys, ledger, spill, upstream, DynamoQuotaStore(settings.keys_table))


def _deps(request: Request) -> ProxyDeps:
    deps: ProxyDeps = request.app.state.deps
    return deps


async def read_json(request: Request, limit: int) -> Any:
    """The body as JSON, refusing more than ``limit`` bytes before reading them all."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"The request body is over the {limit // (1024 * 1024)} MB limit.")
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > limit:
            raise PayloadTooLarge(f"The request body is over the {limit // (1024 * 1024)} MB limit.")
    try:
        return json.loads(body)
    except ValueError as exc:
        raise InvalidRequest("The request body is not valid JSON.", code="invalid_json") from exc


async def chat_completions(request: Request) -> Response:
    deps = _deps(request)
    key, key_hash = await deps.authenticate(request)
    chat = parse_request(ChatCompletionRequest, await read_json(request, deps.settings.max_body_bytes))
    route = resolve_model(chat.model)
    check_model_allowed(key, route.id)
    body = chat.model_dump(exclude_none=True)
    record = UsageRecord(
        request_id=request.state.request_id,
        created_at=now_utc(),
        key=key,
        model=route.id,
        provider=route.provider,
        endpoint="chat.completions",
        streamed=chat.stream,
        user=chat.user,
        app=request.headers.get("x-title") or request.headers.get("x-meterway-app"),
    )
    call = ChatCall(route, body, record, request.state.started)
    path, upstream_body = upstream_request(route, body)
    outbound = deps.upstream.request(route, path, upstream_body)
    reservation = await deps.reserve(key, key_hash)
    settle = partial(deps.settle, reservation)
    try:
        response = await deps.upstream.send(outbound, stream=chat.stream)
    except UpstreamError as exc:
        await _settle_failure(settle, call, exc)
        raise
    headers = {REQUEST_ID_HEADER: record.request_id}
    if chat.stream:
        return EventStreamResponse(stream_chat(call, response, settle), headers=headers)
    try:
        payload = response.json()
    except ValueError as exc:
        failure = UpstreamError("The upstream provider sent a response that is not JSON.")
        await _settle_failure(settle, call, failure)
        raise failure from exc
    result = complete_response(call, payload)
    await settle(record)
    return JSONResponse(result, headers=headers)


async def _settle_failure(settle: Settle, call: ChatCall, error: UpstreamError) -> None:
    """The upstream refused or failed: nothing was served, so the record bills nothing."""
    record = call.record
    record.status = "error"
    record.error_code = error.code
    record.upstream_status = error.upstream_status
    record.latency_ms = call.elapsed_ms()
    await settle(record)


async def get_key(request: Request) -> Response:
    """``GET /v1/key``: the calling key's limits, what it used, what remains, and when it resets."""
    deps = _deps(request)
    key, _ = await deps.authenticate(request)
    now = now_utc()
    state = await anyio.to_thread.run_sync(deps.quotas.state, key, now)
    return JSONResponse({"data": key_status(key, state, now)})


async def list_models(request: Request) -> Response:
    await _deps(request).authenticate(request)  # the catalog is for API keys only
    data = [
        {
            "id": route.id,
            "object": "model",
            "created": 0,
            "owned_by": route.provider,
            "endpoint": route.endpoint,
            "reasoning": route.reasoning,
            "pricing": {"unit": "USD per 1M tokens", **pricing.catalog_prices(route)},
        }
        for route in CATALOG.values()
    ]
    return JSONResponse({"object": "list", "data": data})


async def get_generation(request: Request) -> Response:
    deps = _deps(request)
    key, _ = await deps.authenticate(request)
    request_id = request.query_params.get("id", "").strip()
    if not request_id:
        raise InvalidRequest("Query parameter 'id' is required.")
    item = await anyio.to_thread.run_sync(deps.ledger.get, request_id)
    if item is None or item.get("account_id") != key.account_id:
        raise NotFound(f"No generation '{request_id}' for this account.", code="generation_not_found")
    return JSONResponse({"data": json.loads(json.dumps(item, default=float))})


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def error_response(request: Request, error: MeterwayError) -> JSONResponse:
    headers = dict(error.headers)
    request_id = getattr(request.state, "request_id", None)
    if request_id:
        headers[REQUEST_ID_HEADER] = request_id
    return JSONResponse(error.envelope(), status_code=error.status, headers=headers)


async def _on_meterway_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, MeterwayError)
    return error_response(request, exc)


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    error = NotFound("No such endpoint.") if exc.status_code == 404 else InvalidRequest(str(exc.detail))
    error.status = exc.status_code
    return error_response(request, error)


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    logger.exception("unhandled error", extra={"request_id": getattr(request.state, "request_id", None)})
    return error_response(request, MeterwayError("Internal error in the gateway."))


class RequestIdMiddleware:
    """Gives every request its id and start time before anything else runs."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scope.setdefault("state", {})
            scope["state"]["request_id"] = new_request_id()
            scope["state"]["started"] = time.perf_counter()
        await self.app(scope, receive, send)


def create_app(deps_factory: Callable[[], ProxyDeps] = build_deps) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        # Runs in Lambda's init phase, before the adapter's readiness check passes.
        app.state.deps = deps_factory()
        pricing.warm_up()
        yield
        await app.state.deps.upstream.aclose()

    routes = [
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/generation", get_generation, methods=["GET"]),
        Route("/v1/key", get_key, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            MeterwayError: _on_meterway_error,
            HTTPException: _on_http_error,
            Exception: _on_unexpected,
        },
    )
    app.add_middleware(RequestIdMiddleware)
    return app


app = create_app()
