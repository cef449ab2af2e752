"""What every wire format shares: reading a request body into its model, and how its encoder
frames answers, streams and errors for the client."""

from __future__ import annotations

import json
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError

from meterway.core.errors import InvalidRequest, MeterwayError

# Fields other gateways accept to re-point a call; here the upstream comes from configuration only.
FORBIDDEN_FIELDS = frozenset({"api_base", "base_url", "api_key", "api_version", "custom_llm_provider", "extra_headers"})


def parse_request(model: type[BaseModel], payload: Any) -> Any:
    """Validate a JSON body; any problem is a 400 that names the field."""
    if not isinstance(payload, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    forbidden = sorted(FORBIDDEN_FIELDS.intersection(payload))
    if forbidden:
        raise InvalidRequest(
            f"Field(s) {', '.join(forbidden)} are not accepted: the upstream is set by the gateway's configuration.",
            code="forbidden_field",
        )
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise InvalidRequest(f"Invalid '{where}': {first['msg']}.", code="invalid_parameters") from exc


class Encoder(Protocol):
    """How one request's output looks in the client's wire format. ``client_usage`` is the
    provider's own usage block when the provider speaks the client's format (kept whole, so
    fields Meterway does not model still reach the client)."""

    def answer(self, body: dict[str, Any], client_usage: dict[str, Any] | None) -> dict[str, Any]:
        """A non-streamed answer, with its priced usage."""

    def carries_usage(self, event: dict[str, Any]) -> bool:
        """Whether this stream event holds the request's final usage (its cost is added to it)."""

    def event(self, event: dict[str, Any]) -> bytes: ...

    def closing(self, client_usage: dict[str, Any] | None) -> tuple[bytes, ...]:
        """What ends a complete stream after the provider's last event."""

    def error(self, error: MeterwayError) -> bytes:
        """An error in the middle of a stream."""


def data_event(payload: dict[str, Any]) -> bytes:
    """A server-sent event with a ``data:`` line only (OpenAI's Chat streams)."""
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def typed_event(payload: dict[str, Any]) -> bytes:
    """A server-sent event named after its payload's ``type`` (Anthropic's and Responses' streams)."""
    name = str(payload.get("type", "message"))
    return f"event: {name}\ndata: ".encode() + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"
