"""One request on its way through the gateway, and how its usage is charged to its record."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from meterway.core.errors import UpstreamError
from meterway.ledger.models import TokenUsage, UsageRecord
from meterway.proxy.logic.catalog import ModelRoute
from meterway.proxy.logic.estimate import prompt_tokens_estimate, tokens_for_chars
from meterway.proxy.logic.pricing import price_usage
from meterway.proxy.translate.base import Answer


@dataclass(slots=True)
class ProxyCall:
    """A client's request, its route, the record it will settle, and when it started
    (``time.perf_counter()``)."""

    route: ModelRoute
    body: dict[str, Any]
    record: UsageRecord
    started: float

    @property
    def created(self) -> int:
        return int(self.record.created_at.timestamp())

    def elapsed_ms(self) -> int:
        return int((time.perf_counter() - self.started) * 1000)


def charge(call: ProxyCall, tokens: TokenUsage, *, estimated: bool = False) -> None:
    """Price ``tokens`` and put them, the cost and the rates on the call's record."""
    price = price_usage(call.route, tokens)
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
