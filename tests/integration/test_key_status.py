"""``GET /v1/key``'s usage is the ledger's, for every key, limited or not: reserved and settled as
the proxy does it, on moto with the template's tables."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from meterway.accounts.dal.key_store import DynamoKeyStore
from meterway.accounts.dal.quota_store import DynamoQuotaStore
from meterway.accounts.logic.key_secrets import hash_secret, mint_key
from meterway.accounts.logic.key_status import read_key_status
from meterway.accounts.logic.limits import reserve
from meterway.accounts.models import KeyLimits
from meterway.core.aws import credentials
from meterway.core.dynamo_http import DynamoHttp
from meterway.ledger.dal.ledger_store import DynamoLedgerStore
from meterway.ledger.logic.record_usage import new_request_id, settle
from meterway.ledger.models import TokenUsage, UsageRecord
from tests.integration.conftest import MOTO_REGION, LoopbackDynamo, count_ledger

NOW = datetime.now(UTC).replace(second=5, microsecond=0)
SPENDS = [Decimal("0.000123"), Decimal("0.0045"), Decimal("0.01")]


class Recording(DynamoHttp):
    """The proxy's DynamoDB client, keeping each call it is asked to make: the operation, the table
    and the item's partition key."""

    def __init__(self, moto_url: str):
        super().__init__(moto_url, MOTO_REGION, credentials)
        self.calls: list[tuple[str, str, str]] = []

    async def call(self, operation: str, request: Mapping[str, Any]) -> dict[str, Any]:
        key = request.get("Key", {})
        self.calls.append((operation, request.get("TableName", ""), key.get("pk", {}).get("S", "")))
        return await super().call(operation, request)


def item_read(pk: str) -> str:
    """Which item of the key's or account's a partition key names."""
    if pk.startswith("KEYHASH#"):
        return "key copy" if pk.count("#") == 2 else "key"
    return "balance copy" if "#COPY" in pk else "balance"


def run_requests(
    aws_env: dict[str, str], dynamo: LoopbackDynamo, limits: KeyLimits
) -> tuple[dict[str, Any], list[dict[str, Any]], Recording]:
    """Three paid requests of a new key with ``limits``, this minute, reserved and settled over
    the proxy's client (``dynamo``): its status and its records."""
    table = aws_env["KeysTable"]
    minted, secret = mint_key("acct", "status", limits=limits)
    DynamoKeyStore(table).put(minted, hash_secret(secret))
    key = DynamoKeyStore(table).get_by_hash(hash_secret(secret))  # as the proxy finds it
    assert key is not None
    client = Recording(dynamo.url)
    quotas = DynamoQuotaStore(table, dynamo=client)
    ledger = DynamoLedgerStore(aws_env["LedgerTable"], dynamo=client)
    records = []
    for index, cost in enumerate(SPENDS):
        at = NOW + timedelta(seconds=index)
        reservation, _ = dynamo.run(reserve(quotas, key, hash_secret(secret), at))
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
        assert dynamo.run(settle(record, reservation, ledger, None, 0)) == "written"
        records.append(ledger.get(record.request_id))
    dynamo.run(client.aclose())
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
def test_a_keys_usage_equals_its_ledger_with_or_without_limits(aws_env, dynamo, limits):
    status, records, _ = run_requests(aws_env, dynamo, limits)

    assert status["usage"] == {
        "spend_usd": str(sum((record["cost_usd"] for record in records), Decimal(0))),
        "requests_this_minute": len(records),
        "tokens_this_minute": sum(record["total_tokens"] for record in records),
    }


def test_a_key_without_limits_adds_nothing_before_the_upstream_call(aws_env, dynamo):
    # Given a key without limits, in an account without credit, its counters are kept by its
    # records' settlements only
    _, records, client = run_requests(aws_env, dynamo, KeyLimits())
    keys_table = aws_env["KeysTable"]
    reserving = [call for call in client.calls if call[1] == keys_table]
    # Then each reservation reads a copy of the key's item, and the first one a copy of the account's
    # balance, then (there is none: no credit) its item, to learn it has no credit: the next ones
    # skip it. Nothing is written and no transaction is made
    assert [operation for operation, _, _ in reserving] == ["GetItem"] * (len(records) + 2)
    read = sorted(item_read(pk) for _, _, pk in reserving)
    assert read == ["balance", "balance copy", "key copy", "key copy", "key copy"]
    # And the settlement is one put: the record carries its counters (spend, minute, balance)
    assert [operation for operation, _, _ in client.calls].count("PutItem") == len(records)
    assert all(len(record["counters"]) == 3 for record in records)
