"""Export throughput and the export worker's peak memory (docs/architecture.md: the budget, invariant 5).

Budget: "Export: ≥ 20k rows/s end to end against the local stack; peak RSS flat (≤ 128 MiB) for
1M rows." Invariant 5: "Exports stream: memory stays flat however many rows."

What runs where:
- AWS is moto server in its own process, started the way the local stack starts it
  (``devstack.stack.start_moto`` → ``python -m devstack.moto_server``, with the project's moto
  patches); tables, queues and the export bucket come from ``template.yaml``
  (``devstack.aws_resources.create_resources``), S3 is addressed path-style.
- Every export runs in a child process of its own (``--worker``), so that its peak RSS (VmHWM
  from ``/proc/self/status``) is the export worker's alone: Python, the ExportFunction's imports
  (``meterway.exports.handlers.export_worker``), its boto3 clients and the job. The child builds
  ``export_worker.export_deps()`` from ``MW_*`` variables and calls
  ``run_export.run_job(job_id, deps, final_attempt=True)`` for a ``requests`` CSV job over one
  day (``logic.exports.new_job`` + ``DynamoExportJobStore.create``). Time and CPU time cover
  ``run_job`` only, after imports and client creation. Its wall time is split into ledger reads
  (with the CPU time they took), S3 uploads (``MultipartWriter`` part uploads and completion) and
  the per-page job progress writes; the rest is CSV encoding. RSS is read after the imports,
  before ``run_job``, before each page is fetched (so the peak can be followed through the run)
  and at the end. Rows are ≈260 bytes, so the first 8 MiB part is uploaded after ≈32k rows:
  "peak @10%" of a 100k run comes before any part upload, and the step from there to "@50%" is
  the part buffer and its upload, not growth.
- The parent then reads the object back from moto and checks it: the header plus exactly N rows,
  the first and last rows being the oldest and newest records.

Two kinds of run, labelled in the output:
- ``end-to-end``: the real ``DynamoLedgerStore`` reads the ledger table on moto server (the
  ``ByAccountTime`` index, 1000 records a page) and the file goes to moto's S3 by multipart
  upload. This is "end to end against the local stack". The ledger is seeded first with N
  records of one account spread over one day (``UsageRecord(...).to_item()`` of four templates,
  with their own request ids and times), by ``batch_write_item``, 25 a call, on 4 threads.
- ``worker (synthetic ledger)``: the same child and the same S3 multipart upload and job writes
  to moto, but the ledger is an in-memory ``pages(query, page_size)`` that generates each
  1000-record page when asked (records as ``DynamoLedgerStore.pages`` yields them, ints and
  Decimals), so nothing is held but the page in hand. It isolates the worker from moto's
  DynamoDB, and it skips what a real ledger read costs the worker itself: boto3 parsing the
  Query response and ``deserialize``. Its "ledger" time is the generator's own (a few µs a row).

Why 1M rows are not run end to end by default: moto 5.2.5's DynamoDB is the bottleneck. Its
Query response goes through moto's generic response serialiser, ≈4 ms per ledger item on this
machine, and its GSI Query lists and sorts the whole table for every page: a 1000-record page
took ≈4.5 s with 2k items in the table and ≈7 s with 100k. Seeding runs at ≈700 items/s (moto
server is one interpreter). At 1M, seeding alone would take ≈25 minutes and the export over two
hours, against a budget of ≈15 minutes for the whole run. So the end-to-end run is made at
100k only, and for every size not run end to end the output prints the lower bound that the
100k rates give (the per-page scan only makes it worse). ``--e2e-sizes 100000,1000000`` runs it
anyway. A faster seed (a moto server child seeded through its backend in-process) was not worth
its code: moto's backend ``put_item`` alone measured ≈1.5k items/s, and it is the export, not
the seeding, that makes 1M infeasible.

    .venv/bin/python bench/export_throughput.py [--sizes 100000,1000000] [--e2e-sizes 100000]

takes 13 to 16 minutes on 2 cores: ≈2.5 to seed 100k records and 9 to 12 for the 100k end-to-end
export (moto's Query), ≈1 for the synthetic-ledger runs.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "functions")]

DAY = datetime(2026, 10, 1, tzinfo=UTC)
DAY_MS = 86_400_000
DAY_TEXT, DAY_EPOCH_MS = DAY.strftime("%Y-%m-%d"), int(DAY.timestamp()) * 1000
RSS_BUDGET_MIB = 128
FLAT_RATIO = 1.3  # the largest size's peak RSS over the smallest's, still "flat"
SEED_THREADS = 4
E2E, SYNTHETIC = "end-to-end", "worker (synthetic ledger)"
MIB = 1024 * 1024


# --- ledger records -------------------------------------------------------------------------------


@functools.cache
def templates() -> tuple[dict[str, Any], ...]:
    """Four ledger items, as ``UsageRecord.to_item()`` makes them: a streamed OpenAI request with
    cache reads, an Anthropic one with 5m/1h cache writes, a reasoning model, and an error."""
    from meterway.accounts.models import ApiKey
    from meterway.ledger.models import TokenUsage, UsageRecord

    alice = ApiKey("key_bench_alice", "acct_bench", "backend", member="alice@example.com")
    bob = ApiKey("key_bench_bob", "acct_bench", "ci, nightly", member="bob@example.com")
    openai_prices = {"input_mtok": Decimal("0.15"), "output_mtok": Decimal("0.6"), "cache_read_mtok": Decimal("0.075")}
    anthropic_prices = {
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
            cost_usd=Decimal("0.0004518"),
            prices=openai_prices,
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
            cost_usd=Decimal("0.0283776"),
            prices=anthropic_prices,
            latency_ms=9310,
            finish_reason="end_turn",
        ),
        record(
            key=alice,
            model="openai/o4-mini",
            provider="openai",
            streamed=True,
            tokens=TokenUsage(input_tokens=640, output_tokens=2210, reasoning_tokens=1792),
            cost_usd=Decimal("0.0104280"),
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


@functools.cache
def dynamo_templates() -> tuple[dict[str, Any], ...]:
    """The templates in DynamoDB's wire format, as the ledger table holds them."""
    from meterway.core.aws import serialize

    return tuple(serialize(item) for item in templates())


