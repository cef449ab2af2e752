"""The management API (``/api``): Powertools REST resolver, pydantic validation, OpenAPI.

Every route needs an admin key; API keys only call ``/v1``. Errors leave here in the same
envelope as the inference API's. Browsers may call it from the console's origin only
(``MW_CONSOLE_ORIGIN``); without one configured, no CORS headers are sent.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from functools import lru_cache
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, CORSConfig, Response, content_types
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer, OpenAPI, Schema
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from meterway.accounts.handlers import balance_api, keys_api, members_api
from meterway.accounts.handlers.api_context import AccountsContext
from meterway.accounts.logic.auth import authenticate
from meterway.analytics.handlers import usage_api
from meterway.analytics.handlers.api_context import AnalyticsContext
from meterway.analytics.logic.key_usage import note_admin_use
from meterway.core.errors import InvalidRequest, MeterwayError, MethodNotAllowed, NotFound
from meterway.core.observability import logger
from meterway.core.tracing import tracer
from meterway.exports.handlers import exports_api
from meterway.exports.handlers.api_context import ExportsContext
from meterway.management_api.deps import api_deps
from meterway.management_api.request_gate import GatedRequestValidation

TITLE = "Meterway management API"
VERSION = "0.2.0"
PUBLIC_PATHS = ("/api/docs", "/api/openapi.json")
ADMIN_KEY = "adminKey"
ROUTERS = (keys_api.router, members_api.router, balance_api.router, usage_api.router, exports_api.router)


class ManagementResolver(APIGatewayRestResolver):
    """Powertools' resolver, whose OpenAPI document states what this API answers.

    Powertools gives every validated route a 422 with its own error body. Here a request its
    models refuse is a 400 in the error envelope (``handle_validation_error``), which each route
    declares with its other errors (``core/api_responses``); the 422 and its schemas are dropped.
    Every route takes the admin key as a bearer token, which the document says once, for all.
    Every consumer of the document (``/api/openapi.json``, Swagger UI, ``method_router``) reads it
    through here.
    """

    def get_openapi_schema(self, **kwargs: Any) -> OpenAPI:
        kwargs["security_schemes"] = kwargs.get("security_schemes") or {
            ADMIN_KEY: HTTPBearer(description="An admin key (mw-admin-...)")
        }
        kwargs["security"] = kwargs.get("security") or [{ADMIN_KEY: []}]
        document = super().get_openapi_schema(**kwargs)
        for item in (document.paths or {}).values():
            for method in ("get", "put", "post", "delete", "patch"):
                operation = getattr(item, method)
                if operation is not None and operation.responses:
                    operation.responses.pop(HTTPStatus.UNPROCESSABLE_ENTITY, None)
        schemas = document.components.schemas if document.components else None
        for name in ("HTTPValidationError", "ValidationError", "ResponseValidationError"):
            (schemas or {}).pop(name, None)
        # The models a key may be limited to are the catalog's, which the deployment configures,
        # so the request model cannot name them: the document does.
        limits = (schemas or {}).get("LimitsIn")
        allowed = limits.properties.get("allowed_models") if isinstance(limits, Schema) and limits.properties else None
        listed = allowed.anyOf[0] if isinstance(allowed, Schema) and allowed.anyOf else None
        if isinstance(listed, Schema) and isinstance(listed.items, Schema):
            listed.items.enum = sorted(api_deps().models)
        return document


def _require_admin(app: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response:
    # A browser's CORS preflight carries no credentials; no route answers OPTIONS, so letting it
    # through reveals nothing.
    current = app.current_event
    if current.http_method != "OPTIONS" and current.path not in PUBLIC_PATHS:
        deps = api_deps()
        # Every value of a repeated header, so that two credentials in one request are refused.
        admin = authenticate(current.resolved_headers_field, deps.keys, kind="admin")
        note_admin_use(deps.rollups, admin, deps.clock())
        # Each feature's routes see what they ask for; the annotations have mypy check that they get it.
        accounts: AccountsContext = deps
        analytics: AnalyticsContext = deps
        exports: ExportsContext = deps
        app.append_context(admin=admin, accounts=accounts, analytics=analytics, exports=exports)
    return next_middleware(app)


def _cors(console_origin: str) -> CORSConfig | None:
    """The console's origin only: no wildcard, no credentials (the admin key is a header)."""
    if not console_origin:
        return None
    return CORSConfig(allow_origin=console_origin, allow_headers=["Authorization", "Content-Type"], max_age=600)


