"""Hot items at scale, by simulation: request units per second on each partition key when one key,
or one account, sends 100, 1,000 and 10,000 requests a second (README: "Hot items").

DynamoDB serves at most about 1,000 write units and 3,000 read units a second per partition, and
an item never spans two partitions, so those are the ceilings of any one partition key; a write
in a transaction costs double, a strongly consistent read of an item under 4 KB one unit, an
eventually consistent one half.

The write and read pattern is not assumed: it is recorded from the real code on in-process moto
with the template's tables, every DynamoDB call made through a recording client:
- the proxy's part, per request: ``limits.reserve`` (the checks) and ``record_usage.settle``
  (the ledger put), for --requests requests;
- the AggregatorFunction's part, per batch: the same records counted by ``count_records`` in
  batches of the stream mapping's size (100), the rollups and counters of a batch merged as the
  function merges them.

From the recording, each partition key's units per request (proxy) and per batch (aggregator)
are scaled to the rate: the aggregator's batches a second are the rate / 100, and at least one a
second from each stream shard (the ledger table's partitions: 1 per 1,000 write units of
records). Three cases: a key with no limits in an account without credit; a key with a spend
limit and a requests-per-minute limit of 600,000 in an account with credit; and one account with
credit whose requests come from 100 such keys. A minute shard is counted per shard (the keys
split over them at random).

    .venv/bin/python bench/hot_items.py [--requests 400]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "functions")]

WRITE_LIMIT, READ_LIMIT = 1000, 3000  # request units a second per partition
BATCH = 100  # the ledger stream mapping's BatchSize
RATES = (100, 1_000, 10_000)


@dataclass
class Recording:
    """Units by (table, partition key), one counter for each phase: ``reads`` and ``writes``."""

    reads: Counter[tuple[str, str]] = field(default_factory=Counter)
    writes: Counter[tuple[str, str]] = field(default_factory=Counter)
    transactions: int = 0

    def clear(self) -> None:
        self.reads.clear()
        self.writes.clear()
        self.transactions = 0


class RecordingClient:
    """A DynamoDB client whose calls count their units by partition key (items under 1 KB / 4 KB,
    which the counters and markers are: 1 unit a write, 2 in a transaction; 1 a consistent read,
    half an eventually consistent one)."""

    def __init__(self, client: Any, recording: Recording):
        self._client = client
        self.recording = recording

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)

        def call(**arguments: Any) -> Any:
            count_call(self.recording, name, arguments)
            return method(**arguments)

        return call


def recording_dynamo(url: str, recording: Recording) -> Any:
    """The proxy's own DynamoDB client (``core.dynamo_http``) on ``url``, counting as ``RecordingClient``."""
    from meterway.core.aws import credentials
    from meterway.core.dynamo_http import DynamoHttp

    names = {"GetItem": "get_item", "PutItem": "put_item", "UpdateItem": "update_item"}

    class RecordingDynamo(DynamoHttp):
        async def call(self, operation: str, request: Any) -> dict[str, Any]:
            count_call(recording, names[operation], request)
            return await super().call(operation, request)

    return RecordingDynamo(url, "us-east-1", credentials)


def count_call(record: Recording, operation: str, arguments: dict[str, Any]) -> None:
    """Count one call (boto3's name for its operation) into ``record``."""
    if operation == "get_item":
        record.reads[_where(arguments["TableName"], arguments["Key"])] += _read_units(arguments)
    elif operation == "batch_get_item":
        for table, asked in arguments["RequestItems"].items():
            for key in asked["Keys"]:
                record.reads[_where(table, key)] += _read_units(asked)
    elif operation in ("put_item", "update_item", "delete_item"):
        record.writes[_where(arguments["TableName"], arguments.get("Key") or arguments["Item"])] += 1
    elif operation == "transact_write_items":
        record.transactions += 1
        for entry in arguments["TransactItems"]:
            ((kind, body),) = entry.items()
            key = body.get("Key") or body["Item"]
            record.writes[_where(body["TableName"], key)] += 2 if kind != "ConditionCheck" else 0
            if kind == "ConditionCheck":
                record.reads[_where(body["TableName"], key)] += 2


def _read_units(arguments: dict[str, Any]) -> float:
    """A read of an item under 4 KB: one unit strongly consistent, half eventually consistent."""
    return 1.0 if arguments.get("ConsistentRead") else 0.5


def _where(table: str, key: dict[str, Any]) -> tuple[str, str]:
    value = key.get("pk") or key.get("request_id")
    return table, str(next(iter(value.values())))


@dataclass
class Case:
    name: str
    keys: int
    limited: bool