@functools.cache
def plain_templates() -> tuple[dict[str, Any], ...]:
    """The templates as ``DynamoLedgerStore.pages`` yields them: through DynamoDB's wire format
    and back (whole numbers as int, the rest as Decimal)."""
    from meterway.core.aws import deserialize

    return tuple(deserialize(item) for item in dynamo_templates())


def identity(index: int, n: int) -> tuple[str, str]:
    """Record ``index`` of ``n``: its request id and ``created_at`` (as ``utc_iso`` writes it),
    spread evenly over DAY. Plain arithmetic: the synthetic ledger calls this for every row, and
    its time is counted in the worker's."""
    offset = index * DAY_MS // n
    seconds, millis = divmod(offset, 1000)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    created = f"{DAY_TEXT}T{hour:02d}:{minute:02d}:{second:02d}.{millis:03d}Z"
    return f"gen-{DAY_EPOCH_MS + offset:012x}{index:016x}", created


def dynamo_item(index: int, n: int, account: str) -> dict[str, Any]:
    request_id, created = identity(index, n)
    item = dict(dynamo_templates()[index % 4])
    item["request_id"], item["created_at"] = {"S": request_id}, {"S": created}
    item["created_sk"], item["account_id"] = {"S": f"{created}#{request_id}"}, {"S": account}
    return item


def plain_item(index: int, n: int, account: str) -> dict[str, Any]:
    request_id, created = identity(index, n)
    return plain_templates()[index % 4] | {
        "request_id": request_id,
        "created_at": created,
        "created_sk": f"{created}#{request_id}",
        "account_id": account,
    }


class SyntheticLedger:
    """``LedgerStore.pages`` for N records of the queried account, generated a page at a time."""

    def __init__(self, rows: int):
        self.rows = rows

    def pages(self, query: Any, page_size: int = 1000) -> Iterator[list[dict[str, Any]]]:
        for first in range(0, self.rows, page_size):
            last = min(first + page_size, self.rows)
            yield [plain_item(index, self.rows, query.account_id) for index in range(first, last)]


# --- the worker (child process) -------------------------------------------------------------------


