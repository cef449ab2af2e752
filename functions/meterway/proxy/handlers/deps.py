"""What the proxy talks to, built once when the app starts: real stores in AWS and the local
stack, fakes in unit tests (``create_app(deps_factory)``)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial

from starlette.requests import Request

from meterway.accounts.dal.key_store import CachedKeyStore, DynamoKeyStore, KeyStore
from meterway.accounts.dal.quota_store import DynamoQuotaStore, QuotaStore, Standing
from meterway.accounts.logic.auth import check_key, presented_hash
from meterway.accounts.logic.limits import Headroom, reserve
from meterway.accounts.models import ApiKey, Reservation
from meterway.core.aws import dynamo_http
from meterway.core.clock import utc_now
from meterway.core.dynamo_http import DynamoHttp
from meterway.core.observability import logger
from meterway.core.settings import ProxySettings, load_settings
from meterway.ledger.dal.ledger_store import DynamoLedgerStore, LedgerStore
from meterway.ledger.dal.spill_queue import SpillQueue, SqsSpillQueue
from meterway.ledger.logic.record_usage import save_settlement, settle
from meterway.ledger.models import UsageRecord
from meterway.proxy.dal.credentials import load_upstream_secret
from meterway.proxy.dal.upstream import Upstream, build_client
from meterway.proxy.handlers.http_io import invocation_deadline
from meterway.proxy.logic.catalog import BUILT_IN, Catalog
from meterway.proxy.logic.fallbacks import NO_RETRIES, RetryPolicy
from meterway.proxy.logic.providers_config import load_catalog, parse_providers
from meterway.proxy.logic.time_limits import TimeBudget, TimeLimits
from meterway.proxy.providers import Providers, build_providers

# Turns of the event loop from starting a reservation to its DynamoDB requests written (``check_early``).
_TURNS_TO_SEND = 3


@dataclass(slots=True)
class ProxyDeps:
    settings: ProxySettings
    keys: KeyStore
    quotas: QuotaStore
    ledger: LedgerStore
    spill: SpillQueue | None
    upstream: Upstream
    providers: Providers
    catalog: Catalog = BUILT_IN
    retry: RetryPolicy = NO_RETRIES
    headroom: Headroom = field(default_factory=Headroom)
    dynamo: DynamoHttp | None = None

    async def authenticate(self, request: Request) -> tuple[ApiKey, str]:
        """The calling API key and the hash it was found by (the reservation checks it again)."""
        key_hash = presented_hash(request.headers)
        found = await self.keys.find_by_hash(key_hash)
        return check_key(found, kind="api"), key_hash

    def time_budget(self, request: Request) -> TimeBudget:
        """How long this request may wait on its upstream (``request.state.started``: its arrival)."""
        settings = self.settings
        limits = TimeLimits(
            first_byte_s=settings.upstream_first_byte_timeout_s,
            idle_s=settings.upstream_idle_timeout_s,
            function_timeout_s=settings.function_timeout_s,
            settle_margin_s=settings.settle_margin_s,
        )
        return TimeBudget.starting(limits, request.state.started, invocation_deadline(request))

    async def check_early(self, key: ApiKey, key_hash: str) -> Admission | None:
        """For a key far from its limits, its reservation started now, before the request's body
        is read: its round trip to DynamoDB then runs while the body is read, parsed and
        translated. It only reads (a key with a per-minute limit, whose reservation holds its
        minute with a write, is never far), so a request refused afterwards for its body has
        changed nothing. None for any other key: its reservation starts once the request is known
        to be valid (``admit``)."""
        if not self.headroom.far(key):
            return None
        admission = Admission(asyncio.ensure_future(self._reserve(key, key_hash)))
        # The check's requests go out from tasks of its own (the reservation's, then one a read,
        # ``asyncio.gather``): each takes a turn of the event loop before its request is written.
        # Reading a body that has arrived, parsing and translating it never wait on the loop, so
        # without these turns the requests would leave only with the upstream's.
        for _ in range(_TURNS_TO_SEND):
            await asyncio.sleep(0)
        return admission

    async def admit(self, key: ApiKey, key_hash: str, *, streamed: bool, early: Admission | None = None) -> Admission:
        """Start the request's reservation (or take the one ``check_early`` started). It is awaited
        here when the key may be near a limit, or when the answer is not streamed; for a stream of
        a key far from its limits it runs while the upstream is called, and
        ``Admission.reservation`` awaits it before anything reaches the client."""
        admission = early or Admission(asyncio.ensure_future(self._reserve(key, key_hash)))
        if not (streamed and self.headroom.far(key)):
            await admission.reservation()
        return admission

    async def _reserve(self, key: ApiKey, key_hash: str) -> Reservation:
        checking = asyncio.ensure_future(reserve(self.quotas, key, key_hash, utc_now()))
        try:
            # A request abandoned meanwhile leaves its checks to finish (a refusal then takes back
            # the request it held on its minute); what they find is still news of the key.
            reservation, standing = await asyncio.shield(checking)
        except asyncio.CancelledError:
            checking.add_done_callback(partial(self._heard, key))
            raise
        except Exception:
            self.headroom.forget(key)
            raise
        self.headroom.note(key, standing)
        return reservation

    def _heard(self, key: ApiKey, checking: asyncio.Future[tuple[Reservation, Standing]]) -> None:
        """What the checks of an abandoned request found: a refusal is remembered as any other."""
        if checking.cancelled():
            return
        if checking.exception() is not None:
            self.headroom.forget(key)
        else:
            self.headroom.note(key, checking.result()[1])

    async def record_refused(self, record: UsageRecord) -> None:
        """The record of a request refused after its upstream call started (the call closed before
        anything was read): it bills nothing and counts in no counter."""
        item = record.to_item(retention_days=self.settings.ledger_retention_days)
        await save_settlement(item, self.ledger, self.spill)

    async def settle(self, reservation: Reservation, record: UsageRecord, attempts: Sequence[UsageRecord] = ()) -> None:
        """Write the request's record and counters, and its failed attempts' records, once."""
        retention_days = self.settings.ledger_retention_days
        outcome = await settle(record, reservation, self.ledger, self.spill, retention_days, attempts)
        logger.info(
            "request settled",
            extra={
                "request_id": record.request_id,
                "model": record.model,
                "status": record.status,
                "total_tokens": record.tokens.total_tokens,
                "cost_usd": str(record.cost_usd),
                "outcome": outcome,
            },
        )

    async def aclose(self) -> None:
        """Close the app's pooled connections (upstreams, DynamoDB)."""
        await self.upstream.aclose()
        if self.dynamo is not None:
            await self.dynamo.aclose()


