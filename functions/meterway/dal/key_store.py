"""Where keys live: looked up by the SHA-256 of their secret with one GetItem."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from cachetools import TTLCache

from meterway.dal.aws import AwsResource
from meterway.dal.member_store import member_key
from meterway.dal.transactions import TransactionCancelled, transact
from meterway.errors import StorageError
from meterway.logic.keys import ApiKey, KeyLimits

UNAVAILABLE = "The key store is unavailable; try again."

_KEY_FIELDS = (
    "key_id",
    "account_id",
    "name",
    "kind",
    "member",
    "disabled",
    "created_at",
    "display_prefix",
    "valid_until",
)


class KeyStore(Protocol):
    def get_by_hash(self, key_hash: str) -> ApiKey | None:
        """The key whose secret hashes to ``key_hash``, or None."""

    def put(self, key: ApiKey, key_hash: str) -> None:
        """Store a new key under its hash; an existing hash is an error."""

    def list_keys(self, account_id: str) -> list[ApiKey]:
        """Every key of an account, oldest first."""

    def get_key(self, account_id: str, key_id: str) -> ApiKey | None:
        """One key of an account by its id; a key of another account is None."""


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A key as the table holds it: its current secret's hash item (never shown to anyone) and
    the hashes of rotated-out secrets that may still be in their overlap."""

    key: ApiKey
    key_hash: str
    retired_hashes: tuple[str, ...] = ()


class MemberUnavailable(Exception):
    """The key's member does not exist (``exists`` False) or is disabled."""

    def __init__(self, member_id: str, *, exists: bool):
        super().__init__(member_id)
        self.member_id = member_id
        self.exists = exists


def key_item(key: ApiKey, key_hash: str) -> dict[str, Any]:
    """The hash item of a key: what auth reads with one GetItem, limits included."""
    item = {name: getattr(key, name) for name in _KEY_FIELDS if getattr(key, name) is not None}
    item["limits"] = key.limits.to_item()
    item |= {
        "pk": f"KEYHASH#{key_hash}",
        "sk": "KEY",
        "gsi1pk": f"ACCOUNT#{key.account_id}",
        "gsi1sk": f"KEY#{key.key_id}",
    }
    return item


def key_from_item(item: dict[str, Any]) -> ApiKey:
    fields = {name: item[name] for name in _KEY_FIELDS if name in item}
    return ApiKey(**fields, limits=KeyLimits.from_item(item.get("limits")))


def record_from_item(item: dict[str, Any]) -> KeyRecord:
    return KeyRecord(
        key=key_from_item(item),
        key_hash=item["pk"].removeprefix("KEYHASH#"),
        retired_hashes=tuple(item.get("retired_hashes") or ()),
    )


