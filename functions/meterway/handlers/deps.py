"""Stores of the plain Lambda handlers, built once per process on first use."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache

from meterway.config import get_api_settings
from meterway.dal.key_store import CachedKeyStore, DynamoKeyStore, KeyStore
from meterway.dal.ledger_store import DynamoLedgerStore, LedgerStore
from meterway.dal.rollup_store import DynamoRollupStore, RollupStore


@cache
def key_store() -> KeyStore:
    settings = get_api_settings()
    return CachedKeyStore(DynamoKeyStore(settings.keys_table), ttl_seconds=settings.key_cache_ttl_seconds)


@cache
def ledger_store() -> LedgerStore:
    return DynamoLedgerStore(get_api_settings().ledger_table)


@cache
def rollup_store() -> RollupStore:
    return DynamoRollupStore(get_api_settings().rollups_table)


def reset() -> None:
    """Forget the stores (tests switch settings between cases)."""
    for getter in (key_store, ledger_store, rollup_store):
        getter.cache_clear()


def now() -> datetime:
    return datetime.now(UTC)
