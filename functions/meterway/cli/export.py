"""``meterway export``: start an export through the management API, follow it, download it."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from meterway.analytics.models import GROUP_BY, METRICS, records_of

LOCAL_JSON = Path(".meterway/local.json")


def add_parser(groups: Any) -> None:
    export = groups.add_parser("export", help="export usage to a file (CSV of requests by default)")
    export.add_argument("--start", help="date or ISO datetime, UTC (default: 30 days ago)")
    export.add_argument("--end", help="date (inclusive) or ISO datetime (exclusive), UTC (default: now)")
    export.add_argument("--model", help="only this model (requests export)")
    export.add_argument("--key", help="only this key id (requests export)")
    export.add_argument("--user", help="only this end user; (none): those that named none (requests export)")
    export.add_argument("--app", help="only this app; (none): those that named none (requests export)")
    export.add_argument("--kind", choices=("requests", "activity"), default="requests")
    export.add_argument("--format", choices=("csv", "pdf"), default="csv", help="pdf: the report (--kind activity)")
    export.add_argument("--group-by", choices=GROUP_BY, help="activity grouping")
    export.add_argument(
        "--metric",
        choices=METRICS,
        help="activity: that metric by --group-by (a CSV of its counters; a PDF of a summary page, then a page per group)",
    )
    export.add_argument("-o", "--output", type=Path, help="file to write (default: the export's own name)")
    export.add_argument(
        "--api-url", default=os.environ.get("MW_API_URL"), help="management API, e.g. https://…/prod/api"
    )
    export.add_argument("--admin-key", default=os.environ.get("MW_ADMIN_KEY"), help="admin key (or MW_ADMIN_KEY)")
    export.add_argument("--poll-seconds", type=float, default=0.5)


def _endpoint(args: argparse.Namespace) -> tuple[str, str]:
    api_url, admin_key = args.api_url, args.admin_key
    if (not api_url or not admin_key) and LOCAL_JSON.exists():
        local = json.loads(LOCAL_JSON.read_text())
        api_url, admin_key = api_url or local["management_api"], admin_key or local["admin_key"]
    if not api_url or not admin_key:
        sys.exit("Set --api-url and --admin-key (or MW_API_URL and MW_ADMIN_KEY).")
    return str(api_url).rstrip("/"), str(admin_key)


def run(args: argparse.Namespace) -> int:
    import httpx
    from tqdm import tqdm

    api_url, admin_key = _endpoint(args)
    body = {
        name: value
        for name, value in {
            "kind": args.kind,
            "format": args.format,
            "start": args.start,
            "end": args.end,
            "model": args.model,
            "key": args.key,
            "user": args.user,
            "app": args.app,
            "group_by": args.group_by,
            "metric": args.metric,
        }.items()
        if value is not None
    }
    with httpx.Client(base_url=api_url, headers={"authorization": f"Bearer {admin_key}"}, timeout=30) as client:
        started = _checked(client.post("/exports", json=body))
        expected = _expected_rows(client, body) if args.kind == "requests" else None
        with tqdm(total=expected, unit="rows", desc=started["filename"], file=sys.stderr) as bar:
            job = _follow(client, started["id"], bar, args.poll_seconds)
        if job["status"] != "succeeded":
            print(f"export failed: {job.get('error') or 'no reason given'}", file=sys.stderr)
            return 1
        target = args.output or Path(job["filename"])
        with httpx.stream("GET", job["url"], timeout=300) as download, target.open("wb") as out:
            download.raise_for_status()
            for chunk in download.iter_bytes():
                out.write(chunk)
    print(f"{target} ({job['rows']} rows)")
    return 0


def _checked(response: Any) -> dict[str, Any]:
    if response.is_error:
        error = response.json().get("error", {}) if "json" in response.headers.get("content-type", "") else {}
        sys.exit(f"{response.status_code}: {error.get('message') or response.text}")
    result: dict[str, Any] = response.json()
    return result


def _expected_rows(client: Any, body: dict[str, Any]) -> int | None:
    """The window's records (its requests and errors), from the rollups: the progress bar's total
    (none with two of a key, a user and an app, which the rollups do not keep together)."""
    query = {name: body[name] for name in ("start", "end", "model", "key", "user", "app") if name in body}
    response = client.get("/usage", params=query)
    return records_of(response.json()["totals"]) if response.is_success else None


def _follow(client: Any, job_id: str, bar: Any, poll_seconds: float) -> dict[str, Any]:
    while True:
        job = _checked(client.get(f"/exports/{job_id}"))
        if job.get("total_rows") is not None and bar.total != job["total_rows"]:
            bar.total = job["total_rows"]  # the job says how many rows it writes, once it knows
            bar.refresh()
        bar.update(job["rows"] - bar.n)
        if job["status"] in ("succeeded", "failed"):
            return job
        time.sleep(poll_seconds)
