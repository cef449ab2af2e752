"""The Starlette application: provider endpoints plus the ``/_fake`` control endpoints."""

from __future__ import annotations

import json

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .anthropic_api import ANTHROPIC, count_message_tokens, messages
from .bedrock_api import BEDROCK, invoke_model
from .bedrock_converse import converse
from .catalog import list_models
from .common import state_of
from .config import FakeUpstreamConfig
from .embeddings import embeddings
from .faults import FaultSpecError, parse_fault_request
from .openai_api import OPENAI, chat_completions
from .responses_api import count_input_tokens, responses
from .state import FakeState


async def add_faults(request: Request) -> Response:
    """``POST /_fake/faults``: queue faults for the next matching requests."""
    state = state_of(request)
    try:
        faults = parse_fault_request(json.loads(await request.body() or b"null"))
    except (json.JSONDecodeError, UnicodeDecodeError, FaultSpecError) as error:
        return JSONResponse({"error": str(error)}, status_code=400)
    state.faults.add(faults)
    return JSONResponse({"queued": len(faults), "pending": [f.to_dict() for f in state.faults.pending()]})


async def list_faults(request: Request) -> Response:
    """``GET /_fake/faults``: faults not consumed yet."""
    return JSONResponse([fault.to_dict() for fault in state_of(request).faults.pending()])


async def clear_faults(request: Request) -> Response:
    """``DELETE /_fake/faults``: drop every pending fault."""
    state_of(request).faults.clear()
    return JSONResponse({"pending": []})


async def reset(request: Request) -> Response:
    """``POST /_fake/reset``: forget faults, prompt caches and the request log."""
    state_of(request).reset()
    return JSONResponse({"reset": True})


async def list_requests(request: Request) -> Response:
    """``GET /_fake/requests[?path=...]``: the received provider requests, oldest first."""
    path = request.query_params.get("path")
    records = [r.to_dict() for r in state_of(request).requests if path is None or r.path == path]
    return JSONResponse(records)


async def count_requests(request: Request) -> Response:
    """``GET /_fake/requests/count``: how many provider requests were received, by path, since
    the last reset (the log itself keeps only the latest 10,000)."""
    return JSONResponse(dict(state_of(request).received))


async def health(request: Request) -> Response:
    """``GET /_fake/health``: liveness for scripts waiting on the server."""
    return JSONResponse({"ok": True})


async def _not_found(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 404
    message = f"Unknown request URL: {request.method} {request.url.path}."
    if request.url.path.startswith("/model/"):
        return BEDROCK.error(status, message, code="UnknownOperationException")
    anthropic = request.url.path.startswith("/v1/messages") or "x-api-key" in request.headers
    return (ANTHROPIC if anthropic else OPENAI).error(status, message)


def create_app(config: FakeUpstreamConfig | None = None) -> Starlette:
    """Build a fake OpenAI + Anthropic + Bedrock upstream with its own caches, faults and request log.

    The state is reachable as ``app.state.fake`` (a ``FakeState``) for in-process inspection.
    """
    routes = [
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/responses", responses, methods=["POST"]),
        Route("/v1/responses/input_tokens", count_input_tokens, methods=["POST"]),
        Route("/v1/embeddings", embeddings, methods=["POST"]),
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/messages", messages, methods=["POST"]),
        Route("/v1/messages/count_tokens", count_message_tokens, methods=["POST"]),
        # Bedrock model ids may be ARNs, whose "/" the client escapes but the router sees decoded.
        Route("/model/{model_id:path}/invoke", invoke_model, methods=["POST"]),
        Route("/model/{model_id:path}/invoke-with-response-stream", invoke_model, methods=["POST"]),
        Route("/model/{model_id:path}/converse", converse, methods=["POST"]),
        Route("/model/{model_id:path}/converse-stream", converse, methods=["POST"]),
        Route("/_fake/faults", add_faults, methods=["POST"]),
        Route("/_fake/faults", list_faults, methods=["GET"]),
        Route("/_fake/faults", clear_faults, methods=["DELETE"]),
        Route("/_fake/reset", reset, methods=["POST"]),
        Route("/_fake/requests", list_requests, methods=["GET"]),
        Route("/_fake/requests/count", count_requests, methods=["GET"]),
        Route("/_fake/health", health, methods=["GET"]),
    ]
    app = Starlette(routes=routes, exception_handlers={404: _not_found, 405: _not_found})
    app.state.fake = FakeState(config or FakeUpstreamConfig())
    return app
