"""The inference API (``/v1``) as an ASGI app: ProxyFunction.

In AWS it runs under uvicorn inside the Lambda Web Adapter with response streaming; locally the
dev stack serves the same app. Routes stay thin: parse, call the logic, shape the response.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from meterway.core.errors import InvalidRequest, MeterwayError, NotFound
from meterway.core.observability import logger
from meterway.ledger.logic.record_usage import new_request_id
from meterway.proxy.handlers.count_tokens import handle_count_tokens
from meterway.proxy.handlers.deps import ProxyDeps, build_deps
from meterway.proxy.handlers.http_io import error_response
from meterway.proxy.handlers.inference import (
    handle_chat_completions,
    handle_embeddings,
    handle_messages,
    handle_responses,
)
from meterway.proxy.handlers.lookups import get_generation, get_key, get_model, list_models
from meterway.proxy.logic import pricing

ROUTES = [
    Route("/v1/chat/completions", handle_chat_completions, methods=["POST"]),
    Route("/v1/messages", handle_messages, methods=["POST"]),
    Route("/v1/messages/count_tokens", handle_count_tokens, methods=["POST"]),
    Route("/v1/responses", handle_responses, methods=["POST"]),
    Route("/v1/embeddings", handle_embeddings, methods=["POST"]),
    Route("/v1/models", list_models, methods=["GET"]),
    Route("/v1/models/{model_id:path}", get_model, methods=["GET"]),
    Route("/v1/generation", get_generation, methods=["GET"]),
    Route("/v1/key", get_key, methods=["GET"]),
]


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


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
    """The app; ``deps_factory`` runs at start-up (the unit tests hand in fakes)."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        # Runs in Lambda's init phase, before the adapter's readiness check passes: a missing
        # setting stops the function here, before it takes any request. The prices load beside it.
        app.state.deps = deps_factory()
        pricing.warm_up_in_background()
        yield
        await app.state.deps.aclose()

    app = Starlette(
        routes=[*ROUTES, Route("/healthz", healthz, methods=["GET"])],
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
