"""A large request export on moto, fanned out over the real jobs table, export queue and S3 (whose
5 MiB part minimum moto enforces): the file one worker writes, byte for byte, even when a worker
loses S3 midway and is retried."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError

from devstack.aws_resources import load_template
from devstack.workers import SqsPoller
from meterway.analytics.dal.rollup_store import DynamoRollupStore
from meterway.analytics.logic.rollups import contribution, count_records
from meterway.analytics.logic.windows import Window
from meterway.core import aws
from meterway.core.aws import serialize
from meterway.exports.dal.export_jobs import DynamoExportJobStore
from meterway.exports.dal.job_queue import SqsJobQueue
from meterway.exports.handlers import export_worker
from meterway.exports.logic.csv_format import csv_text, request_row
from meterway.exports.logic.export_jobs import ExportCreate, new_job
from meterway.exports.logic.request_csv import HEADER
from meterway.exports.logic.run_export import run_job
from tests.ledger_factory import KEYS, MODELS, ledger_item

ROOT = Path(__file__).resolve().parents[2]
_EXPORT_FUNCTION = load_template(ROOT / "template.yaml")["Resources"]["ExportFunction"]["Properties"]
DEPLOYED_ROW_PROCESSES = _EXPORT_FUNCTION["Environment"]["Variables"]["MW_EXPORT_ROW_PROCESSES"]

DAY = datetime(2026, 11, 20, tzinfo=UTC)
WINDOW = Window(DAY, DAY + timedelta(days=1))
ACCOUNT = KEYS[0].account_id


def seed(resources: dict[str, str], items: list[dict[str, Any]]) -> None:
    """The records into the ledger, and into the rollups as the aggregator counts them."""
    client = boto3.client("dynamodb")
    for first in range(0, len(items), 25):
        batch = [{"PutRequest": {"Item": serialize(item)}} for item in items[first : first + 25]]
        client.batch_write_item(RequestItems={resources["LedgerTable"]: batch})
    count_records(DynamoRollupStore(resources["RollupsTable"]), [contribution(item) for item in items])


def fat_records(count: int) -> list[dict[str, Any]]:
    """Records of about 20 KiB of CSV each (a long ``user``): a 5 MiB part in ~260 rows."""
    step = timedelta(days=1) / count
    return [
        ledger_item(DAY + step * n, key=KEYS[n % 2], model=MODELS[n % 3]) | {"user": f"{n:06d}" + "u" * 20_000}
        for n in range(count)
    ]


def expected_file(items: list[dict[str, Any]]) -> bytes:
    """The file as the rows of the deserialized records make it, oldest first."""
    ordered = sorted(items, key=lambda item: item["created_sk"])
    return HEADER + csv_text(request_row(item) for item in ordered).encode("utf-8")


@pytest.fixture
def fanned_out(aws_env, monkeypatch, run_in_thread) -> Iterator[Callable[[], dict[str, Any]]]:
    """The export worker polling the export queue (as the local stack runs it), slices of 280
    records, rows made in child processes as deployed: ``export()`` starts a requests export of
    the day and waits for its end."""
    monkeypatch.setenv("MW_EXPORT_SLICE_ROWS", "280")
    monkeypatch.setenv("MW_EXPORT_ROW_PROCESSES", DEPLOYED_ROW_PROCESSES)
    jobs = DynamoExportJobStore(aws_env["ExportJobsTable"])
    run_in_thread(
        SqsPoller(aws_env["ExportQueue"], export_worker.handler, "ExportFunction", batch_size=1, retry_delay_s=0)
    )

    def export() -> dict[str, Any]:
        job = new_job(ACCOUNT, ExportCreate(kind="requests"), WINDOW, DAY + timedelta(days=2))
        jobs.create(job)
        SqsJobQueue(aws_env["ExportQueue"]).send({"job_id": job["job_id"]})
        deadline = time.monotonic() + 120
        while (found := jobs.get(job["job_id"]) or {}).get("status") not in ("succeeded", "failed"):
            assert time.monotonic() < deadline, found
            time.sleep(0.1)
        return found

    yield export


def download(resources: dict[str, str], job: dict[str, Any]) -> bytes:
    found = boto3.client("s3").get_object(Bucket=resources["ExportBucket"], Key=job["object_key"])
    body: bytes = found["Body"].read()
    return body


def test_a_fanned_out_export_is_the_single_workers_file_byte_for_byte(aws_env, fanned_out):
    items = fat_records(840)
    seed(aws_env, items)

    job = fanned_out()

    assert job["status"] == "succeeded", job
    assert len(job["cuts"]) - 1 == 3
    assert job["rows"] == len(items)
    assert download(aws_env, job) == expected_file(items)
    # One worker, given the same job, writes the same bytes
    alone = new_job(ACCOUNT, ExportCreate(kind="requests"), WINDOW, DAY + timedelta(days=2))
    deps = dataclasses.replace(export_worker.export_deps(), slice_rows=0, row_processes=0)
    deps.jobs.create(alone)
    assert run_job(alone["job_id"], deps, final_attempt=True) == "succeeded"
    assert download(aws_env, alone) == download(aws_env, job)


def test_a_worker_that_loses_s3_midway_is_retried_without_a_duplicate_or_a_gap(aws_env, fanned_out):
    items = fat_records(840)
    seed(aws_env, items)
    uploads = {"n": 0}

    def drop_the_third_part(**_: Any) -> None:
        uploads["n"] += 1
        if uploads["n"] == 3:  # after two parts went up, one worker loses S3
            raise EndpointConnectionError(endpoint_url="s3")

    s3 = aws.client("s3", "auto")  # the client the export worker's file store will use
    s3.meta.events.register("before-send.s3.UploadPart", drop_the_third_part)

    job = fanned_out()

    assert job["status"] == "succeeded", job
    assert uploads["n"] > 3
    assert download(aws_env, job) == expected_file(items)
