"""A function's settings come from its ``MW_`` environment variables, checked at start-up."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from meterway.core.container import container
from meterway.core.settings import ConfigurationError, ProxySettings, SecretText, fields_of, load_settings

TABLES = {"MW_KEYS_TABLE": "keys", "MW_LEDGER_TABLE": "ledger", "MW_SPILL_QUEUE_URL": "https://queue.invalid/spill"}


@pytest.fixture(autouse=True)
def fresh_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in TABLES.items():
        monkeypatch.setenv(name, value)
    container.reset()
    yield
    container.reset()


def test_settings_are_read_from_their_variables_typed_and_checked(monkeypatch):
    monkeypatch.setenv("MW_UPSTREAM_RETRIES", "2")
    monkeypatch.setenv("mw_anthropic_version", "2024-01-01")  # names match whatever their case
    monkeypatch.setenv("MW_PROVIDER_API_KEYS", '{"groq_api_key": "gsk-1"}')
    monkeypatch.setenv("MW_NOT_A_SETTING", "ignored")

    settings = load_settings(ProxySettings)

    assert (settings.keys_table, settings.upstream_retries, settings.anthropic_version) == ("keys", 2, "2024-01-01")
    assert settings.provider_api_keys == {"groq_api_key": SecretText("gsk-1")}
    assert settings.key_cache_ttl_seconds == fields_of(ProxySettings)["key_cache_ttl_seconds"].default
    assert "gsk-1" not in repr(settings)  # a secret never shows in a log line of the settings


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("MW_UPSTREAM_RETRIES", "9", "MW_UPSTREAM_RETRIES: Expected `int` <= 5"),
        ("MW_MAX_BODY_BYTES", "lots", "MW_MAX_BODY_BYTES: Expected `int`, got `str`"),
        ("MW_UPSTREAM_CONNECT_TIMEOUT_S", "0", "MW_UPSTREAM_CONNECT_TIMEOUT_S: Expected `float` > 0.0"),
        ("MW_PROVIDER_API_KEYS", '{"groq_api_key": 1}', "MW_PROVIDER_API_KEYS: Expected text, got `int`"),
        ("MW_PROVIDER_API_KEYS", "groq_api_key=gsk-1", "MW_PROVIDER_API_KEYS: not JSON"),
    ],
)
def test_a_bad_value_stops_the_function_and_is_named(monkeypatch, variable, value, named):
    monkeypatch.setenv(variable, value)

    with pytest.raises(ConfigurationError, match=f"ProxySettings cannot start: {named}"):
        load_settings(ProxySettings)
