"""Ledger records for analytics tests: the same items the proxy writes, with chosen times."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

from meterway.accounts.models import ApiKey
from meterway.ledger.logic.record_usage import new_request_id
from meterway.ledger.models import Status, TokenUsage, UsageRecord

MODELS = ("openai/gpt-4o-mini", "anthropic/claude-sonnet-4-5", "openai/o4-mini")
KEYS = (
    ApiKey(key_id="key_a", account_id="acct", name="prod", member="alice"),
    ApiKey(key_id="key_b", account_id="acct", name="staging", member="bob"),
    ApiKey(key_id="key_c", account_id="acct", name="ci"),
)
# End users and apps as clients name them, or not at all: with the sort key's separator in one, and
# one longer than a rollup cell keeps (300 two-byte characters: its cells hold the first 256 bytes).
USERS = (None, "alice@example.com", "team#7", "é" * 300)
APPS = (None, "support-bot", "evals")


def ledger_item(
    created_at: datetime,
    *,
    model: str = MODELS[0],
    key: ApiKey = KEYS[0],
    usage: TokenUsage | None = None,
    cost: Decimal = Decimal("0.000123"),
    status: Status = "ok",
    user: str | None = None,
    app: str | None = None,
) -> dict[str, Any]:
    """A record of a request served (``ok``, or ``partial``: cut short) or of one that failed
    (``error``: no tokens, no cost, as the proxy records it)."""
    if status == "error":
        usage, cost = TokenUsage(), Decimal(0)
    return UsageRecord(
        request_id=new_request_id(),
        created_at=created_at,
        key=key,
        model=model,
        provider=model.split("/")[0],
        endpoint="chat.completions",
        streamed=False,
        status=status,
        tokens=usage or TokenUsage(input_tokens=10, output_tokens=20),
        cost_usd=cost,
        error_code="upstream_error" if status == "error" else None,
        upstream_status=500 if status == "error" else None,
        user=user,
        app=app,
    ).to_item()


usages = st.builds(
    TokenUsage,
    input_tokens=st.integers(0, 5000),
    output_tokens=st.integers(0, 3000),
    reasoning_tokens=st.integers(0, 100),
    cache_creation_5m_tokens=st.integers(0, 2000),
    cache_creation_1h_tokens=st.integers(0, 2000),
    cache_read_tokens=st.integers(0, 4000),
)
# Mostly served, some cut short, some failed.
STATUSES: tuple[Status, ...] = ("ok", "ok", "ok", "partial", "error")
statuses: st.SearchStrategy[Status] = st.sampled_from(STATUSES)
costs = st.decimals(min_value=Decimal(0), max_value=Decimal(2), places=9, allow_nan=False, allow_infinity=False)
