"""Stores of the plain Lambda handlers, built once per process on first use."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING

from meterway.config import get_api_settings
from meterway.dal.balance_store import BalanceStore, DynamoBalanceStore
from meterway.dal.export_files import S3Files
from meterway.dal.export_jobs import DynamoExportJobStore, ExportJobStore
from meterway.dal.key_admin_store import DynamoKeyAdminStore, KeyAdminStore
from meterway.dal.key_store import CachedKeyStore, DynamoKeyStore, KeyStore
from meterway.dal.ledger_store import DynamoLedgerStore, LedgerStore
from meterway.dal.member_store import DynamoMemberStore, MemberStore
from meterway.dal.rollup_store import DynamoRollupStore, RollupStore
from meterway.errors import StorageError

if TYPE_CHECKING:
    from meterway.dal.queue import SqsQueue


@cache
def key_store() -> KeyStore:
    settings = get_api_settings()
    return CachedKeyStore(DynamoKeyStore(settings.keys_table), ttl_seconds=settings.key_cache_ttl_seconds)


@cache
def key_admin() -> KeyAdminStore:
    """Uncached: management reads what it is about to change."""
    return DynamoKeyAdminStore(get_api_settings().keys_table)


def keys_changed() -> None:
    """This process changed keys: forget cached lookups so a disabled admin key stops at once here
    (other processes see it once their cache entry expires)."""
    store = key_store()
    if isinstance(store, CachedKeyStore):
        store.clear()


@cache
def member_store() -> MemberStore:
    return DynamoMemberStore(get_api_settings().keys_table)


@cache
def balance_store() -> BalanceStore:
    return DynamoBalanceStore(get_api_settings().keys_table)


@cache
def ledger_store() -> LedgerStore:
    settings = get_api_settings()
    return DynamoLedgerStore(settings.ledger_table, counters_table=settings.keys_table)


@cache
def rollup_store() -> RollupStore:
    return DynamoRollupStore(get_api_settings().rollups_table)


@cache
def export_jobs() -> ExportJobStore:
    return DynamoExportJobStore(get_api_settings().export_jobs_table)


@cache
def export_files() -> S3Files:
    from meterway.dal import aws

    settings = get_api_settings()
    return S3Files(aws.s3(settings.s3_addressing_style), settings.export_bucket)


@cache
def export_queue() -> SqsQueue:
    from meterway.dal.queue import SqsQueue

    queue_url = get_api_settings().export_queue_url
    if not queue_url:
        raise StorageError("Exports are not configured: MW_EXPORT_QUEUE_URL is missing.")
    return SqsQueue(queue_url)


def reset() -> None:
    """Forget the stores (tests switch settings between cases)."""
    getters = (key_store, key_admin, member_store, balance_store, ledger_store, rollup_store)
    for getter in (*getters, export_jobs, export_files, export_queue):
        getter.cache_clear()


def now() -> datetime:
    return datetime.now(UTC)
