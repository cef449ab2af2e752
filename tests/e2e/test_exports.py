"""Exports through the local stack: 1,200 requests through the gateway (two of the export's
1,000-record ledger pages), then the CSV, the PDF report and the CLI, each checked against the
ledger and /api/usage."""

from __future__ import annotations

import csv
import io
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from pypdf import PdfReader

pytestmark = pytest.mark.e2e

REQUESTS = 1200
# The local stack serves 10-20 requests a second with 8 at once (moto holds one lock for writes),
# so the module's first test, which makes the traffic, needs longer than pytest's 300 s in a full run.
pytestmark = pytest.mark.timeout(900)
MODELS = ("openai/gpt-4o-mini", "anthropic/claude-haiku-4-5", "openai/gpt-4.1-mini")
TOKENS = ("input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens")


@pytest.fixture(scope="module")
def traffic(fast_stack) -> dict[str, Any]:
    """1,200 requests from two keys, then the window that holds them, once rollups caught up."""
    fast_stack.admin("POST", "/members", json={"member_id": "ops@example.com"}).raise_for_status()
    second = fast_stack.admin("POST", "/keys", json={"name": "batch jobs", "member": "ops@example.com"}).json()
    keys = [fast_stack.api_key, second["secret"]]
    today = datetime.now(UTC).date()

    def call(n: int) -> str:
        response = client.post(
            "/v1/chat/completions",
            json={
                "model": MODELS[n % 3],
                "messages": [{"role": "user", "content": f"row {n}, =1+1"}],
                "user": f"user-{n % 7}",
            },
            headers={"authorization": f"Bearer {keys[n % 2]}"} | ({"x-title": "reports"} if n % 3 == 0 else {}),
        )
        response.raise_for_status()
        return str(response.headers["x-meterway-request-id"])

    with httpx.Client(base_url=fast_stack.base, timeout=30) as client, ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(call, range(REQUESTS)))
    window = {"start": (today - timedelta(days=1)).isoformat(), "end": (today + timedelta(days=1)).isoformat()}
    deadline = time.monotonic() + 300
    while fast_stack.admin("GET", "/usage", params=window).json()["totals"]["requests"] < REQUESTS:
        assert time.monotonic() < deadline, "rollups did not catch up"
        time.sleep(0.5)
    return {"ids": ids, "window": window, "second_key": second}


def export(stack, body: dict[str, Any]) -> dict[str, Any]:
    started = stack.admin("POST", "/exports", json=body)
    assert started.status_code == 202, started.text
    assert started.json()["status"] == "queued"
    # Generous: moto projects each page's records one by one, and in a full run the local stack
    # has taken over 120 s for the first export of 2,500 records (a few seconds in AWS).
    deadline = time.monotonic() + 300
    while True:
        job = stack.admin("GET", f"/exports/{started.json()['id']}").json()
        if job["status"] in ("succeeded", "failed"):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.2)


