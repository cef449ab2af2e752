"""Export throughput end to end, and each export worker's peak memory, on recorded DynamoDB pages.

Budget (docs/architecture.md §4): "Export: ≥ 50k rows/s end to end at any size; peak RSS
≤ 128 MiB for 1M rows." Invariant 5: exports stream, memory stays flat however many rows.

What runs where (these machines have 2 shared cores: compare figures within one run):
- AWS is moto server (``devstack.stack.start_moto``, with the local stack's patches): the jobs and
  rollups tables, the export queue and the export bucket, made from template.yaml.
- The ledger is ``bench/ledger_pages.py``: a local endpoint answering the ledger index's Query
  with recorded pages in DynamoDB's own wire format, each record as the export's projection leaves
  it, and passing every other DynamoDB call on to moto. Before the runs the bench writes the same
  300 records, whole (with the counters a settled record carries), to moto, reads them through
  moto's Query and through the endpoint with the export's own reader and projection, and checks
  that both answer the same items, paged the same way.
- The rollups hold the hourly counts of those records (the aggregator's ``total`` cells, written
  with ``DynamoRollupStore.add``): the export plans its slices from them, as in AWS.
- Workers are child processes, each what the local stack runs for the ExportFunction's event
  source mapping (``devstack.workers.SqsPoller`` on the export queue, one message at a time)
  calling the real ``export_worker.handler``. They import the handler and make their clients
  before the clock starts, like warm Lambda instances, and each reports its peak RSS (VmHWM from
  /proc) and CPU time when stopped, and those of the child processes it made rows in
  (``MW_EXPORT_ROW_PROCESSES``: the template's, or each of ``--row-processes`` in turn).
- A run is one requests export of the whole day, created and queued as the API does. Its time
  runs from the job's message to the job reading ``succeeded`` (polled every 20 ms). ``one worker``
  is one worker process with ``MW_EXPORT_SLICE_ROWS=0``; ``fanned out`` is ``--workers`` processes
  with the default slice size, the job's slices being taken by whichever process is free. The
  file is then read back from moto (sha256, bytes, lines): both modes must give the same bytes,
  and the header plus one line per record.

    .venv/bin/python bench/export_throughput.py [--sizes 100000,1000000] [--workers 4] [--aws-latency]
        [--row-processes 0,1]

The recorded ledger is kept in --cache (1 GB at 1M records) for later runs.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "functions")]

from bench import ledger_pages  # noqa: E402  (after the path is set)
from devstack.stack import die_with_parent  # noqa: E402

RSS_BUDGET_MIB = 128
ROWS_BUDGET = 50_000
MIB = 1024 * 1024
ONE, FANNED = "one worker", "fanned out"
CHECKED_RECORDS = 300
# The poller makes its own SQS client once it runs, after the worker said it was ready.
POLLER_START_S = 3
RUN_LIMIT_S = 900
# The ExportFunction's share of a vCPU in AWS: Lambda gives 1 vCPU at 1,769 MB and in proportion
# below. Used only for the modelled rate below, which nothing here measures.
FULL_VCPU_MB = 1769


@functools.cache
def export_function() -> dict[str, Any]:
    """The ExportFunction's properties in template.yaml."""
    from devstack.aws_resources import load_template

    properties: dict[str, Any] = load_template(ROOT / "template.yaml")["Resources"]["ExportFunction"]["Properties"]
    return properties


def lambda_vcpu() -> float:
    """The ExportFunction's vCPUs by its `MemorySize`."""
    return int(export_function()["MemorySize"]) / FULL_VCPU_MB


def template_row_processes() -> int:
    """The ExportFunction's ``MW_EXPORT_ROW_PROCESSES``."""
    return int(export_function()["Environment"]["Variables"].get("MW_EXPORT_ROW_PROCESSES", 0))


def export_projection() -> tuple[str, ...]:
    """What the export's Query asks for: its rows' fields, and the table's and indexes' keys."""
    from meterway.exports.logic.csv_format import LEDGER_FIELDS
    from meterway.ledger.dal.ledger_store import projection

    return tuple(projection(LEDGER_FIELDS))


# --- the workers ----------------------------------------------------------------------------------


class Workers:
    """Worker processes started with ``env``, ready when their clients are made."""

    def __init__(self, count: int, env: dict[str, str], folder: Path):
        self.folder = folder
        self.processes: list[tuple[subprocess.Popen[bytes], Path, Path]] = []
        for number in range(count):
            ready, result = folder / f"ready-{number}", folder / f"result-{number}.json"
            command = [sys.executable, str(ROOT / "bench" / "export_worker_process.py")]
            command += ["--ready", str(ready), "--result", str(result)]
            log = (folder / f"worker-{number}.log").open("wb")
            process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log, preexec_fn=die_with_parent)
            self.processes.append((process, ready, result))
        deadline = time.monotonic() + 120
        while not all(ready.exists() for _, ready, _ in self.processes):
            if any(process.poll() is not None for process, _, _ in self.processes) or time.monotonic() > deadline:
                raise RuntimeError(f"a worker did not start: see {folder}")
            time.sleep(0.05)
        time.sleep(POLLER_START_S)

    def stop(self) -> list[dict[str, Any]]:
        for process, _, _ in self.processes:
            process.send_signal(signal.SIGTERM)
        reports = []
        for process, _, result in self.processes:
            process.wait(timeout=60)
            reports.append(json.loads(result.read_text()))
        return reports


