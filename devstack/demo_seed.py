"""Writes `devstack.demo_data`'s plan into the local stack (``MW_DEMO_DATA=1``).

Members and keys are created by the same logic as the management API. Each request is reserved
and settled exactly as the proxy does it, with its own past time: the reserve's checks (key still
valid, per-minute and spend limits, credit), then one put of the ledger record carrying its
counters, which the aggregator adds; a request that fell back has its failed attempt's record written first, without
counters. The aggregator then builds the rollups from the ledger's stream, as for real traffic
(and leaves the failed attempts out, as it does for real traffic). A request the reservation
refuses is not recorded, as the gateway records none.

Past times are taken as DynamoDB would take them. The counters of long-gone minutes and spend
periods, and minute rollups older than 8 days, are written with their TTL already passed:
DynamoDB would delete them soon, and moto keeps them, which changes no total. With
``LedgerRetentionDays`` set, only the days the ledger still keeps are seeded.

A marker item in the KeysTable makes seeding happen once per backend: a second start against the
same tables finds it and writes nothing. The local backend keeps its state in memory, so today
every start begins empty and seeds afresh.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, Decimal
from typing import TYPE_CHECKING, Any

from devstack.demo_data import DAYS, KEYS, MEMBERS, REQUESTS, Served, plan_fallbacks, plan_requests
from devstack.stack import LOCAL_ACCOUNT
from meterway.accounts.dal.balance_store import DynamoBalanceStore
from meterway.accounts.dal.key_admin_store import DynamoKeyAdminStore
from meterway.accounts.dal.key_store import DynamoKeyStore
from meterway.accounts.dal.member_store import DynamoMemberStore
from meterway.accounts.dal.quota_store import DynamoQuotaStore, QuotaStore
from meterway.accounts.dal.spend_counters import DynamoSpendCounters
from meterway.accounts.logic.balance import top_up
from meterway.accounts.logic.key_secrets import hash_secret
from meterway.accounts.logic.limits import period_start, reserve
from meterway.accounts.logic.manage_keys import create_key
from meterway.accounts.logic.manage_members import create_member, set_budget
from meterway.accounts.models import ApiKey
from meterway.analytics.dal.rollup_store import DynamoRollupStore
from meterway.analytics.logic.key_usage import RollupMemberSpend
from meterway.core.aws import AwsResource, deserialize, dynamo_http, serialize
from meterway.core.clock import floor, utc_iso
from meterway.core.dynamo import ConditionFailed, Update, storage_errors
from meterway.core.errors import AuthenticationFailed, Conflict, QuotaExceeded, RateLimited
from meterway.core.settings import ApiSettings, ProxySettings, load_settings
from meterway.ledger.dal.ledger_store import DynamoLedgerStore, LedgerStore
from meterway.ledger.dal.spill_queue import SpillQueue, SqsSpillQueue
from meterway.ledger.logic.record_usage import settle
from meterway.ledger.models import UsageRecord
from meterway.proxy.logic.catalog import CATALOG

if TYPE_CHECKING:
    from devstack.workers import DynamoStreamPoller

# Requests settled at once: moto handles one DynamoDB call at a time, but the client's own work
# (building, signing, the round trip) overlaps.
WORKERS = 4
# Who the demo's top-ups are recorded as made by (as the CLI's are).
DEMO_ACTOR = "cli"
# The demo member given a budget.
BUDGETED = "bob@example.com"
ROLLUP_TIMEOUT_S = 600
NOT_MARKED = "The keys table did not accept the demo marker."


@dataclass(frozen=True, slots=True)
class SeedReport:
    """What seeding did: ``already`` when an earlier start had seeded these tables. ``refused``
    counts the requests not recorded (refused at reservation, as the gateway would)."""

    window_end: str
    requests: int
    cost_usd: Decimal
    refused: int = 0
    keys: int = 0
    members: int = 0
    already: bool = False


class DemoMarker(AwsResource):
    """``pk = DEMO_DATA#<account>``, ``sk = MARKER`` in the KeysTable: seeded or not, and what."""

    def __init__(self, table_name: str, client: Any | None = None):
        super().__init__(client)
        self._table = table_name

    def claim(self, account_id: str, window_end: str) -> dict[str, Any] | None:
        """Mark the account as being seeded; the earlier marker instead, if there is one."""
        item = self._key(account_id) | {"window_end": window_end, "state": "seeding"}
        try:
            with storage_errors(NOT_MARKED):
                self.client.put_item(
                    TableName=self._table, Item=serialize(item), ConditionExpression="attribute_not_exists(pk)"
                )
        except ConditionFailed:
            with storage_errors(NOT_MARKED):
                found = self.client.get_item(TableName=self._table, Key=serialize(self._key(account_id)))
            return deserialize(found["Item"])
        return None

    def finish(self, account_id: str, requests: int, cost_usd: Decimal) -> None:
        done = Update(set={"state": "done", "requests": requests, "cost_usd": cost_usd})
        with storage_errors(NOT_MARKED):
            self.client.update_item(**done.request(self._table, self._key(account_id)))

    @staticmethod
    def _key(account_id: str) -> dict[str, str]:
        return {"pk": f"DEMO_DATA#{account_id}", "sk": "MARKER"}


