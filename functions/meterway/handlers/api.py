"""The management API (``/api``): Powertools REST resolver, pydantic validation, OpenAPI.

Every route needs an admin key; API keys only call ``/v1``. Errors leave here in the same
envelope as the inference API's.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from meterway.errors import InvalidRequest, MeterwayError, NotFound
from meterway.handlers import api_balance, api_exports, api_keys, api_members, api_usage, deps
from meterway.logic.auth import authenticate
from meterway.observability import logger
from meterway.tracing import tracer

TITLE = "Meterway management API"
VERSION = "0.2.0"
PUBLIC_PATHS = ("/api/docs", "/api/openapi.json")

app = APIGatewayRestResolver(enable_validation=True)
app.enable_swagger(path="/api/docs", title=TITLE, version=VERSION)


def _require_admin(app: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response:
    if app.current_event.path not in PUBLIC_PATHS:
        headers = {name.lower(): value for name, value in (app.current_event.headers or {}).items()}
        app.append_context(admin=authenticate(headers, deps.key_store(), kind="admin"))
    return next_middleware(app)


app.use(middlewares=[_require_admin])
app.include_router(api_keys.router)
app.include_router(api_members.router)
app.include_router(api_balance.router)
app.include_router(api_usage.router)
app.include_router(api_exports.router)


@app.get("/api/openapi.json", include_in_schema=False)
def openapi_json() -> Response[str]:
    return Response(200, content_types.APPLICATION_JSON, app.get_openapi_json_schema(title=TITLE, version=VERSION))


def _envelope(error: MeterwayError) -> Response[str]:
    return Response(error.status, content_types.APPLICATION_JSON, json.dumps(error.envelope()), dict(error.headers))


@app.exception_handler(MeterwayError)
def handle_meterway_error(error: MeterwayError) -> Response[str]:
    return _envelope(error)


@app.exception_handler(RequestValidationError)
def handle_validation_error(error: RequestValidationError) -> Response[str]:
    first: dict[str, Any] = error.errors()[0] if error.errors() else {}
    where = ".".join(str(part) for part in first.get("loc", ()) if part not in ("body", "query")) or "body"
    return _envelope(InvalidRequest(f"Invalid '{where}': {first.get('msg', 'bad value')}."))


@app.not_found
def handle_not_found(_: Exception) -> Response[str]:
    return _envelope(NotFound("No such endpoint."))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, log_event=False)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