def test_the_csv_holds_exactly_the_ledgers_rows_and_its_totals_equal_usage(fast_stack, traffic):
    window = traffic["window"]
    job = export(fast_stack, {"kind": "requests", **window})
    assert job["status"] == "succeeded", job
    assert job["filename"] == f"usage-{window['start']}_{window['end']}.csv"
    assert job["rows"] == REQUESTS

    download = httpx.get(job["url"])
    assert download.status_code == 200
    assert download.headers["content-disposition"] == f'attachment; filename="{job["filename"]}"'
    rows = list(csv.DictReader(io.StringIO(download.content.decode("utf-8"))))
    assert sorted(row["request_id"] for row in rows) == sorted(traffic["ids"])
    assert download.content.count(b"\r\n") == REQUESTS + 1

    usage = fast_stack.admin("GET", "/usage", params=window).json()["totals"]
    assert sum(Decimal(row["cost_usd"]) for row in rows) == Decimal(usage["cost"])
    for name in TOKENS:
        assert sum(int(row[name]) for row in rows) == usage[name], name
    assert {row["user"] for row in rows} == {f"user-{n}" for n in range(7)}

    # The URL is signed for one GET of this one object, for the configured 15 minutes.
    url = urlsplit(job["url"])
    signed = {name: values[0] for name, values in parse_qs(url.query).items()}
    assert url.path.endswith(f"/{job['filename']}")
    assert f"/exports/default/{job['id']}/" in url.path
    assert signed["X-Amz-Expires"] == "900"
    assert signed["X-Amz-SignedHeaders"] == "host"
    signed_at = datetime.strptime(signed["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    assert abs((datetime.now(UTC) - signed_at).total_seconds()) < 60
    expires_at = datetime.fromisoformat(job["expires_at"].replace("Z", "+00:00"))
    assert abs((expires_at - signed_at).total_seconds() - 900) < 5


def test_a_key_filtered_export_has_only_that_keys_rows(fast_stack, traffic):
    key_id = traffic["second_key"]["id"]
    job = export(fast_stack, {"kind": "requests", "key": key_id, "model": MODELS[1], **traffic["window"]})
    rows = list(csv.DictReader(io.StringIO(httpx.get(job["url"]).text)))
    assert {(row["key_id"], row["model"]) for row in rows} == {(key_id, MODELS[1])}
    usage = fast_stack.admin("GET", "/usage", params={**traffic["window"], "key": key_id, "model": MODELS[1]}).json()
    assert len(rows) == usage["totals"]["requests"] > 0


def test_exports_filter_and_group_by_the_user_and_the_app_the_requests_named(fast_stack, traffic):
    window = traffic["window"]
    everything = list(
        csv.DictReader(io.StringIO(httpx.get(export(fast_stack, {"kind": "requests", **window})["url"]).text))
    )
    for chosen in ({"user": "user-3"}, {"app": "reports"}, {"app": "(none)"}, {"user": "user-3", "app": "reports"}):
        job = export(fast_stack, {"kind": "requests", **chosen, **window})
        rows = list(csv.DictReader(io.StringIO(httpx.get(job["url"]).text)))
        expected = [row for row in everything if all((row[f] or "(none)") == v for f, v in chosen.items())]
        assert sorted(row["request_id"] for row in rows) == sorted(row["request_id"] for row in expected) != []
        if len(chosen) == 1:  # the rollups keep one of key, user and app at a time
            usage = fast_stack.admin("GET", "/usage", params={**window, **chosen}).json()["totals"]
            assert (usage["requests"], Decimal(usage["cost"])) == (len(rows), sum(Decimal(r["cost_usd"]) for r in rows))

    job = export(fast_stack, {"kind": "activity", "group_by": "user", "granularity": "day", **window})
    assert job["filename"] == f"activity-user-{window['start']}_{window['end']}.csv"
    rows = list(csv.DictReader(io.StringIO(httpx.get(job["url"]).text)))
    by_user: dict[str, int] = {}
    for row in rows:
        if row["group"]:
            by_user[row["group"]] = by_user.get(row["group"], 0) + int(row["requests"])
    assert by_user == {f"user-{n}": sum(row["user"] == f"user-{n}" for row in everything) for n in range(7)}
    refused = fast_stack.admin("POST", "/exports", json={"kind": "activity", "user": "user-3", **window})
    assert (refused.status_code, refused.json()["error"]["code"]) == (400, "invalid_request")


def test_the_pdf_report_has_a_page_per_key_and_the_totals_of_usage(fast_stack, traffic, tmp_path):
    job = export(fast_stack, {"kind": "activity", "format": "pdf", **traffic["window"]})
    assert job["status"] == "succeeded", job
    pdf = httpx.get(job["url"]).content
    (tmp_path / job["filename"]).write_bytes(pdf)
    reader = PdfReader(io.BytesIO(pdf))
    api_keys = [key for key in fast_stack.admin("GET", "/keys").json()["data"] if key["kind"] == "api"]
    assert len(reader.pages) == 1 + len(api_keys)
    usage = fast_stack.admin("GET", "/usage", params=traffic["window"]).json()["totals"]
    summary = reader.pages[0].extract_text()
    assert f"{usage['requests']:,}" in summary
    assert usage["cost"] in summary.replace(",", "")
    names = " ".join(page.extract_text() for page in reader.pages[1:])
    assert all(key["name"] in names for key in api_keys)


def test_the_activity_csv_sums_to_usage(fast_stack, traffic):
    job = export(fast_stack, {"kind": "activity", "group_by": "key", "granularity": "hour", **traffic["window"]})
    rows = list(csv.DictReader(io.StringIO(httpx.get(job["url"]).text)))
    usage = fast_stack.admin("GET", "/usage", params=traffic["window"]).json()["totals"]
    assert sum(int(row["requests"]) for row in rows) == usage["requests"]
    assert sum(Decimal(row["cost_usd"]) for row in rows) == Decimal(usage["cost"])
    assert len({row["bucket_start"] for row in rows}) == 72  # every hour of the three days, empty ones too


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"kind": "requests", "start": "2026-11-20", "end": "2026-11-01"}, 400),
        ({"kind": "requests", "format": "xlsx"}, 400),
        ({"kind": "requests", "format": "pdf"}, 400),
        ({"kind": "receipts"}, 400),
        ({"kind": "requests", "key": "key_not_mine"}, 404),
    ],
)
def test_bad_export_requests_are_refused(fast_stack, body, status):
    response = fast_stack.admin("POST", "/exports", json=body)
    assert response.status_code == status, response.text
    assert set(response.json()["error"]) == {"message", "type", "code"}


