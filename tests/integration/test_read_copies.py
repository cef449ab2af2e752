"""The read copies of keys, spend counters and balances, on moto with the template's tables: every
change of a secret reaches all its copies in the same write, counters' copies follow their item and
never go back to an older version, and a copy that could be behind is never trusted to refuse
credit."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3
import pytest

from meterway.accounts.dal import counter_copies, keys_table
from meterway.accounts.dal.balance_store import DynamoBalanceStore
from meterway.accounts.dal.key_admin_store import DynamoKeyAdminStore
from meterway.accounts.dal.key_store import key_item
from meterway.accounts.dal.quota_store import DynamoQuotaStore, ReservationRefused
from meterway.accounts.logic.key_secrets import hash_secret, mint_key
from meterway.accounts.logic.limits import plan_reservation
from meterway.accounts.models import ApiKey, KeyLimits, KeyRecord, RetiredSecret
from meterway.core.aws import deserialize, serialize
from meterway.core.clock import utc_iso
from meterway.core.dynamo import Update
from tests.integration.conftest import LoopbackDynamo

NOW = datetime(2026, 12, 2, 10, 0, 5, tzinfo=UTC)
LATER = utc_iso(NOW + timedelta(days=30))


class Reads:
    """A DynamoDB client that can answer BatchGetItem with an answer it gave before (a reader that
    read a moment ago)."""

    def __init__(self) -> None:
        self._client = boto3.client("dynamodb")
        self.batches: list[Any] = []
        self.replay: Any = None

    def batch_get_item(self, **arguments: Any) -> Any:
        if self.replay is not None:
            return self.replay
        self.batches.append(self._client.batch_get_item(**arguments))
        return self.batches[-1]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


class Keys:
    def __init__(self, aws_env: dict[str, str]):
        self.table = aws_env["KeysTable"]
        self.store = DynamoKeyAdminStore(self.table)
        self.client = boto3.client("dynamodb")

    def new(self, limits: KeyLimits | None = None, account: str = "acct") -> tuple[ApiKey, str]:
        key, secret = mint_key(account, "copied", limits=limits or KeyLimits())
        self.store.put(key, hash_secret(secret))
        stored = self.store.get_by_hash(hash_secret(secret))
        assert stored is not None
        return stored, hash_secret(secret)

    def item(self, key: dict[str, str]) -> dict[str, Any] | None:
        found = self.client.get_item(TableName=self.table, Key=serialize(key), ConsistentRead=True).get("Item")
        return deserialize(found) if found else None

    def copies(self, key_hash: str) -> list[dict[str, Any] | None]:
        """What each copy of a secret says (None where there is none)."""
        found = [self.item(copy) for copy in keys_table.secret_copy_keys(key_hash)]
        return [
            None if copy is None else {n: copy[n] for n in ("disabled", "valid_until") if n in copy} for copy in found
        ]

    def as_item(self, key_hash: str) -> list[dict[str, Any] | None]:
        """What each copy should say: what the secret's item says."""
        item = self.item(keys_table.secret_key(key_hash))
        state = None if item is None else {n: item[n] for n in ("disabled", "valid_until") if n in item}
        return [state] * keys_table.KEY_COPIES


@pytest.fixture
def keys(aws_env) -> Keys:
    return Keys(aws_env)


class Proxy:
    """The quota store as the proxy runs it (its calls over HTTP on an event loop), and the
    partition keys of the items it read."""

    def __init__(self, table: str, dynamo: LoopbackDynamo):
        self.dynamo = dynamo
        self.quotas = DynamoQuotaStore(table, dynamo=dynamo.client)

    def refused(self, key: ApiKey, key_hash: str) -> str | None:
        try:
            self.dynamo.run(self.quotas.reserve(plan_reservation(key, NOW), key_hash, NOW))
        except ReservationRefused as refusal:
            return refusal.cause
        return None

    @property
    def got(self) -> list[str]:
        return [json.loads(sent.body)["Key"]["pk"]["S"] for sent in self.dynamo.sent if sent.operation == "GetItem"]


