"""The local stand-in for API Gateway: ``/api`` requests become REST proxy events handed to the
ApiFunction's own handler; everything else goes to the proxy's ASGI app, as in AWS."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import anyio
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from devstack.lambda_context import LocalLambdaContext

LambdaHandler = Callable[[dict[str, Any], Any], dict[str, Any]]


async def rest_proxy_event(request: Request, stage: str = "local") -> dict[str, Any]:
    """An API Gateway REST (v1) proxy event for ``/api/{proxy+}``, as API Gateway would send it."""
    body, encoded = _event_body(await request.body())
    query: dict[str, list[str]] = {}
    for name, value in request.query_params.multi_items():
        query.setdefault(name, []).append(value)
    headers: dict[str, list[str]] = {}
    for name, value in request.headers.items():
        headers.setdefault(name, []).append(value)
    path = request.url.path
    now = datetime.now(UTC)
    return {
        "resource": "/api/{proxy+}",
        "path": path,
        "httpMethod": request.method,
        "headers": {name: values[-1] for name, values in headers.items()},
        "multiValueHeaders": headers,
        "queryStringParameters": {name: values[-1] for name, values in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": {"proxy": path.removeprefix("/api/")} if path.startswith("/api/") else None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": "/api/{proxy+}",
            "httpMethod": request.method,
            "path": f"/{stage}{path}",
            "stage": stage,
            "requestId": str(uuid.uuid4()),
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "requestTimeEpoch": int(now.timestamp() * 1000),
            "identity": {"sourceIp": request.client.host if request.client else "127.0.0.1"},
            "accountId": "000000000000",
            "apiId": "local",
            "protocol": "HTTP/1.1",
        },
        "body": body,
        "isBase64Encoded": encoded,
    }


def _event_body(body: bytes) -> tuple[str | None, bool]:
    """The event's body and ``isBase64Encoded``: text as it came, bytes that are not UTF-8 in base64,
    as API Gateway hands a binary payload to Lambda (the handler then refuses it)."""
    if not body:
        return None, False
    try:
        return body.decode("utf-8"), False
    except UnicodeDecodeError:
        return base64.b64encode(body).decode("ascii"), True


def lambda_response(result: dict[str, Any]) -> Response:
    body = result.get("body") or ""
    content = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode("utf-8")
    response = Response(content, status_code=int(result.get("statusCode", 200)))
    for name, value in (result.get("headers") or {}).items():
        response.headers[name] = str(value)
    for name, values in (result.get("multiValueHeaders") or {}).items():
        if name.lower() in response.headers:
            del response.headers[name]
        for value in values:
            response.headers.append(name, str(value))
    return response


class LocalGateway:
    """Routes like the deployed REST API and CloudFront: ``/api`` → ApiFunction, ``/v1`` → proxy,
    anything else → the console's static files when there are any."""

    def __init__(self, proxy: ASGIApp, api_handler: LambdaHandler, console_dir: Path | None = None):
        self._proxy = proxy
        self._api_handler = api_handler
        self._console = ConsoleFiles(directory=console_dir, html=True) if console_dir and console_dir.is_dir() else None
        self._api_limiter = anyio.CapacityLimiter(1)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and (path == "/api" or path.startswith("/api/")):
            await self._call_api(scope, receive, send)
        elif scope["type"] == "http" and self._console is not None and not _is_proxy_path(path):
            await self._console(scope, receive, send)
        else:
            await self._proxy(scope, receive, send)

    async def _call_api(self, scope: Scope, receive: Receive, send: Send) -> None:
        event = await rest_proxy_event(Request(scope, receive))
        context = LocalLambdaContext("ApiFunction")
        # A Lambda instance runs one invocation at a time, and the resolver keeps per-request state
        # on the module-level app: concurrent calls in threads would see each other's context.
        result = await anyio.to_thread.run_sync(self._api_handler, event, context, limiter=self._api_limiter)
        await lambda_response(result)(scope, receive, send)


# The console's Content-Security-Policy on CloudFront (template.yaml, ConsoleHeadersPolicy) less its
# connect-src, which names the deployed API: here the API shares the console's origin.
CONSOLE_CSP = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)


class ConsoleFiles(StaticFiles):
    """The console's built files. A route of the single-page app (``/usage``, ``/keys``: no file
    and no extension) gets ``index.html``, so a reload or a shared link opens that page; a missing
    file (``/config.json``, ``/assets/x.js``) stays a 404, so the app can tell it is absent."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await self._file_or_route(path, scope)
        response.headers["Content-Security-Policy"] = CONSOLE_CSP
        return response

    async def _file_or_route(self, path: str, scope: Scope) -> Response:
        try:
            return await super().get_response(path, scope)
        except HTTPException as exc:
            if exc.status_code == 404 and _is_console_route(scope["path"]):
                return await super().get_response("index.html", scope)
            # Served bare, outside a Starlette app, nothing else would turn this into a response.
            return PlainTextResponse(exc.detail, status_code=exc.status_code, headers=exc.headers)


def _is_console_route(path: str) -> bool:
    if path.startswith(("/api", "/v1")):
        return False
    return "." not in PurePosixPath(path).name


def _is_proxy_path(path: str) -> bool:
    return path.startswith("/v1/") or path == "/v1" or path == "/healthz"