def status_kib(field: str) -> int:
    """A ``/proc/self/status`` figure in KiB (VmRSS: now, VmHWM: the peak so far)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} is not in /proc/self/status")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@contextmanager
def stopwatch(timings: dict[str, float], name: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[name] += time.perf_counter() - started


class TimedLedger:
    """Adds the wall time and the CPU time spent getting each page to ``timings["ledger"]`` and
    ``timings["ledger_cpu"]``, and notes the peak RSS so far before each page is fetched (after
    the previous one was written), as ``(rows done, VmHWM KiB)``."""

    def __init__(self, inner: Any, timings: dict[str, float]):
        self._inner, self._timings = inner, timings
        self.peaks: list[tuple[int, int]] = []

    def pages(self, query: Any, page_size: int = 1000) -> Iterator[list[dict[str, Any]]]:
        pages, done = iter(self._inner.pages(query, page_size)), 0
        while True:
            self.peaks.append((done, status_kib("VmHWM")))
            cpu_before = time.process_time()
            with stopwatch(self._timings, "ledger"):
                page = next(pages, None)
            self._timings["ledger_cpu"] += time.process_time() - cpu_before
            if page is None:
                return
            done += len(page)
            yield page


class TimedWriter:
    """Adds the time spent in the multipart writer (part uploads, completion) to ``timings["s3"]``."""

    def __init__(self, inner: Any, timings: dict[str, float]):
        self._inner, self._timings = inner, timings

    def write(self, data: bytes) -> None:
        with stopwatch(self._timings, "s3"):
            self._inner.write(data)

    def complete(self) -> None:
        with stopwatch(self._timings, "s3"):
            self._inner.complete()

    def abort(self) -> None:
        self._inner.abort()


class TimedFiles:
    def __init__(self, inner: Any, timings: dict[str, float]):
        self._inner, self._timings = inner, timings

    def writer(self, key: str, content_type: str) -> TimedWriter:
        with stopwatch(self._timings, "s3"):
            return TimedWriter(self._inner.writer(key, content_type), self._timings)


class TimedJobs:
    """The job store, with the per-page progress writes timed into ``timings["progress"]``."""

    def __init__(self, inner: Any, timings: dict[str, float]):
        self._inner, self._timings = inner, timings

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def progress(self, job_id: str, attempt: str, rows: int, now: str) -> bool:
        with stopwatch(self._timings, "progress"):
            result: bool = self._inner.progress(job_id, attempt, rows, now)
            return result


def run_worker(mode: str, job_id: str, rows: int, result_path: Path) -> None:
    """Run one export job as the ExportFunction would and write what was measured as JSON."""
    import dataclasses

    from meterway.exports.handlers.export_worker import export_deps
    from meterway.exports.logic.run_export import run_job

    rss_imported = status_kib("VmRSS")
    timings = {"ledger": 0.0, "ledger_cpu": 0.0, "s3": 0.0, "progress": 0.0}
    deps = export_deps()
    deps.jobs.get(job_id)  # creates the DynamoDB client now, outside the timed part
    ledger = TimedLedger(SyntheticLedger(rows) if mode == SYNTHETIC else deps.ledger, timings)
    deps = dataclasses.replace(
        deps,
        ledger=cast(Any, ledger),
        files=TimedFiles(deps.files, timings),
        jobs=TimedJobs(deps.jobs, timings),
    )
    rss_before = status_kib("VmRSS")
    cpu_before, started = cpu_seconds(), time.perf_counter()
    outcome = run_job(job_id, deps, final_attempt=True)
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu_before
    job = deps.jobs.get(job_id) or {}
    result = {
        "outcome": outcome,
        "status": job.get("status"),
        "rows": int(job.get("rows", 0)),
        "error": job.get("error"),
        "seconds": seconds,
        "cpu_seconds": cpu,
        "timings": timings,
        "rss_after_imports_kib": rss_imported,
        "rss_before_run_kib": rss_before,
        "peak_rss_kib": status_kib("VmHWM"),
        "peak_rss_by_rows_kib": ledger.peaks,
        "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }
    result_path.write_text(json.dumps(result))


# --- the parent -----------------------------------------------------------------------------------


class Bench:
    """The moto backend, its resources, and the runs made against them."""

    def __init__(self, endpoint: str, resources: dict[str, str], workdir: Path):
        import boto3
        from botocore.config import Config

        from devstack.aws_resources import env_for
        from meterway.exports.dal.export_jobs import DynamoExportJobStore

        self.endpoint, self.resources, self.workdir = endpoint, resources, workdir
        self.dynamodb = boto3.client("dynamodb", endpoint_url=endpoint)
        self.s3 = boto3.client("s3", endpoint_url=endpoint, config=Config(s3={"addressing_style": "path"}))
        self.jobs = DynamoExportJobStore(resources["ExportJobsTable"], client=self.dynamodb)
        self.child_env = {
            **os.environ,
            **env_for(resources),
            "MW_S3_ADDRESSING_STYLE": "path",
            "AWS_ENDPOINT_URL": endpoint,
            "POWERTOOLS_LOG_LEVEL": "WARNING",
            "PYTHONPATH": f"{ROOT / 'functions'}:{ROOT}",
        }

    def seed(self, account: str, n: int) -> float:
        """Write N ledger records of ``account`` with batch_write_item; returns the seconds taken."""
        started = time.perf_counter()
        bounds = [(part * n // SEED_THREADS, (part + 1) * n // SEED_THREADS) for part in range(SEED_THREADS)]
        with ThreadPoolExecutor(SEED_THREADS) as pool:
            for done in [pool.submit(self._seed_range, account, n, first, last) for first, last in bounds]:
                done.result()
        return time.perf_counter() - started

    def _seed_range(self, account: str, n: int, first: int, last: int) -> None:
        import boto3

        client = boto3.session.Session().client("dynamodb", endpoint_url=self.endpoint)
        table = self.resources["LedgerTable"]
        for start in range(first, last, 25):
            batch: list[Any] = [
                {"PutRequest": {"Item": dynamo_item(i, n, account)}} for i in range(start, min(start + 25, last))
            ]
            while batch:
                response = client.batch_write_item(RequestItems={table: batch})
                batch = response.get("UnprocessedItems", {}).get(table, [])

    def export(self, mode: str, account: str, n: int) -> dict[str, Any]:
        """One export job in a child process, then its object read back and checked."""
        from meterway.analytics.logic.windows import Window
        from meterway.exports.logic.export_jobs import ExportCreate, new_job

        job = new_job(account, ExportCreate(kind="requests"), Window(DAY, DAY + timedelta(days=1)), datetime.now(UTC))
        self.jobs.create(job)
        result_path = self.workdir / f"{job['job_id']}.json"
        log_path = self.workdir / f"{job['job_id']}.log"
        command = [sys.executable, __file__, "--worker", mode, "--job-id", job["job_id"], "--rows", str(n)]
        command += ["--result", str(result_path)]
        with log_path.open("wb") as log:
            code = subprocess.run(command, cwd=ROOT, env=self.child_env, stdout=log, stderr=log, check=False)
        if code.returncode != 0 or not result_path.exists():
            tail = log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"the export worker failed ({code.returncode}):\n{tail}")
        result = json.loads(result_path.read_text()) | {"mode": mode, "n": n}
        result["check"] = self.check_object(job["object_key"], n) if result["status"] == "succeeded" else None
        return result

    def check_object(self, key: str, n: int) -> dict[str, Any]:
        """Stream the object back: its size, its line count (header + N rows), its header and its
        first and last rows' request ids. The object is deleted afterwards to free moto's memory."""
        from meterway.exports.logic.csv_format import REQUEST_COLUMNS

        bucket = self.resources["ExportBucket"]
        body = self.s3.get_object(Bucket=bucket, Key=key)["Body"]
        size, lines, head, tail = 0, 0, b"", b""
        for chunk in body.iter_chunks(MIB):
            size += len(chunk)
            lines += chunk.count(b"\n")
            head = head if len(head) >= 8192 else (head + chunk)[:8192]
            tail = (tail + chunk)[-8192:]
        self.s3.delete_object(Bucket=bucket, Key=key)
        head_lines, tail_lines = head.split(b"\r\n"), tail.rstrip(b"\r\n").split(b"\r\n")
        header_ok = head_lines[0].decode() == ",".join(REQUEST_COLUMNS)
        first_ok = head_lines[1].decode().startswith(identity(0, n)[0] + ",")
        last_ok = tail_lines[-1].decode().startswith(identity(n - 1, n)[0] + ",")
        return {
            "bytes": size,
            "lines": lines,
            "ok": lines == n + 1 and header_ok and first_ok and last_ok,
        }


def start_backend(stack: ExitStack) -> tuple[str, dict[str, str]]:
    from devstack.aws_resources import create_resources
    from devstack.stack import start_moto

    os.environ.update(
        {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
    )
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_S3"):
        os.environ.pop(name, None)
    endpoint = start_moto(stack, "127.0.0.1")
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    return endpoint, create_resources(ROOT / "template.yaml", prefix="bench", endpoint_url=endpoint)


def peak_at(result: dict[str, Any], fraction: float) -> float:
    """Peak RSS (MiB) once ``fraction`` of the rows had been written."""
    peaks = [kib for done, kib in result["peak_rss_by_rows_kib"] if done <= fraction * result["n"]]
    return round(peaks[-1] / 1024, 1)


def summarise(result: dict[str, Any]) -> dict[str, Any]:
    peak_mib = result["peak_rss_kib"] / 1024
    check, timings = result["check"] or {}, result["timings"]
    return {
        "mode": result["mode"],
        "rows": result["rows"],
        "seconds": round(result["seconds"], 2),
        "rows_per_s": round(result["rows"] / result["seconds"]),
        "worker_cpu_s": round(result["cpu_seconds"], 2),
        "rows_per_worker_cpu_s": round(result["rows"] / result["cpu_seconds"]),
        "ledger_read_s": round(timings["ledger"], 2),
        "ledger_read_cpu_s": round(timings["ledger_cpu"], 2),
        "s3_upload_s": round(timings["s3"], 2),
        "progress_writes_s": round(timings["progress"], 2),
        "rss_after_imports_mib": round(result["rss_after_imports_kib"] / 1024, 1),
        "rss_before_run_mib": round(result["rss_before_run_kib"] / 1024, 1),
        "peak_rss_at_10pct_rows_mib": peak_at(result, 0.1),
        "peak_rss_at_50pct_rows_mib": peak_at(result, 0.5),
        "peak_rss_mib": round(peak_mib, 1),
        "object_mib": round(check.get("bytes", 0) / MIB, 1),
        "object_lines": check.get("lines"),
        "object_ok": bool(check.get("ok")) and result["rows"] == result["n"],
        "rss_within_budget": peak_mib <= RSS_BUDGET_MIB,
        "status": result["status"],
        "error": result["error"],
    }


def flatness(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per mode: the largest size's peak RSS over the smallest size's."""
    found = {}
    for mode in (SYNTHETIC, E2E):
        runs = sorted((row for row in rows if row["mode"] == mode), key=lambda row: row["rows"])
        if len(runs) >= 2:
            ratio = runs[-1]["peak_rss_mib"] / runs[0]["peak_rss_mib"]
            found[mode] = {
                "from_rows": runs[0]["rows"],
                "to_rows": runs[-1]["rows"],
                "peak_ratio": round(ratio, 3),
                "flat": ratio <= FLAT_RATIO,
            }
    return found


