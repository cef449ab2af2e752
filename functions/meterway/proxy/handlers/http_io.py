"""What every route shares on the wire: the JSON body read within its limit, the request id
header, and errors in the envelope."""

from __future__ import annotations

import json
import math
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from meterway.core.errors import InvalidRequest, MeterwayError, PayloadTooLarge
from meterway.proxy.formats.messages import error_envelope as messages_error_envelope

REQUEST_ID_HEADER = "x-meterway-request-id"
# The invocation's context, as JSON, which the Lambda Web Adapter adds to each request it forwards.
LAMBDA_CONTEXT_HEADER = "x-amzn-lambda-context"
# Anthropic's clients read errors in Anthropic's envelope; every other path speaks OpenAI's.
MESSAGES_PATH = "/v1/messages"


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


def error_response(request: Request, error: MeterwayError) -> JSONResponse:
    """The error's status, in the envelope of the format the path speaks, with the request's id."""
    headers = dict(error.headers)
    request_id = getattr(request.state, "request_id", None)
    if request_id:
        headers[REQUEST_ID_HEADER] = request_id
    messages_path = request.url.path.startswith(MESSAGES_PATH)
    envelope = messages_error_envelope(error) if messages_path else error.envelope()
    return JSONResponse(envelope, status_code=error.status, headers=headers)


def invocation_deadline(request: Request) -> float | None:
    """When Lambda stops this invocation, as a ``time.perf_counter()`` time: the context's
    ``deadline`` (epoch milliseconds), or None outside Lambda. A client may send the header too;
    the earliest deadline counts, and the time budget never runs past the function's timeout, so
    a client can only shorten its own request."""
    deadlines = []
    for raw in request.headers.getlist(LAMBDA_CONTEXT_HEADER):
        try:
            context = json.loads(raw)
        except ValueError:
            continue
        value = context.get("deadline", context.get("deadline_ms")) if isinstance(context, dict) else None
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            deadlines.append(value / 1000)
    if not deadlines:
        return None
    return time.perf_counter() + (min(deadlines) - time.time())
