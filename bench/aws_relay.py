"""A relay in front of moto server that counts the AWS calls going through it and, when asked,
holds each DynamoDB call for as long as DynamoDB itself would take.

moto answers in a fraction of a millisecond plus its own Python time; DynamoDB answers in
milliseconds. The latency model draws, per DynamoDB call, a latency from a lognormal fitted to
the published p50 and p99 of the call's class, and answers no sooner than that after the call
arrived: moto's own time counts toward it, and the rest is slept (asynchronously: concurrent
calls wait side by side, as they would on AWS). The figures are those of the
design budget (docs/architecture.md §4):

- single-item (GetItem, PutItem, UpdateItem, DeleteItem, Query): p50 5–8 ms, p99 16 ms; the
  model takes the middle of the p50 range, 6.5 ms;
- transactions (TransactWriteItems, TransactGetItems): p50 25 ms, p99 92 ms;
- batches (BatchGetItem, BatchWriteItem): no figure of their own there; they take the
  single-item figures (DynamoDB serves a batch's items in parallel).

The fit: for a lognormal, the median is e^μ and the p-th percentile is e^(μ + z_p·σ), so
μ = ln p50 and σ = (ln p99 − ln p50) / z_0.99, with z_0.99 = 2.326. Other AWS calls (Secrets
Manager, SQS) and non-DynamoDB paths are counted and forwarded without a delay.
"""

from __future__ import annotations

import asyncio
import collections
import json
import math
import random
import time
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

DYNAMODB_TARGET_PREFIX = "DynamoDB_20120810."
Z_99 = 2.326  # the standard normal's 99th percentile


@dataclass(frozen=True)
class Lognormal:
    """A latency distribution given by its published median and 99th percentile (milliseconds)."""

    p50_ms: float
    p99_ms: float

    @property
    def mu(self) -> float:
        return math.log(self.p50_ms)

    @property
    def sigma(self) -> float:
        return (math.log(self.p99_ms) - math.log(self.p50_ms)) / Z_99

    def draw_s(self, rng: random.Random) -> float:
        return rng.lognormvariate(self.mu, self.sigma) / 1000


SINGLE_ITEM = Lognormal(p50_ms=6.5, p99_ms=16)
TRANSACTION = Lognormal(p50_ms=25, p99_ms=92)
LATENCY_BY_OPERATION = {
    **dict.fromkeys(("GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query"), SINGLE_ITEM),
    **dict.fromkeys(("BatchGetItem", "BatchWriteItem"), SINGLE_ITEM),
    **dict.fromkeys(("TransactWriteItems", "TransactGetItems"), TRANSACTION),
}


# Headers that describe moto's connection to the relay, not the relay's to the gateway.
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length"})


def dynamodb_operation(target: str) -> str | None:
    """``GetItem`` for ``DynamoDB_20120810.GetItem``; None for any other service's call."""
    return target.removeprefix(DYNAMODB_TARGET_PREFIX) if target.startswith(DYNAMODB_TARGET_PREFIX) else None


class CountingRelay:
    """Forwards AWS calls to moto and counts them by operation (``X-Amz-Target``).

    ``model_latency`` switches the DynamoDB latency model on and off between requests;
    ``keep_bodies`` keeps each DynamoDB call's request body, for working out request units.
    """

    def __init__(self, target: str, *, seed: int = 15):
        self.counts: collections.Counter[str] = collections.Counter()
        self.bodies: list[tuple[str, dict[str, Any]]] = []
        self.model_latency = False
        self.keep_bodies = False
        self.injected_s = 0.0
        self._target = target
        self._rng = random.Random(seed)  # a latency model, reproducible on purpose
        self._client: httpx.AsyncClient | None = None
        self.app = Starlette(routes=[Route("/{path:path}", self._forward, methods=["GET", "POST", "PUT", "DELETE"])])

    def reset(self) -> None:
        self.counts.clear()
        self.bodies.clear()
        self.injected_s = 0.0

    async def _forward(self, request: Request) -> Response:
        target = request.headers.get("x-amz-target", request.url.path)
        self.counts[target] += 1
        body = await request.body()
        operation = dynamodb_operation(target)
        if operation and self.keep_bodies:
            self.bodies.append((operation, json.loads(body)))
        arrived = time.perf_counter()
        # Created in the serving thread's event loop, on the first call.
        self._client = self._client or httpx.AsyncClient(base_url=self._target, timeout=30)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        upstream = await self._client.request(request.method, request.url.path, content=body, headers=headers)
        if operation in LATENCY_BY_OPERATION and self.model_latency:
            delay = LATENCY_BY_OPERATION[operation].draw_s(self._rng) - (time.perf_counter() - arrived)
            if delay > 0:
                self.injected_s += delay
                await asyncio.sleep(delay)
        # moto's server closes each connection (``Connection: close``); DynamoDB keeps them open,
        # so the relay answers as it does and keeps the gateway's connection alive.
        kept = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP}
        return Response(upstream.content, status_code=upstream.status_code, headers=kept)
