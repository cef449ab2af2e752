"""Managing keys in the KeysTable: a key's rotated-out secrets, and changes, rotations and
deletions that reach every secret of a key in one transaction.

Each live secret of a key has its own hash item. The current secret's item carries the index
attributes (one row per key in a listing) and ``retired_hashes``: the hashes of rotated-out secrets
that may still be in their overlap. A retired item has no index attributes, its own
``valid_until``, ``retired_until`` (the end of its overlap) and a TTL a day after that.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any, Protocol

from meterway.accounts.dal import keys_table
from meterway.accounts.dal.key_store import UNAVAILABLE, DynamoKeyStore, KeyStore, copy_deletes, copy_puts, key_item
from meterway.accounts.models import ApiKey, KeyRecord, RetiredSecret
from meterway.core.aws import serialize
from meterway.core.clock import parse_utc_iso
from meterway.core.dynamo import TransactionCancelled, Update, batch_get, transact

RETIRED_ITEM_GRACE = timedelta(days=1)


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
        key_hash=keys_table.hash_of(item),
        display_prefix=item.get("display_prefix", ""),
        valid_until=valid_until,
        retired_until=item.get("retired_until") or valid_until,
    )


class DynamoKeyAdminStore(DynamoKeyStore):
    """The key store of the management API and the CLI: lookups, plus what changes keys."""

    def retired_secrets(self, hashes: Iterable[str]) -> list[RetiredSecret]:
        """The retired items still stored for ``hashes`` (TTL may have removed expired ones)."""
        wanted = [keys_table.secret_key(key_hash) for key_hash in dict.fromkeys(hashes)]
        items = batch_get(self.client, self._table, wanted, UNAVAILABLE, ConsistentRead=True)
        found = [retired_from_item(item) for item in items]
        return sorted(found, key=lambda secret: secret.valid_until)

    def update(self, record: KeyRecord, fields: dict[str, Any], retired: dict[str, dict[str, Any]]) -> None:
        """Set ``fields`` on the key's current item (a None value removes the attribute) and
        ``retired[hash]`` on each retired item, in one transaction. Raises ``KeyChanged`` when the
        key was rotated or deleted since ``record`` was read, or a retired item vanished."""
        current = Update(set=fields, **_is_current(record)).request(self._table, keys_table.secret_key(record.key_hash))
        items = [{"Update": current}]
        for key_hash, own in retired.items():
            update = Update(set=own, condition="attribute_exists(pk)")
            items.append({"Update": update.request(self._table, keys_table.secret_key(key_hash))})
        changes = {record.key_hash: fields, **retired}
        copied = self._with_copies(changes)
        for key_hash, own in changes.items():
            mirrored = {name: own[name] for name in keys_table.KEY_COPY_FIELDS if name in own}
            if key_hash in copied and mirrored:
                items.extend(self._copy_updates(key_hash, mirrored))
        self._transact_for(record, items)

    def delete(self, record: KeyRecord) -> None:
        """Delete the current item and every retired one, and their copies: no secret of the key
        works any more."""
        retired = [self._delete(key_hash) for key_hash in record.retired_hashes]
        copies = self._copy_deletes(self._with_copies([record.key_hash, *record.retired_hashes]))
        self._transact_for(record, [self._delete(record.key_hash, current_of=record), *retired, *copies])

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
        retired_hashes = [*keep, record.key_hash] if retired else list(keep)
        new_item = key_item(new_key, new_hash) | {"retired_hashes": retired_hashes}
        put = {"Put": {"TableName": self._table, "Item": serialize(new_item), "ConditionExpression": _ABSENT}}
        items = [put, *copy_puts(self._table, new_hash, new_item)]
        copied = self._with_copies([record.key_hash, *drop])
        if retired is None:
            items.append(self._delete(record.key_hash, current_of=record))
            items.extend(self._copy_deletes([record.key_hash] if record.key_hash in copied else []))
        else:
            ends = {
                "valid_until": retired.valid_until,
                "retired_until": retired.retired_until,
                "expires_at": _ttl_of(retired.retired_until),
            }
            update = Update(set=ends, remove=("gsi1pk", "gsi1sk", "retired_hashes"), **_is_current(record))
            items.append({"Update": update.request(self._table, keys_table.secret_key(record.key_hash))})
            if record.key_hash in copied:
                # The copies end with the item: the same TTL removes them.
                mirrored = {"valid_until": retired.valid_until, "expires_at": ends["expires_at"]}
                items.extend(self._copy_updates(record.key_hash, mirrored))
        items.extend(self._delete(key_hash) for key_hash in drop)
        items.extend(self._copy_deletes([key_hash for key_hash in drop if key_hash in copied]))
        self._transact_for(record, items)

    def _with_copies(self, hashes: Iterable[str]) -> set[str]:
        """Which of ``hashes`` have read copies (a secret stored before they existed has none; a
        secret's copies are written and deleted with it, so the first one tells)."""
        wanted = [keys_table.secret_copy_key(key_hash, 0) for key_hash in dict.fromkeys(hashes)]
        if not wanted:
            return set()
        found = batch_get(self.client, self._table, wanted, UNAVAILABLE, ConsistentRead=True)
        return {keys_table.hash_of(item).rsplit("#", 1)[0] for item in found}

    def _copy_updates(self, key_hash: str, fields: dict[str, Any]) -> list[dict[str, Any]]:
        update = Update(set=fields, condition="attribute_exists(pk)")
        return [{"Update": update.request(self._table, copy)} for copy in keys_table.secret_copy_keys(key_hash)]

    def _copy_deletes(self, hashes: Iterable[str]) -> list[dict[str, Any]]:
        return [item for key_hash in hashes for item in copy_deletes(self._table, key_hash)]

    def _delete(self, key_hash: str, current_of: KeyRecord | None = None) -> dict[str, Any]:
        delete: dict[str, Any] = {"TableName": self._table, "Key": serialize(keys_table.secret_key(key_hash))}
        if current_of is not None:
            condition = _is_current(current_of)
            delete["ConditionExpression"] = condition["condition"]
            delete["ExpressionAttributeValues"] = serialize(condition["values"])
        return {"Delete": delete}

    def _transact_for(self, record: KeyRecord, items: list[dict[str, Any]]) -> None:
        try:
            transact(self.client, items, UNAVAILABLE)
        except TransactionCancelled as cancelled:
            raise KeyChanged(record.key.key_id) from cancelled


_ABSENT = "attribute_not_exists(pk)"


def _is_current(record: KeyRecord) -> dict[str, Any]:
    """The condition that ``record``'s item is still the key's current one (not rotated or deleted)."""
    listing = keys_table.listing_attributes(record.key.account_id, record.key.key_id)
    return {
        "condition": "gsi1pk = :owner AND gsi1sk = :current",
        "values": {":owner": listing["gsi1pk"], ":current": listing["gsi1sk"]},
    }


def _ttl_of(valid_until: str) -> int:
    """DynamoDB deletes a retired item a day after its overlap ended (it is refused from then on)."""
    return int((parse_utc_iso(valid_until) + RETIRED_ITEM_GRACE).timestamp())