# --- the parent -----------------------------------------------------------------------------------


class Bench:
    """moto, the template's resources, and the runs made against them."""

    def __init__(self, stack: ExitStack, cache: Path, workdir: Path):
        import boto3
        from botocore.config import Config

        from devstack.aws_resources import create_resources
        from devstack.stack import start_moto

        os.environ |= {
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_S3"):
            os.environ.pop(name, None)
        self.stack, self.cache, self.workdir = stack, cache, workdir
        self.moto = start_moto(stack, "127.0.0.1")
        os.environ["AWS_ENDPOINT_URL"] = self.moto
        self.resources = create_resources(ROOT / "template.yaml", prefix="bench", endpoint_url=self.moto)
        self.dynamodb = boto3.client("dynamodb")
        self.s3 = boto3.client("s3", config=Config(s3={"addressing_style": "path"}))

    def endpoint(self, records: int, aws_latency: bool = False) -> str:
        """The ledger endpoint for ``records`` records, recorded first if need be."""
        from devstack.stack import free_port

        ledger_pages.recorded_ledger(records, self.cache, export_projection())
        port = free_port()
        command = [sys.executable, str(ROOT / "bench" / "ledger_pages.py"), "--records", str(records)]
        command += ["--dir", str(self.cache), "--table", self.resources["LedgerTable"]]
        command += ["--moto", self.moto, "--port", str(port), "--projection", ",".join(export_projection())]
        command += ["--aws-latency"] if aws_latency else []
        process = subprocess.Popen(command, cwd=ROOT, preexec_fn=die_with_parent)
        self.stack.callback(process.terminate)
        url = f"http://127.0.0.1:{port}"
        _wait_for(url)
        return url

    def check_pages(self, endpoint: str) -> dict[str, Any]:
        """The endpoint's pages against moto's Query of the same records, whole in its table, through
        the export's own reader (``DynamoLedgerStore.wire_pages``) and projection."""
        import boto3

        from meterway.core.aws import keep_raw_bodies
        from meterway.exports.logic.csv_format import LEDGER_FIELDS
        from meterway.ledger.dal.ledger_store import DynamoLedgerStore, LedgerQuery

        table = self.resources["LedgerTable"]
        items = [json.loads(ledger_pages.wire_item(index, CHECKED_RECORDS)) for index in range(CHECKED_RECORDS)]
        for first in range(0, len(items), 25):
            batch = [{"PutRequest": {"Item": item}} for item in items[first : first + 25]]
            self.dynamodb.batch_write_item(RequestItems={table: batch})
        day = ledger_pages.DAY
        query = LedgerQuery(
            ledger_pages.ACCOUNT, f"{day:%Y-%m-%d}T00:00:00.000Z", f"{day + timedelta(days=1):%Y-%m-%d}T00:00:00.000Z"
        )
        answers = {}
        for name, url in (("moto", self.moto), ("endpoint", endpoint)):
            client = boto3.client("dynamodb", endpoint_url=url)
            store = DynamoLedgerStore(table, wire_client=keep_raw_bodies(client))
            answers[name] = [json.loads(page) for page in store.wire_pages(query, 128, LEDGER_FIELDS)]
        for item in items:
            self.dynamodb.delete_item(TableName=table, Key={"request_id": item["request_id"]})
        same = answers["moto"] == answers["endpoint"] and sum(map(len, answers["moto"])) == CHECKED_RECORDS
        counters_left = not any("counters" in item for page in answers["endpoint"] for item in page)
        return {
            "records": CHECKED_RECORDS,
            "pages": [len(page) for page in answers["endpoint"]],
            "same_as_moto": same,
            "whole_records_carry_counters": all("counters" in item for item in items),
            "pages_leave_counters_behind": counters_left,
        }

    def seed_rollups(self, records: int) -> None:
        """The hourly ``total`` cells the aggregator would have written for the recorded records."""
        from meterway.analytics.dal import rollups_table
        from meterway.analytics.dal.rollup_store import DynamoRollupStore
        from meterway.analytics.models import TOTAL, RollupUpdate

        hours = Counter(ledger_pages.identity(index, records)[1][:13] for index in range(records))
        updates = [
            RollupUpdate(
                pk=rollups_table.partition(ledger_pages.ACCOUNT, "hour", "total"),
                sk=rollups_table.cell_sk(hour, TOTAL),
                granularity="hour",
                bucket=hour,
                dimension="total",
                value=TOTAL,
                deltas={"requests": count},
            )
            for hour, count in sorted(hours.items())
        ]
        DynamoRollupStore(self.resources["RollupsTable"], client=self.dynamodb).add([], updates, [])

    def worker_env(self, endpoint: str, *, fanned_out: bool, row_processes: int) -> dict[str, str]:
        from devstack.aws_resources import env_for

        env = {
            **os.environ,
            **env_for(self.resources),
            "MW_S3_ADDRESSING_STYLE": "path",
            "AWS_ENDPOINT_URL": self.moto,
            "AWS_ENDPOINT_URL_DYNAMODB": endpoint,
            "POWERTOOLS_LOG_LEVEL": "WARNING",
            "PYTHONPATH": f"{ROOT / 'functions'}:{ROOT}",
            "MW_EXPORT_ROW_PROCESSES": str(row_processes),
        }
        env.pop("MW_EXPORT_SLICE_ROWS", None)
        if not fanned_out:
            env["MW_EXPORT_SLICE_ROWS"] = "0"
        return env

    def run(self, mode: str, records: int, endpoint: str, workers: int, row_processes: int) -> dict[str, Any]:
        """One export of the day by ``workers`` warm worker processes, each making rows in
        ``row_processes`` children; what it took and made."""
        from meterway.analytics.logic.windows import Window
        from meterway.exports.dal.export_jobs import DynamoExportJobStore
        from meterway.exports.dal.job_queue import SqsJobQueue
        from meterway.exports.logic.export_jobs import ExportCreate, new_job

        folder = Path(tempfile.mkdtemp(prefix=f"{records}-{mode.replace(' ', '-')}-", dir=self.workdir))
        env = self.worker_env(endpoint, fanned_out=mode == FANNED, row_processes=row_processes)
        pool = Workers(workers, env, folder)
        jobs = DynamoExportJobStore(self.resources["ExportJobsTable"], client=self.dynamodb)
        day = ledger_pages.DAY
        job = new_job(ledger_pages.ACCOUNT, ExportCreate(kind="requests"), Window(day, day + timedelta(days=1)), day)
        jobs.create(job)
        started = time.perf_counter()
        SqsJobQueue(self.resources["ExportQueue"]).send({"job_id": job["job_id"]})
        deadline = time.monotonic() + RUN_LIMIT_S
        while (done := jobs.get(job["job_id"]) or {}).get("status") not in ("succeeded", "failed"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the export did not end in {RUN_LIMIT_S} s: {done} (logs in {folder})")
            time.sleep(0.02)
        seconds = time.perf_counter() - started
        reports = pool.stop()
        if done["status"] != "succeeded":
            raise RuntimeError(f"the export failed: {done.get('error')} (logs in {folder})")
        return {
            "mode": mode,
            "row_processes": row_processes,
            "records": records,
            "rows": int(done["rows"]),
            "seconds": seconds,
            "slices": len(done.get("cuts", [0, 0])) - 1,
            "workers": reports,
            "file": self.read_back(job["object_key"]),
        }

    def read_back(self, key: str) -> dict[str, Any]:
        """The object's sha256, bytes and lines, streamed from moto; then it is deleted."""
        bucket = self.resources["ExportBucket"]
        digest, size, lines = hashlib.sha256(), 0, 0
        for chunk in self.s3.get_object(Bucket=bucket, Key=key)["Body"].iter_chunks(MIB):
            digest.update(chunk)
            size += len(chunk)
            lines += chunk.count(b"\n")
        self.s3.delete_object(Bucket=bucket, Key=key)
        return {"sha256": digest.hexdigest(), "bytes": size, "lines": lines}


def _wait_for(url: str) -> None:
    import httpx

    deadline = time.monotonic() + 600  # the first run records the ledger (≈1 minute at 1M)
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not start")


def aws_model(run: dict[str, Any]) -> float:
    """Rows a second in AWS, modelled from this run's CPU per row: each slice in a Lambda invocation
    of its own at the function's vCPUs, all at once. A slice's two stages (reading and uploading,
    and making rows in ``row_processes`` children) run side by side, so a slice goes at the pace of
    the slower, and no faster than its vCPUs do the whole of the work."""
    rows, slices, children = run["rows"], run["slices"], run["row_processes"]
    main = sum(report["cpu_s"] for report in run["workers"]) / rows
    rows_cpu = sum(report["children_cpu_s"] for report in run["workers"]) / rows
    slowest_stage = max(main, rows_cpu / children) if children else main
    per_slice = min(1 / slowest_stage, lambda_vcpu() / (main + rows_cpu))
    return per_slice * slices


def summary(run: dict[str, Any]) -> dict[str, Any]:
    peaks = [report["peak_rss_kib"] / 1024 for report in run["workers"]]
    child_peaks = [report["children_peak_rss_kib"] / 1024 for report in run["workers"] if run["row_processes"]]
    main_cpu = sum(report["cpu_s"] for report in run["workers"])
    children_cpu = sum(report["children_cpu_s"] for report in run["workers"])
    cpu = main_cpu + children_cpu
    return {
        "mode": run["mode"],
        "row_processes": run["row_processes"],
        "rows": run["rows"],
        "seconds": round(run["seconds"], 2),
        "rows_per_s": round(run["rows"] / run["seconds"]),
        "slices": run["slices"],
        "worker_processes": len(run["workers"]),
        "invocations": [report["invocations"] for report in run["workers"]],
        "peak_rss_per_worker_mib": [round(peak, 1) for peak in peaks],
        "peak_rss_per_row_process_mib": [round(peak, 1) for peak in child_peaks],
        "rss_ready_mib": round(max(report["rss_ready_kib"] for report in run["workers"]) / 1024, 1),
        "workers_cpu_s": round(main_cpu, 2),
        "row_processes_cpu_s": round(children_cpu, 2),
        "rows_per_worker_cpu_s": round(run["rows"] / cpu),
        # Modelled, not measured (see aws_model); planning, queueing, cold starts and any wait for a
        # page the read-ahead did not hide are not counted.
        "aws_model_rows_per_s": round(aws_model(run)),
        "file_mib": round(run["file"]["bytes"] / MIB, 1),
        "file_sha256": run["file"]["sha256"],
        "lines_are_header_plus_rows": run["file"]["lines"] == run["records"] + 1 == run["rows"] + 1,
        "within_budget": run["rows"] / run["seconds"] >= ROWS_BUDGET and max(peaks + child_peaks) <= RSS_BUDGET_MIB,
    }


def print_table(rows: list[dict[str, Any]], identical: dict[int, bool]) -> None:
    header = (
        f"{'mode':<11} {'rows':>9} {'row procs':>9} {'s':>7} {'rows/s':>8} {'slices':>6} {'procs':>5} "
        f"{'peak RSS per worker, child (MiB)':<34} {'rows/CPU-s':>10} {'AWS model':>9} {'file':>9}  identical"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        peaks = ", ".join(f"{peak:.0f}" for peak in row["peak_rss_per_worker_mib"])
        if row["peak_rss_per_row_process_mib"]:
            peaks += "; " + ", ".join(f"{peak:.0f}" for peak in row["peak_rss_per_row_process_mib"])
        same = "yes" if identical.get(row["rows"]) else "NO"
        print(
            f"{row['mode']:<11} {row['rows']:>9,} {row['row_processes']:>9} {row['seconds']:>7.2f} "
            f"{row['rows_per_s']:>8,} {row['slices']:>6} "
            f"{row['worker_processes']:>5} {peaks:<34} {row['rows_per_worker_cpu_s']:>10,} "
            f"{row['aws_model_rows_per_s']:>9,} "
            f"{row['file_mib']:>5.1f} MiB  {same}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000", help="records per export")
    parser.add_argument("--workers", type=int, default=4, help="worker processes for the fanned-out runs")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "mw-export-bench-ledger")
    parser.add_argument(
        "--aws-latency",
        action="store_true",
        help="each ledger page waits a single-item DynamoDB latency from the bench's model (bench/aws_relay.py)",
    )
    parser.add_argument(
        "--row-processes",
        help="child processes a worker makes rows in, one run of each (e.g. 0,1); by default the template's",
    )
    args = parser.parse_args()
    sizes = sorted({int(size) for size in args.sizes.split(",")})
    row_processes = (
        [int(n) for n in args.row_processes.split(",")] if args.row_processes else [template_row_processes()]
    )
    results, identical, checks = [], {}, {}
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="mw-export-bench-") as workdir:
        bench = Bench(stack, args.cache, Path(workdir))
        checks["pages"] = bench.check_pages(bench.endpoint(CHECKED_RECORDS))
        for records in sizes:
            endpoint = bench.endpoint(records, args.aws_latency)
            bench.seed_rollups(records)
            runs = [
                bench.run(mode, records, endpoint, workers, children)
                for mode, workers in ((ONE, 1), (FANNED, args.workers))
                for children in row_processes
            ]
            identical[records] = len({run["file"]["sha256"] for run in runs}) == 1
            results += [summary(run) for run in runs]
            print(f"{records:,} records: done", flush=True)
    print()
    print(f"pages: {checks['pages']}")
    print_table(results, identical)
    print(json.dumps({"cpus": os.cpu_count(), "checks": checks, "identical": identical, "runs": results}, indent=2))


if __name__ == "__main__":
    main()
