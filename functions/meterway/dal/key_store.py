"""Where keys live: looked up by the SHA-256 of their secret with one GetItem."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Protocol

from cachetools import TTLCache

from meterway.dal.aws import AwsResource
from meterway.errors import StorageError
from meterway.logic.keys import ApiKey

_KEY_FIELDS = ("key_id", "account_id", "name", "kind", "member", "disabled", "created_at", "display_prefix")


class KeyStore(Protocol):
    def get_by_hash(self, key_hash: str) -> ApiKey | None:
        """The key whose secret hashes to ``key_hash``, or None."""

    def put(self, key: ApiKey, key_hash: str) -> None:
        """Store a new key under its hash; an existing hash is an error."""

    def list_keys(self, account_id: str) -> list[ApiKey]:
        """Every key of an account, oldest first."""

    def get_key(self, account_id: str, key_id: str) -> ApiKey | None:
        """One key of an account by its id; a key of another account is None."""


def key_item(key: ApiKey, key_hash: str) -> dict[str, Any]:
    item = {name: value for name, value in asdict(key).items() if value is not None}
    item |= {
        "pk": f"KEYHASH#{key_hash}",
        "sk": "KEY",
        "gsi1pk": f"ACCOUNT#{key.account_id}",
        "gsi1sk": f"KEY#{key.key_id}",
    }
    return item


def key_from_item(item: dict[str, Any]) -> ApiKey:
    return ApiKey(**{name: item[name] for name in _KEY_FIELDS if name in item})


class DynamoKeyStore(AwsResource):
    """The KeysTable: ``pk=KEYHASH#<sha256>, sk=KEY``; GSI ``ByAccount`` lists an account's keys."""

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
            raise StorageError("The key store is unavailable; try again.") from exc
        item = response.get("Item")
        return key_from_item(deserialize(item)) if item else None

    def put(self, key: ApiKey, key_hash: str) -> None:
        from meterway.dal.aws import serialize

        self.client.put_item(
            TableName=self._table,
            Item=serialize(key_item(key, key_hash)),
            ConditionExpression="attribute_not_exists(pk)",
        )

    def list_keys(self, account_id: str) -> list[ApiKey]:
        keys = self._query_account(account_id, "begins_with(gsi1sk, :sk)", "KEY#")
        return sorted(keys, key=lambda key: (key.created_at, key.key_id))

    def get_key(self, account_id: str, key_id: str) -> ApiKey | None:
        found = self._query_account(account_id, "gsi1sk = :sk", f"KEY#{key_id}")
        return found[0] if found else None

    def _query_account(self, account_id: str, condition: str, sort_key: str) -> list[ApiKey]:
        from botocore.exceptions import BotoCoreError, ClientError

        from meterway.dal.aws import deserialize

        try:
            pages = self.client.get_paginator("query").paginate(
                TableName=self._table,
                IndexName="ByAccount",
                KeyConditionExpression=f"gsi1pk = :pk AND {condition}",
                ExpressionAttributeValues={":pk": {"S": f"ACCOUNT#{account_id}"}, ":sk": {"S": sort_key}},
            )
            return [key_from_item(deserialize(item)) for page in pages for item in page.get("Items", [])]
        except (BotoCoreError, ClientError) as exc:
            raise StorageError("The key store is unavailable; try again.") from exc


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

    def get_key(self, account_id: str, key_id: str) -> ApiKey | None:
        return self._inner.get_key(account_id, key_id)
