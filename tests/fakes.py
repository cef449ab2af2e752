"""In-memory stand-ins for the data access layer, for unit tests of the logic."""

from __future__ import annotations

import copy
from typing import Any

from meterway.errors import StorageError
from meterway.logic.keys import ApiKey


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