def estimates(sizes: list[int], e2e_sizes: list[int], seeds: dict[int, float], rows: list[dict[str, Any]]) -> list:
    """Lower bounds for the end-to-end runs not made, from the largest one that was."""
    measured = [row for row in rows if row["mode"] == E2E]
    if not measured:
        return []
    basis = max(measured, key=lambda row: row["rows"])
    seed_rate = basis["rows"] / seeds[basis["rows"]]
    return [
        {
            "mode": E2E,
            "rows": n,
            "not_run": True,
            "seed_s_at_least": round(n / seed_rate),
            "export_s_at_least": round(n / basis["rows_per_s"]),
            "basis": f"{basis['rows']}-row run: {seed_rate:.0f} items/s seeded, {basis['rows_per_s']} rows/s exported",
        }
        for n in sizes
        if n not in e2e_sizes
    ]


def print_tables(rows: list[dict[str, Any]], not_run: list[dict[str, Any]], seeds: dict[int, float]) -> None:
    header = (
        f"{'mode':<26} {'rows':>9} {'export s':>9} {'rows/s':>8} {'worker CPU s':>12} {'rows/CPU-s':>10} "
        f"{'ledger s':>9} {'(its CPU)':>9} {'S3 s':>6} {'progress s':>10} {'object':>9} {'N+1 lines':>9}"
    )
    print("Throughput (export s = run_job alone; ledger, S3 and progress s are parts of it)")
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{row['mode']:<26} {row['rows']:>9,} {row['seconds']:>9.1f} {row['rows_per_s']:>8,} "
            f"{row['worker_cpu_s']:>12.1f} {row['rows_per_worker_cpu_s']:>10,} {row['ledger_read_s']:>9.1f} "
            f"{row['ledger_read_cpu_s']:>9.1f} {row['s3_upload_s']:>6.1f} {row['progress_writes_s']:>10.1f} "
            f"{row['object_mib']:>5.1f} MiB {'yes' if row['object_ok'] else 'NO':>9}"
        )
    for row in not_run:
        minutes = (row["seed_s_at_least"] + row["export_s_at_least"]) / 60
        print(
            f"{row['mode']:<26} {row['rows']:>9,}  NOT RUN: would take ≥ {minutes:.0f} min on moto "
            f"(seed ≥ {row['seed_s_at_least']} s + export ≥ {row['export_s_at_least']} s; {row['basis']})"
        )
    for n, seconds in sorted(seeds.items()):
        print(f"seeding the ledger on moto server: {n:,} items in {seconds:.1f} s ({n / seconds:,.0f} items/s)")
    header = (
        f"{'mode':<26} {'rows':>9} {'after imports':>13} {'before run':>11} {'peak @10%':>10} {'peak @50%':>10} "
        f"{'peak':>10} {f'≤ {RSS_BUDGET_MIB} MiB':>10}"
    )
    print()
    print("Export worker RSS (MiB; peak = VmHWM of the child process, @x% = once x% of the rows were written)")
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{row['mode']:<26} {row['rows']:>9,} {row['rss_after_imports_mib']:>13.1f} "
            f"{row['rss_before_run_mib']:>11.1f} {row['peak_rss_at_10pct_rows_mib']:>10.1f} "
            f"{row['peak_rss_at_50pct_rows_mib']:>10.1f} {row['peak_rss_mib']:>10.1f} "
            f"{'yes' if row['rss_within_budget'] else 'NO':>10}"
        )


