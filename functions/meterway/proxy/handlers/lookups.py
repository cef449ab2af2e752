"""The read-only routes of ``/v1``: the catalog with prices, the calling key's status, and one
request's ledger record."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from meterway.accounts.logic.key_status import read_key_status
from meterway.core.clock import utc_now
from meterway.core.errors import InvalidRequest, NotFound
from meterway.proxy.handlers.deps import ProxyDeps
from meterway.proxy.logic import pricing
from meterway.proxy.logic.catalog import Catalog, Endpoint, ModelRoute


async def get_key(request: Request) -> Response:
    """``GET /v1/key``: the calling key's limits, what it used, what remains, and when it resets."""
    deps: ProxyDeps = request.app.state.deps
    key, _ = await deps.authenticate(request)
    status = await anyio.to_thread.run_sync(read_key_status, deps.quotas, key, utc_now())
    return JSONResponse({"data": status})


async def list_models(request: Request) -> Response:
    """``GET /v1/models``: every catalog model with its base prices per million tokens."""
    deps: ProxyDeps = request.app.state.deps
    await deps.authenticate(request)  # the catalog is for API keys only
    served = [_model(route, deps.catalog) for route in deps.catalog if deps.providers.serves(route)]
    return JSONResponse({"object": "list", "data": served})


async def get_model(request: Request) -> Response:
    """``GET /v1/models/{id}``: one model; the id may come URL-encoded (``openai%2Fgpt-4o-mini``)
    or bare (``gpt-4o-mini``)."""
    deps: ProxyDeps = request.app.state.deps
    await deps.authenticate(request)
    model_id = unquote(request.path_params["model_id"])
    route = deps.catalog.get(model_id) or deps.catalog.resolve(model_id, endpoint=_endpoint_of(deps.catalog, model_id))
    deps.providers.for_route(route)  # a model this deployment does not serve is not found
    return JSONResponse(_model(route, deps.catalog))


def _endpoint_of(catalog: Catalog, model_id: str) -> Endpoint:
    """The endpoint a bare id's model is served on (so that an embeddings model resolves too)."""
    served = {route.endpoint for route in catalog if route.upstream_model == model_id}
    return served.pop() if len(served) == 1 else "chat"


def _model(route: ModelRoute, catalog: Catalog) -> dict[str, Any]:
    """A model as listed; with its routes, in order, when the providers file gives it several."""
    listed: dict[str, Any] = {
        "id": route.id,
        "object": "model",
        "created": 0,
        "owned_by": route.provider,
        "endpoint": route.endpoint,
        "reasoning": route.reasoning,
        "pricing": {"unit": "USD per 1M tokens", **pricing.catalog_prices(route)},
    }
    routes = catalog.routes_for(route)
    if routes != (route,):
        listed["routes"] = [served_by.id for served_by in routes]
    return listed


async def get_generation(request: Request) -> Response:
    """``GET /v1/generation?id=``: one request's ledger record, for the calling key's account only."""
    deps: ProxyDeps = request.app.state.deps
    key, _ = await deps.authenticate(request)
    request_id = request.query_params.get("id", "").strip()
    if not request_id:
        raise InvalidRequest("Query parameter 'id' is required.")
    item = await anyio.to_thread.run_sync(deps.ledger.get, request_id)
    if item is None or item.get("account_id") != key.account_id:
        raise NotFound(f"No generation '{request_id}' for this account.", code="generation_not_found")
    return JSONResponse({"data": json.loads(json.dumps(item, default=float))})
