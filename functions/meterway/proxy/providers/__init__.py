"""The provider registry: the one place that names providers. Each catalog model's ``provider``
is a key here; adding a provider is a module in this folder plus a line below."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from meterway.core import aws
from meterway.core.settings import ProxySettings, SecretText
from meterway.proxy.logic.catalog import ModelRoute, model_not_found
from meterway.proxy.logic.providers_config import ProvidersFile
from meterway.proxy.models import Format
from meterway.proxy.providers.anthropic import Anthropic
from meterway.proxy.providers.base import Provider
from meterway.proxy.providers.bedrock import Bedrock, model_ids
from meterway.proxy.providers.openai_compatible import OpenAICompatible

Secret = Mapping[str, str]
# The providers keyed by an API key from the upstream secret (Bedrock signs with the role instead).
KEYED_PROVIDERS = ("openai", "anthropic")

REGISTRY: dict[str, Callable[[ProxySettings, Secret], Provider]] = {
    "openai": lambda settings, secret: OpenAICompatible(
        settings.openai_base_url, _api_key("openai_api_key", settings.openai_api_key, secret)
    ),
    "anthropic": lambda settings, secret: Anthropic(
        settings.anthropic_base_url,
        _api_key("anthropic_api_key", settings.anthropic_api_key, secret),
        settings.anthropic_version,
    ),
    "bedrock": lambda settings, secret: Bedrock(
        aws.region(settings.bedrock_region),
        settings.bedrock_endpoint_url,
        aws.credentials,
        enabled=model_ids(settings.bedrock_model_arns) if settings.bedrock_model_arns is not None else None,
    ),
}


class Providers:
    """The configured providers of the process, by name."""

    def __init__(self, providers: Mapping[str, Provider]):
        self._providers = dict(providers)

    def for_route(self, route: ModelRoute) -> Provider:
        """The route's provider; a model this deployment does not serve is not found."""
        provider = self._providers[route.provider]
        if not provider.serves(route):
            raise model_not_found(route.id)
        return provider

    def serves(self, route: ModelRoute) -> bool:
        return self._providers[route.provider].serves(route)


def build_providers(settings: ProxySettings, secret: Secret, file: ProvidersFile | None = None) -> Providers:
    """Every registered provider, configured from the settings and the upstream secret, and the
    providers file's OpenAI-compatible ones."""
    providers = {name: build(settings, secret) for name, build in REGISTRY.items()}
    file = file or ProvidersFile()
    for name, configured in file.providers.items():
        entry = file.key_entry(name)
        key = _api_key(entry, settings.provider_api_keys.get(entry), secret)
        native: tuple[Format, ...] = (
            ("chat", "responses", "embeddings") if configured.responses else ("chat", "embeddings")
        )
        providers[name] = OpenAICompatible(configured.base_url, key, native=native)
    for name, provider in providers.items():
        provider.name = name
    return Providers(providers)


def _api_key(entry: str, configured: SecretText | None, secret: Secret) -> str | None:
    """A provider's key: the upstream secret's ``entry`` (AWS), else the one the settings hold."""
    return secret.get(entry) or (configured.get_secret_value() if configured else None)
