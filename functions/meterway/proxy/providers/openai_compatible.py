"""OpenAI and any OpenAI-compatible API: Chat Completions, Responses and embeddings, natively."""

from __future__ import annotations

from collections.abc import Mapping

from meterway.proxy.models import Format
from meterway.proxy.providers.base import Provider

_PATHS: dict[Format, str] = {"chat": "/chat/completions", "responses": "/responses", "embeddings": "/embeddings"}


class OpenAICompatible(Provider):
    """The API at ``base_url`` (``https://api.openai.com/v1``), keyed by ``Authorization: Bearer``."""

    native: tuple[Format, ...] = ("chat", "responses", "embeddings")

    def __init__(self, base_url: str, api_key: str | None, *, native: tuple[Format, ...] | None = None):
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        if native is not None:
            # A compatible API that lacks Responses (most do) is reached only by what it speaks.
            self.native = native

    def endpoint(self, fmt: Format, *, stream: bool, client_headers: Mapping[str, str]) -> tuple[str, dict[str, str]]:
        del client_headers  # nothing of the client's reaches an OpenAI-compatible upstream
        headers = {"accept": "text/event-stream" if stream else "application/json"}
        if self._api_key:
            headers["authorization"] = f"Bearer {self._api_key}"
        return f"{self._base_url}{_PATHS[fmt]}", headers