def seed_demo_data(
    now: datetime, *, account_id: str = LOCAL_ACCOUNT, requests: int = REQUESTS, days: int = DAYS
) -> SeedReport:
    """Members, keys and ``requests`` requests over the ``days`` before ``now``, once per backend."""
    settings = load_settings(ProxySettings)
    marker = DemoMarker(settings.keys_table)
    earlier = marker.claim(account_id, utc_iso(now))
    if earlier is not None:
        cost = Decimal(str(earlier.get("cost_usd", 0)))
        return SeedReport(earlier["window_end"], int(earlier.get("requests", 0)), cost, already=True)
    if settings.ledger_retention_days:
        # Older records would be written already expired: DynamoDB's TTL would delete them.
        days = min(days, settings.ledger_retention_days)
    since = now - timedelta(days=days + 3)
    created = create_members(settings.keys_table, account_id, since)
    keys = create_keys(settings.keys_table, account_id, since)
    planned = plan_fallbacks(plan_requests(now, requests=requests, days=days))
    served = [request.for_key(keys[request.record.key.name][0]) for request in planned]
    add_credit(settings.keys_table, account_id, sum((s.record.cost_usd for s in served), Decimal(0)), since, now)
    hashes = {key.key_id: key_hash for key, key_hash in keys.values()}
    spill = SqsSpillQueue(settings.spill_queue_url)
    settled = asyncio.run(settle_with_own_client(served, hashes, settings, spill))
    cost = sum((record.cost_usd for record in settled), Decimal(0))
    marker.finish(account_id, len(settled), cost)
    return SeedReport(utc_iso(now), len(settled), cost, len(served) - len(settled), len(keys), created)


def create_members(table: str, account_id: str, now: datetime) -> int:
    """The demo members that are not there yet; returns how many it created."""
    store = DynamoMemberStore(table)
    created = 0
    for member in MEMBERS:
        try:
            create_member(store, account_id, member.member_id, member.name, now=now)
            created += 1
        except Conflict:
            continue
    return created


def add_credit(table: str, account_id: str, planned_usd: Decimal, since: datetime, now: datetime) -> None:
    """Two top-ups as a team would have made them, before any request is recorded (so none of the
    month is spend from before the credit): an opening credit, and a refill in the middle of the
    window; half as much again as the requests planned cost, so the demo keeps a balance."""
    store = DynamoBalanceStore(table)
    total = max((planned_usd * Decimal("1.5")).quantize(Decimal(10), rounding=ROUND_CEILING), Decimal(20))
    opening = (total * Decimal("0.6")).quantize(Decimal(5), rounding=ROUND_CEILING)
    top_up(store, account_id, opening, note="Opening credit", created_by=DEMO_ACTOR, now=since)
    refill_at = since + (now - since) / 2
    top_up(store, account_id, total - opening, note="Refill, invoice 1042", created_by=DEMO_ACTOR, now=refill_at)


