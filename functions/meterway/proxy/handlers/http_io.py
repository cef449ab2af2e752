"""What every route shares on the wire: the JSON body read within its limits, the request id
header, and errors in the envelope."""

from __future__ import annotations

import json
import math
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from meterway.core.errors import InvalidRequest, MeterwayError, PayloadTooLarge

REQUEST_ID_HEADER = "x-meterway-request-id"
# The invocation's context, as JSON, which the Lambda Web Adapter adds to each request it forwards.
LAMBDA_CONTEXT_HEADER = "x-amzn-lambda-context"
# Anthropic's clients read errors in Anthropic's envelope; every other path speaks OpenAI's.
MESSAGES_PATH = "/v1/messages"
# Objects and arrays inside one another, the body itself counting as one. Real requests stay far
# below (a Claude Code request with its tool schemas nests about 12 deep); the gateway's own code,
# the translations and the JSON encoder all recurse, so a bound keeps them from running out of stack.
MAX_JSON_DEPTH = 64


class _NumberOutOfRange(ValueError):
    """A number no JSON peer can read back: NaN, ±Infinity, or past a double's range."""


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
    return parse_json(bytes(body))


def parse_json(body: bytes) -> Any:
    """A request body as JSON (RFC 8259: no NaN or Infinity), nested at most ``MAX_JSON_DEPTH`` deep;
    anything else is a 400 that says which rule it broke."""
    try:
        payload = json.loads(body, parse_constant=_refuse_constant, parse_float=_finite, parse_int=_integer)
    except RecursionError as exc:
        raise _too_deep() from exc
    except _NumberOutOfRange as exc:
        raise InvalidRequest(
            f"The request body holds a number JSON cannot carry ({exc}): numbers must be finite.",
            code="invalid_number",
        ) from exc
    except ValueError as exc:
        raise InvalidRequest("The request body is not valid JSON.", code="invalid_json") from exc
    if isinstance(payload, dict | list) and _nested_deeper_than(body, payload, MAX_JSON_DEPTH):
        raise _too_deep()
    return payload


def _refuse_constant(name: str) -> Any:
    raise _NumberOutOfRange(name)


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NumberOutOfRange(text[:40])
    return value


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError as exc:  # longer than Python reads (4300 digits)
        raise _NumberOutOfRange(f"an integer of {len(text)} digits") from exc


def _nested_deeper_than(body: bytes, payload: Any, limit: int) -> bool:
    """Whether ``payload`` (parsed from ``body``) nests deeper than ``limit``: one level at a time,
    containers only, after a count of the body's brackets that settles most requests at once."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    level = [payload]
    for _ in range(limit):
        level = [
            child
            for node in level
            for child in (node.values() if isinstance(node, dict) else node)
            if isinstance(child, dict | list)
        ]
        if not level:
            return False
    return True


def _too_deep() -> InvalidRequest:
    return InvalidRequest(
        f"The request body nests objects and arrays more than {MAX_JSON_DEPTH} deep.", code="nesting_too_deep"
    )


def error_response(request: Request, error: MeterwayError) -> JSONResponse:
    """The error's status, in the envelope of the format the path speaks, with the request's id."""
    headers = dict(error.headers)
    request_id = getattr(request.state, "request_id", None)
    if request_id:
        headers[REQUEST_ID_HEADER] = request_id
    if request.url.path.startswith(MESSAGES_PATH):
        # Anthropic's envelope comes with the Messages format, imported on that door's first use.
        from meterway.proxy.formats.messages import error_envelope

        envelope = error_envelope(error)
    else:
        envelope = error.envelope()
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