@pytest.fixture
def proxy(keys, dynamo) -> Proxy:
    return Proxy(keys.table, dynamo)


def test_every_change_of_a_secret_reaches_all_its_copies(keys):
    key, key_hash = keys.new()
    assert keys.copies(key_hash) == keys.as_item(key_hash) == [{"disabled": False}] * keys_table.KEY_COPIES
    record = KeyRecord(key, key_hash)

    for fields in ({"disabled": True}, {"disabled": False, "valid_until": LATER}, {"valid_until": None}):
        keys.store.update(record, fields, {})
        assert keys.copies(key_hash) == keys.as_item(key_hash)
    assert keys.copies(key_hash)[0] == {"disabled": False}

    # Rotated with an overlap: the new secret has its copies; the old one's end with the overlap
    rotated, rotated_secret = mint_key("acct", "copied")
    rotated = dataclasses.replace(rotated, key_id=key.key_id)
    ends = utc_iso(NOW + timedelta(hours=1))
    keys.store.rotate(
        record, rotated, hash_secret(rotated_secret), retired=RetiredSecret(key_hash, "", ends, ends), keep=[], drop=[]
    )
    new_hash = hash_secret(rotated_secret)
    assert keys.copies(new_hash) == keys.as_item(new_hash) == [{"disabled": False}] * keys_table.KEY_COPIES
    assert keys.copies(key_hash) == keys.as_item(key_hash) == [{"disabled": False, "valid_until": ends}] * 8
    old_copy = keys.item(keys_table.secret_copy_key(key_hash, 3))
    assert old_copy is not None and old_copy["expires_at"] == keys.item(keys_table.secret_key(key_hash))["expires_at"]

    # Disabling the key reaches the retired secret's copies too; deleting it removes them all
    current = KeyRecord(rotated, new_hash, (key_hash,))
    keys.store.update(current, {"disabled": True}, {key_hash: {"disabled": True}})
    assert keys.copies(key_hash) == keys.as_item(key_hash) and keys.copies(key_hash)[0]["disabled"] is True
    keys.store.delete(current)
    assert keys.copies(key_hash) == keys.copies(new_hash) == [None] * keys_table.KEY_COPIES


def test_a_rotation_without_overlap_deletes_the_old_copies_and_the_proxy_refuses_the_old_secret(keys, proxy):
    key, key_hash = keys.new()
    rotated, rotated_secret = mint_key("acct", "copied")
    rotated = dataclasses.replace(rotated, key_id=key.key_id)
    keys.store.rotate(KeyRecord(key, key_hash), rotated, hash_secret(rotated_secret), retired=None, keep=[], drop=[])
    assert keys.copies(key_hash) == [None] * keys_table.KEY_COPIES
    # The proxy's warm cache still holds the old key: its copy says it is gone
    assert proxy.refused(key, key_hash) == "key"
    new = keys.store.get_by_hash(hash_secret(rotated_secret))
    assert new is not None and proxy.refused(new, hash_secret(rotated_secret)) is None


def test_a_secret_stored_before_copies_existed_is_read_from_its_item(keys, proxy):
    key, secret = mint_key("acct", "legacy")
    legacy = {name: value for name, value in key_item(key, hash_secret(secret)).items() if name != "secret_copies"}
    keys.client.put_item(TableName=keys.table, Item=serialize(legacy))
    found = keys.store.get_by_hash(hash_secret(secret))
    assert found is not None and found.secret_copies == 0
    assert proxy.refused(found, hash_secret(secret)) is None
    assert [pk for pk in proxy.got if pk.startswith("KEYHASH#")] == [keys_table.secret_key(hash_secret(secret))["pk"]]
    # A change reaches its item, and makes no copies of a secret that has none
    keys.store.update(KeyRecord(found, hash_secret(secret)), {"disabled": True}, {})
    assert keys.copies(hash_secret(secret)) == [None] * keys_table.KEY_COPIES
    assert proxy.refused(found, hash_secret(secret)) == "key"


def count(client: Any, table: str, counter: dict[str, str], **numbers: Any) -> None:
    """What the aggregator does to a counter: add, with a new version."""
    client.update_item(**Update(add={**numbers, "version": 1}).request(table, counter))


