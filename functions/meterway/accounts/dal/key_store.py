"""Where keys live: looked up by the SHA-256 of their secret with one GetItem."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from cachetools import TTLCache

from meterway.accounts.dal import keys_table
from meterway.accounts.models import ApiKey, Budget, KeyLimits, KeyRecord
from meterway.core.aws import AwsResource, deserialize, serialize
from meterway.core.dynamo import TransactionCancelled, storage_errors, transact
from meterway.core.errors import StorageError

if TYPE_CHECKING:
    from meterway.core.dynamo_http import DynamoHttp

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
    "secret_copies",
)


class KeyStore(Protocol):
    def get_by_hash(self, key_hash: str) -> ApiKey | None:
        """The key whose secret hashes to ``key_hash``, or None."""

    async def find_by_hash(self, key_hash: str) -> ApiKey | None:
        """``get_by_hash`` without leaving the event loop (the proxy's lookup)."""

    def put(self, key: ApiKey, key_hash: str) -> None:
        """Store a new key under its hash; an existing hash is an error."""

    def list_keys(self, account_id: str) -> list[ApiKey]:
        """Every key of an account, oldest first."""

    def get_key(self, account_id: str, key_id: str) -> ApiKey | None:
        """One key of an account by its id; a key of another account is None."""


class MemberUnavailable(Exception):
    """The key's member does not exist (``exists`` False) or is disabled."""

    def __init__(self, member_id: str, *, exists: bool):
        super().__init__(member_id)
        self.member_id = member_id
        self.exists = exists


class MemberBudgetChanged(Exception):
    """The key's member has another budget than the key was given: ``budget``."""

    def __init__(self, budget: Budget | None):
        super().__init__("member budget")
        self.budget = budget


def key_item(key: ApiKey, key_hash: str) -> dict[str, Any]:
    """The hash item of a key's current secret: what auth reads with one GetItem, limits included.
    It is always written with its read copies (``copy_puts``)."""
    item = {name: getattr(key, name) for name in _KEY_FIELDS if getattr(key, name) is not None}
    item["limits"] = key.limits.to_item()
    if key.member_budget is not None:
        item["member_budget"] = key.member_budget.to_item()
    item["secret_copies"] = keys_table.KEY_COPIES
    return item | keys_table.secret_key(key_hash) | keys_table.listing_attributes(key.account_id, key.key_id)


def copy_puts(table: str, key_hash: str, state: dict[str, Any]) -> list[dict[str, Any]]:
    """The transaction items that write a secret's read copies with ``state`` (``disabled`` and,
    when it has one, ``valid_until``)."""
    fields = {name: state[name] for name in keys_table.KEY_COPY_FIELDS if state.get(name) is not None}
    return [
        {"Put": {"TableName": table, "Item": serialize(copy | fields)}}
        for copy in keys_table.secret_copy_keys(key_hash)
    ]


def copy_deletes(table: str, key_hash: str) -> list[dict[str, Any]]:
    """The transaction items that delete a secret's read copies."""
    return [{"Delete": {"TableName": table, "Key": serialize(copy)}} for copy in keys_table.secret_copy_keys(key_hash)]


def key_from_item(item: dict[str, Any]) -> ApiKey:
    fields = {name: item[name] for name in _KEY_FIELDS if name in item}
    return ApiKey(
        **fields,
        limits=KeyLimits.from_item(item.get("limits")),
        member_budget=Budget.from_item(item.get("member_budget")),
    )


def record_from_item(item: dict[str, Any]) -> KeyRecord:
    return KeyRecord(
        key=key_from_item(item),
        key_hash=keys_table.hash_of(item),
        retired_hashes=tuple(item.get("retired_hashes") or ()),
    )


class DynamoKeyStore(AwsResource):
    """The keys of the KeysTable (see ``keys_table``). Only a key's current secret is in the
    ``ByAccount`` index, so a listing has one row per key; rotated-out secrets have items of their
    own (see ``key_admin_store``)."""

    def __init__(self, table_name: str, client: Any | None = None, *, dynamo: DynamoHttp | None = None):
        super().__init__(client, dynamo=dynamo)
        self._table = table_name

    def get_by_hash(self, key_hash: str) -> ApiKey | None:
        with storage_errors(UNAVAILABLE):
            response = self.client.get_item(**self._by_hash(key_hash))
        return _found_key(response)

    async def find_by_hash(self, key_hash: str) -> ApiKey | None:
        with storage_errors(UNAVAILABLE):
            response = await self.dynamo.call("GetItem", self._by_hash(key_hash))
        return _found_key(response)

    def _by_hash(self, key_hash: str) -> dict[str, Any]:
        return {"TableName": self._table, "Key": serialize(keys_table.secret_key(key_hash))}

    def put(self, key: ApiKey, key_hash: str) -> None:
        """A key with a member is written only if that member exists and is enabled, and has the
        budget the key copies (``MemberBudgetChanged`` otherwise), checked in the same transaction
        (a member disabled, or given a budget, meanwhile cannot get a key without it)."""
        item = key_item(key, key_hash)
        put = {"TableName": self._table, "Item": serialize(item), "ConditionExpression": "attribute_not_exists(pk)"}
        copies = copy_puts(self._table, key_hash, item)
        if key.member is None:
            try:
                transact(self.client, [{"Put": put}, *copies], UNAVAILABLE)
            except TransactionCancelled as cancelled:
                raise StorageError("A key with that secret already exists.") from cancelled
            return
        budget = key.member_budget
        values: dict[str, Any] = {":false": False} | ({":since": budget.since} if budget else {})
        check = {
            "TableName": self._table,
            "Key": serialize(keys_table.member_key(key.account_id, key.member)),
            "ConditionExpression": "attribute_exists(pk) AND disabled = :false AND "
            + ("budget.since = :since" if budget else "attribute_not_exists(budget)"),
            "ExpressionAttributeValues": serialize(values),
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        try:
            transact(self.client, [{"ConditionCheck": check}, {"Put": put}, *copies], UNAVAILABLE)
        except TransactionCancelled as cancelled:
            reason = cancelled.failed(0)
            if reason is None:
                raise StorageError("A key with that secret already exists.") from cancelled
            member = reason.item
            if member is not None and member.get("disabled") is False:
                raise MemberBudgetChanged(Budget.from_item(member.get("budget"))) from cancelled
            raise MemberUnavailable(key.member, exists=member is not None) from cancelled

    def list_keys(self, account_id: str) -> list[ApiKey]:
        return [record.key for record in self.list_records(account_id)]

    def get_key(self, account_id: str, key_id: str) -> ApiKey | None:
        record = self.get_record(account_id, key_id)
        return record.key if record else None

    def list_records(self, account_id: str) -> list[KeyRecord]:
        records = self._query_account(account_id, "begins_with(gsi1sk, :sk)", keys_table.KEY_LISTING_PREFIX)
        return sorted(records, key=lambda record: (record.key.created_at, record.key.key_id))

    def get_record(self, account_id: str, key_id: str) -> KeyRecord | None:
        found = self._query_account(account_id, "gsi1sk = :sk", keys_table.key_listing_sk(key_id))
        return found[0] if found else None

    def _query_account(self, account_id: str, condition: str, sort_key: str) -> list[KeyRecord]:
        with storage_errors(UNAVAILABLE):
            pages = self.client.get_paginator("query").paginate(
                TableName=self._table,
                IndexName=keys_table.BY_ACCOUNT_INDEX,
                KeyConditionExpression=f"gsi1pk = :pk AND {condition}",
                ExpressionAttributeValues=serialize({":pk": keys_table.account_pk(account_id), ":sk": sort_key}),
            )
            records = [record_from_item(deserialize(item)) for page in pages for item in page.get("Items", [])]
        return _current_only(records)


def _found_key(response: dict[str, Any]) -> ApiKey | None:
    item = response.get("Item")
    return key_from_item(deserialize(item)) if item else None


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

    async def find_by_hash(self, key_hash: str) -> ApiKey | None:
        hit, key = self.cached(key_hash)
        if hit:
            return key
        key = await self._inner.find_by_hash(key_hash)
        self._cache[key_hash] = key
        return key

    def put(self, key: ApiKey, key_hash: str) -> None:
        self._inner.put(key, key_hash)
        self._cache.pop(key_hash, None)

    def list_keys(self, account_id: str) -> list[ApiKey]:
        return self._inner.list_keys(account_id)

    def get_key(self, account_id: str, key_id: str) -> ApiKey | None:
        return self._inner.get_key(account_id, key_id)

    def clear(self) -> None:
        """Forget every cached lookup (after this process changed keys itself)."""
        self._cache.clear()
