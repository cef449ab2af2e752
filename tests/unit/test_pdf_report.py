"""The PDF usage report, read back with pypdf: the pages and figures a reader sees."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from io import BytesIO
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pypdf import PdfReader

from meterway.exports.logic.pdf_report import (
    MODELS_PER_CONTINUATION_PAGE,
    MODELS_PER_KEY_PAGE,
    SUMMARY_MODEL_ROWS,
    KeySection,
    ReportData,
    page_count,
    render_report,
)


def figures(cost: str = "0", requests: int = 0, **tokens: int) -> dict[str, Any]:
    base = {
        "input_tokens": 0,
        "output_tokens": 0,
        "reasoning_tokens": 0,
        "cache_creation_tokens": 0,
        "cache_creation_5m_tokens": 0,
        "cache_creation_1h_tokens": 0,
        "cache_read_tokens": 0,
        "total_tokens": 0,
    }
    return {"cost": cost, "requests": requests, **base, **tokens}


def daily(days: int, cost: str = "1.25", start: date = date(2026, 11, 1)) -> list[tuple[str, str]]:
    return [((start + timedelta(days=offset)).isoformat(), cost) for offset in range(days)]


def key(name: str, cost: str = "0", requests: int = 0, models: int = 0, key_id: str = "key_1") -> KeySection:
    rows = [{"model": f"model-{index:03d}", **figures("0.5", 10)} for index in range(models)]
    return KeySection(key_id, name, "dev@example.com", figures(cost, requests), rows, daily(22))


def report(
    keys: list[KeySection],
    *,
    cost: str = "0",
    requests: int = 0,
    series: list[tuple[str, str]] | None = None,
    top_models: list[dict[str, Any]] | None = None,
) -> ReportData:
    return ReportData(
        account_id="acct_1",
        title="Meterway usage report",
        start="2026-11-01T00:00:00Z",
        end="2026-11-23T00:00:00Z",
        generated_at="2026-11-23T08:14:05Z",
        totals=figures(cost, requests),
        series=daily(22) if series is None else series,
        top_models=top_models or [],
        keys=keys,
    )


def pages(pdf: bytes) -> list[str]:
    assert pdf.startswith(b"%PDF-")
    return [page.extract_text() for page in PdfReader(BytesIO(pdf)).pages]


def test_one_summary_page_then_one_page_per_key_including_keys_without_usage():
    # Given three keys, one of which was never used
    data = report(
        [key("Backend", "10.5", 7, models=3), key("Unused"), key("Batch", "2.000001", 1, models=1)],
        cost="12.500001",
        requests=8,
    )

    # When the report is rendered
    text = pages(render_report(data))

    # Then it has the summary plus a page per key, each numbered out of the total
    assert len(text) == 4 == page_count(data)
    assert all(f"Page {number} of 4" in page for number, page in enumerate(text, start=1))


def test_summary_shows_the_exact_total_cost_and_the_request_count():
    data = report([], cost="12345.678912", requests=1234567)

    summary = pages(render_report(data))[0]

    assert "$12,345.678912" in summary
    assert "$12,345.68" in summary
    assert "1,234,567" in summary
    assert "1 Nov 2026 00:00 – 23 Nov 2026 00:00 UTC" in summary


def test_each_key_page_shows_its_name_member_id_and_cost():
    data = report(
        [key("Backend", "10.5", 7, models=2, key_id="key_a"), key("Batch jobs", "0.000123", 2, key_id="key_b")]
    )

    _, backend, batch = pages(render_report(data))

    assert "Backend" in backend and "key_a" in backend and "$10.50" in backend
    assert "dev@example.com" in backend and "model-001" in backend
    assert "Batch jobs" in batch and "key_b" in batch and "$0.000123" in batch


def test_text_the_core_fonts_cannot_print_becomes_question_marks_instead_of_failing():
    # Given user-chosen names and model ids outside latin-1 (CJK, emoji, a bidi override)
    model = {"model": "模型-v1 🚀", **figures("1", 1)}
    section = KeySection("key_1", "Équipe 日本 \u202eevil", "zoë@例え.jp", figures("1", 1), [model], daily(3))
    data = report([section], top_models=[model])

    # When the report is rendered
    summary, key_page = pages(render_report(data))

    # Then it renders, keeping what latin-1 can show and marking the rest
    assert "??-v1 ?" in summary
    assert "Équipe ?? evil" in key_page
    assert "zoë@??.jp" in key_page


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.text(max_size=80), model=st.text(max_size=80))
def test_no_text_whatsoever_breaks_the_render(name: str, model: str):
    section = KeySection(name, name, name, figures("1", 1), [{"model": model, **figures("1", 1)}], [(name, "1")])

    assert len(pages(render_report(report([section], series=[(model, "2")])))) == 2


def test_an_account_without_keys_or_usage_renders_a_single_page():
    data = report([], series=[])

    (summary,) = pages(render_report(data))

    assert "$0.00" in summary
    assert "No usage in this window." in summary
    assert "Page 1 of 1" in summary


def test_all_zero_and_single_bucket_series_render():
    zero = report([key("Quiet")], series=daily(22, "0"))
    single = report([key("Once")], series=daily(1, "0.004"))

    assert "No spend in this period" in pages(render_report(zero))[0]
    assert "Peak $0.004 on 1 Nov 2026" in pages(render_report(single))[0]


def test_a_year_of_daily_buckets_renders_with_readable_labels():
    # Given a 365-bucket spend series crossing a year end
    data = report([key("Backend")], series=daily(365, "3.5", start=date(2025, 12, 1)))

    summary = pages(render_report(data))[0]

    # Then only some buckets are labelled, with their year since the series spans two
    assert "1 Dec 2025" in summary
    assert "Peak $3.50" in summary
    assert summary.count(" 2026") < 40


def test_a_key_keeps_one_page_for_its_first_models_and_continues_beyond():
    # Given the key-page capacity the docstring promises, and one model more than that
    assert MODELS_PER_KEY_PAGE >= 25
    full = report([key("Full", models=MODELS_PER_KEY_PAGE)])
    over = report([key("Over", models=MODELS_PER_KEY_PAGE + 1), key("Next", key_id="key_2")])

    # Then the full key fits its own page, and the overflowing key continues on one more
    assert len(pages(render_report(full))) == 2 == page_count(full)
    text = pages(render_report(over))
    assert len(text) == 4 == page_count(over)
    assert f"model-{MODELS_PER_KEY_PAGE - 1:03d}" in text[1]
    assert f"model-{MODELS_PER_KEY_PAGE:03d}" in text[2] and "continued (2 of 2)" in text[2]
    assert "Next" in text[3] and "Page 4 of 4" in text[3]


def test_continuation_pages_hold_their_own_number_of_rows():
    data = report([key("Huge", models=MODELS_PER_KEY_PAGE + 2 * MODELS_PER_CONTINUATION_PAGE + 1)])

    assert len(pages(render_report(data))) == 1 + 4 == page_count(data)


def test_models_beyond_the_summary_table_are_summed_into_one_row():
    # Given more top models than the summary page has rows for
    models = [{"model": f"model-{index:03d}", **figures("0.25", 2)} for index in range(SUMMARY_MODEL_ROWS + 4)]

    (summary,) = pages(render_report(report([], top_models=models)))

    # Then the summary stays one page, the last row summing the rest exactly
    assert f"model-{SUMMARY_MODEL_ROWS - 2:03d}" in summary
    assert f"model-{SUMMARY_MODEL_ROWS - 1:03d}" not in summary
    other = next(line for line in summary.splitlines() if line.startswith("Other"))
    assert other.startswith("Other (5 models) 10 ") and other.endswith(" $1.25")


@pytest.mark.parametrize(
    ("cost", "shown"),
    [("0", "$0.00"), ("12.5", "$12.50"), ("1234567.000000001", "$1,234,567.000000001"), ("3E+2", "$300.00")],
)
def test_costs_are_exact_with_thousands_separators(cost: str, shown: str):
    summary = pages(render_report(report([], cost=cost)))[0]

    assert shown in summary


def test_the_same_data_renders_the_same_bytes():
    data = report([key("Backend", "1.5", 3, models=2)], cost="1.5", requests=3)

    assert render_report(data) == render_report(data)


def test_figures_may_come_as_decimals_from_dynamodb():
    section = KeySection("key_1", "Backend", None, {"cost": Decimal("2.5"), "requests": Decimal(3)}, [], daily(2))

    _, key_page = pages(render_report(report([section])))

    assert "$2.50" in key_page and "Member: none" in key_page
