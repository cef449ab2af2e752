"""The management API (``/api``): Powertools REST resolver, pydantic validation, OpenAPI.

Every route needs an admin key; API keys only call ``/v1``.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, Field

from meterway.config import get_api_settings
from meterway.dal.key_store import CachedKeyStore, DynamoKeyStore, KeyStore
from meterway.errors import InvalidRequest, MeterwayError, NotFound
from meterway.logic.auth import authenticate
from meterway.logic.keys import ApiKey
from meterway.logic.manage_keys import create_key, list_keys
from meterway.observability import logger
from meterway.tracing import tracer

TITLE = "Meterway management API"
VERSION = "0.1.0"

app = APIGatewayRestResolver(enable_validation=True, strip_prefixes=[])
app.enable_swagger(path="/api/docs", title=TITLE, version=VERSION)


@cache
def key_store() -> KeyStore:
    settings = get_api_settings()
    return CachedKeyStore(DynamoKeyStore(settings.keys_table), ttl_seconds=settings.key_cache_ttl_seconds)


class KeyOut(BaseModel):
    id: str
    name: str
    kind: str
    member: str | None
    prefix: str
    disabled: bool
    created_at: str

    @classmethod
    def of(cls, key: ApiKey) -> KeyOut:
        return cls(
            id=key.key_id,
            name=key.name,
            kind=key.kind,
            member=key.member,
            prefix=key.display_prefix,
            disabled=key.disabled,
            created_at=key.created_at,
        )


class KeyCreated(KeyOut):
    secret: str = Field(description="The key's secret. Shown once, never stored: copy it now.")


class KeyList(BaseModel):
    data: list[KeyOut]


class KeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    member: str | None = Field(default=None, min_length=1, max_length=100)


def _admin(app: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response:
    path = app.current_event.path
    if path not in ("/api/docs", "/api/openapi.json"):
        app.append_context(admin=authenticate(_lower(app.current_event.headers), key_store(), kind="admin"))
    return next_middleware(app)


def _lower(headers: dict[str, str] | None) -> dict[str, str]:
    return {name.lower(): value for name, value in (headers or {}).items()}


app.use(middlewares=[_admin])


def current_admin() -> ApiKey:
    admin: ApiKey = app.context["admin"]
    return admin


@app.get("/api/openapi.json", include_in_schema=False)
def openapi_json() -> Response[str]:
    return Response(200, content_types.APPLICATION_JSON, app.get_openapi_json_schema(title=TITLE, version=VERSION))


@app.get("/api/keys", summary="List the account's keys (never their secrets)")
def get_keys() -> KeyList:
    return KeyList(data=[KeyOut.of(key) for key in list_keys(key_store(), current_admin().account_id)])


@app.post("/api/keys", summary="Create an API key; its secret is in this response only")
def post_keys(body: KeyCreate) -> Response[KeyCreated]:
    key, secret = create_key(key_store(), current_admin().account_id, body.name, member=body.member)
    created = KeyCreated(secret=secret, **KeyOut.of(key).model_dump())
    return Response(201, content_types.APPLICATION_JSON, created)


def _envelope(error: MeterwayError) -> Response:
    import json

    return Response(error.status, content_types.APPLICATION_JSON, json.dumps(error.envelope()), dict(error.headers))


@app.exception_handler(MeterwayError)
def handle_meterway_error(error: MeterwayError) -> Response:
    return _envelope(error)


@app.exception_handler(RequestValidationError)
def handle_validation_error(error: RequestValidationError) -> Response:
    first: dict[str, Any] = error.errors()[0] if error.errors() else {}
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body") or "body"
    return _envelope(InvalidRequest(f"Invalid '{where}': {first.get('msg', 'bad value')}."))


@app.not_found
def handle_not_found(_: Exception) -> Response:
    return _envelope(NotFound("No such endpoint."))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, log_event=False)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
