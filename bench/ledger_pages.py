"""A fast local DynamoDB endpoint that answers the ledger's Query with recorded pages, in
DynamoDB's own wire format; every other DynamoDB call goes on to moto.

Why not moto's own Query: it lists and sorts the whole table for every page and writes each item
through its generic response code (≈4.5 s for one 1,000-record page of a 100k-record table on
these machines): an export against it measures moto. DynamoDB answers such a page in a few
milliseconds; this endpoint in about one, so what an export measures here is the export.

The ledger: ``records`` records of one account spread evenly over one day (``DAY``), made from
four ``UsageRecord.to_item()`` items (a streamed OpenAI request with cache reads, an Anthropic one
with 5-minute and 1-hour cache writes, a reasoning model, an upstream error), each record with
its own request id, time, token counts, cost, latency and user, and the counter deltas a settled
record carries for the aggregator (``record_usage.with_counters``: its key's spend period and
minute, its account's balance), then ``core.aws.serialize``: the item as the table holds it.

The export's Query asks for a projection (``ledger_store.projection(LEDGER_FIELDS)``), so DynamoDB
answers with those attributes of each record only: the counters stay in the table. The endpoint is
started with that projection and answers only Queries that ask for it, with the records as the
projection leaves them, in DynamoDB's JSON, written compact as DynamoDB sends it. They are
recorded once per size in a file (the records joined by commas, then their offsets), so that a
page is one slice of the file; later runs reuse it.

A Query of the ``ByAccountTime`` index (``account_id = :owner AND created_sk BETWEEN :low AND
:high``, ``Limit``, ``ExclusiveStartKey``, oldest first) is answered as DynamoDB answers it:
``{"Count", "Items", "LastEvaluatedKey", "ScannedCount"}``, the last evaluated key whenever the
limit stopped the page (so a page may come back empty at the very end), and the
``x-amz-crc32`` header that botocore checks. A 1,000-record page is about 0.6 MB of item data
by DynamoDB's size rules, under its 1 MB page limit, so the limit is what cuts pages, as in AWS.
Filters are not served (the bench exports a whole account).

With ``--aws-latency`` each page comes no sooner than a latency drawn from the bench's model of a
single-item DynamoDB call (``aws_relay.SINGLE_ITEM``: p50 6.5 ms, p99 16 ms). That is the model's
only figure for a Query; a page of 1,000 records likely takes longer, so it is a lower bound.

    python bench/ledger_pages.py --records N --dir DIR --table T --moto URL --port P --projection A,B,… [--aws-latency]
"""

from __future__ import annotations

import argparse
import bisect
import functools
import http.client
import json
import mmap
import random
import sys
import threading
import time
import zlib
from array import array
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "functions")]

DAY = datetime(2026, 10, 1, tzinfo=UTC)
DAY_MS = 86_400_000
DAY_TEXT, DAY_EPOCH_MS = DAY.strftime("%Y-%m-%d"), int(DAY.timestamp()) * 1000
ACCOUNT = "acct_bench"
INDEX = "ByAccountTime"
KEY_CONDITION = "account_id = :owner AND created_sk BETWEEN :low AND :high"
MILLION = Decimal(1_000_000)


# --- the recorded ledger --------------------------------------------------------------------------


