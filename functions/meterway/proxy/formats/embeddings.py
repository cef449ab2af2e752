"""OpenAI embeddings: the request, its pass-through, and the answer with its priced usage.

Embeddings bill their input tokens only; ``encoding_format`` and everything else the client sent
goes through unchanged.
"""

from __future__ import annotations

from typing import Any

import msgspec

from meterway.core.errors import MeterwayError
from meterway.ledger.models import TokenUsage, UsageRecord
from meterway.proxy.formats.base import ModelName, PositiveCount, UserId, data_event, invalid_field
from meterway.proxy.logic.catalog import ModelRoute
from meterway.proxy.models import Format
from meterway.proxy.translate.base import Answer, StreamAdapter


class EmbeddingsRequest(msgspec.Struct, kw_only=True):
    """``POST /v1/embeddings``."""

    model: ModelName
    # Text, texts, tokens or lists of tokens (msgspec reads one kind of list per field: the
    # element kinds are checked below).
    input: str | list[Any]
    dimensions: PositiveCount | None = None
    user: UserId | None = None

    def __post_init__(self) -> None:
        if isinstance(self.input, list) and not _one_kind(self.input):
            raise invalid_field("input", "a string, or a list of strings, of token ids, or of lists of token ids")

    @property
    def stream(self) -> bool:
        return False


def _token(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _one_kind(items: list[Any]) -> bool:
    return (
        all(isinstance(item, str) for item in items)
        or all(_token(item) for item in items)
        or all(isinstance(item, list) and all(_token(token) for token in item) for item in items)
    )


def read_usage(usage: dict[str, Any]) -> TokenUsage:
    prompt = usage.get("prompt_tokens")
    return TokenUsage(input_tokens=prompt if isinstance(prompt, int) and prompt > 0 else 0)


class EmbeddingsEncoder:
    """The embeddings answer with ``usage.cost``; embeddings are never streamed."""

    def __init__(self, record: UsageRecord):
        self._record = record

    def answer(self, body: dict[str, Any], client_usage: dict[str, Any] | None) -> dict[str, Any]:
        usage = dict(client_usage or {"prompt_tokens": self._record.tokens.input_tokens}) | {
            "cost": float(self._record.cost_usd)
        }
        return body | {"usage": usage}

    def carries_usage(self, event: dict[str, Any]) -> bool:
        return False

    def event(self, event: dict[str, Any]) -> bytes:
        return data_event(event)

    def closing(self, client_usage: dict[str, Any] | None) -> tuple[bytes, ...]:
        return ()

    def error(self, error: MeterwayError) -> bytes:
        return data_event(error.envelope())


class EmbeddingsPassThrough:
    upstream: Format = "embeddings"

    def request(self, route: ModelRoute, body: dict[str, Any]) -> dict[str, Any]:
        return body | {"model": route.upstream_model}

    def answer(self, route: ModelRoute, payload: dict[str, Any], request_id: str, created: int) -> Answer:
        del request_id, created
        usage = payload.get("usage")
        return Answer(
            body=payload | {"model": route.id},
            tokens=read_usage(usage) if isinstance(usage, dict) else None,
            client_usage=usage if isinstance(usage, dict) else None,
        )

    def stream(self, route: ModelRoute, request_id: str, created: int) -> StreamAdapter:
        raise NotImplementedError("embeddings are never streamed")
