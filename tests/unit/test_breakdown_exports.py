"""Activity's detailed exports: a metric by a grouping ("Tokens by API key"), as a PDF of a summary
page for every group then a page per group, and as a CSV of the metric's counters, both agreeing
with the ledger they were counted from."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import BytesIO

import pytest
from pypdf import PdfReader

from meterway.analytics.logic.rollups import contribution, count_records
from meterway.analytics.logic.windows import parse_window
from meterway.exports.logic.attempts import ExportDeps
from meterway.exports.logic.export_jobs import ExportCreate, new_job
from meterway.exports.logic.pdf_charts import dollars
from meterway.exports.logic.run_export import run_job
from meterway.ledger.models import TOKEN_FIELDS, TokenUsage
from tests.fakes import InMemoryFiles, InMemoryJobs, InMemoryKeyStore, InMemoryLedger, InMemoryQueue, InMemoryRollups
from tests.ledger_factory import KEYS, MODELS, ledger_item

NOW = datetime(2026, 11, 23, 8, tzinfo=UTC)
START = datetime(2026, 11, 20, tzinfo=UTC)


@pytest.fixture
def account():
    """Three keys (two members and none), three models, a failure, over three days."""
    items = [
        ledger_item(
            START + timedelta(hours=5 * n, minutes=n),
            model=MODELS[n % 3],
            key=KEYS[n % 3],
            usage=TokenUsage(input_tokens=100 * n, output_tokens=10 * n, reasoning_tokens=n),
            cost=Decimal(n) / 1000,
            status="error" if n == 7 else "ok",
            user=(None, "alice@example.com", "team#7", "alice@example.com")[n % 4],
            app=("support-bot", None)[n % 2],
        )
        for n in range(1, 13)
    ]
    rollups, keys = InMemoryRollups(), InMemoryKeyStore()
    count_records(rollups, [contribution(item) for item in items], now=START)
    for number, key in enumerate(KEYS):
        keys.put(key, f"hash-{number}")
    jobs, files = InMemoryJobs(), InMemoryFiles()
    deps = ExportDeps(jobs, InMemoryLedger(), rollups, keys, files, InMemoryQueue(), clock=lambda: NOW)
    return items, deps, jobs, files


def export(deps, jobs, files, **body) -> tuple[dict, bytes]:
    request = ExportCreate(kind="activity", start="2026-11-20", end="2026-11-22", **body)
    job = new_job("acct", request, parse_window(request.start, request.end, NOW, from_rollups=True), NOW)
    jobs.create(job)
    assert run_job(job["job_id"], deps, final_attempt=False) == "succeeded"
    done = jobs.jobs[job["job_id"]]
    return done, files.objects[done["object_key"]]


def grouped(items: list[dict], field: str) -> dict[str, list[dict]]:
    """The records by their key, user or app (``(none)`` for a record naming none)."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for item in items:
        groups[item.get(field) or "(none)"].append(item)
    return groups


def pages(pdf: bytes) -> list[str]:
    return [page.extract_text() for page in PdfReader(BytesIO(pdf)).pages]


def test_tokens_by_api_key_is_a_summary_page_then_a_page_per_key_with_its_models(account):
    items, deps, jobs, files = account
    job, pdf = export(deps, jobs, files, format="pdf", metric="tokens", group_by="key")

    assert job["filename"] == "tokens-by-key-2026-11-20_2026-11-22.pdf"
    text = pages(pdf)
    by_key = grouped(items, "key_id")
    assert len(text) == 1 + len(by_key)
    summary = text[0]
    assert "Tokens by API key" in summary and "Tokens over the window" in summary
    everything = sum(item["total_tokens"] for item in items)
    assert f"{everything:,}" in summary  # the overview's total tokens
    # Most tokens first, each with its share of the tokens
    order = sorted(by_key, key=lambda key_id: -sum(i["total_tokens"] for i in by_key[key_id]))
    names = {key.key_id: key.name for key in KEYS}
    positions = [summary.index(names[key_id]) for key_id in order]
    assert positions == sorted(positions)
    for key_id in order:
        share = Decimal(sum(i["total_tokens"] for i in by_key[key_id]) * 100) / everything
        assert f"{share:.1f}%" in summary
    for page, key_id in zip(text[1:], order, strict=True):
        assert names[key_id] in page and f"Key ID: {key_id}" in page
        assert f"{sum(i['total_tokens'] for i in by_key[key_id]):,}" in page
        reasoning = sum(i["reasoning_tokens"] for i in by_key[key_id])
        assert f"incl. {reasoning:,} reasoning" in page  # the part of output spent thinking
        for model in {i["model"] for i in by_key[key_id]}:
            assert model in page


