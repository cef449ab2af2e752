"""OpenAI embeddings: the request, its pass-through, and the answer with its priced usage.

Embeddings bill their input tokens only; ``encoding_format`` and everything else the client sent
goes through unchanged.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from meterway.core.errors import MeterwayError
from meterway.ledger.models import TokenUsage, UsageRecord
from meterway.proxy.formats.base import PositiveCount, data_event
from meterway.proxy.logic.catalog import ModelRoute
from meterway.proxy.models import Format
from meterway.proxy.translate.base import Answer, StreamAdapter


class EmbeddingsRequest(BaseModel):
    """``POST /v1/embeddings``."""

    model_config = ConfigDict(extra="allow", defer_build=True)

    model: str = Field(min_length=1, max_length=200)
    input: str | list[str] | list[int] | list[list[int]]
    dimensions: PositiveCount | None = None
    user: str | None = Field(default=None, max_length=256)

    @property
    def stream(self) -> bool:
        return False


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