class DynamoKeyStore(AwsResource):
    """The KeysTable: ``pk=KEYHASH#<sha256>, sk=KEY``; GSI ``ByAccount`` lists an account's keys.

    Only a key's current secret carries the GSI attributes, so a listing has one row per key;
    rotated-out secrets have items of their own (see ``key_admin_store``).
    """

    def __init__(self, table_name: str, client: Any | None = None):
        super().__init__(client)
        self._table = table_name

    def get_by_hash(self, key_hash: str) -> ApiKey | None:
        from botocore.exceptions import BotoCoreError, ClientError

        from meterway.dal.aws import deserialize

        try:
            response = self.client.get_item(
                TableName=self._table, Key={"pk": {"S": f"KEYHASH#{key_hash}"}, "sk": {"S": "KEY"}}
            )
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(UNAVAILABLE) from exc
        item = response.get("Item")
        return key_from_item(deserialize(item)) if item else None

    def put(self, key: ApiKey, key_hash: str) -> None:
        """A key with a member is written only if that member exists and is enabled, checked in
        the same transaction (a member disabled meanwhile cannot get a new key)."""
        from meterway.dal.aws import serialize

        put = {
            "TableName": self._table,
            "Item": serialize(key_item(key, key_hash)),
            "ConditionExpression": "attribute_not_exists(pk)",
        }
        if key.member is None:
            self._put_alone(put)
            return
        check = {
            "TableName": self._table,
            "Key": serialize(member_key(key.account_id, key.member)),
            "ConditionExpression": "attribute_exists(pk) AND disabled = :false",
            "ExpressionAttributeValues": {":false": {"BOOL": False}},
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        try:
            transact(self.client, [{"ConditionCheck": check}, {"Put": put}], UNAVAILABLE)
        except TransactionCancelled as cancelled:
            reason = cancelled.failed(0)
            if reason is None:
                raise StorageError("A key with that secret already exists.") from cancelled
            raise MemberUnavailable(key.member, exists=reason.item is not None) from cancelled

    def _put_alone(self, put: dict[str, Any]) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.put_item(**put)
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(UNAVAILABLE) from exc

    def list_keys(self, account_id: str) -> list[ApiKey]:
        return [record.key for record in self.list_records(account_id)]

    def get_key(self, account_id: str, key_id: str) -> ApiKey | None:
        record = self.get_record(account_id, key_id)
        return record.key if record else None

    def list_records(self, account_id: str) -> list[KeyRecord]:
        records = self._query_account(account_id, "begins_with(gsi1sk, :sk)", "KEY#")
        return sorted(records, key=lambda record: (record.key.created_at, record.key.key_id))

    def get_record(self, account_id: str, key_id: str) -> KeyRecord | None:
        found = self._query_account(account_id, "gsi1sk = :sk", f"KEY#{key_id}")
        return found[0] if found else None

    def _query_account(self, account_id: str, condition: str, sort_key: str) -> list[KeyRecord]:
        from botocore.exceptions import BotoCoreError, ClientError

        from meterway.dal.aws import deserialize

        try:
            pages = self.client.get_paginator("query").paginate(
                TableName=self._table,
                IndexName="ByAccount",
                KeyConditionExpression=f"gsi1pk = :pk AND {condition}",
                ExpressionAttributeValues={":pk": {"S": f"ACCOUNT#{account_id}"}, ":sk": {"S": sort_key}},
            )
            records = [record_from_item(deserialize(item)) for page in pages for item in page.get("Items", [])]
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(UNAVAILABLE) from exc
        return _current_only(records)


def _current_only(records: list[KeyRecord]) -> list[KeyRecord]:
    """The index is eventually consistent: right after a rotation it may still show the old item
    next to the new one. The new one lists the old hash as retired, so the old one is dropped."""
    retired = {key_hash for record in records for key_hash in record.retired_hashes}
    return [record for record in records if record.key_hash not in retired]


class CachedKeyStore:
    """Caches lookups by hash for a short TTL, so a warm proxy makes no key round trip.

    Misses are cached too: a client retrying a bad key must not turn into a read per attempt.
    A key disabled in the table is refused once its cached entry expires (at most ``ttl_seconds``).
    """

    def __init__(self, inner: KeyStore, ttl_seconds: float, max_entries: int = 10_000):
        self._inner = inner
        self._cache: TTLCache[str, ApiKey | None] = TTLCache(maxsize=max_entries, ttl=ttl_seconds)

    def cached(self, key_hash: str) -> tuple[bool, ApiKey | None]:
        """``(True, key-or-None)`` when the answer is cached: no I/O, safe on the event loop."""
        if key_hash in self._cache:
            return True, self._cache[key_hash]
        return False, None

    def get_by_hash(self, key_hash: str) -> ApiKey | None:
        hit, key = self.cached(key_hash)
        if hit:
            return key
        key = self._inner.get_by_hash(key_hash)
        self._cache[key_hash] = key
        return key

    def put(self, key: ApiKey, key_hash: str) -> None:
        self._inner.put(key, key_hash)
        self._cache.pop(key_hash, None)

    def list_keys(self, account_id: str) -> list[ApiKey]:
        return self._inner.list_keys(account_id)

    def clear(self) -> None:
        """Forget every cached lookup (after this process changed keys itself)."""
        self._cache.clear()

    def get_key(self, account_id: str, key_id: str) -> ApiKey | None:
        return self._inner.get_key(account_id, key_id)