def set_budgets(now: datetime, account_id: str = LOCAL_ACCOUNT) -> None:
    """A monthly budget for the demo member ``BUDGETED``, a little over what they spent this month
    (from the rollups, once counted): the members page shows most of it used."""
    settings = load_settings(ApiSettings)
    members, rollups = DynamoMemberStore(settings.keys_table), DynamoRollupStore(settings.rollups_table)
    member = members.get(account_id, BUDGETED)
    if member is None or member.budget is not None:
        return
    spend = RollupMemberSpend(rollups)
    spent = spend.spent(account_id, BUDGETED, period_start("monthly", now), floor(now, "minute") + timedelta(minutes=1))
    limit = max((spent * Decimal("1.25")).quantize(Decimal(5), rounding=ROUND_CEILING), Decimal(5))
    admin, counters = DynamoKeyAdminStore(settings.keys_table), DynamoSpendCounters(settings.keys_table)
    set_budget(members, admin, counters, spend, member, (limit, "monthly"), now)


def create_keys(table: str, account_id: str, now: datetime) -> dict[str, tuple[ApiKey, str]]:
    """The demo keys by name, each with the hash its requests reserve with (the secret is dropped)."""
    store = DynamoKeyStore(table)
    keys = {}
    for demo in KEYS:
        key, secret = create_key(
            store, account_id, demo.name, member=demo.member, limits=demo.limits, now=now, models=CATALOG
        )
        keys[demo.name] = (key, hash_secret(secret))
    return keys


async def settle_with_own_client(
    requests: Iterable[Served], hashes: dict[str, str], settings: ProxySettings, spill: SpillQueue
) -> list[UsageRecord]:
    """``settle_all`` through the stores as the proxy makes them: one DynamoDB client on this loop."""
    dynamo = dynamo_http()
    try:
        quotas = DynamoQuotaStore(settings.keys_table, dynamo=dynamo)
        ledger = DynamoLedgerStore(settings.ledger_table, dynamo=dynamo)
        return await settle_all(requests, hashes, quotas, ledger, spill, settings.ledger_retention_days)
    finally:
        await dynamo.aclose()


async def settle_all(
    requests: Iterable[Served],
    hashes: dict[str, str],
    quotas: QuotaStore,
    ledger: LedgerStore,
    spill: SpillQueue | None,
    retention_days: int,
) -> list[UsageRecord]:
    """Reserve and settle each request at its own time, oldest first and ``WORKERS`` at once, with
    its failed attempts; returns the records of those recorded (a spilled one is, once the
    replayer has run)."""
    workers = asyncio.Semaphore(WORKERS)

    async def settle_one(served: Served) -> UsageRecord | None:
        record = served.record
        async with workers:
            try:
                reservation, _ = await reserve(quotas, record.key, hashes[record.key.key_id], record.created_at)
            except (AuthenticationFailed, QuotaExceeded, RateLimited):
                return None
            outcome = await settle(record, reservation, ledger, spill, retention_days, served.attempts)
        return record if outcome in ("written", "spilled") else None

    settled = await asyncio.gather(*(settle_one(served) for served in requests))
    return [record for record in settled if record is not None]


def seed_before_start(requests: int) -> tuple[SeedReport, float]:
    """Seed the ledger, saying so on stderr; returns the report and when seeding began."""
    print(f"Seeding {DAYS} days of demo usage (MW_DEMO_DATA): {requests:,} requests…", file=sys.stderr)
    began = time.monotonic()
    return seed_demo_data(datetime.now(UTC), requests=requests), began


def report_when_rolled_up(aggregator: DynamoStreamPoller, seeded: SeedReport, began: float) -> None:
    """Wait until the aggregator has rolled every seeded record up, so the console shows it all."""
    if seeded.already:
        print(f"  demo data: already there (window ending {seeded.window_end})", file=sys.stderr)
        return
    ledger_s = time.monotonic() - began
    aggregator.drain(timeout_s=ROLLUP_TIMEOUT_S)
    set_budgets(datetime.now(UTC))
    total_s = time.monotonic() - began
    print(
        f"  demo data: {seeded.requests:,} requests (${seeded.cost_usd:.2f}), {seeded.keys} new keys, "
        f"{seeded.members} new members, in {total_s:.0f} s (ledger {ledger_s:.0f} s, rollups {total_s - ledger_s:.0f} s)",
        file=sys.stderr,
    )