def test_spend_by_member_sums_each_members_keys_and_a_provider_says_why_it_has_no_models(account):
    items, deps, jobs, files = account
    _, pdf = export(deps, jobs, files, format="pdf", metric="cost", group_by="member")
    text = pages(pdf)
    assert "Spend by member" in text[0]
    alice = next(page for page in text[1:] if "MEMBER" in page and "alice" in page)
    assert "Keys: prod" in alice
    spent = sum((i["cost_usd"] for i in items if i["member"] == "alice"), Decimal(0))
    assert f"Total cost (USD, exact)\n{dollars(spent)}" in alice

    _, pdf = export(deps, jobs, files, format="pdf", metric="requests", group_by="provider")
    text = pages(pdf)
    assert "Requests by provider" in text[0]
    assert all("no per-model figures by provider" in page for page in text[1:])


def test_spend_by_user_and_requests_by_app_have_a_page_each_with_its_own_models(account):
    items, deps, jobs, files = account
    job, pdf = export(deps, jobs, files, format="pdf", metric="cost", group_by="user")

    assert job["filename"] == "cost-by-user-2026-11-20_2026-11-22.pdf"
    text = pages(pdf)
    by_user = grouped(items, "user")
    assert "Spend by user" in text[0] and len(text) == 1 + len(by_user)
    for user, theirs in by_user.items():
        (page,) = [page for page in text[1:] if f"User: {user}" in page]
        assert "USER" in page
        assert f"Total cost (USD, exact)\n{dollars(sum((i['cost_usd'] for i in theirs), Decimal(0)))}" in page
        models = {i["model"] for i in theirs}
        assert all(model in page for model in models)
        assert not any(model in page for model in set(MODELS) - models)

    _, pdf = export(deps, jobs, files, format="pdf", metric="requests", group_by="app")
    text = pages(pdf)
    assert "Requests by app" in text[0] and len(text) == 3  # the support bot's, and those naming none
    bot = next(page for page in text[1:] if "App: support-bot" in page)
    served = [i for i in items if i.get("app") == "support-bot" and i["status"] != "error"]
    assert f"Requests\n{len(served):,}" in bot


@pytest.mark.parametrize(
    ("metric", "columns"),
    [
        ("cost", ["cost_usd"]),
        ("requests", ["requests", "errors"]),
        (
            "tokens",
            list(TOKEN_FIELDS),
        ),
    ],
)
def test_a_metrics_csv_has_its_counters_only_and_they_add_up_to_the_ledger(account, metric, columns):
    items, deps, jobs, files = account
    job, data = export(deps, jobs, files, format="csv", metric=metric, group_by="model")
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8"))))
    assert list(rows[0]) == ["bucket_start", "granularity", "group_by", "group", "name", *columns]
    assert job["total_rows"] == len(rows)
    for column in columns:
        total = sum(Decimal(row[column]) for row in rows)
        if column == "requests":
            assert total == sum(item["status"] != "error" for item in items)
        elif column == "errors":
            assert total == 1
        else:
            assert total == sum(Decimal(str(item[column])) for item in items)
