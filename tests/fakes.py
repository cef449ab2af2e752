"""In-memory stand-ins for the data access layer, for unit tests of the logic."""

from __future__ import annotations

import copy
from typing import Any

from meterway.dal.rollup_store import BatchOutcome, bucket_range
from meterway.errors import StorageError
from meterway.logic.keys import ApiKey
from meterway.logic.rollups import Contribution, Granularity, RollupUpdate, partition, plan_chunks


class InMemoryKeyStore:
    def __init__(self) -> None:
        self.by_hash: dict[str, ApiKey] = {}
        self.lookups = 0

    def get_by_hash(self, key_hash: str) -> ApiKey | None:
        self.lookups += 1
        return self.by_hash.get(key_hash)

    def put(self, key: ApiKey, key_hash: str) -> None:
        assert key_hash not in self.by_hash
        self.by_hash[key_hash] = key

    def list_keys(self, account_id: str) -> list[ApiKey]:
        return [key for key in self.by_hash.values() if key.account_id == account_id]

    def get_key(self, account_id: str, key_id: str) -> ApiKey | None:
        return next((key for key in self.list_keys(account_id) if key.key_id == key_id), None)


class InMemoryLedger:
    """Conditional put on the request id; ``failures`` makes the next N writes fail like a throttle."""

    def __init__(self, failures: int = 0) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.failures = failures
        self.attempts = 0

    def put(self, item: dict[str, Any]) -> bool:
        self.attempts += 1
        if self.failures:
            self.failures -= 1
            raise StorageError("throttled")
        if item["request_id"] in self.items:
            return False
        self.items[item["request_id"]] = copy.deepcopy(item)
        return True

    def get(self, request_id: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.items.get(request_id))


class InMemorySpill:
    def __init__(self, broken: bool = False) -> None:
        self.sent: list[dict[str, Any]] = []
        self.broken = broken

    def send(self, item: dict[str, Any]) -> None:
        if self.broken:
            raise StorageError("queue down")
        self.sent.append(copy.deepcopy(item))


class InMemoryRollups:
    """The RollupsTable's semantics: a marker per request id, ADD on counters, BETWEEN on sort keys."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], dict[str, Any]] = {}
        self.applied: set[str] = set()
        self.items_read = 0
        self.fail_chunks = 0

    def apply(self, request_id: str, updates: list[RollupUpdate]) -> bool:
        if request_id in self.applied:
            return False
        self.applied.add(request_id)
        for update in updates:
            row = self.items.setdefault((update.pk, update.sk), {})
            for name, value in update.deltas.items():
                row[name] = row.get(name, 0) + value
            row |= {"bucket": update.bucket, "dimension": update.dimension, "value": update.value}
        return True

    def apply_batch(self, contributions: list[Contribution]) -> BatchOutcome:
        outcome = BatchOutcome()
        for chunk in plan_chunks(contributions):
            if self.fail_chunks:
                self.fail_chunks -= 1
                outcome.failed |= {c.request_id for c in chunk}
                continue
            fresh = [c for c in chunk if c.request_id not in self.applied]
            outcome.duplicates |= {c.request_id for c in chunk if c.request_id in self.applied}
            for contribution in fresh:
                self.apply(contribution.request_id, contribution.updates)
            outcome.applied |= {c.request_id for c in fresh}
        return outcome

    def query(
        self, account_id: str, granularity: Granularity, dimension: str, first: str, last: str
    ) -> list[dict[str, Any]]:
        low, high = bucket_range(first, last)
        pk = partition(account_id, granularity, dimension)
        rows = [copy.deepcopy(row) for (key, sk), row in sorted(self.items.items()) if key == pk and low <= sk <= high]
        self.items_read += len(rows)
        return rows
