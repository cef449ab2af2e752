"""Managing keys in the KeysTable: a key's rotated-out secrets, and changes, rotations and
deletions that reach every secret of a key in one transaction.

Each live secret of a key has its own hash item. The current secret's item carries the GSI
attributes (one row per key in a listing) and ``retired_hashes``: the hashes of rotated-out secrets
that may still be in their overlap. A retired item has no GSI attributes, its own ``valid_until``,
``retired_until`` (the end of its overlap) and a TTL a day after that.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from meterway.dal.key_store import UNAVAILABLE, DynamoKeyStore, KeyRecord, KeyStore, key_item
from meterway.dal.transactions import TransactionCancelled, transact
from meterway.errors import StorageError
from meterway.logic.keys import ApiKey

RETIRED_ITEM_GRACE = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class RetiredSecret:
    """A rotated-out secret: it works until ``valid_until``. ``retired_until`` is the end of its
    overlap, which a later change of the key's expiry never extends."""

    key_hash: str
    display_prefix: str
    valid_until: str
    retired_until: str


class KeyChanged(Exception):
    """The key was rotated or deleted between reading it and writing it."""


class KeyAdminStore(KeyStore, Protocol):
    """What the management API and the CLI need beyond lookups."""

    def list_records(self, account_id: str) -> list[KeyRecord]:
        """Every key of an account with its hashes, oldest first."""

    def get_record(self, account_id: str, key_id: str) -> KeyRecord | None:
        """One key of an account with its hashes; None for a key of another account."""

    def retired_secrets(self, hashes: Iterable[str]) -> list[RetiredSecret]:
        """The retired items still stored for ``hashes``, soonest to end first."""

    def update(self, record: KeyRecord, fields: dict[str, Any], retired: dict[str, dict[str, Any]]) -> None:
        """Set fields on the current item and on retired ones at once; raises ``KeyChanged``."""

    def delete(self, record: KeyRecord) -> None:
        """Delete every item of the key at once; raises ``KeyChanged``."""

    def rotate(
        self,
        record: KeyRecord,
        new_key: ApiKey,
        new_hash: str,
        *,
        retired: RetiredSecret | None,
        keep: list[str],
        drop: list[str],
    ) -> None:
        """Make ``new_hash`` current and retire (or delete) the old one, at once; raises ``KeyChanged``."""


def retired_from_item(item: dict[str, Any]) -> RetiredSecret:
    valid_until = item.get("valid_until") or ""
    return RetiredSecret(
        key_hash=item["pk"].removeprefix("KEYHASH#"),
        display_prefix=item.get("display_prefix", ""),
        valid_until=valid_until,
        retired_until=item.get("retired_until") or valid_until,
    )


