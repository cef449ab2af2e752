"""A reservation's checks, on moto with the template's tables: single-item requests only, each
limit refusing with its own cause, nothing left held after a refusal, minute shards for keys that
may send faster than one item takes writes, and the account's credit read only where it exists."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3
import pytest

from meterway.accounts.dal import counter_copies, keys_table
from meterway.accounts.dal.balance_store import DynamoBalanceStore
from meterway.accounts.dal.key_admin_store import DynamoKeyAdminStore
from meterway.accounts.dal.key_store import DynamoKeyStore
from meterway.accounts.dal.quota_store import DynamoQuotaStore, ReservationRefused
from meterway.accounts.logic.key_secrets import hash_secret, mint_key
from meterway.accounts.logic.limits import plan_reservation
from meterway.accounts.models import ApiKey, KeyLimits, KeyRecord
from meterway.core.dynamo import Update
from tests.integration.conftest import LoopbackDynamo

NOW = datetime(2026, 12, 2, 10, 0, 5, tzinfo=UTC)


class Account:
    """The quota store as the proxy runs it: its calls over HTTP on an event loop (``dynamo``)."""

    def __init__(self, aws_env: dict[str, str], dynamo: LoopbackDynamo, *, credit_ttl_s: float = 30.0):
        self.table = aws_env["KeysTable"]
        self.dynamo = dynamo
        self.quotas = DynamoQuotaStore(self.table, credit_ttl_s=credit_ttl_s, dynamo=dynamo.client)

    def key(self, limits: KeyLimits | None = None, account: str = "acct") -> tuple[ApiKey, str]:
        """A new key as the proxy finds it by its secret (with the number of its read copies)."""
        key, secret = mint_key(account, "checked", limits=limits or KeyLimits())
        store = DynamoKeyStore(self.table)
        store.put(key, hash_secret(secret))
        stored = store.get_by_hash(hash_secret(secret))
        assert stored is not None and stored.secret_copies == keys_table.KEY_COPIES
        return stored, hash_secret(secret)

    def item(self, key: dict[str, str]) -> dict[str, Any]:
        found = boto3.client("dynamodb").get_item(TableName=self.table, Key={n: {"S": v} for n, v in key.items()})
        return found.get("Item", {})

    def add(self, key: dict[str, str], **numbers: Any) -> None:
        """Count ``numbers`` into a counter as the aggregator does: a new version, then its copies."""
        client = boto3.client("dynamodb")
        client.update_item(**Update(add={**numbers, "version": 1}).request(self.table, key))
        counter_copies.spread(client, self.table, [(key["pk"], key["sk"])])


@pytest.fixture
def account(aws_env, dynamo) -> Account:
    return Account(aws_env, dynamo)


def refused_cause(account: Account, key: ApiKey, key_hash: str, at: datetime = NOW, shard: int = 0) -> str | None:
    try:
        account.dynamo.run(account.quotas.reserve(plan_reservation(key, at, shard), key_hash, at))
    except ReservationRefused as refused:
        return refused.cause
    return None


def test_a_disabled_deleted_or_expired_key_is_refused_whatever_it_says_of_itself(account):
    key, key_hash = account.key()
    admin = DynamoKeyAdminStore(account.table)
    assert refused_cause(account, key, key_hash) is None
    # Disabled through the management API's store (the proxy's cached copy still says enabled)
    admin.update(KeyRecord(key, key_hash), {"disabled": True}, {})
    assert refused_cause(account, key, key_hash) == "key"
    # Never stored, or expired a second ago
    assert refused_cause(account, key, "0" * 64) == "key"
    expiring, expiring_hash = account.key()
    admin.update(KeyRecord(expiring, expiring_hash), {"valid_until": "2026-12-02T10:00:04.000Z"}, {})
    assert refused_cause(account, expiring, expiring_hash) == "key"
    deleted, deleted_hash = account.key()
    admin.delete(KeyRecord(deleted, deleted_hash))
    assert refused_cause(account, deleted, deleted_hash) == "key"


def test_the_spend_limit_refuses_once_the_counted_spend_reaches_it_and_writes_nothing(account):
    key, key_hash = account.key(KeyLimits(spend_limit_usd=Decimal("1.00")))
    spend = keys_table.spend_key(key.key_id, "ALL")
    account.add(spend, spent_usd=Decimal("0.99"))
    account.dynamo.forget()
    assert refused_cause(account, key, key_hash) is None
    account.add(spend, spent_usd=Decimal("0.01"))
    assert refused_cause(account, key, key_hash) == "spend"
    # Reads only: the key, the spend counter, the account's balance (its credit not known yet)
    assert sorted(set(account.dynamo.operations)) == ["GetItem"]


def test_credit_used_up_refuses_and_an_account_without_credit_is_read_once_a_ttl(aws_env, dynamo):
    account = Account(aws_env, dynamo, credit_ttl_s=0.0)
    key, key_hash = account.key(account="prepaid")
    assert refused_cause(account, key, key_hash) is None
    DynamoBalanceStore(account.table).add_topup(
        "prepaid", {"topup_id": "t1", "created_at": "2026-12-02T09:00:00.000Z", "amount_usd": Decimal("2")}
    )
    account.add(keys_table.balance_key("prepaid"), spent_usd=Decimal("2"))
    # With a TTL of 0 the next request learns of the credit at once, and finds it used up
    assert refused_cause(account, key, key_hash) == "balance"

    cached = Account(aws_env, dynamo, credit_ttl_s=3600)
    free, free_hash = cached.key(account="free")
    dynamo.forget()
    for _ in range(3):
        assert refused_cause(cached, free, free_hash) is None
    # An account known to have no credit is not read again within the TTL: 3 key reads, and once a
    # balance copy (there is none: no credit) then the balance item
    assert dynamo.operations == ["GetItem"] * 5


def test_a_refusal_takes_back_the_request_it_held_on_its_minute(account):
    key, key_hash = account.key(KeyLimits(spend_limit_usd=Decimal("1"), requests_per_minute=10))
    account.add(keys_table.spend_key(key.key_id, "ALL"), spent_usd=Decimal("1"))
    minute = keys_table.minute_key(key.key_id, "2026-12-02T10:00")

    assert refused_cause(account, key, key_hash) == "spend"

    assert account.item(minute)["requests"]["N"] == "0"


def test_the_requests_per_minute_limit_is_exact_and_a_full_minute_is_refused_without_a_write(account):
    key, key_hash = account.key(KeyLimits(requests_per_minute=3))
    assert [refused_cause(account, key, key_hash) for _ in range(5)] == [None, None, None, "minute", "minute"]
    # The fifth was refused by what this instance learnt from the fourth: no write for it
    assert account.dynamo.operations.count("UpdateItem") == 4
    # The next minute starts afresh
    assert refused_cause(account, key, key_hash, NOW + timedelta(minutes=1)) is None


def test_a_key_allowed_more_requests_than_one_item_takes_writes_counts_its_minutes_in_shards(account):
    # 600,000 a minute is 10,000 a second: 25 shards of 400 writes a second, each allowed 24,000
    limits = KeyLimits(requests_per_minute=600_000)
    key, key_hash = account.key(limits)
    reservation = plan_reservation(key, NOW)
    assert reservation.minute_shards == 25
    assert keys_table.shard_share(600_000, 25) == 24_000
    shard_7 = keys_table.minute_key(key.key_id, "2026-12-02T10:00", 7)
    account.add(shard_7, requests=23_999)
    assert refused_cause(account, key, key_hash, shard=7) is None
    assert refused_cause(account, key, key_hash, shard=7) == "minute"
    assert refused_cause(account, key, key_hash, shard=8) is None
    # GET /v1/key sums the shards
    state = account.quotas.counters(reservation)
    assert state["minute"]["requests"] == 24_001
    # A key whose limit one item can take stays in one shard, exact
    assert plan_reservation(account.key(KeyLimits(requests_per_minute=24_000))[0], NOW).minute_shards == 1
