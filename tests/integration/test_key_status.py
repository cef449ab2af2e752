"""``GET /v1/key``'s usage is the ledger's, for every key, limited or not: reserved and settled as
the proxy does it, on moto with the template's tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3
import pytest

from meterway.accounts.dal.key_store import DynamoKeyStore
from meterway.accounts.dal.quota_store import DynamoQuotaStore
from meterway.accounts.logic.key_secrets import hash_secret, mint_key
from meterway.accounts.logic.key_status import read_key_status
from meterway.accounts.logic.limits import reserve
from meterway.accounts.models import KeyLimits
from meterway.ledger.dal.ledger_store import DynamoLedgerStore
from meterway.ledger.logic.record_usage import new_request_id, settle
from meterway.ledger.models import TokenUsage, UsageRecord
from tests.integration.conftest import count_ledger

NOW = datetime.now(UTC).replace(second=5, microsecond=0)
SPENDS = [Decimal("0.000123"), Decimal("0.0045"), Decimal("0.01")]


class Recording:
    """A DynamoDB client that keeps each transaction it is asked to write."""

    def __init__(self, client: Any):
        self._client = client
        self.transactions: list[list[dict[str, Any]]] = []

    def transact_write_items(self, **arguments: Any) -> Any:
        self.transactions.append(arguments["TransactItems"])
        return self._client.transact_write_items(**arguments)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def run_requests(aws_env: dict[str, str], limits: KeyLimits) -> tuple[dict[str, Any], list[dict[str, Any]], Recording]:
    """Three paid requests of a new key with ``limits``, this minute: its status and its records."""
    table = aws_env["KeysTable"]
    key, secret = mint_key("acct", "status", limits=limits)
    DynamoKeyStore(table).put(key, hash_secret(secret))
    client = Recording(boto3.client("dynamodb"))
    quotas = DynamoQuotaStore(table, client=client)
    ledger = DynamoLedgerStore(aws_env["LedgerTable"], client=client)
    records = []
    for index, cost in enumerate(SPENDS):
        reservation = reserve(quotas, key, hash_secret(secret), NOW + timedelta(seconds=index))
        record = UsageRecord(
            request_id=new_request_id(),
            created_at=NOW,
            key=key,
            model="openai/gpt-4o-mini",
            provider="openai",
            endpoint="chat.completions",
            streamed=False,
            tokens=TokenUsage(input_tokens=100 * (index + 1), output_tokens=7),
            cost_usd=cost,
        )
        assert settle(record, reservation, ledger, None, 0) == "written"
        records.append(ledger.get(record.request_id))
    count_ledger(aws_env)  # the aggregator adds each record's settlement to the counters
    return read_key_status(quotas, key, NOW + timedelta(seconds=30)), records, client


@pytest.mark.parametrize(
    "limits",
    [
        KeyLimits(),
        KeyLimits(allowed_models=("openai/gpt-4o-mini",)),
        KeyLimits(spend_limit_usd=Decimal(5)),
        KeyLimits(requests_per_minute=100),
        KeyLimits(spend_limit_usd=Decimal(5), spend_period="daily", tokens_per_minute=100_000),
    ],
)
def test_a_keys_usage_equals_its_ledger_with_or_without_limits(aws_env, limits):
    status, records, _ = run_requests(aws_env, limits)

    assert status["usage"] == {
        "spend_usd": str(sum((record["cost_usd"] for record in records), Decimal(0))),
        "in_flight": 0,
        "requests_this_minute": len(records),
        "tokens_this_minute": sum(record["total_tokens"] for record in records),
    }


def test_a_key_without_limits_adds_nothing_before_the_upstream_call(aws_env):
    # Given a key without limits, its counters are kept by its records' settlements only
    _, records, client = run_requests(aws_env, KeyLimits())
    # Then each reservation is what it was, the key's check and the account's credit; and the
    # settlement is no transaction: the record carries its counters (spend, minute, balance)
    assert [len(items) for items in client.transactions] == [2] * len(records)
    assert all(len(record["counters"]) == 3 for record in records)
