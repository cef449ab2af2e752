"""Anthropic's Messages API, natively; Chat and Responses clients reach it by translation.

A Messages client's ``anthropic-version`` and ``anthropic-beta`` headers are forwarded unchanged
(Claude Code turns features on with them); other clients get the configured version.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from meterway.proxy.logic.catalog import ModelRoute
from meterway.proxy.models import Format, UpstreamRequest
from meterway.proxy.providers.base import Provider

FORWARDED_HEADERS = ("anthropic-version", "anthropic-beta")


class Anthropic(Provider):
    """The Messages API at ``base_url`` (``https://api.anthropic.com``), keyed by ``x-api-key``."""

    native: tuple[Format, ...] = ("messages",)

    def __init__(self, base_url: str, api_key: str | None, version: str):
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._version = version

    def endpoint(self, fmt: Format, *, stream: bool, client_headers: Mapping[str, str]) -> tuple[str, dict[str, str]]:
        return f"{self._base_url}/v1/messages", self._headers(client_headers, stream=stream)

    def count_tokens(
        self, route: ModelRoute, body: dict[str, Any], client_headers: Mapping[str, str]
    ) -> UpstreamRequest:
        url = f"{self._base_url}/v1/messages/count_tokens"
        return UpstreamRequest(url, body | {"model": route.upstream_model}, self._headers(client_headers, stream=False))

    def _headers(self, client_headers: Mapping[str, str], *, stream: bool) -> dict[str, str]:
        headers = {"anthropic-version": self._version, "accept": "text/event-stream" if stream else "application/json"}
        headers |= {name: client_headers[name] for name in FORWARDED_HEADERS if client_headers.get(name)}
        if self._api_key:
            headers["x-api-key"] = self._api_key
        return headers