@dataclass(slots=True)
class Admission:
    """A request's reservation, started; ``reservation()`` is its outcome (or its refusal)."""

    task: asyncio.Future[Reservation]

    async def reservation(self) -> Reservation:
        return await self.task

    def abandon(self) -> None:
        """The request ends without its outcome: nothing is left pending."""
        if not self.task.done():
            self.task.cancel()
        elif not self.task.cancelled():
            self.task.exception()  # retrieved, so never reported as lost


def build_deps(dynamo: DynamoHttp | None = None) -> ProxyDeps:
    """The process's proxy dependencies; a missing setting stops the app from starting. The hot
    path's stores share one DynamoDB client on the event loop (``core.dynamo_http``): ``dynamo``,
    else one made for the process's endpoint and credentials."""
    settings = load_settings(ProxySettings)
    file = parse_providers(settings.providers)
    dynamo = dynamo or dynamo_http()
    return ProxyDeps(
        settings=settings,
        keys=CachedKeyStore(
            DynamoKeyStore(settings.keys_table, dynamo=dynamo), ttl_seconds=settings.key_cache_ttl_seconds
        ),
        quotas=DynamoQuotaStore(settings.keys_table, credit_ttl_s=settings.key_cache_ttl_seconds, dynamo=dynamo),
        ledger=DynamoLedgerStore(settings.ledger_table, dynamo=dynamo),
        spill=SqsSpillQueue(settings.spill_queue_url),
        upstream=Upstream(build_client(settings)),
        providers=build_providers(settings, load_upstream_secret(settings), file),
        catalog=load_catalog(file),
        retry=RetryPolicy(
            settings.upstream_retries, settings.upstream_retry_backoff_s, settings.upstream_retry_max_wait_s
        ),
        headroom=Headroom(ttl_s=settings.key_cache_ttl_seconds),
        dynamo=dynamo,
    )
