"""Routes, retries and fallbacks: which routes a request may take, and when it moves to the next.

A catalog model is served by its routes in order (the providers file's ``routes``; by default the
model alone). Before the first byte reaches the client, an attempt that fails in a way another try
may not (the provider rate-limited or overloaded: 408, 429, 5xx, 529; no connection made; the
provider refusing the gateway's own configuration) moves on: to the same route again after a
backoff that honours ``retry-after``, as many times as the policy allows, then to the next route.
An answer the client's request caused (400, 404, 413…) is final, as is a first-byte timeout (the
provider may be working on it, and the wait is spent). Every wait, the backoffs included, comes
out of the request's first-byte budget. Once an answer has started, nothing is retried: the client
may hold part of it.

A client may pin providers with an OpenRouter-style field in the body, which is never forwarded:
``"provider": {"only": ["bedrock"], "allow_fallbacks": false}`` (``only``: provider names or route
ids; ``allow_fallbacks: false``: the first allowed route alone), or the header
``x-meterway-provider: bedrock`` (a comma-separated ``only``).
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Annotated, Any

import anyio
import httpx
import msgspec

from meterway.core.errors import InvalidRequest, UpstreamError
from meterway.proxy.logic.catalog import ModelRoute
from meterway.proxy.models import UpstreamRequest, Wait

if TYPE_CHECKING:
    from meterway.proxy.providers.base import Provider

# The provider's answers that another try may not get: timeout, rate limit, its own failures, overload.
TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 529})
PIN_HEADER = "x-meterway-provider"
PIN_FIELD = "provider"


class _Pin(msgspec.Struct, forbid_unknown_fields=True):
    only: Annotated[list[str], msgspec.Meta(min_length=1, max_length=16)] | None = None
    allow_fallbacks: bool = True


@dataclass(frozen=True, slots=True)
class ProviderPin:
    """The routes a client allows: ``only`` these providers or route ids (None: any)."""

    only: frozenset[str] | None = None
    allow_fallbacks: bool = True

    def allows(self, route: ModelRoute) -> bool:
        return self.only is None or route.provider in self.only or route.id in self.only


def pin_of(body: dict[str, Any], headers: Mapping[str, str]) -> ProviderPin:
    """The client's provider preferences, taken out of ``body`` (they are the gateway's, not the
    provider's); a malformed one is a 400."""
    pinned = body.pop(PIN_FIELD, None)
    header = headers.get(PIN_HEADER)
    if pinned is None and not header:
        return ProviderPin()
    try:
        pin = msgspec.convert(pinned if pinned is not None else {}, _Pin)
    except msgspec.ValidationError as exc:
        raise InvalidRequest(
            "Invalid 'provider': it takes 'only' (a list of provider names) and 'allow_fallbacks' (true or false).",
            code="invalid_provider_preferences",
        ) from exc
    only = set(pin.only or ())
    if header:
        only |= {name.strip() for name in header.split(",") if name.strip()}
    return ProviderPin(frozenset(only) or None, pin.allow_fallbacks)


def allowed_routes(model: ModelRoute, routes: tuple[ModelRoute, ...], pin: ProviderPin) -> list[ModelRoute]:
    """``routes`` as the client's pin allows them; none is a 400 that names the model's providers."""
    allowed = [route for route in routes if pin.allows(route)]
    if not allowed:
        providers = ", ".join(dict.fromkeys(route.provider for route in routes))
        raise InvalidRequest(
            f"No route of {model.id} is served by the provider you asked for; its providers: {providers}.",
            code="provider_not_available",
        )
    return allowed if pin.allow_fallbacks else allowed[:1]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often one route is tried again (``retries``), and the waits between: exponential from
    ``backoff_s`` with full jitter, or the provider's ``retry-after``; never longer than
    ``max_wait_s`` nor than the first-byte budget left (the next route is tried at once instead)."""

    retries: int = 0
    backoff_s: float = 0.5
    max_wait_s: float = 10.0

    def delay(self, error: UpstreamError, tries: int, left_s: float) -> float | None:
        """Seconds to wait before trying the same route again after its ``tries``-th failure;
        None: not again."""
        if not transient(error) or tries > self.retries:
            return None
        asked = retry_after_seconds(error.headers.get("retry-after"))
        wait = asked if asked is not None else random.uniform(0, self.backoff_s * 2 ** (tries - 1))  # noqa: S311 (jitter, not a secret)
        return wait if wait <= min(self.max_wait_s, left_s) else None


NO_RETRIES = RetryPolicy()


def transient(error: UpstreamError) -> bool:
    """Whether the same provider may answer if asked again."""
    return error.unreachable or error.upstream_status in TRANSIENT_STATUSES


def moves_on(error: UpstreamError) -> bool:
    """Whether another route may serve where this attempt failed."""
    return transient(error) or error.gateway_fault


def retry_after_seconds(value: str | None) -> float | None:
    """``retry-after`` in seconds (it is seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class Leg:
    """One route made ready: the route (its own id), the same as the client knows it (the
    requested model's id; the serving route's provider, upstream id and prices), its provider,
    and the upstream request built for it."""

    route: ModelRoute
    provider: Provider
    outbound: UpstreamRequest
    as_requested: ModelRoute

    @classmethod
    def of(cls, model: ModelRoute, route: ModelRoute, provider: Provider, outbound: UpstreamRequest) -> Leg:
        return cls(route, provider, outbound, route if route.id == model.id else replace(route, id=model.id))


@dataclass(frozen=True, slots=True)
class Failure:
    """An attempt that failed before the answer started, and how long it took."""

    leg: Leg
    error: UpstreamError
    latency_ms: int


@dataclass(slots=True)
class Attempts:
    """The attempts of one client request: the failed ones in order, then the one that answered."""

    failures: list[Failure] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.failures)


Send = Callable[[Leg, Wait], Awaitable[httpx.Response]]


async def first_answer(
    legs: list[Leg], send: Send, first_byte: Callable[[], Wait], policy: RetryPolicy, attempts: Attempts
) -> tuple[Leg, httpx.Response]:
    """The first leg to answer, and its answer; each failed attempt is added to ``attempts``.
    When none answers, the last failure is raised."""
    last: UpstreamError | None = None
    for leg in legs:
        tries = 0
        while True:
            tries += 1
            started = time.perf_counter()
            try:
                return leg, await send(leg, first_byte())
            except UpstreamError as error:
                attempts.failures.append(Failure(leg, error, int((time.perf_counter() - started) * 1000)))
                if not moves_on(error):
                    raise
                last = error
            delay = policy.delay(last, tries, first_byte().seconds)
            if delay is None:
                break
            await anyio.sleep(delay)
    assert last is not None, "first_answer needs at least one leg"
    raise last
