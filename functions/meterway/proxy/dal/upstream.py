"""Sending to the upstream providers: one pooled httpx client with explicit timeouts.

What is sent, and where, is the provider module's business (``UpstreamRequest``); base URLs and
keys come from configuration only, never from a client's request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from urllib.request import getproxies

import httpx

from meterway.core.errors import UpstreamError, UpstreamTimeout
from meterway.core.settings import ProxySettings
from meterway.proxy.dal.asyncio_network import AsyncioTransport
from meterway.proxy.models import UpstreamRequest, Wait

ErrorMapper = Callable[[int, bytes, str | None], UpstreamError]


def build_client(settings: ProxySettings) -> httpx.AsyncClient:
    # Each wait on a provider is bounded by the request's time budget (``Wait``); httpx's own
    # read timeout only backs it up.
    timeout = httpx.Timeout(
        connect=settings.upstream_connect_timeout_s,
        read=max(settings.upstream_first_byte_timeout_s, settings.upstream_idle_timeout_s),
        write=30.0,
        pool=settings.upstream_connect_timeout_s,
    )
    limits = httpx.Limits(max_connections=settings.upstream_max_connections, max_keepalive_connections=20)
    if getproxies():
        # An HTTP proxy in the environment (``HTTPS_PROXY``, ``NO_PROXY``…): httpx's own
        # transports honour it, as they read it; a transport handed in would bypass it.
        return httpx.AsyncClient(timeout=timeout, limits=limits, follow_redirects=False)
    transport = AsyncioTransport(limits=limits)
    return httpx.AsyncClient(timeout=timeout, transport=transport, follow_redirects=False)


class Upstream:
    """Sends one provider request; failures become ``UpstreamError`` / ``UpstreamTimeout``."""

    def __init__(self, client: httpx.AsyncClient):
        self._client = client

    async def send(
        self, request: UpstreamRequest, *, stream: bool, on_error: ErrorMapper, wait: Wait
    ) -> httpx.Response:
        """The upstream's successful response (its body not read when ``stream``), within ``wait``;
        an error answer is read and handed to ``on_error``, the provider's own mapping."""
        if request.content is not None:
            outbound = self._client.build_request("POST", request.url, content=request.content, headers=request.headers)
        else:
            outbound = self._client.build_request("POST", request.url, json=request.body, headers=request.headers)
        try:
            async with asyncio.timeout(wait.seconds):
                response = await self._client.send(outbound, stream=stream)
                if response.is_success:
                    return response
                body = await response.aread()
        except TimeoutError as exc:
            raise wait.error from exc
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # Nothing was sent: safe to try again, or elsewhere.
            raise UpstreamError("The upstream provider could not be reached.", unreachable=True) from exc
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout("The upstream provider did not answer in time.") from exc
        except httpx.HTTPError as exc:
            raise UpstreamError("The upstream provider could not be reached.") from exc
        await response.aclose()
        raise on_error(response.status_code, body, response.headers.get("retry-after"))

    async def aclose(self) -> None:
        await self._client.aclose()
