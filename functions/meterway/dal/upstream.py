"""The upstream providers, reached through one pooled httpx client with explicit timeouts.

Base URLs and provider keys come from configuration only (environment or Secrets Manager),
never from a request.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx

from meterway.config import ProxySettings
from meterway.errors import UpstreamError, UpstreamTimeout
from meterway.logic.catalog import ModelRoute


@dataclass(frozen=True, slots=True)
class UpstreamCredentials:
    openai_api_key: str | None
    anthropic_api_key: str | None


def load_credentials(settings: ProxySettings) -> UpstreamCredentials:
    """Provider keys from the environment, or from the Secrets Manager secret in AWS."""
    openai_key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    anthropic_key = settings.anthropic_api_key.get_secret_value() if settings.anthropic_api_key else None
    if settings.upstream_secret_arn:
        from meterway.dal import aws

        secret = json.loads(
            aws.secretsmanager().get_secret_value(SecretId=settings.upstream_secret_arn)["SecretString"]
        )
        openai_key = secret.get("openai_api_key") or openai_key
        anthropic_key = secret.get("anthropic_api_key") or anthropic_key
    return UpstreamCredentials(openai_key, anthropic_key)


def build_client(settings: ProxySettings) -> httpx.AsyncClient:
    timeout = httpx.Timeout(
        connect=settings.upstream_connect_timeout_s,
        read=settings.upstream_read_timeout_s,
        write=30.0,
        pool=settings.upstream_connect_timeout_s,
    )
    limits = httpx.Limits(max_connections=settings.upstream_max_connections, max_keepalive_connections=20)
    return httpx.AsyncClient(timeout=timeout, limits=limits, follow_redirects=False)


class Upstream:
    """Sends one provider request; errors become ``UpstreamError``/``UpstreamTimeout``."""

    def __init__(self, client: httpx.AsyncClient, settings: ProxySettings, credentials: UpstreamCredentials):
        self._client = client
        self._settings = settings
        self._credentials = credentials

    def request(self, route: ModelRoute, path: str, body: dict[str, Any]) -> httpx.Request:
        if route.wire == "anthropic":
            url = self._settings.anthropic_base_url.rstrip("/") + "/v1" + path
            headers = {"anthropic-version": self._settings.anthropic_version}
            if self._credentials.anthropic_api_key:
                headers["x-api-key"] = self._credentials.anthropic_api_key
        else:
            url = self._settings.openai_base_url.rstrip("/") + path
            headers = {}
            if self._credentials.openai_api_key:
                headers["authorization"] = f"Bearer {self._credentials.openai_api_key}"
        headers["accept"] = "text/event-stream" if body.get("stream") else "application/json"
        return self._client.build_request("POST", url, json=body, headers=headers)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def send(self, request: httpx.Request, *, stream: bool) -> httpx.Response:
        try:
            response = await self._client.send(request, stream=stream)
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout("The upstream provider did not answer in time.") from exc
        except httpx.HTTPError as exc:
            raise UpstreamError("The upstream provider could not be reached.") from exc
        if response.is_success:
            return response
        body = await response.aread()
        await response.aclose()
        raise upstream_status_error(response.status_code, body, response.headers.get("retry-after"))


def upstream_status_error(status: int, body: bytes, retry_after: str | None) -> UpstreamError:
    """Map a provider's error answer to ours: its 400/404/413/422/429 pass through with its message;
    auth failures and 5xx are the gateway's problem (502), because the client cannot fix them."""
    message = _provider_message(body) or f"The upstream provider answered {status}."
    error = UpstreamError(f"Upstream error: {message}", upstream_status=status)
    if status in (400, 404, 413, 422, 429):
        error.status = status
        error.type = "rate_limit_error" if status == 429 else "invalid_request_error"
        error.code = "upstream_rate_limited" if status == 429 else "upstream_rejected"
        if retry_after:
            error.headers["retry-after"] = retry_after
    return error


def _provider_message(body: bytes) -> str | None:
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return error["message"][:500]
    return None
