"""The providers file: what it adds to the catalog and the registry, how its models are priced,
where each provider's key comes from, and how a file that is not valid is refused."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from devstack.stack import providers_environment
from meterway.core.errors import InvalidRequest, ModelNotFound
from meterway.core.settings import ProxySettings, SecretText
from meterway.ledger.models import TokenUsage
from meterway.proxy.logic.pricing import price_usage
from meterway.proxy.logic.providers_config import ProvidersFileError, load_catalog, parse_providers
from meterway.proxy.providers import build_providers

INHOUSE = {
    "base_url": "https://llm.internal.example/v1",
    "api_key_secret": "inhouse_key",
    "models": [{"id": "coder-7b", "prices": {"input_mtok": "0.10", "output_mtok": "0.30", "cache_read_mtok": "0.01"}}],
}
GROQ = {
    "base_url": "https://api.groq.com/openai/v1",
    "models": [{"id": "llama-3.3-70b-versatile", "prices": {"provider": "groq"}}],
}


def file_of(**providers: Any) -> str:
    return json.dumps({"providers": providers})


def settings(**overrides: Any) -> ProxySettings:
    return ProxySettings(keys_table="k", ledger_table="l", spill_queue_url="https://q.invalid", **overrides)


def test_the_files_models_join_the_catalog_as_provider_slash_model():
    catalog = load_catalog(parse_providers(file_of(inhouse=INHOUSE, groq=GROQ)))

    assert catalog.resolve("inhouse/coder-7b").upstream_model == "coder-7b"
    assert catalog.resolve("llama-3.3-70b-versatile").id == "groq/llama-3.3-70b-versatile"
    assert catalog.resolve("openai/gpt-4o-mini").provider == "openai"  # the built-in ones stay


def test_explicit_rates_price_each_token_class_and_a_class_without_a_rate_is_input():
    route = load_catalog(parse_providers(file_of(inhouse=INHOUSE))).resolve("inhouse/coder-7b")
    usage = TokenUsage(input_tokens=1_000, output_tokens=500, cache_read_tokens=2_000, cache_creation_5m_tokens=400)

    price = price_usage(route, usage)

    # input and cache writes at 0.10, output at 0.30, cache reads at 0.01, per million
    expected = (Decimal(1_000 + 400) * Decimal("0.10") + 500 * Decimal("0.30") + 2_000 * Decimal("0.01")) / 1_000_000
    assert price.cost_usd == expected
    assert price.rates["cache_write_5m_mtok"] == Decimal("0.10")


def test_a_rate_is_read_exactly_as_written_not_through_a_float():
    # A JSON number with more digits than a float holds
    model = '{"id": "m", "prices": {"input_mtok": 0.10000000000000000001, "output_mtok": 0.3}}'
    text = '{"providers": {"inhouse": {"base_url": "https://llm.internal.example/v1", "models": [' + model + "]}}}"

    route = load_catalog(parse_providers(text)).resolve("inhouse/m")

    assert price_usage(route, TokenUsage(input_tokens=10**6)).cost_usd == Decimal("0.10000000000000000001")


def test_a_reference_prices_the_model_as_genai_prices_does():
    route = load_catalog(parse_providers(file_of(groq=GROQ))).resolve("groq/llama-3.3-70b-versatile")

    price = price_usage(route, TokenUsage(input_tokens=1_000_000, output_tokens=1_000_000))

    assert price.cost_usd == Decimal("0.59") + Decimal("0.79")


@pytest.mark.parametrize(
    ("providers", "said"),
    [
        ({"openai": GROQ}, "openai is built in"),
        ({"Bad_Name": GROQ}, "providers.Bad_Name"),
        ({"acme": {**GROQ, "base_url": "http://acme.example/v1"}}, "must be an https:// URL"),
        ({"acme": {**GROQ, "region": "eu"}}, "providers.acme: Object contains unknown field `region`"),
        ({"acme": {**GROQ, "models": []}}, "providers.acme.models"),
        (
            {"acme": {**INHOUSE, "models": [{"id": "m", "prices": {"input_mtok": "-1", "output_mtok": "1"}}]}},
            "input_mtok",
        ),
        (
            {"acme": {**GROQ, "models": [{"id": "gpt-9", "prices": {"provider": "groq"}}]}},
            "acme/gpt-9: genai-prices has no model 'gpt-9'",
        ),
        # A rate the ledger could not store (DynamoDB keeps 38 digits, exponents to 125)
        (
            {"acme": {**INHOUSE, "models": [{"id": "m", "prices": {"input_mtok": 1e300, "output_mtok": 1}}]}},
            "providers.acme.models[0]: prices: input_mtok: must be a number of USD per million tokens",
        ),
        ({"acme": {**INHOUSE, "models": [{"id": "m", "prices": {"input_mtok": 1}}]}}, "output_mtok"),
        ({"acme": {**GROQ, "models": [{"id": "m", "prices": {"provider": "groq", "rate": 1}}]}}, "`rate`"),
    ],
)
def test_a_file_that_is_not_valid_is_refused_saying_where(providers: dict[str, Any], said: str):
    with pytest.raises(ProvidersFileError) as refused:
        load_catalog(parse_providers(file_of(**providers)))

    assert said in str(refused.value)


def test_a_providers_key_comes_from_the_secret_entry_it_names_else_from_the_local_keys():
    file = parse_providers(file_of(inhouse=INHOUSE, groq=GROQ))
    local = settings(provider_api_keys={"groq_api_key": SecretText("gsk-local"), "inhouse_key": SecretText("local")})

    providers = build_providers(local, {"inhouse_key": "from-the-secret"}, file)
    catalog = load_catalog(file)

    inhouse = providers.for_route(catalog.resolve("inhouse/coder-7b"))
    groq = providers.for_route(catalog.resolve("groq/llama-3.3-70b-versatile"))
    assert inhouse.endpoint("chat", stream=False, client_headers={}) == (
        "https://llm.internal.example/v1/chat/completions",
        {"accept": "application/json", "authorization": "Bearer from-the-secret"},
    )
    assert groq.endpoint("chat", stream=True, client_headers={})[1]["authorization"] == "Bearer gsk-local"


def test_a_provider_that_does_not_speak_responses_is_a_400_for_responses_clients_and_reached_by_the_others():
    file = parse_providers(file_of(groq=GROQ))
    provider = build_providers(settings(), {}, file).for_route(
        load_catalog(file).resolve("groq/llama-3.3-70b-versatile")
    )

    with pytest.raises(InvalidRequest):
        provider.bridge("responses")
    assert provider.bridge("messages").upstream == "chat"


def test_the_local_stack_fills_in_its_fake_upstream_and_reads_each_key_from_name_api_key():
    text = file_of(inhouse={**INHOUSE, "base_url": "${MW_FAKE_UPSTREAM_URL}/v1"}, groq=GROQ)

    env = providers_environment(text, "http://127.0.0.1:4321", {"INHOUSE_API_KEY": "k1", "OTHER": "x"})

    assert json.loads(env["MW_PROVIDERS"])["providers"]["inhouse"]["base_url"] == "http://127.0.0.1:4321/v1"
    assert json.loads(env["MW_PROVIDER_API_KEYS"]) == {"inhouse_key": "k1"}


def test_only_the_bedrock_models_whose_arns_the_role_may_invoke_are_served():
    arns = "arn:aws:bedrock:*::foundation-model/amazon.nova-pro-v1:0"
    providers = build_providers(settings(bedrock_model_arns=arns), {})
    catalog = load_catalog(parse_providers(""))

    assert providers.for_route(catalog.resolve("bedrock/amazon.nova-pro-v1:0")).name == "bedrock"
    claude = catalog.resolve("bedrock/us.anthropic.claude-sonnet-4-5-20250929-v1:0")
    assert not providers.serves(claude)
    with pytest.raises(ModelNotFound):
        providers.for_route(claude)
    # Without the setting (the local stack) every Bedrock model of the catalog is served
    assert build_providers(settings(), {}).serves(claude)