def parse_sizes(text: str) -> list[int]:
    return sorted({int(part) for part in text.split(",") if part.strip()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000", help="rows per export (synthetic-ledger runs)")
    parser.add_argument("--e2e-sizes", default="100000", help="sizes also run end to end (seeded moto ledger)")
    parser.add_argument("--worker", choices=(E2E, SYNTHETIC), help=argparse.SUPPRESS)
    parser.add_argument("--job-id", help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        run_worker(args.worker, args.job_id, args.rows, args.result)
        return

    started = time.perf_counter()
    sizes, e2e_sizes = parse_sizes(args.sizes), parse_sizes(args.e2e_sizes)
    results, seeds = [], {}
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="mw-export-bench-") as workdir:
        endpoint, resources = start_backend(stack)
        bench = Bench(endpoint, resources, Path(workdir))
        for n in sizes:
            results.append(summarise(bench.export(SYNTHETIC, "acct_bench_synthetic", n)))
            print(f"[{time.perf_counter() - started:6.0f} s] {SYNTHETIC}, {n:,} rows: done", flush=True)
        for n in e2e_sizes:
            account = f"acct_bench_e2e_{n}"
            seeds[n] = bench.seed(account, n)
            print(f"[{time.perf_counter() - started:6.0f} s] seeded {n:,} ledger records", flush=True)
            results.append(summarise(bench.export(E2E, account, n)))
            print(f"[{time.perf_counter() - started:6.0f} s] {E2E}, {n:,} rows: done", flush=True)
    not_run = estimates(sizes, e2e_sizes, seeds, results)
    summary: dict[str, Any] = {
        "budget": {"rows_per_s_end_to_end": 20_000, "peak_rss_mib": RSS_BUDGET_MIB, "flat_ratio": FLAT_RATIO},
        "machine_cpus": os.cpu_count(),
        "runs": results,
        "not_run": not_run,
        "seeding": {str(n): {"seconds": round(s, 1), "items_per_s": round(n / s)} for n, s in seeds.items()},
        "flat": flatness(results),
        "total_run_s": round(time.perf_counter() - started),
    }
    print()
    print_tables(results, not_run, seeds)
    for mode, flat in summary["flat"].items():
        verdict = "flat" if flat["flat"] else "NOT flat"
        print(
            f"{mode}: peak RSS at {flat['to_rows']:,} rows / at {flat['from_rows']:,} rows = "
            f"{flat['peak_ratio']:.2f} ({verdict}, limit {FLAT_RATIO})"
        )
    print(f"total run time: {summary['total_run_s']} s")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