CASES = (
    Case("one key, no limits, account without credit", 1, False),
    Case("one key, spend and 600k/min limits, account with credit", 1, True),
    Case("one account with credit, 100 limited keys", 100, True),
)


def record_case(case: Case, requests: int) -> tuple[Recording, Recording, dict[str, str]]:
    """The proxy's units per request and the aggregator's per batch, for ``case``, on moto."""
    import boto3
    from moto import mock_aws
    from moto.server import ThreadedMotoServer

    from devstack import moto_patches
    from devstack.aws_resources import create_resources
    from meterway.accounts.dal.balance_store import DynamoBalanceStore
    from meterway.accounts.dal.key_store import DynamoKeyStore
    from meterway.accounts.dal.quota_store import DynamoQuotaStore
    from meterway.accounts.logic.key_secrets import hash_secret
    from meterway.accounts.logic.limits import reserve
    from meterway.accounts.logic.manage_keys import create_key
    from meterway.accounts.models import KeyLimits
    from meterway.analytics.dal.rollup_store import DynamoRollupStore
    from meterway.analytics.logic.rollups import contribution, count_records
    from meterway.ledger.dal.ledger_store import DynamoLedgerStore
    from meterway.ledger.logic.record_usage import new_request_id, settle
    from meterway.ledger.models import TokenUsage, UsageRecord

    for name, value in {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        os.environ[name] = value
    os.environ.pop("AWS_ENDPOINT_URL", None)
    moto_patches.apply()
    proxy, aggregator = Recording(), Recording()
    with mock_aws():
        tables = create_resources(ROOT / "template.yaml", prefix="hot")
        client = boto3.client("dynamodb")
        limits = KeyLimits(spend_limit_usd=Decimal(10**6), requests_per_minute=600_000) if case.limited else KeyLimits()
        keys = []
        for number in range(case.keys):
            # Created as the API creates keys: each in its account's least used rollup shard.
            _, secret = create_key(DynamoKeyStore(tables["KeysTable"]), "acct", f"key-{number}", limits=limits)
            key = DynamoKeyStore(tables["KeysTable"]).get_by_hash(hash_secret(secret))  # as the proxy finds it
            assert key is not None
            keys.append((key, hash_secret(secret)))
        if case.limited:
            DynamoBalanceStore(tables["KeysTable"]).add_topup(
                "acct", {"topup_id": "t", "created_at": "2026-12-01T00:00:00.000Z", "amount_usd": Decimal(10**6)}
            )
        # The proxy's calls go over HTTP, on its own client, to a moto server sharing this moto.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request otherwise
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        dynamo = recording_dynamo(f"http://{host}:{port}", proxy)
        quotas = DynamoQuotaStore(tables["KeysTable"], dynamo=dynamo)
        ledger = DynamoLedgerStore(tables["LedgerTable"], dynamo=dynamo)
        store = DynamoRollupStore(
            tables["RollupsTable"], RecordingClient(client, aggregator), counters_table=tables["KeysTable"]
        )
        start = datetime.now(UTC).replace(second=0, microsecond=0)

        def serve(loop: asyncio.Runner, count: int, offset: int) -> list[dict[str, Any]]:
            items = []
            for number in range(count):
                key, key_hash = keys[number % len(keys)]
                at = start + timedelta(milliseconds=offset + number)
                reservation, _ = loop.run(reserve(quotas, key, key_hash, at))
                record = UsageRecord(
                    new_request_id(), at, key, "openai/gpt-4o-mini", "openai", "chat.completions", True,
                    tokens=TokenUsage(input_tokens=1200, output_tokens=300), cost_usd=Decimal("0.00036"),
                )  # fmt: skip
                loop.run(settle(record, reservation, ledger, None, 0))
                items.append(ledger.get(record.request_id))
            return items

        def count(items: list[dict[str, Any]]) -> None:
            for first in range(0, len(items), BATCH):
                count_records(store, [contribution(item) for item in items[first : first + BATCH]])

        with asyncio.Runner() as loop:
            # A busy key's steady state: its first requests counted, so its counters have copies.
            count(serve(loop, len(keys), 0))
            proxy.clear()
            aggregator.clear()
            items = serve(loop, requests, len(keys))
            loop.run(dynamo.aclose())
        server.stop()
        # The ledger gets read back here to feed the aggregator: not the proxy's.
        for where in [where for where in proxy.reads if where[0] == tables["LedgerTable"]]:
            del proxy.reads[where]
        count(items)
    return proxy, aggregator, tables


def label(table: str, pk: str, tables: dict[str, str]) -> str:
    """A partition key's kind, named without its ids (``QUOTA#<key>#<shard>``…); the rollups'
    granularities are one kind, each its own partition key (the busiest is shown)."""
    name = next((name for name, physical in tables.items() if physical == table), table)
    parts = pk.split("#")
    if name == "LedgerTable":
        return "LedgerTable: one record"
    if parts[0] == "KEYHASH":
        return "KeysTable KEYHASH#<hash>#<copy> (the key)" if len(parts) > 2 else "KeysTable KEYHASH#<hash> (the key)"
    if parts[0] == "QUOTA":
        if parts[-1].startswith("COPY"):
            return "KeysTable QUOTA#<key>#COPY<copy> (spend)"
        return f"KeysTable QUOTA#<key>{'#<shard>' if len(parts) > 2 else ''}"
    if parts[0] == "ACCOUNT":
        if parts[-1].startswith("COPY"):
            return "KeysTable ACCOUNT#<account>#COPY<copy> (balance)"
        return "KeysTable ACCOUNT#<account> (balance)"
    if parts[0] == "APPLIED":
        return f"RollupsTable APPLIED#<request>{'#account' if len(parts) > 2 else ''} (marker)"
    if len(parts) == 4 and parts[2] in ("key", "user", "app"):  # a shard of a dimension: the busiest is shown
        return f"{name} <account>#<granularity>#{parts[2]}#<s>"
    kind, _, owner = parts[-1].partition(":")  # key-model:<key>, user-model:<user>, app-model:<app>
    dimension = kind + (f":<{kind.removesuffix('-model')}>" if owner else "")
    return f"{name} <account>#<granularity>#{dimension}" if len(parts) == 3 else f"{name} <account>#{parts[-1]}"


def per_second(case: Case, rate: int, requests: int, proxy: Recording, aggregator: Recording, tables: dict[str, str]):
    """The busiest partition key of each kind: (read units/s, write units/s) at ``rate``."""
    batches = requests / BATCH
    shards = max(1, math.ceil(rate * 2 / WRITE_LIMIT))  # ~2 KB records: 2 write units each
    batches_per_s = max(rate / BATCH, shards)
    busiest: dict[str, list[float]] = {}
    shards: dict[str, list[list[float]]] = {}
    for where in set(proxy.reads) | set(proxy.writes) | set(aggregator.reads) | set(aggregator.writes):
        reads = proxy.reads[where] / requests * rate + aggregator.reads[where] / batches * batches_per_s
        writes = proxy.writes[where] / requests * rate + aggregator.writes[where] / batches * batches_per_s
        kind = label(*where, tables)
        if "<shard>" in kind or "<copy>" in kind:
            shards.setdefault(kind, []).append([reads, writes])
            continue
        known = busiest.setdefault(kind, [0.0, 0.0])
        busiest[kind] = [max(known[0], reads), max(known[1], writes)]
    # Requests pick a minute shard, and a copy, at random: one's expected load is their mean (the
    # busiest of a few hundred recorded requests would overstate it).
    for kind, loads in shards.items():
        busiest[kind] = [sum(load[0] for load in loads) / len(loads), sum(load[1] for load in loads) / len(loads)]
    return busiest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=400, help="requests recorded per case (default 400)")
    args = parser.parse_args()
    print(
        f"Per partition key, the busiest of each kind: read units/s (limit {READ_LIMIT}) / "
        f"write units/s (limit {WRITE_LIMIT}); recorded from {args.requests} requests a case on moto.\n"
    )
    for case in CASES:
        proxy, aggregator, tables = record_case(case, args.requests)
        print(f"### {case.name}")
        print(f"proxy: {proxy.transactions} transactions; aggregator: {aggregator.transactions} transactions\n")
        print("| partition key | " + " | ".join(f"{rate:,} req/s" for rate in RATES) + " | ceiling (req/s) |")
        print("| --- |" + " --- |" * (len(RATES) + 1))
        tables_by_rate = {rate: per_second(case, rate, args.requests, proxy, aggregator, tables) for rate in RATES}
        for kind in sorted(tables_by_rate[RATES[0]]):
            cells = []
            for rate in RATES:
                reads, writes = tables_by_rate[rate][kind]
                over = " **over**" if reads > READ_LIMIT or writes > WRITE_LIMIT else ""
                cells.append(f"{reads:,.0f} / {writes:,.0f}{over}")
            top_reads, top_writes = tables_by_rate[RATES[-1]][kind]
            load = max(top_reads / READ_LIMIT, top_writes / WRITE_LIMIT) / RATES[-1]
            ceiling = f"{1 / load:,.0f}" if load else "-"
            print(f"| {kind} | " + " | ".join(cells) + f" | {ceiling} |")
        print()


if __name__ == "__main__":
    main()
