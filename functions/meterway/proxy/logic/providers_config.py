"""The providers file: OpenAI-compatible providers a deployment adds without code (Groq, Together,
an in-house vLLM), each with its base URL, the upstream secret's entry that holds its key, and the
models it serves with their prices (a ``genai-prices`` reference, or explicit rates).

Deployed, it is the ``ProvidersConfig`` template parameter (``MW_PROVIDERS``, JSON); locally, the
file ``MW_PROVIDERS_FILE`` names. A file that does not parse, names a provider twice or the
built-in ones, or prices a model ``genai-prices`` does not know, stops the function at start-up
with a message that says where.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from meterway.proxy.logic import pricing
from meterway.proxy.logic.catalog import CATALOG, Catalog, ModelRoute

# The providers the code names (``meterway.proxy.providers.REGISTRY``): a file cannot redefine them.
BUILT_IN_PROVIDERS = frozenset({"openai", "anthropic", "bedrock"})
_Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,31}$")]
_Rate = Annotated[Decimal, Field(ge=0, allow_inf_nan=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class PricesRef(_Strict):
    """The model's prices in ``genai-prices``: its provider id there, and its model ref (the
    model's own id when not given)."""

    provider: str = Field(min_length=1)
    model: str | None = None


class Rates(_Strict):
    """Explicit prices, USD per million tokens (a cache class without a rate is billed as input)."""

    input_mtok: _Rate
    output_mtok: _Rate
    cache_read_mtok: _Rate | None = None
    cache_write_mtok: _Rate | None = None


class ConfiguredModel(_Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,199}$")
    prices: PricesRef | Rates
    max_output_tokens: int | None = Field(default=None, gt=0)
    endpoint: Literal["chat", "embeddings"] = "chat"
    reasoning: bool = False


class ConfiguredProvider(_Strict):
    """An OpenAI-compatible API: Chat Completions and embeddings, and Responses when it says so
    (Messages clients reach it by translation; Responses clients only when it speaks Responses)."""

    kind: Literal["openai-compatible"] = "openai-compatible"
    base_url: str
    responses: bool = False
    #: The upstream secret's entry holding its key (locally: ``MW_PROVIDER_API_KEYS``' entry);
    #: ``<name>_api_key`` when not given; a provider without a key (a private vLLM) sends none.
    api_key_secret: str | None = None
    models: list[ConfiguredModel] = Field(min_length=1)

    @field_validator("base_url")
    @classmethod
    def _https(cls, url: str) -> str:
        loopback = url.startswith(("http://127.0.0.1", "http://localhost", "http://[::1]"))
        if not (url.startswith("https://") or loopback):
            raise ValueError("must be an https:// URL (plain http only to this machine)")
        return url.rstrip("/")


_ModelId = Annotated[str, Field(min_length=3, max_length=256)]


class ProvidersFile(_Strict):
    providers: dict[_Name, ConfiguredProvider] = Field(default_factory=dict)
    #: A catalog model's routes in order: catalog model ids of the same kind (itself among them or not).
    routes: dict[_ModelId, Annotated[list[_ModelId], Field(min_length=1, max_length=8)]] = Field(default_factory=dict)

    @field_validator("providers")
    @classmethod
    def _not_built_in(cls, providers: dict[str, ConfiguredProvider]) -> dict[str, ConfiguredProvider]:
        clash = sorted(BUILT_IN_PROVIDERS & set(providers))
        if clash:
            raise ValueError(f"{', '.join(clash)} is built in; name the provider otherwise")
        return providers

    def key_entry(self, name: str) -> str:
        return self.providers[name].api_key_secret or f"{name}_api_key"


class ProvidersFileError(ValueError):
    """The providers file is not valid; the message says where."""


def parse_providers(text: str | None) -> ProvidersFile:
    """The providers file (JSON); empty or absent: no extra providers."""
    if not text or not text.strip():
        return ProvidersFile()
    try:
        return ProvidersFile.model_validate_json(text)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'file'}: {error['msg']}" for error in exc.errors()
        )
        raise ProvidersFileError(f"The providers file is not valid: {problems}") from exc


def configured_routes(file: ProvidersFile) -> list[ModelRoute]:
    """The catalog entries of the file's models: ``<provider>/<model id>``."""
    routes = []
    for name, provider in file.providers.items():
        for model in provider.models:
            route = ModelRoute(
                id=f"{name}/{model.id}",
                provider=name,
                upstream_model=model.id,
                reasoning=model.reasoning,
                endpoint=model.endpoint,
                max_output_tokens=model.max_output_tokens,
            )
            if isinstance(model.prices, Rates):
                route = route.priced_at(model.prices.model_dump(exclude_none=True))
            else:
                route = route.priced_as(model.prices.provider, model.prices.model or model.id)
            routes.append(route)
    return routes


def load_catalog(file: ProvidersFile) -> Catalog:
    """The built-in models and the file's, each of the file's priced (a reference genai-prices
    does not know is a ``ProvidersFileError`` naming the model), with the file's routes."""
    routes = configured_routes(file)
    for route in routes:
        try:
            pricing.catalog_prices(route)
        except LookupError as exc:
            provider_id, model_ref = route.prices_ref
            raise ProvidersFileError(
                f"The providers file is not valid: {route.id}: genai-prices has no model {model_ref!r} "
                f"for provider {provider_id!r}; give its rates instead"
            ) from exc
    catalog = Catalog([*CATALOG.values(), *routes])
    return catalog.with_routes(_checked_routes(catalog, file.routes))


def _checked_routes(catalog: Catalog, routes: dict[str, list[str]]) -> dict[str, tuple[str, ...]]:
    """The file's routes, each model and each of its routes a catalog model of the same kind,
    none listed twice."""
    for model_id, ordered in routes.items():
        model = catalog.get(model_id)
        where = f"The providers file is not valid: routes.{model_id}"
        if model is None:
            raise ProvidersFileError(f"{where}: no such model in the catalog")
        if len(set(ordered)) != len(ordered):
            raise ProvidersFileError(f"{where}: a route is listed twice")
        for route_id in ordered:
            route = catalog.get(route_id)
            if route is None:
                raise ProvidersFileError(f"{where}: {route_id!r} is not a model of the catalog")
            if route.endpoint != model.endpoint:
                raise ProvidersFileError(
                    f"{where}: {route_id!r} is an {route.endpoint} model, not a {model.endpoint} one"
                )
    return {model_id: tuple(ordered) for model_id, ordered in routes.items()}