@functools.cache
def templates() -> tuple[dict[str, Any], ...]:
    """Four ledger items as the proxy writes them (``UsageRecord.to_item()``)."""
    from meterway.accounts.models import ApiKey
    from meterway.ledger.models import TokenUsage, UsageRecord

    alice = ApiKey("key_bench_alice", ACCOUNT, "backend", member="alice@example.com")
    bob = ApiKey("key_bench_bob", ACCOUNT, "ci, nightly", member="bob@example.com")
    openai = {"input_mtok": Decimal("0.15"), "output_mtok": Decimal("0.6"), "cache_read_mtok": Decimal("0.075")}
    anthropic = {
        "input_mtok": Decimal("3"),
        "output_mtok": Decimal("15"),
        "cache_read_mtok": Decimal("0.3"),
        "cache_write_5m_mtok": Decimal("3.75"),
        "cache_write_1h_mtok": Decimal("6"),
    }
    record = functools.partial(UsageRecord, request_id="", created_at=DAY, endpoint="/v1/chat/completions")
    records = [
        record(
            key=alice,
            model="openai/gpt-4o-mini",
            provider="openai",
            streamed=True,
            tokens=TokenUsage(input_tokens=1180, output_tokens=312, cache_read_tokens=1024),
            prices=openai,
            latency_ms=2140,
            ttft_ms=310,
            user="user-8812",
            app="support-bot",
            finish_reason="stop",
        ),
        record(
            key=bob,
            model="anthropic/claude-sonnet-4-5",
            provider="anthropic",
            streamed=False,
            tokens=TokenUsage(
                input_tokens=412,
                output_tokens=1024,
                cache_creation_5m_tokens=2048,
                cache_creation_1h_tokens=512,
                cache_read_tokens=8192,
            ),
            prices=anthropic,
            latency_ms=9310,
            finish_reason="end_turn",
        ),
        record(
            key=alice,
            model="openai/o4-mini",
            provider="openai",
            streamed=True,
            tokens=TokenUsage(input_tokens=640, output_tokens=2210, reasoning_tokens=1792),
            prices={"input_mtok": Decimal("1.1"), "output_mtok": Decimal("4.4"), "cache_read_mtok": Decimal("0.275")},
            latency_ms=15020,
            ttft_ms=11200,
            finish_reason="length",
        ),
        record(
            key=bob,
            model="openai/gpt-4.1",
            provider="openai",
            streamed=False,
            status="error",
            latency_ms=420,
            error_code="upstream_error",
            upstream_status=503,
        ),
    ]
    return tuple(usage.to_item() for usage in records)


def identity(index: int, records: int) -> tuple[str, str]:
    """Record ``index`` of ``records``: its request id and ``created_at`` (as ``utc_iso`` writes
    it), spread evenly over DAY."""
    offset = index * DAY_MS // records
    seconds, millis = divmod(offset, 1000)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    created = f"{DAY_TEXT}T{hour:02d}:{minute:02d}:{second:02d}.{millis:03d}Z"
    return f"gen-{DAY_EPOCH_MS + offset:012x}{index:016x}", created


def created_sk(index: int, records: int) -> str:
    request_id, created = identity(index, records)
    return f"{created}#{request_id}"


def ledger_item(index: int, records: int) -> dict[str, Any]:
    """Record ``index`` as the ledger holds it: a template with its own id, time and figures, and
    the counters its settle added."""
    from meterway.accounts.models import CounterDelta
    from meterway.ledger.logic.record_usage import with_counters

    item = dict(templates()[index % 4])
    request_id, created = identity(index, records)
    item |= {"request_id": request_id, "created_at": created, "created_sk": f"{created}#{request_id}"}
    if item["status"] == "ok":
        item["input_tokens"] += index * 7919 % 1500
        item["output_tokens"] += index * 104729 % 900
        item["total_tokens"] = sum(
            item[name] for name in ("input_tokens", "cache_creation_tokens", "cache_read_tokens", "output_tokens")
        )
        prices = item["prices"]
        item["cost_usd"] = (
            item["input_tokens"] * prices["input_mtok"]
            + item["output_tokens"] * prices["output_mtok"]
            + item["cache_read_tokens"] * prices["cache_read_mtok"]
        ) / MILLION
        item["latency_ms"] += index % 3000
    if "user" in item:
        item["user"] = f"user-{index % 4099}"
    key, spent = item["key_id"], item.get("cost_usd", Decimal(0))
    counters = [
        CounterDelta(f"KEY#{key}", "SPEND#2026-10", {"spent_usd": spent, "inflight": -1}, 1_800_000_000),
        CounterDelta(f"KEY#{key}", f"MINUTE#{created[:16]}", {"requests": 1, "tokens": item["total_tokens"]}),
        CounterDelta(f"ACCOUNT#{ACCOUNT}", "BALANCE", {"spent_usd": spent, "inflight": -1}),
    ]
    return with_counters(item, counters)


