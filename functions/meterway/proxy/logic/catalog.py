"""The model catalog: client-facing ids (``provider/model``), the provider that serves each one,
and the id it has there (which is also its ``genai-prices`` reference)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from meterway.core.errors import InvalidRequest, ModelNotFound

Endpoint = Literal["chat", "embeddings"]


@dataclass(frozen=True, slots=True)
class ModelRoute:
    """How one catalog model is reached and priced; ``provider`` names its entry in the registry
    (``meterway.proxy.providers``)."""

    id: str
    provider: str
    upstream_model: str
    reasoning: bool = False
    endpoint: Endpoint = "chat"


def _route(model_id: str, *, reasoning: bool = False, endpoint: Endpoint = "chat") -> ModelRoute:
    provider, _, upstream = model_id.partition("/")
    return ModelRoute(model_id, provider, upstream, reasoning, endpoint)


# Every id here must be priced by genai-prices' bundled data; tests/unit/test_pricing.py checks it.
CATALOG: dict[str, ModelRoute] = {
    route.id: route
    for route in (
        _route("openai/gpt-4o"),
        _route("openai/gpt-4o-mini"),
        _route("openai/gpt-4.1"),
        _route("openai/gpt-4.1-mini"),
        _route("openai/gpt-5", reasoning=True),
        _route("openai/gpt-5-mini", reasoning=True),
        _route("openai/o3-mini", reasoning=True),
        _route("openai/o4-mini", reasoning=True),
        _route("openai/text-embedding-3-small", endpoint="embeddings"),
        _route("anthropic/claude-sonnet-4-5"),
        _route("anthropic/claude-haiku-4-5"),
        _route("anthropic/claude-opus-4-1"),
    )
}


def resolve_model(model_id: str, *, endpoint: Endpoint = "chat") -> ModelRoute:
    """Find a catalog model by its client-facing id, or by its bare upstream id when exactly one
    catalog model has it (clients that only let you set a base URL send ``gpt-4o-mini``). An
    ambiguous bare id is a 400 that lists the candidates; an unknown or wrong-endpoint id a 404."""
    route = CATALOG.get(model_id)
    if route is None and "/" not in model_id:
        matches = [candidate for candidate in CATALOG.values() if candidate.upstream_model == model_id]
        if len(matches) > 1:
            raise InvalidRequest(
                f"The model '{model_id}' is ambiguous: use one of {', '.join(match.id for match in matches)}.",
                code="ambiguous_model",
            )
        route = matches[0] if matches else None
    if route is None or route.endpoint != endpoint:
        raise ModelNotFound(
            f"The model '{model_id}' does not exist or is not served on this endpoint. "
            "Model ids are 'provider/model'; GET /v1/models lists them."
        )
    return route
