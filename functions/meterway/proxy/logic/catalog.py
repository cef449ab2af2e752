"""The model catalog: client-facing ids (``provider/model``), the provider that serves each one,
the id it has there, how it is priced (its ``genai-prices`` reference, or explicit rates), and
how much it can write. The built-in models are here; a deployment's providers file adds more
(``providers_config``), and ``Catalog`` holds them all."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, Literal

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
    #: The most output tokens one answer may ask for, as the provider documents it (None: unknown).
    max_output_tokens: int | None = None
    #: Where ``genai-prices`` has its prices, when not (provider, upstream model).
    prices_ref_override: tuple[str, str] | None = None
    #: Explicit prices, USD per million tokens by genai-prices' field names, instead of a reference.
    rates: Mapping[str, Decimal] | None = None

    @property
    def prices_ref(self) -> tuple[str, str]:
        """The provider id and model ref of its prices in ``genai-prices`` (Bedrock's are ``aws``)."""
        return self.prices_ref_override or (_PRICES_PROVIDERS.get(self.provider, self.provider), self.upstream_model)

    def priced_as(self, provider_id: str, model_ref: str) -> ModelRoute:
        return replace(self, prices_ref_override=(provider_id, model_ref))

    def priced_at(self, rates: Mapping[str, Decimal]) -> ModelRoute:
        return replace(self, rates=dict(rates))


_PRICES_PROVIDERS = {"bedrock": "aws"}


def _route(
    model_id: str, *, reasoning: bool = False, endpoint: Endpoint = "chat", max_output: int | None = None
) -> ModelRoute:
    provider, _, upstream = model_id.partition("/")
    return ModelRoute(model_id, provider, upstream, reasoning, endpoint, max_output)


# Every id here must be priced by genai-prices' bundled data; tests/unit/test_pricing.py checks it.
# genai-prices knows each model's context window but not its output limit: those are the
# providers' own model pages' figures (OpenAI's "max output tokens", Anthropic's "max output").
CATALOG: dict[str, ModelRoute] = {
    route.id: route
    for route in (
        _route("openai/gpt-4o", max_output=16_384),
        _route("openai/gpt-4o-mini", max_output=16_384),
        _route("openai/gpt-4.1", max_output=32_768),
        _route("openai/gpt-4.1-mini", max_output=32_768),
        _route("openai/gpt-5", reasoning=True, max_output=128_000),
        _route("openai/gpt-5-mini", reasoning=True, max_output=128_000),
        _route("openai/o3-mini", reasoning=True, max_output=100_000),
        _route("openai/o4-mini", reasoning=True, max_output=100_000),
        _route("openai/text-embedding-3-small", endpoint="embeddings"),
        _route("anthropic/claude-sonnet-4-5", max_output=64_000),
        _route("anthropic/claude-haiku-4-5", max_output=64_000),
        _route("anthropic/claude-opus-4-1", max_output=32_000),
        # Claude on Bedrock, through the US cross-region inference profiles (on-demand use of these
        # models needs a profile); the same models, at Bedrock's regional prices.
        _route("bedrock/us.anthropic.claude-sonnet-4-5-20250929-v1:0", max_output=64_000),
        _route("bedrock/us.anthropic.claude-haiku-4-5-20251001-v1:0", max_output=64_000),
        # Other Bedrock models, spoken to in Converse (AWS's model cards give their output limits).
        _route("bedrock/amazon.nova-pro-v1:0", max_output=10_000),
        _route("bedrock/us.meta.llama3-3-70b-instruct-v1:0", max_output=8_192),
    )
}


class Catalog:
    """The models a deployment knows: the built-in ones and those of its providers file, and the
    routes (catalog models, in order) that serve a model where the file gives them."""

    def __init__(self, routes: Iterable[ModelRoute], fallbacks: Mapping[str, tuple[str, ...]] | None = None):
        self._routes = {route.id: route for route in routes}
        self._fallbacks = dict(fallbacks or {})

    def with_routes(self, fallbacks: Mapping[str, tuple[str, ...]]) -> Catalog:
        return Catalog(self, fallbacks)

    def routes_for(self, model: ModelRoute) -> tuple[ModelRoute, ...]:
        """The routes that serve ``model``, in order: itself unless the providers file says otherwise."""
        ordered = self._fallbacks.get(model.id)
        return tuple(self._routes[route_id] for route_id in ordered) if ordered else (model,)

    def __iter__(self) -> Iterator[ModelRoute]:
        return iter(self._routes.values())

    def ids(self) -> frozenset[str]:
        return frozenset(self._routes)

    def get(self, model_id: str) -> ModelRoute | None:
        return self._routes.get(model_id)

    def resolve(self, model_id: str, *, endpoint: Endpoint = "chat") -> ModelRoute:
        """Find a model by its client-facing id, or by its bare upstream id when exactly one model
        has it (clients that only let you set a base URL send ``gpt-4o-mini``). An ambiguous bare
        id is a 400 that lists the candidates; an unknown or wrong-endpoint id a 404."""
        route = self._routes.get(model_id)
        if route is None and "/" not in model_id:
            matches = [candidate for candidate in self if candidate.upstream_model == model_id]
            if len(matches) > 1:
                raise InvalidRequest(
                    f"The model '{model_id}' is ambiguous: use one of {', '.join(match.id for match in matches)}.",
                    code="ambiguous_model",
                )
            route = matches[0] if matches else None
        if route is None or route.endpoint != endpoint:
            raise model_not_found(model_id)
        return route


BUILT_IN = Catalog(CATALOG.values())


def resolve_model(model_id: str, *, endpoint: Endpoint = "chat") -> ModelRoute:
    """``Catalog.resolve`` on the built-in models."""
    return BUILT_IN.resolve(model_id, endpoint=endpoint)


def model_not_found(model_id: str) -> ModelNotFound:
    return ModelNotFound(
        f"The model '{model_id}' does not exist or is not served on this endpoint. "
        "Model ids are 'provider/model'; GET /v1/models lists them."
    )


def check_output_limit(route: ModelRoute, requested: Mapping[str, Any]) -> None:
    """An output budget (``max_tokens`` and its kin, by field name) past what the model can write is a
    400 that says the limit: the provider would refuse it anyway, after the gateway had reserved."""
    limit = route.max_output_tokens
    for name, value in requested.items():
        if limit is not None and isinstance(value, int) and value > limit:
            raise InvalidRequest(
                f"Invalid '{name}': {value} is more than {route.id} can write; its limit is {limit} tokens.",
                code="max_tokens_too_large",
            )