def test_counter_copies_follow_their_counter_and_never_go_back_to_an_older_version(keys):
    spend = keys_table.spend_key("key_busy", "ALL")
    reads = Reads()
    count(keys.client, keys.table, spend, spent_usd=Decimal("0.5"))
    assert counter_copies.spread(reads, keys.table, [(spend["pk"], spend["sk"])]) == keys_table.COUNTER_COPIES
    read_then = reads.batches[-1]
    count(keys.client, keys.table, spend, spent_usd=Decimal("0.25"))
    assert counter_copies.spread(reads, keys.table, [(spend["pk"], spend["sk"])]) == keys_table.COUNTER_COPIES
    # A slower spreader that read before the last count writes nothing over the later copies
    reads.replay = read_then
    assert counter_copies.spread(reads, keys.table, [(spend["pk"], spend["sk"])]) == 0
    copies = [keys.item(keys_table.counter_copy_key(spend, copy)) for copy in range(keys_table.COUNTER_COPIES)]
    assert {(copy["spent_usd"], copy["version"]) for copy in copies if copy} == {(Decimal("0.75"), 2)}
    assert len([copy for copy in copies if copy]) == keys_table.COUNTER_COPIES
    # Minute counters and balances of accounts without credit have none: the proxy does not read them
    minute = keys_table.minute_key("key_busy", "2026-12-02T10:00")
    balance = keys_table.balance_key("no-credit")
    count(keys.client, keys.table, minute, requests=1)
    count(keys.client, keys.table, balance, spent_usd=Decimal(1))
    assert counter_copies.spread(reads, keys.table, [(c["pk"], c["sk"]) for c in (minute, balance)]) == 0


def test_a_spend_copy_at_the_limit_refuses_without_reading_the_counter(keys, proxy):
    key, key_hash = keys.new(KeyLimits(spend_limit_usd=Decimal(1)))
    spend = keys_table.spend_key(key.key_id, "ALL")
    # Before anything is counted there is no copy: the counter is read instead (there is none yet)
    assert proxy.refused(key, key_hash) is None
    assert spend["pk"] in proxy.got
    count(keys.client, keys.table, spend, spent_usd=Decimal(1))
    counter_copies.spread(keys.client, keys.table, [(spend["pk"], spend["sk"])])
    proxy.dynamo.forget()
    assert proxy.refused(key, key_hash) == "spend"
    assert spend["pk"] not in proxy.got and any(pk.startswith(spend["pk"] + "#COPY") for pk in proxy.got)


def test_a_balance_copy_that_refuses_is_checked_against_the_item(keys, proxy):
    key, key_hash = keys.new(account="prepaid")
    balances = DynamoBalanceStore(keys.table)
    balance = keys_table.balance_key("prepaid")
    balances.add_topup(
        "prepaid", {"topup_id": "t1", "created_at": "2026-12-02T09:00:00.000Z", "amount_usd": Decimal(2)}
    )
    count(keys.client, keys.table, balance, spent_usd=Decimal(2))
    counter_copies.spread(keys.client, keys.table, [(balance["pk"], balance["sk"])])
    assert proxy.refused(key, key_hash) == "balance"
    # A top-up whose copies were not set yet: the copy still says the credit is used up, the item not
    keys.client.update_item(**Update(add={"credits_usd": Decimal(5), "version": 1}).request(keys.table, balance))
    proxy.dynamo.forget()
    assert proxy.refused(key, key_hash) is None
    assert proxy.got.count(balance["pk"]) == 1
    # A top-up through the store sets the copies at once: no more reads of the item
    balances.add_topup(
        "prepaid", {"topup_id": "t2", "created_at": "2026-12-02T09:30:00.000Z", "amount_usd": Decimal(1)}
    )
    proxy.dynamo.forget()
    assert proxy.refused(key, key_hash) is None
    assert balance["pk"] not in proxy.got
    copy = keys.item(keys_table.counter_copy_key(balance, 0))
    assert copy is not None and (copy["credits_usd"], copy["spent_usd"]) == (Decimal(8), Decimal(2))
