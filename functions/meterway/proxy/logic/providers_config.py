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

import msgspec

from meterway.core.validation import located
from meterway.proxy.logic import pricing
from meterway.proxy.logic.catalog import CATALOG, Catalog, ModelRoute

# The providers the code names (``meterway.proxy.providers.REGISTRY``): a file cannot redefine them.
BUILT_IN_PROVIDERS = frozenset({"openai", "anthropic", "bedrock"})
_NAME = msgspec.Meta(pattern=r"^[a-z][a-z0-9-]{0,31}$")
# A rate the ledger can store: DynamoDB numbers stop at 38 digits, and no model costs more.
MAX_RATE = Decimal(1_000_000)


class _Strict(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """A part of the file: a field it does not know is an error, not a typo silently ignored."""


class PricesRef(_Strict, kw_only=True, frozen=True):
    """The model's prices in ``genai-prices``: its provider id there, and its model ref (the
    model's own id when not given)."""

    provider: Annotated[str, msgspec.Meta(min_length=1)]
    model: str | None = None


class Rates(_Strict, kw_only=True, frozen=True):
    """Explicit prices, USD per million tokens (a cache class without a rate is billed as input)."""

    input_mtok: Decimal
    output_mtok: Decimal
    cache_read_mtok: Decimal | None = None
    cache_write_mtok: Decimal | None = None

    def __post_init__(self) -> None:
        for name, rate in self.given().items():
            if not (rate.is_finite() and 0 <= rate <= MAX_RATE):
                raise ValueError(f"{name}: must be a number of USD per million tokens from 0 to {MAX_RATE:,}")

    def given(self) -> dict[str, Decimal]:
        """The rates the file gives, by name."""
        return {name: rate for name, rate in msgspec.structs.asdict(self).items() if rate is not None}


class ConfiguredModel(_Strict, kw_only=True, frozen=True):
    id: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,199}$")]
    # A ``PricesRef`` (it has ``provider``) or ``Rates``, kept as written (numbers exact, not floats):
    # read by ``pricing``, checked here.
    prices: msgspec.Raw
    max_output_tokens: Annotated[int, msgspec.Meta(gt=0)] | None = None
    endpoint: Literal["chat", "embeddings"] = "chat"
    reasoning: bool = False

    def __post_init__(self) -> None:
        self.pricing  # noqa: B018 (checks the prices: a ValueError names what is wrong)

    @property
    def pricing(self) -> PricesRef | Rates:
        try:
            given = msgspec.json.decode(self.prices, type=dict[str, msgspec.Raw])
            kind: type[PricesRef | Rates] = PricesRef if "provider" in given else Rates
            return msgspec.json.decode(self.prices, type=kind)
        except msgspec.ValidationError as exc:
            raise ValueError(located(exc, "prices")) from None


class ConfiguredProvider(_Strict, kw_only=True, frozen=True):
    """An OpenAI-compatible API: Chat Completions and embeddings, and Responses when it says so
    (Messages clients reach it by translation; Responses clients only when it speaks Responses)."""

    kind: Literal["openai-compatible"] = "openai-compatible"
    base_url: str
    responses: bool = False
    #: The upstream secret's entry holding its key (locally: ``MW_PROVIDER_API_KEYS``' entry);
    #: ``<name>_api_key`` when not given; a provider without a key (a private vLLM) sends none.
    api_key_secret: str | None = None
    models: Annotated[list[ConfiguredModel], msgspec.Meta(min_length=1)]

    def __post_init__(self) -> None:
        loopback = self.base_url.startswith(("http://127.0.0.1", "http://localhost", "http://[::1]"))
        if not (self.base_url.startswith("https://") or loopback):
            raise ValueError("base_url: must be an https:// URL (plain http only to this machine)")
        msgspec.structs.force_setattr(self, "base_url", self.base_url.rstrip("/"))


_ModelId = Annotated[str, msgspec.Meta(min_length=3, max_length=256)]
_Routes = dict[_ModelId, Annotated[list[_ModelId], msgspec.Meta(min_length=1, max_length=8)]]


class _Shape(_Strict, kw_only=True, frozen=True):
    """The file as decoded: each provider is read on its own, so that an error names it."""

    providers: dict[str, msgspec.Raw] = {}
    #: A catalog model's routes in order: catalog model ids of the same kind (itself among them or not).
    routes: _Routes = {}


class ProvidersFile(msgspec.Struct, frozen=True, kw_only=True):
    providers: dict[str, ConfiguredProvider] = {}
    routes: _Routes = {}

    def key_entry(self, name: str) -> str:
        return self.providers[name].api_key_secret or f"{name}_api_key"


class ProvidersFileError(ValueError):
    """The providers file is not valid; the message says where."""


def parse_providers(text: str | None) -> ProvidersFile:
    """The providers file (JSON); empty or absent: no extra providers."""
    if not text or not text.strip():
        return ProvidersFile()
    try:
        shape = msgspec.json.decode(text, type=_Shape)
    except msgspec.ValidationError as exc:
        raise ProvidersFileError(f"The providers file is not valid: {located(exc)}") from exc
    except msgspec.DecodeError as exc:
        raise ProvidersFileError(f"The providers file is not valid: file: {exc}") from exc
    clash = sorted(BUILT_IN_PROVIDERS & set(shape.providers))
    if clash:
        raise ProvidersFileError(
            f"The providers file is not valid: providers: {', '.join(clash)} is built in; name the provider otherwise"
        )
    return ProvidersFile(
        providers={name: _provider(name, body) for name, body in shape.providers.items()}, routes=shape.routes
    )


def _provider(name: str, body: msgspec.Raw) -> ConfiguredProvider:
    where = f"The providers file is not valid: providers.{name}"
    try:
        msgspec.convert(name, Annotated[str, _NAME])
    except msgspec.ValidationError:
        raise ProvidersFileError(
            f"{where}: a provider's name is 1-32 lower-case letters, digits and '-', starting with a letter"
        ) from None
    try:
        return msgspec.json.decode(body, type=ConfiguredProvider)
    except msgspec.ValidationError as exc:
        raise ProvidersFileError(f"The providers file is not valid: {located(exc, f'providers.{name}')}") from exc


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
            prices = model.pricing
            if isinstance(prices, Rates):
                route = route.priced_at(prices.given())
            else:
                route = route.priced_as(prices.provider, prices.model or model.id)
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
