"""Request handling shared by every dialect: parsing, auth, logging, faults, the non-streamed wait."""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import Response

from .asgi import DroppedResponse, sleep_or_disconnect
from .config import FakeUpstreamConfig
from .faults import Fault
from .state import FakeState, RequestRecord


class Dialect(Protocol):
    """How one provider authenticates and formats its errors."""

    def error(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        """An error response in the provider's envelope."""
        ...

    def authenticate(self, request: Request, body: bytes, config: FakeUpstreamConfig) -> Response | None:
        """The provider's refusal of the request's credentials, or None when they are accepted."""
        ...

    def fault_message(self, status: int) -> str:
        """What the provider says with an injected error ``status`` when the fault sets no message."""
        ...


class KeyDialect:
    """A provider authenticated by API key (OpenAI, Anthropic)."""

    def api_key(self, request: Request) -> str | None:
        """The API key the request carries, if any."""
        raise NotImplementedError

    def auth_error(self, key: str | None) -> Response:
        """The provider's answer to a missing or wrong key."""
        raise NotImplementedError

    def authenticate(self, request: Request, body: bytes, config: FakeUpstreamConfig) -> Response | None:
        """Any non-empty key when no key is configured, else exactly the configured one."""
        key = self.api_key(request)
        return None if key_accepted(key, config.api_key) else self.auth_error(key)

    def fault_message(self, status: int) -> str:
        """The wording of OpenAI's and Anthropic's errors for ``status``."""
        return _default_message(status)


@dataclass
class Exchange:
    """A provider request that passed parsing, auth and fault injection."""

    request: Request
    state: FakeState
    body: dict[str, Any]
    record: RequestRecord
    fault: Fault | None
    first_token_s: float
    per_token_s: float

    def fault_kind(self) -> str | None:
        """Kind of the fault applied to this request, if any."""
        return self.fault.kind if self.fault else None

    def generation_time(self, tokens: int) -> float:
        """How long producing ``tokens`` output tokens takes, as a stream would pace them."""
        return self.first_token_s + self.per_token_s * max(0, tokens - 1)


def new_id(prefix: str) -> str:
    """A unique id such as ``chatcmpl-<hex>`` or ``msg_<hex>``."""
    return f"{prefix}{uuid.uuid4().hex}"


def state_of(request: Request) -> FakeState:
    """The fake's state, attached to the application by ``create_app``."""
    state: FakeState = request.app.state.fake
    return state


def _header_ms(request: Request, name: str, default_s: float) -> float:
    raw = request.headers.get(name)
    if raw is None:
        return default_s
    try:
        return max(0.0, float(raw) / 1000.0)
    except ValueError:
        return default_s


def key_accepted(key: str | None, expected: str | None) -> bool:
    """Any non-empty key when no key is configured, else exactly the configured one."""
    if not key:
        return False
    return expected is None or key == expected


def logged(
    handler: Callable[[Request], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    """Store the final HTTP status of a provider request in its log entry."""

    @functools.wraps(handler)
    async def wrapper(request: Request) -> Response:
        response = await handler(request)
        record: RequestRecord | None = getattr(request.state, "fake_record", None)
        if record is not None:
            record.status = None if isinstance(response, DroppedResponse) else response.status_code
        return response

    return wrapper


async def begin(
    request: Request, dialect: Dialect, *, model: str | None = None, stream: bool | None = None
) -> Exchange | Response:
    """Parse, log, authenticate and apply any queued fault to a provider request.

    ``model`` and ``stream`` are for the APIs that say them in the URL rather than the body.
    Returns the exchange to serve, or the response that ends the request early.
    """
    state = state_of(request)
    raw = await request.body()
    try:
        body: Any = json.loads(raw) if raw else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        body = raw.decode("utf-8", "replace")
    record = state.record(request, body, model=model, stream=stream)
    request.state.fake_record = record
    refused = dialect.authenticate(request, raw, state.config)
    if refused is not None:
        return refused
    if not isinstance(body, dict):
        return dialect.error(400, "The request body is not valid JSON: expected an object.")
    fault = state.faults.take(request.url.path, record.model)
    record.fault = fault.to_dict() if fault else None
    if fault and fault.kind == "status":
        headers = {"retry-after": f"{fault.retry_after:g}"} if fault.retry_after is not None else None
        return dialect.error(fault.status, fault.message or dialect.fault_message(fault.status), headers=headers)
    if fault and fault.kind == "drop":
        return DroppedResponse()
    if fault and fault.kind == "timeout" and await sleep_or_disconnect(request.receive, fault.seconds):
        record.client_disconnected = True
        return DroppedResponse()
    return Exchange(
        request=request,
        state=state,
        body=body,
        record=record,
        fault=fault,
        first_token_s=_header_ms(request, "x-fake-first-token-latency-ms", state.config.first_token_latency_s),
        per_token_s=_header_ms(request, "x-fake-latency-ms", state.config.per_token_latency_s),
    )


async def await_reply(exchange: Exchange, output_tokens: int, usage: dict[str, Any]) -> Response | None:
    """Wait as long as a non-streamed reply takes, then log its ``usage``.

    Returns the response that ends the request without the reply (client gone, ``cut`` fault),
    or None when the reply is to be sent.
    """
    if await sleep_or_disconnect(exchange.request.receive, exchange.generation_time(output_tokens)):
        exchange.record.client_disconnected = True
        return DroppedResponse()
    return log_reply(exchange, usage)


def log_reply(exchange: Exchange, usage: dict[str, Any]) -> Response | None:
    """Log a non-streamed reply's ``usage``; returns the response that ends the request without
    the reply (a ``cut`` fault: the provider billed it, the client never hears), or None."""
    exchange.record.usage = usage
    if exchange.fault_kind() == "cut":
        return DroppedResponse()
    exchange.record.usage_reported = True
    return None


def _default_message(status: int) -> str:
    return {
        400: "Invalid request (injected fault).",
        401: "Invalid authentication (injected fault).",
        403: "Permission denied (injected fault).",
        404: "Not found (injected fault).",
        429: "Rate limit reached for requests (injected fault).",
        500: "The server had an error while processing your request (injected fault).",
        502: "Bad gateway (injected fault).",
        503: "The engine is currently overloaded (injected fault).",
        # Anthropic's exact wording: clients and gateways match on it.
        529: "Overloaded",
    }.get(status, f"Injected fault with status {status}.")


def is_int(value: Any, minimum: int = 1) -> bool:
    """A JSON integer (not a boolean) of at least ``minimum``."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum
