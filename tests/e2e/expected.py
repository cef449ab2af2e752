"""What a ledger record should say, computed from what the fake upstream reported and priced with
genai-prices directly: the gateway's own pricing code is not used to check itself."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from genai_prices import Usage, calc_price


def anthropic_price(model: str, usage: dict[str, Any], provider_id: str = "anthropic") -> Decimal:
    """The price of an Anthropic usage block (Anthropic's own, or Claude's on Bedrock: ``aws``)."""
    writes = usage.get("cache_creation") or {}
    five, hour = writes.get("ephemeral_5m_input_tokens", 0), writes.get("ephemeral_1h_input_tokens", 0)
    reads = usage.get("cache_read_input_tokens") or 0
    return calc_price(
        Usage(
            input_tokens=usage["input_tokens"] + five + hour + reads,
            cache_read_tokens=reads,
            cache_write_tokens=five + hour,
            cache_write_5m_tokens=five,
            cache_write_1h_tokens=hour,
            output_tokens=usage["output_tokens"],
        ),
        model_ref=model,
        provider_id=provider_id,
    ).total_price


def assert_anthropic_usage_recorded(
    record: dict[str, Any], usage: dict[str, Any], model: str, provider_id: str = "anthropic"
) -> None:
    """The record holds the Anthropic usage block's tokens, each class apart, and their price."""
    writes = usage.get("cache_creation") or {}
    assert record["input_tokens"] == usage["input_tokens"]
    assert record["output_tokens"] == usage["output_tokens"] > 0
    assert record["cache_read_tokens"] == (usage.get("cache_read_input_tokens") or 0)
    assert record["cache_creation_5m_tokens"] == writes.get("ephemeral_5m_input_tokens", 0)
    assert record["cache_creation_1h_tokens"] == writes.get("ephemeral_1h_input_tokens", 0)
    assert Decimal(str(record["cost_usd"])) == anthropic_price(model, usage, provider_id) > 0
