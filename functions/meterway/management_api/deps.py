"""What the management API's routes talk to, built once per process from ``ApiSettings``.

The resolver hands each request the admin key that called it and these stores through its
context. ``ApiDeps`` has what every feature's routes ask for (``AccountsContext``,
``AnalyticsContext``, ``ExportsContext``): this is the one place that joins them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from meterway.accounts.dal.balance_store import BalanceStore, DynamoBalanceStore
from meterway.accounts.dal.key_admin_store import DynamoKeyAdminStore, KeyAdminStore
from meterway.accounts.dal.key_store import CachedKeyStore, DynamoKeyStore
from meterway.accounts.dal.member_store import DynamoMemberStore, MemberStore
from meterway.accounts.dal.spend_counters import DynamoSpendCounters, SpendCounters
from meterway.accounts.logic.manage_keys import KeyUsage
from meterway.accounts.logic.manage_members import MemberSpend
from meterway.analytics.dal.rollup_store import DynamoRollupStore, RollupStore
from meterway.analytics.logic.key_usage import RollupKeyUsage, RollupMemberSpend
from meterway.core.clock import utc_now
from meterway.core.container import provided
from meterway.core.settings import ApiSettings, load_settings
from meterway.exports.dal.export_files import FileStore, S3Files
from meterway.exports.dal.export_jobs import DynamoExportJobStore, ExportJobStore
from meterway.exports.dal.job_queue import JobQueue, SqsJobQueue
from meterway.ledger.dal.ledger_store import DynamoLedgerStore, LedgerStore
from meterway.proxy.logic.catalog import BUILT_IN
from meterway.proxy.logic.providers_config import load_catalog, parse_providers


@dataclass
class ApiDeps:
    """``keys`` answers the admin-key lookups (cached: ``clear()`` it after changing keys);
    ``key_admin`` reads what it is about to change, uncached."""

    settings: ApiSettings
    keys: CachedKeyStore
    key_admin: KeyAdminStore
    members: MemberStore
    balance: BalanceStore
    ledger: LedgerStore
    rollups: RollupStore
    export_jobs: ExportJobStore
    export_files: FileStore
    export_queue: JobQueue
    key_usage: KeyUsage
    member_spend: MemberSpend
    spend_counters: SpendCounters
    # The catalog's model ids, the providers file's included: what a key's allowed_models may name.
    models: frozenset[str] = BUILT_IN.ids()
    clock: Callable[[], datetime] = field(default=utc_now)


@provided
def api_deps() -> ApiDeps:
    settings = load_settings(ApiSettings)
    rollups = DynamoRollupStore(settings.rollups_table)
    return ApiDeps(
        settings=settings,
        keys=CachedKeyStore(DynamoKeyStore(settings.keys_table), ttl_seconds=settings.key_cache_ttl_seconds),
        key_admin=DynamoKeyAdminStore(settings.keys_table),
        members=DynamoMemberStore(settings.keys_table),
        balance=DynamoBalanceStore(settings.keys_table),
        ledger=DynamoLedgerStore(settings.ledger_table),
        rollups=rollups,
        export_jobs=DynamoExportJobStore(settings.export_jobs_table),
        export_files=S3Files(settings.export_bucket, settings.s3_addressing_style),
        export_queue=SqsJobQueue(settings.export_queue_url),
        key_usage=RollupKeyUsage(rollups),
        member_spend=RollupMemberSpend(rollups),
        spend_counters=DynamoSpendCounters(settings.keys_table),
        models=load_catalog(parse_providers(settings.providers)).ids(),
    )