def wire_item(index: int, records: int, projection: tuple[str, ...] = ()) -> bytes:
    """The record in DynamoDB's JSON, compact, as a Query answer carries it: only the attributes of
    ``projection`` when there is one."""
    from meterway.core.aws import serialize

    item = ledger_item(index, records)
    if projection:
        item = {name: item[name] for name in projection if name in item}
    return json.dumps(serialize(item), separators=(",", ":")).encode("utf-8")


def recorded_ledger(records: int, folder: Path, projection: tuple[str, ...]) -> tuple[Path, Path]:
    """The ledger's file and its offsets, written once per size and projection:
    ``data[offsets[i]:offsets[i + 1] - 1]`` is record ``i``, and a page ``a..b`` is
    ``data[offsets[a]:offsets[b] - 1]``."""
    name = f"ledger-{records}-{zlib.crc32(','.join(projection).encode()):08x}"
    data, offsets = folder / f"{name}.items", folder / f"{name}.offsets"
    if data.exists() and offsets.exists():
        return data, offsets
    folder.mkdir(parents=True, exist_ok=True)
    written = array("Q", [0])
    with (folder / "writing.items").open("wb") as out:
        for index in range(records):
            record = wire_item(index, records, projection)
            out.write(record + b",")
            written.append(written[-1] + len(record) + 1)
    (folder / "writing.items").rename(data)
    offsets.write_bytes(written.tobytes())
    return data, offsets


def dynamodb_size(item: dict[str, Any]) -> int:
    """An item's size by DynamoDB's rules (names and values; about 1 byte per digit pair of a number)."""
    size = 0
    for name, value in item.items():
        size += len(name.encode()) + _value_size(value)
    return size


def _value_size(value: dict[str, Any]) -> int:
    (kind, inner), *_ = value.items()
    if kind == "S":
        return len(str(inner).encode())
    if kind == "N":
        return (len(str(inner)) + 1) // 2 + 1
    if kind == "BOOL":
        return 1
    if kind == "M":
        return 3 + sum(len(name.encode()) + _value_size(nested) + 1 for name, nested in inner.items())
    return len(json.dumps(inner))


# --- the endpoint ---------------------------------------------------------------------------------


class SortKeys:
    """The records' ``created_sk`` in index order, computed when asked: ``bisect`` finds a bound
    in 20 look-ups without a million strings in memory."""

    def __init__(self, records: int):
        self.records = records

    def __len__(self) -> int:
        return self.records

    def __getitem__(self, index: int) -> str:
        return created_sk(index, self.records)


class Ledger:
    """The recorded pages, mapped from their file."""

    def __init__(self, data: Path, offsets: Path, records: int, table: str, projection: tuple[str, ...]):
        self.records, self.table, self.projection = records, table, projection
        self._file = data.open("rb")
        self.data = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
        self.offsets = array("Q")
        self.offsets.frombytes(offsets.read_bytes())
        self.keys = SortKeys(records)

    def answer(self, query: dict[str, Any]) -> bytes:
        """The Query's answer, as DynamoDB writes it."""
        values = query["ExpressionAttributeValues"]
        if query.get("KeyConditionExpression") != KEY_CONDITION or "FilterExpression" in query:
            raise ValueError("only the export's unfiltered ByAccountTime query is served")
        if not query.get("ScanIndexForward", True):
            raise ValueError("only oldest-first pages are served")
        if asked_projection(query) != self.projection:
            raise ValueError(f"only the projection {self.projection} is served")
        if values[":owner"]["S"] != ACCOUNT:
            return b'{"Count":0,"Items":[],"ScannedCount":0}'
        first = bisect.bisect_left(self.keys, values[":low"]["S"])
        end = bisect.bisect_right(self.keys, values[":high"]["S"])
        if "ExclusiveStartKey" in query:
            first = max(first, bisect.bisect_right(self.keys, query["ExclusiveStartKey"]["created_sk"]["S"]))
        limit = int(query.get("Limit", 1000))
        last = min(first + limit, max(first, end))
        count = last - first
        items = self.data[self.offsets[first] : self.offsets[last] - 1] if count else b""
        parts = [b'{"Count":%d,"Items":[' % count, items, b"]"]
        if count == limit:
            parts.append(b',"LastEvaluatedKey":' + self._key(last - 1))
        parts.append(b',"ScannedCount":%d}' % count)
        return b"".join(parts)

    def _key(self, index: int) -> bytes:
        request_id, created = identity(index, self.records)
        key = {
            "account_id": {"S": ACCOUNT},
            "created_sk": {"S": f"{created}#{request_id}"},
            "request_id": {"S": request_id},
        }
        return json.dumps(key, separators=(",", ":")).encode()