class DynamoKeyAdminStore(DynamoKeyStore):
    """The key store of the management API and the CLI: lookups, plus what changes keys."""

    def retired_secrets(self, hashes: Iterable[str]) -> list[RetiredSecret]:
        """The retired items still stored for ``hashes`` (TTL may have removed expired ones)."""
        from botocore.exceptions import BotoCoreError, ClientError

        from meterway.dal.aws import deserialize

        wanted = [{"pk": {"S": f"KEYHASH#{key_hash}"}, "sk": {"S": "KEY"}} for key_hash in dict.fromkeys(hashes)]
        found: list[RetiredSecret] = []
        try:
            for start in range(0, len(wanted), 100):
                request: dict[str, Any] = {self._table: {"Keys": wanted[start : start + 100], "ConsistentRead": True}}
                while request:
                    response = self.client.batch_get_item(RequestItems=request)
                    items = response.get("Responses", {}).get(self._table, [])
                    found.extend(retired_from_item(deserialize(item)) for item in items)
                    request = response.get("UnprocessedKeys") or {}
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(UNAVAILABLE) from exc
        return sorted(found, key=lambda secret: secret.valid_until)

    def update(self, record: KeyRecord, fields: dict[str, Any], retired: dict[str, dict[str, Any]]) -> None:
        """Set ``fields`` on the key's current item (a None value removes the attribute) and
        ``retired[hash]`` on each retired item, in one transaction. Raises ``KeyChanged`` when the
        key was rotated or deleted since ``record`` was read, or a retired item vanished."""
        items = [self._update(record.key_hash, fields, current_of=record)]
        items += [self._update(key_hash, own) for key_hash, own in retired.items()]
        self._transact_for(record, items)

    def delete(self, record: KeyRecord) -> None:
        """Delete the current item and every retired one: no secret of the key works any more."""
        current = {"Delete": {"TableName": self._table, "Key": _hash_key(record.key_hash), **_is_current(record)}}
        retired = [
            {"Delete": {"TableName": self._table, "Key": _hash_key(key_hash)}} for key_hash in record.retired_hashes
        ]
        self._transact_for(record, [current, *retired])

    def rotate(
        self,
        record: KeyRecord,
        new_key: ApiKey,
        new_hash: str,
        *,
        retired: RetiredSecret | None,
        keep: list[str],
        drop: list[str],
    ) -> None:
        """Make ``new_hash`` the key's current secret in one transaction.

        The old current item becomes the ``retired`` secret (None deletes it: the old secret stops
        at once). ``keep`` are the retired hashes still in their overlap, ``drop`` those whose
        overlap ended (deleted). Never leaves two current items or none.
        """
        from meterway.dal.aws import serialize

        retired_hashes = [*keep, record.key_hash] if retired else list(keep)
        new_item = key_item(new_key, new_hash) | {"retired_hashes": retired_hashes}
        put = {"Put": {"TableName": self._table, "Item": serialize(new_item), **_absent()}}
        old: dict[str, Any]
        if retired is None:
            old = {"Delete": {"TableName": self._table, "Key": _hash_key(record.key_hash), **_is_current(record)}}
        else:
            condition = _is_current(record)
            values = condition["ExpressionAttributeValues"] | serialize(
                {
                    ":until": retired.valid_until,
                    ":overlap": retired.retired_until,
                    ":expires": _ttl_of(retired.retired_until),
                }
            )
            old = {
                "Update": {
                    "TableName": self._table,
                    "Key": _hash_key(record.key_hash),
                    "UpdateExpression": (
                        "SET valid_until = :until, retired_until = :overlap, expires_at = :expires "
                        "REMOVE gsi1pk, gsi1sk, retired_hashes"
                    ),
                    "ConditionExpression": condition["ConditionExpression"],
                    "ExpressionAttributeValues": values,
                }
            }
        dropped = [{"Delete": {"TableName": self._table, "Key": _hash_key(key_hash)}} for key_hash in drop]
        self._transact_for(record, [put, old, *dropped])

    def _update(self, key_hash: str, fields: dict[str, Any], current_of: KeyRecord | None = None) -> dict[str, Any]:
        from meterway.dal.aws import serialize

        # Attribute names go through placeholders: ``name`` is a DynamoDB reserved word.
        names = {f"#f{index}": name for index, name in enumerate(fields)}
        setting = [index for index, value in enumerate(fields.values()) if value is not None]
        removing = [index for index, value in enumerate(fields.values()) if value is None]
        clauses = []
        if setting:
            clauses.append("SET " + ", ".join(f"#f{index} = :f{index}" for index in setting))
        if removing:
            clauses.append("REMOVE " + ", ".join(f"#f{index}" for index in removing))
        expression = " ".join(clauses)
        values = serialize({f":f{index}": value for index, value in enumerate(fields.values()) if value is not None})
        if current_of is not None:
            condition = _is_current(current_of)
            values |= condition["ExpressionAttributeValues"]
            condition_expression = condition["ConditionExpression"]
        else:
            condition_expression = "attribute_exists(pk)"
        update: dict[str, Any] = {
            "TableName": self._table,
            "Key": _hash_key(key_hash),
            "UpdateExpression": expression,
            "ConditionExpression": condition_expression,
            "ExpressionAttributeNames": names,
        }
        if values:
            update["ExpressionAttributeValues"] = values
        return {"Update": update}

    def _transact_for(self, record: KeyRecord, items: list[dict[str, Any]]) -> None:
        try:
            transact(self.client, items, UNAVAILABLE)
        except TransactionCancelled as cancelled:
            raise KeyChanged(record.key.key_id) from cancelled


def _hash_key(key_hash: str) -> dict[str, Any]:
    return {"pk": {"S": f"KEYHASH#{key_hash}"}, "sk": {"S": "KEY"}}


def _absent() -> dict[str, str]:
    return {"ConditionExpression": "attribute_not_exists(pk)"}


def _is_current(record: KeyRecord) -> dict[str, Any]:
    """The condition that ``record``'s item is still the key's current one (not rotated or deleted)."""
    return {
        "ConditionExpression": "gsi1pk = :owner AND gsi1sk = :current",
        "ExpressionAttributeValues": {
            ":owner": {"S": f"ACCOUNT#{record.key.account_id}"},
            ":current": {"S": f"KEY#{record.key.key_id}"},
        },
    }


def _ttl_of(valid_until: str) -> int:
    """DynamoDB deletes a retired item a day after its overlap ended (it is refused from then on)."""
    moment = datetime.strptime(valid_until, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    return int((moment + RETIRED_ITEM_GRACE).timestamp())
