"""Cost of a request from genai-prices' bundled data, with the unit rates it used.

genai-prices counts cache reads and writes inside ``input_tokens``; the ledger keeps them apart,
so the conversion happens here, at the boundary. Its data is never fetched at run
time: only the snapshot bundled with the package is used.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from meterway.ledger.models import TokenUsage
from meterway.proxy.logic.catalog import ModelRoute

if TYPE_CHECKING:
    from genai_prices.types import ModelPrice

_RATE_FIELDS = {
    "input_mtok": "input_mtok",
    "output_mtok": "output_mtok",
    "cache_read_mtok": "cache_read_mtok",
    "cache_write_5m_mtok": "cache_write_mtok",
    "cache_write_1h_mtok": "cache_write_1h_mtok",
}


@dataclass(frozen=True, slots=True)
class Price:
    """What one request cost and the unit rates (USD per million tokens) it was charged at."""

    cost_usd: Decimal
    rates: dict[str, Decimal]


# What genai-prices calls the price of a thousand server-side web searches.
_WEB_SEARCH_RATE = "web_searches_kcount"


def _genai_usage(usage: TokenUsage) -> Any:
    from genai_prices import Usage

    return Usage(
        input_tokens=usage.input_tokens + usage.cache_creation_tokens + usage.cache_read_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_creation_tokens,
        cache_write_5m_tokens=usage.cache_creation_5m_tokens,
        cache_write_1h_tokens=usage.cache_creation_1h_tokens,
        output_tokens=usage.output_tokens,
        output_reasoning_tokens=usage.reasoning_tokens,
        web_searches=usage.web_searches or None,
    )


def _effective_rate(value: Any, total_input_tokens: int) -> Decimal | None:
    from genai_prices.types import TieredPrices

    if value is None:
        return None
    if isinstance(value, TieredPrices):
        # Same cliff rule as genai-prices: the highest tier whose start the prompt exceeds.
        for tier in reversed(value.tiers):
            if total_input_tokens > tier.start:
                return Decimal(tier.price)
        return Decimal(value.base)
    return Decimal(value)


def unit_rates(model_price: ModelPrice, usage: TokenUsage) -> dict[str, Decimal]:
    """The per-million rates that apply to this usage (tiers resolved; absent classes are 0), and the
    price of a thousand web searches where the model has one."""
    total_input = usage.input_tokens + usage.cache_creation_tokens + usage.cache_read_tokens
    found = {
        name: _effective_rate(getattr(model_price, source, None), total_input) for name, source in _RATE_FIELDS.items()
    }
    input_rate = found["input_mtok"] or Decimal(0)
    # genai-prices charges a cache class without its own rate at the next broader one: 1-hour
    # writes like any write, and reads and writes like plain input.
    write_5m = found["cache_write_5m_mtok"] if found["cache_write_5m_mtok"] is not None else input_rate
    rates = {
        "input_mtok": input_rate,
        "output_mtok": found["output_mtok"] or Decimal(0),
        "cache_read_mtok": found["cache_read_mtok"] if found["cache_read_mtok"] is not None else input_rate,
        "cache_write_5m_mtok": write_5m,
        "cache_write_1h_mtok": found["cache_write_1h_mtok"] if found["cache_write_1h_mtok"] is not None else write_5m,
    }
    searches = getattr(model_price, _WEB_SEARCH_RATE, None)
    if searches is not None:
        rates["web_search_kcount"] = Decimal(searches)
    return rates


def price_usage(route: ModelRoute, usage: TokenUsage) -> Price:
    """Price ``usage`` of ``route``'s model with genai-prices; the result's rates reproduce the cost."""
    model_price = _model_price(route)
    cost = model_price.calc_price(_genai_usage(usage))["total_price"]
    return Price(cost_usd=Decimal(cost), rates=unit_rates(model_price, usage))


def catalog_prices(route: ModelRoute) -> dict[str, str]:
    """Base rates per million tokens for ``GET /v1/models`` (strings, so no float rounding)."""
    rates = unit_rates(_model_price(route), TokenUsage())
    return {name: str(rate) for name, rate in rates.items()}


def _model_price(route: ModelRoute) -> ModelPrice:
    """The model's prices: its explicit rates, else genai-prices' for its reference (which raises
    ``LookupError`` for a model it does not know)."""
    from genai_prices.data_snapshot import get_snapshot
    from genai_prices.types import ModelPrice

    if route.rates is not None:
        return ModelPrice(**route.rates)
    provider_id, model_ref = route.prices_ref
    # What ``calc_price(...).model_price`` gives, without pricing an empty usage to get it: the
    # snapshot caches the lookup, and the model's prices are those in force now.
    _, model = get_snapshot().find_provider_model(model_ref, None, provider_id, None)
    return model.get_prices(datetime.now(tz=UTC))


def warm_up() -> None:
    """Load genai-prices' snapshot: ≈0.3 s from bytecode, over a second when its 1.6 MB of data
    must be compiled first, as on Lambda."""
    from genai_prices import Usage, calc_price

    calc_price(Usage(input_tokens=1, output_tokens=1), model_ref="gpt-4o-mini", provider_id="openai")


def warm_up_in_background() -> threading.Thread:
    """``warm_up`` in a thread of its own, so that start-up does not wait for it. A request is priced
    when its answer is in, after its upstream call: the snapshot loads while the first request is
    on its way; a price wanted sooner waits for the load (the import lock) instead of loading twice."""
    thread = threading.Thread(target=warm_up, name="genai-prices warm-up", daemon=True)
    thread.start()
    return thread
