from decimal import Decimal

import pytest
from genai_prices import Usage, calc_price

from meterway.core.errors import InvalidRequest, ModelNotFound
from meterway.ledger.models import TokenUsage
from meterway.proxy.logic.catalog import CATALOG, Catalog, ModelRoute, resolve_model
from meterway.proxy.logic.pricing import catalog_prices, price_usage

USAGE = TokenUsage(
    input_tokens=1200,
    output_tokens=640,
    reasoning_tokens=128,
    cache_creation_5m_tokens=300,
    cache_creation_1h_tokens=2048,
    cache_read_tokens=4096,
)


def recompute(usage: TokenUsage, rates: dict[str, Decimal]) -> Decimal:
    return (
        usage.input_tokens * rates["input_mtok"]
        + usage.output_tokens * rates["output_mtok"]
        + usage.cache_read_tokens * rates["cache_read_mtok"]
        + usage.cache_creation_5m_tokens * rates["cache_write_5m_mtok"]
        + usage.cache_creation_1h_tokens * rates["cache_write_1h_mtok"]
    ) / Decimal(1_000_000) + usage.web_searches * rates.get("web_search_kcount", Decimal(0)) / Decimal(1000)


@pytest.mark.parametrize("model_id", sorted(CATALOG))
def test_every_catalog_model_is_priced_and_its_stored_rates_reproduce_the_cost(model_id):
    price = price_usage(CATALOG[model_id], USAGE)
    assert price.cost_usd > 0
    assert recompute(USAGE, price.rates) == price.cost_usd


def test_cost_equals_genai_prices_with_cache_counted_inside_its_input_tokens():
    route = resolve_model("anthropic/claude-sonnet-4-5")
    expected = calc_price(
        Usage(
            input_tokens=1200 + 300 + 2048 + 4096,
            cache_read_tokens=4096,
            cache_write_tokens=2348,
            cache_write_5m_tokens=300,
            cache_write_1h_tokens=2048,
            output_tokens=640,
        ),
        model_ref="claude-sonnet-4-5",
        provider_id="anthropic",
    ).total_price
    assert price_usage(route, USAGE).cost_usd == expected


def test_one_hour_cache_writes_cost_more_than_five_minute_writes():
    route = resolve_model("anthropic/claude-haiku-4-5")
    five = price_usage(route, TokenUsage(cache_creation_5m_tokens=1_000_000))
    hour = price_usage(route, TokenUsage(cache_creation_1h_tokens=1_000_000))
    assert five.cost_usd == Decimal("1.25")
    assert hour.cost_usd == Decimal("2")


def test_a_prompt_over_200k_tokens_is_charged_at_the_long_context_tier():
    route = resolve_model("anthropic/claude-sonnet-4-5")
    short = price_usage(route, TokenUsage(input_tokens=200_000))
    long = price_usage(route, TokenUsage(input_tokens=200_001))
    assert short.rates["input_mtok"] == Decimal(3)
    assert long.rates["input_mtok"] == Decimal(6)
    assert long.cost_usd == recompute(TokenUsage(input_tokens=200_001), long.rates)


def test_catalog_prices_are_strings_per_million_tokens():
    prices = catalog_prices(resolve_model("openai/gpt-4o-mini"))
    assert prices["input_mtok"] == "0.15"
    assert prices["output_mtok"] == "0.6"
    assert prices["cache_read_mtok"] == "0.075"


def test_a_bare_id_resolves_to_the_one_model_that_has_it_and_an_ambiguous_one_lists_them():
    assert resolve_model("gpt-4o-mini").id == "openai/gpt-4o-mini"
    assert resolve_model("claude-haiku-4-5").id == "anthropic/claude-haiku-4-5"
    # Given a second provider serving the same model
    catalog = Catalog([*CATALOG.values(), ModelRoute("azure/gpt-4o-mini", "azure", "gpt-4o-mini")])
    with pytest.raises(InvalidRequest) as ambiguous:
        catalog.resolve("gpt-4o-mini")
    assert "openai/gpt-4o-mini" in ambiguous.value.message and "azure/gpt-4o-mini" in ambiguous.value.message
    # A full id still names exactly one
    assert catalog.resolve("openai/gpt-4o-mini").provider == "openai"
    with pytest.raises(ModelNotFound):
        catalog.resolve("gpt-0")


def test_server_side_web_searches_are_billed_per_search_at_the_models_rate():
    route = resolve_model("anthropic/claude-sonnet-4-5")
    usage = TokenUsage(input_tokens=1000, output_tokens=200, web_searches=3)

    price = price_usage(route, usage)

    expected = calc_price(
        Usage(input_tokens=1000, output_tokens=200, web_searches=3),
        model_ref="claude-sonnet-4-5",
        provider_id="anthropic",
    ).total_price
    assert (
        price.cost_usd
        == expected
        == price_usage(route, TokenUsage(input_tokens=1000, output_tokens=200)).cost_usd + Decimal("0.03")
    )
    assert price.rates["web_search_kcount"] == Decimal(10)
    assert recompute(usage, price.rates) == price.cost_usd
