import asyncio
from datetime import UTC, datetime
from decimal import Decimal

from meterway.accounts.logic.key_secrets import mint_key
from meterway.accounts.models import ApiKey
from meterway.ledger.logic.record_usage import new_request_id, save_settlement
from meterway.ledger.models import TokenUsage, UsageRecord
from tests.fakes import InMemoryLedger, InMemorySpill

KEY = ApiKey(key_id="key_1", account_id="acct", name="ci", member="alice")


def a_record(request_id: str | None = None) -> UsageRecord:
    return UsageRecord(
        request_id=request_id or new_request_id(),
        created_at=datetime(2026, 11, 23, 23, 59, 59, 999_000, tzinfo=UTC),
        key=KEY,
        model="openai/gpt-4o-mini",
        provider="openai",
        endpoint="chat.completions",
        streamed=True,
        tokens=TokenUsage(input_tokens=10, output_tokens=5, cache_read_tokens=1024),
        cost_usd=Decimal("0.0000798"),
        prices={"input_mtok": Decimal("0.15")},
    )


def test_item_has_every_ledger_field_with_disjoint_token_classes():
    item = a_record("gen-1").to_item()
    assert item["created_at"] == "2026-11-23T23:59:59.999Z"
    assert item["created_sk"] == "2026-11-23T23:59:59.999Z#gen-1"
    assert item["total_tokens"] == 10 + 5 + 1024
    assert item["cost_usd"] == Decimal("0.0000798")
    assert item["member"] == "alice"
    for field in [
        "request_id",
        "account_id",
        "key_id",
        "key_name",
        "model",
        "provider",
        "endpoint",
        "streamed",
        "status",
        "input_tokens",
        "output_tokens",
        "reasoning_tokens",
        "cache_creation_tokens",
        "cache_creation_5m_tokens",
        "cache_creation_1h_tokens",
        "cache_read_tokens",
        "total_tokens",
        "cost_usd",
        "prices",
        "latency_ms",
    ]:
        assert field in item
    assert "expires_at" not in item


def test_retention_sets_a_ttl():
    item = a_record().to_item(retention_days=30)
    assert item["expires_at"] == int(datetime(2026, 12, 23, 23, 59, 59, tzinfo=UTC).timestamp())


def test_a_record_is_written_once_even_when_saved_twice():
    ledger = InMemoryLedger()
    item = a_record().to_item()
    assert asyncio.run(save_settlement(item, ledger, None)) == "written"
    assert asyncio.run(save_settlement(item, ledger, None)) == "duplicate"
    assert len(ledger.items) == 1


def test_a_ledger_outage_spills_the_record_instead_of_losing_it():
    ledger, spill = InMemoryLedger(failures=1), InMemorySpill()
    item = a_record().to_item()
    assert asyncio.run(save_settlement(item, ledger, spill)) == "spilled"
    assert spill.sent == [item]


def test_when_ledger_and_spill_both_fail_the_record_is_logged_whole(caplog):
    item = a_record("gen-lost").to_item()
    assert asyncio.run(save_settlement(item, InMemoryLedger(failures=1), InMemorySpill(broken=True))) == "unsaved"
    unsaved = [entry for entry in caplog.records if entry.getMessage() == "usage record not saved"]
    assert len(unsaved) == 1
    assert '"request_id": "gen-lost"' in unsaved[0].usage_record
    assert '"cost_usd": "0.0000798"' in unsaved[0].usage_record


def test_minted_secrets_have_a_recognisable_prefix_and_are_not_in_the_key():
    key, secret = mint_key("acct", "prod", kind="api")
    assert secret.startswith("mw-live-")
    assert len(secret) > 40
    assert secret not in repr(key)
    assert key.display_prefix == secret[:14]