def _envelope(error: MeterwayError) -> Response[str]:
    return Response(error.status, content_types.APPLICATION_JSON, json.dumps(error.envelope()), dict(error.headers))


def handle_meterway_error(error: MeterwayError) -> Response[str]:
    return _envelope(error)


# A field refused by its model carries the same code as when the logic refuses it.
FIELD_CODES = {
    "start": "invalid_date",
    "end": "invalid_date",
    "valid_until": "invalid_valid_until",
    "member_id": "invalid_member_id",
    "member": "invalid_member_id",
}


def handle_validation_error(error: RequestValidationError) -> Response[str]:
    first: dict[str, Any] = error.errors()[0] if error.errors() else {}
    if first.get("type") == "json_invalid":
        return _envelope(InvalidRequest("The body is not valid JSON.", code="invalid_json"))
    where = ".".join(str(part) for part in first.get("loc", ()) if part not in ("body", "query")) or "body"
    message = str(first.get("msg", "bad value")).removeprefix("Value error, ")
    return _envelope(InvalidRequest(f"Invalid '{where}': {message}.", code=FIELD_CODES.get(where)))


def method_router(app: APIGatewayRestResolver) -> Callable[[str], list[str]]:
    """The methods a path of the OpenAPI document answers (the document is read once, on first use)."""
    paths: list[tuple[re.Pattern[str], list[str]]] = []

    def allowed(path: str) -> list[str]:
        if not paths:
            document = app.get_openapi_schema(title=TITLE, version=VERSION)
            for template, item in (document.paths or {}).items():
                segments = ("[^/]+" if part.startswith("{") else re.escape(part) for part in template.split("/"))
                methods = [
                    method.upper() for method in ("get", "put", "post", "delete", "patch") if getattr(item, method)
                ]
                paths.append((re.compile("/".join(segments)), methods))
        return next((methods for pattern, methods in paths if pattern.fullmatch(path)), [])

    return allowed


def not_found_handler(
    allowed_methods: Callable[[str], list[str]], app: APIGatewayRestResolver
) -> Callable[[Exception], Response[str]]:
    def handle_not_found(_: Exception) -> Response[str]:
        allowed = allowed_methods(app.current_event.path)
        # A path that fits a template with this very method names an id no route takes (Powertools'
        # path parameters refuse control characters, say): no such resource, a 404.
        if allowed and app.current_event.http_method not in allowed:
            method = app.current_event.http_method
            error = MethodNotAllowed(
                f"{method} is not allowed here; use {', '.join(allowed)}.", headers={"Allow": ", ".join(allowed)}
            )
            return _envelope(error)
        return _envelope(NotFound("No such endpoint."))

    return handle_not_found


@lru_cache(maxsize=1)
def _resolver(console_origin: str) -> APIGatewayRestResolver:
    """The resolver for the configured console origin, built on first use.

    Powertools fixes a route's CORS when the route is registered, so the origin must be known
    before any route is. One resolver at a time (``maxsize=1``): routers answer through the last
    resolver that included them.
    """
    app = ManagementResolver(enable_validation=True, cors=_cors(console_origin))
    # Powertools validates a request before any middleware runs: the body gate is part of it.
    app._request_validation_middleware = GatedRequestValidation()
    app.enable_swagger(path="/api/docs", title=TITLE, version=VERSION)
    app.use(middlewares=[_require_admin])
    for router in ROUTERS:
        app.include_router(router)

    @app.get("/api/openapi.json", include_in_schema=False)
    def openapi_json() -> Response[str]:
        return Response(200, content_types.APPLICATION_JSON, app.get_openapi_json_schema(title=TITLE, version=VERSION))

    app.exception_handler(MeterwayError)(handle_meterway_error)
    app.exception_handler(RequestValidationError)(handle_validation_error)
    app.not_found(not_found_handler(method_router(app), app))
    return app


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, log_event=False)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # Settings are read, and checked, before the first request is routed.
    return _resolver(api_deps().settings.console_origin).resolve(event, context)