def asked_projection(query: dict[str, Any]) -> tuple[str, ...]:
    """The attributes a Query's ``ProjectionExpression`` names, in its order (none: the whole item)."""
    names = query.get("ExpressionAttributeNames", {})
    expression = query.get("ProjectionExpression", "")
    return tuple(names.get(part.strip(), part.strip()) for part in expression.split(",") if part.strip())


def handler_class(ledger: Ledger, moto: str, latency: Any = None) -> type[BaseHTTPRequestHandler]:
    """``latency`` (an ``aws_relay.Lognormal``), when given, is the least time a ledger page takes
    to come, drawn per Query; the time spent making the answer counts toward it."""
    moto_at = urlsplit(moto)
    local = threading.local()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.headers.get("X-Amz-Target", "").endswith(".Query"):
                query = json.loads(body)
                if query.get("TableName") == ledger.table and query.get("IndexName") == INDEX:
                    started = time.monotonic()
                    answer = ledger.answer(query)
                    if latency is not None:
                        if getattr(local, "rng", None) is None:
                            local.rng = random.Random(threading.get_ident())
                        time.sleep(max(0.0, latency.draw_s(local.rng) - (time.monotonic() - started)))
                    self._answer(200, answer, "application/x-amz-json-1.0")
                    return
            self._forward(body)

        def _answer(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("x-amz-crc32", str(zlib.crc32(body)))
            for name, value in (headers or {"x-amzn-RequestId": "bench"}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def _forward(self, body: bytes) -> None:
            """Any other call, to moto as it came (moto ignores the signature's host)."""
            if getattr(local, "moto", None) is None:
                local.moto = http.client.HTTPConnection(moto_at.hostname, moto_at.port, timeout=60)
            headers = {name: value for name, value in self.headers.items() if name.lower() != "host"}
            local.moto.request("POST", self.path, body=body, headers=headers)
            answer = local.moto.getresponse()
            content = answer.read()
            passed = {
                name: value
                for name, value in answer.getheaders()
                if name.lower() in ("x-amzn-requestid", "x-amzn-errortype")
            }
            self._answer(answer.status, content, answer.getheader("Content-Type", "application/x-amz-json-1.0"), passed)

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--table", required=True, help="the ledger table's name")
    parser.add_argument("--moto", required=True, help="moto server's URL, for every other call")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--projection", required=True, help="the attributes the export's Query asks for")
    parser.add_argument(
        "--aws-latency",
        action="store_true",
        help="answer each page no sooner than a latency drawn from the relay's model of a single-item call",
    )
    args = parser.parse_args()
    projection = tuple(args.projection.split(","))
    data, offsets = recorded_ledger(args.records, args.dir, projection)
    ledger = Ledger(data, offsets, args.records, args.table, projection)
    latency = None
    if args.aws_latency:
        from bench.aws_relay import SINGLE_ITEM

        latency = SINGLE_ITEM
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler_class(ledger, args.moto, latency))
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
