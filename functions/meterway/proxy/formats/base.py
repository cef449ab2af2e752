"""What every wire format shares: reading a request body into its model, and how its encoder
frames answers, streams and errors for the client."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Protocol, TypeVar

import msgspec

from meterway.core.errors import InvalidRequest, MeterwayError
from meterway.core.validation import problem

# The API boundary is strict (msgspec's conversion is): ``"yes"`` is not a boolean, and ``"12"``,
# ``12.0`` or ``true`` are not integers. A client's typo is refused here, before anything is
# reserved or sent upstream.
# An output budget (``max_tokens`` and its kin). The catalog bounds it by what the model can write
# (``check_output_limit``); this ceiling holds for a model whose limit nothing knows.
MAX_OUTPUT_TOKENS = 1_000_000
OutputTokens = Annotated[int, msgspec.Meta(ge=1, le=MAX_OUTPUT_TOKENS)]
# ``seed``, read as 64-bit; counts (``top_k``, ``dimensions``…) as 32-bit; and OpenAI's own bounds.
Int64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
Count = Annotated[int, msgspec.Meta(ge=0, le=2**31 - 1)]
PositiveCount = Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)]
Choices = Annotated[int, msgspec.Meta(ge=1, le=128)]
TopLogprobs = Annotated[int, msgspec.Meta(ge=0, le=20)]
ModelName = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Messages = Annotated[list[dict[str, Any]], msgspec.Meta(min_length=1)]
UserId = Annotated[str, msgspec.Meta(max_length=256)]


class DoorRequest(msgspec.Struct, kw_only=True):
    """What the requests of the chat front doors (Chat, Messages, Responses) share. The struct is
    what the gateway reads; the body goes on as sent (``request_body``), fields it does not know
    included."""

    #: The fields that bound the output (``max_tokens``…), checked against the model's own limit.
    OUTPUT_LIMITS: ClassVar[tuple[str, ...]] = ()

    model: ModelName
    stream: bool = False
    metadata: dict[str, Any] | None = None


class OpenAIDoorRequest(DoorRequest, kw_only=True):
    """What OpenAI's two formats (Chat and Responses) add, with OpenAI's own bounds."""

    top_logprobs: TopLogprobs | None = None
    parallel_tool_calls: bool | None = None
    store: bool | None = None
    user: UserId | None = None


# Fields other gateways accept to re-point a call; here the upstream comes from configuration only.
FORBIDDEN_FIELDS = frozenset({"api_base", "base_url", "api_key", "api_version", "custom_llm_provider", "extra_headers"})
R = TypeVar("R", bound=msgspec.Struct)


def parse_request(model: type[R], payload: Any) -> R:
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
        return msgspec.convert(payload, model)
    except msgspec.ValidationError as exc:
        message, place = problem(exc)
        raise InvalidRequest(f"Invalid '{place or 'body'}': {message}.", code="invalid_parameters") from exc


def invalid_field(field: str, problem: str) -> InvalidRequest:
    """A field a request's own check refuses (raised from its ``__post_init__``)."""
    return InvalidRequest(f"Invalid '{field}': {problem}.", code="invalid_parameters")


def request_body(payload: dict[str, Any], parsed: msgspec.Struct) -> dict[str, Any]:
    """The body that goes on: the client's fields as sent, but for the ones it set to null, and
    the defaults of the fields the gateway reads (``stream``: false) where it sent none."""
    body = {name: value for name, value in payload.items() if value is not None}
    for name in parsed.__struct_fields__:
        value = getattr(parsed, name)
        if value is not None:
            body.setdefault(name, value)
    return body


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


# A stream reads and writes one JSON document an event; msgspec takes 0.9 µs to decode a Chat chunk
# and 0.3 to encode it, where the standard library's json takes 3.8 and 4.7 (``timeit``, this
# project's 2-core box). Its output is compact, with text in UTF-8 rather than ``\u`` escapes.
def event_data(data: str) -> Any:
    """The JSON document an upstream event carries; ``ValueError`` when it is not JSON."""
    return msgspec.json.decode(data)


def data_event(payload: dict[str, Any]) -> bytes:
    """A server-sent event with a ``data:`` line only (OpenAI's Chat streams)."""
    return b"data: " + msgspec.json.encode(payload) + b"\n\n"


def typed_event(payload: dict[str, Any]) -> bytes:
    """A server-sent event named after its payload's ``type`` (Anthropic's and Responses' streams)."""
    name = str(payload.get("type", "message"))
    return f"event: {name}\ndata: ".encode() + msgspec.json.encode(payload) + b"\n\n"
