"""One request on its way through the gateway, and how its usage is charged to its record."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from meterway.core.errors import UpstreamError
from meterway.ledger.models import TokenUsage, UsageRecord
from meterway.proxy.logic.catalog import ModelRoute
from meterway.proxy.logic.estimate import prompt_tokens_estimate, tokens_for_chars
from meterway.proxy.logic.fallbacks import Failure, Leg
from meterway.proxy.logic.pricing import Price, price_usage
from meterway.proxy.translate.base import Answer


@dataclass(slots=True)
class ProxyCall:
    """A client's request, its route, the record it will settle, and when it started
    (``time.perf_counter()``)."""

    route: ModelRoute
    body: dict[str, Any]
    record: UsageRecord
    started: float
    #: The last price worked out, and for what (route, tokens): a stream is charged when its usage
    #: event goes out and again when it ends, most often for the same tokens.
    priced: tuple[tuple[ModelRoute, TokenUsage], Price] | None = None

    @property
    def created(self) -> int:
        return int(self.record.created_at.timestamp())

    def elapsed_ms(self) -> int:
        return int((time.perf_counter() - self.started) * 1000)


def take(call: ProxyCall, leg: Leg, attempts: int) -> None:
    """The call goes by ``leg``, its ``attempts``-th attempt: priced at the leg's rates, on the
    record as the leg's provider (and route, when it is not the requested model)."""
    call.route = leg.as_requested
    record = call.record
    record.provider = leg.route.provider
    record.route = leg.route.id if leg.route.id != record.model else None
    record.attempts = attempts if attempts > 1 else None


def attempt_records(record: UsageRecord, failures: list[Failure]) -> list[UsageRecord]:
    """The failed attempts of ``record``'s request, each a record of its own (``attempt_record``)."""
    return [
        attempt_record(record, number, failure.leg.route, failure.error, failure.latency_ms)
        for number, failure in enumerate(failures, start=1)
    ]


def attempt_record(
    record: UsageRecord, number: int, route: ModelRoute, error: UpstreamError, latency_ms: int
) -> UsageRecord:
    """The ``number``-th attempt of ``record``'s request, failed on ``route``: ``<request id>.<n>``,
    at the request's time, the attempt's own provider, error and latency, billing nothing."""
    return replace(
        record,
        request_id=f"{record.request_id}.{number}",
        provider=route.provider,
        route=route.id if route.id != record.model else None,
        status="error",
        tokens=TokenUsage(),
        usage_estimated=False,
        cost_usd=Decimal(0),
        prices={},
        latency_ms=latency_ms,
        ttft_ms=None,
        finish_reason=None,
        error_code=error.code,
        upstream_status=error.upstream_status,
        attempts=None,
        attempt_of=record.request_id,
        attempt=number,
    )


def charge(call: ProxyCall, tokens: TokenUsage, *, estimated: bool = False) -> None:
    """Price ``tokens`` and put them, the cost and the rates on the call's record."""
    if call.priced is None or call.priced[0] != (call.route, tokens):
        call.priced = ((call.route, tokens), price_usage(call.route, tokens))
    price = call.priced[1]
    record = call.record
    record.tokens = tokens
    record.usage_estimated = estimated
    record.cost_usd = price.cost_usd
    record.prices = price.rates
    record.latency_ms = call.elapsed_ms()


def charge_reported(call: ProxyCall, tokens: TokenUsage | None, reported: bool, output_chars: int) -> None:
    """Charge what the provider reported; when it reported no final count, an estimate from the
    characters sent, flagged as such."""
    if reported and tokens is not None:
        charge(call, tokens)
    else:
        charge(call, estimate(call, output_chars, tokens), estimated=True)


def estimate(call: ProxyCall, output_chars: int, known: TokenUsage | None = None) -> TokenUsage:
    """Best-known usage of a request whose upstream never reported a final count."""
    base = (
        known
        if known is not None and known.total_tokens
        else TokenUsage(input_tokens=prompt_tokens_estimate(call.body))
    )
    return base.with_output(max(base.output_tokens, tokens_for_chars(output_chars)))


def complete(call: ProxyCall, answer: Answer) -> None:
    """A non-streamed answer arrived whole: charge it and finish the record."""
    charge_reported(call, answer.tokens, answer.tokens is not None, answer.output_chars)
    call.record.finish_reason = answer.finish_reason
    call.record.ttft_ms = call.record.latency_ms


def fail(call: ProxyCall, error: UpstreamError) -> None:
    """The upstream refused or failed: nothing was served, so the record bills nothing."""
    record = call.record
    record.status = "error"
    record.error_code = error.code
    record.upstream_status = error.upstream_status
    record.latency_ms = call.elapsed_ms()