def test_an_unknown_export_is_not_found(fast_stack):
    assert fast_stack.admin("GET", "/exports/exp_0000").status_code == 404


@pytest.mark.parametrize("user", [None, "user-3"])
def test_the_cli_exports_with_a_progress_bar_and_downloads_the_file(fast_stack, traffic, tmp_path, user):
    target = tmp_path / "export.csv"
    env = os.environ | {"MW_API_URL": f"{fast_stack.base}/api", "MW_ADMIN_KEY": fast_stack.info["admin_key"]}
    window = traffic["window"]
    chosen = ["--user", user] if user else []
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "meterway.cli",
            "export",
            "--start",
            window["start"],
            "--end",
            window["end"],
            *chosen,
            "-o",
            str(target),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    expected = [rid for n, rid in enumerate(traffic["ids"]) if user in (None, f"user-{n % 7}")]
    assert f"{len(expected)}/{len(expected)}" in done.stderr  # tqdm's bar, counted against /api/usage
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert sorted(row["request_id"] for row in rows) == sorted(expected)


@pytest.mark.parametrize(("kind", "export_format"), [("activity", "csv"), ("activity", "pdf")])
def test_the_clis_bar_has_a_total_for_activity_exports_and_reports_too(
    fast_stack, traffic, tmp_path, kind, export_format
):
    target = tmp_path / f"activity.{export_format}"
    env = os.environ | {"MW_API_URL": f"{fast_stack.base}/api", "MW_ADMIN_KEY": fast_stack.info["admin_key"]}
    window = traffic["window"]
    command = [sys.executable, "-m", "meterway.cli", "export", "--kind", kind, "--format", export_format]
    command += ["--start", window["start"], "--end", window["end"], "-o", str(target)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    # tqdm's bar ends at its total: the rows the job said it would write (a PDF: its requests)
    finished = re.findall(r"(\d+)/(\d+) ", done.stderr.replace("\r", "\n"))
    assert finished and finished[-1][0] == finished[-1][1], done.stderr
    if export_format == "csv":
        assert int(finished[-1][1]) == len(list(csv.DictReader(io.StringIO(target.read_text()))))
    else:
        assert int(finished[-1][1]) == REQUESTS
