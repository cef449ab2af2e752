"""Usage, dashboard and activity in the browser: the figures on the page are the API's, filters
narrow them, a request row explains its tokens, and exports download the rows they promise."""

from __future__ import annotations

import csv
import io
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.e2e.conftest import LocalStack
from tests.e2e.console.conftest import cell, screenshot, signed_in

SONNET = "anthropic/claude-sonnet-4-5"
MINI = "openai/gpt-4o-mini"
GPT5 = "openai/gpt-5-mini"


def cached_messages() -> list[dict[str, Any]]:
    """A prompt with a 1-hour and a 5-minute cache breakpoint: its first call writes both."""
    return [
        {
            "role": "system",
            "content": [
                {"type": "text", "text": "Policy clause. " * 400, "cache_control": {"type": "ephemeral", "ttl": "1h"}}
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Ticket history. " * 200, "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": "Summarise the policy."},
            ],
        },
    ]


@pytest.fixture(scope="module")
def traffic(fast_stack: LocalStack) -> dict[str, Any]:
    """Seven requests over three models and two keys, rolled up before the tests look."""
    import openai

    created = fast_stack.admin("POST", "/keys", json={"name": "batch jobs"})
    created.raise_for_status()
    batch = created.json()
    default = fast_stack.openai()
    other = openai.OpenAI(base_url=fast_stack.info["api_base"], api_key=batch["secret"], max_retries=0)
    for index in range(3):
        default.chat.completions.create(model=MINI, messages=[{"role": "user", "content": f"Hello {index}"}])
    for _ in range(2):
        default.chat.completions.create(model=SONNET, messages=cached_messages())
    for index in range(2):
        other.chat.completions.create(model=GPT5, messages=[{"role": "user", "content": f"Plan {index}"}])
    deadline = time.monotonic() + 20
    while usage(fast_stack)["totals"]["requests"] < 7:
        assert time.monotonic() < deadline, "the aggregator did not roll the requests up"
        time.sleep(0.2)
    return {"batch_key": batch, "default_key": default_key_id(fast_stack)}


def default_key_id(stack: LocalStack) -> str:
    keys = stack.admin("GET", "/keys").json()["data"]
    return next(key["id"] for key in keys if key["name"] == "local dev")


def window() -> dict[str, str]:
    """The console's default range: the last 30 days, both ends included, in UTC."""
    today = datetime.now(UTC).date()
    return {"start": (today - timedelta(days=29)).isoformat(), "end": today.isoformat()}


def usage(stack: LocalStack, **filters: str) -> dict[str, Any]:
    response = stack.admin("GET", "/usage", params={**window(), **filters})
    response.raise_for_status()
    return dict(response.json())


def stat(page: Page, label: str) -> Locator:
    return page.locator(".stat", has=page.get_by_text(label, exact=True)).locator(".stat-value")


def section(page: Page, heading: str) -> Locator:
    return page.locator("section", has=page.get_by_role("heading", name=heading, exact=True))


def expect_totals(page: Page, expected: dict[str, Any]) -> None:
    """The stat cards and the per-model table show exactly what /api/usage answered."""
    totals = expected["totals"]
    expect(stat(page, "Total cost").locator(".cost")).to_have_attribute("data-exact", totals["cost"])
    expect(stat(page, "Requests")).to_have_text(f"{totals['requests']:,}")
    expect(stat(page, "Input tokens")).to_have_text(f"{totals['input_tokens']:,}")
    expect(stat(page, "Output tokens")).to_have_text(f"{totals['output_tokens']:,}")
    rows = section(page, "By model").locator("tbody tr:has(td:not(.empty))")
    expect(rows).to_have_count(len(expected["models"]))
    for row, model in zip(rows.all(), expected["models"], strict=True):
        expect(cell(row, "Model")).to_have_text(model["model"])
        expect(cell(row, "Requests")).to_have_text(f"{model['requests']:,}")
        expect(cell(row, "Errors")).to_have_text(f"{model['errors']:,}")
        expect(cell(row, "Cache creation")).to_have_text(f"{model['cache_creation_tokens']:,}")
        expect(cell(row, "Cost").locator(".cost")).to_have_attribute("data-exact", model["cost"])


def test_usage_filters_by_model_and_key_and_matches_the_api(page: Page, fast_stack: LocalStack, traffic):
    signed_in(page, fast_stack)
    page.get_by_role("navigation").get_by_role("link", name="Usage").click()
    expect(page).to_have_url(f"{fast_stack.base}/usage")
    everything = usage(fast_stack)
    assert everything["totals"]["requests"] == 7
    expect_totals(page, everything)
    screenshot(page, "usage")

    page.get_by_label("Model", exact=True).select_option(SONNET)
    only_sonnet = usage(fast_stack, model=SONNET)
    assert only_sonnet["totals"]["requests"] == 2
    expect_totals(page, only_sonnet)
    log = section(page, "Requests").locator("tbody tr")
    expect(log).to_have_count(2)
    for row in log.all():
        expect(cell(row, "Model").locator(".model")).to_have_text(SONNET)
        expect(cell(row, "Model").locator(".endpoint")).to_have_text(re.compile(r"^/v1/"))

    page.get_by_label("Model", exact=True).select_option("")
    page.get_by_label("API key", exact=True).select_option(traffic["batch_key"]["id"])
    only_batch = usage(fast_stack, key=traffic["batch_key"]["id"])
    assert only_batch["totals"]["requests"] == 2
    expect_totals(page, only_batch)
    expect(log).to_have_count(2)
    for row in log.all():
        expect(cell(row, "Key, user, app")).to_have_text("batch jobs")  # its requests name no user or app
    assert "key=" in page.url
    screenshot(page, "usage-filtered-by-key")

    # Both filters at once: this key never called that model.
    page.get_by_label("Model", exact=True).select_option(GPT5)
    expect_totals(page, usage(fast_stack, model=GPT5, key=traffic["batch_key"]["id"]))
    page.get_by_label("API key", exact=True).select_option(traffic["default_key"])
    nothing = usage(fast_stack, model=GPT5, key=traffic["default_key"])
    assert nothing["totals"]["requests"] == 0
    expect_totals(page, nothing)
    expect(section(page, "Requests").get_by_text("No requests in this range.")).to_be_visible()


def test_hovering_a_request_shows_its_token_breakdown(page: Page, fast_stack: LocalStack, traffic):
    requests = fast_stack.admin("GET", "/usage/requests", params={**window(), "model": SONNET}).json()["data"]
    writer = next(row for row in requests if row["tokens"]["cache_creation_1h"])
    signed_in(page, fast_stack)
    page.goto(f"{fast_stack.base}/usage?model={SONNET}")
    row = section(page, "Requests").locator("tbody tr", has=page.locator(f"time[datetime='{writer['created_at']}']"))
    total = row.locator(".has-tip")
    expect(total).to_contain_text(f"{writer['tokens']['total']:,}")
    expect(row.locator(".tip")).to_be_hidden()

    total.hover()
    breakdown = row.get_by_role("tooltip")
    expect(breakdown).to_be_visible()
    tokens = writer["tokens"]
    for name, value in [
        ("Input", tokens["input"]),
        ("Output", tokens["output"]),
        ("Cache write", tokens["cache_creation"]),
        ("of which 5-minute", tokens["cache_creation_5m"]),
        ("of which 1-hour", tokens["cache_creation_1h"]),
    ]:
        expect(breakdown.locator("dt", has_text=name).locator("xpath=following-sibling::dd[1]")).to_have_text(
            f"{value:,}"
        )
    screenshot(page, "usage-request-breakdown", full_page=False)
    # Escape dismisses it without moving the pointer; it comes back on the next hover.
    page.keyboard.press("Escape")
    expect(breakdown).to_be_hidden()
    page.mouse.move(0, 0)
    total.hover()
    expect(breakdown).to_be_visible()

    # The keyboard gets the same breakdown: the total is focusable.
    page.mouse.move(0, 0)
    expect(breakdown).to_be_hidden()
    total.focus()
    expect(breakdown).to_be_visible()


def test_export_csv_downloads_every_request_in_the_range(page: Page, fast_stack: LocalStack, traffic, tmp_path):
    signed_in(page, fast_stack)
    page.goto(f"{fast_stack.base}/usage")
    expect(stat(page, "Requests")).to_have_text("7")
    requests = section(page, "Requests")
    expect(requests.get_by_text("narrow the range")).to_be_visible()

    with page.expect_download() as started:
        requests.get_by_role("button", name="Export CSV").click()
    download = started.value
    span = window()
    assert download.suggested_filename == f"usage-{span['start']}_{span['end']}.csv"
    path = tmp_path / download.suggested_filename
    download.save_as(path)
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
    listed = fast_stack.admin("GET", "/usage/requests", params={**span, "limit": 200}).json()["data"]
    assert len(rows) == 7
    assert {row["request_id"] for row in rows} == {row["id"] for row in listed}
    assert {row["model"] for row in rows} == {SONNET, MINI, GPT5}
    expect(requests.get_by_role("status")).to_contain_text("Exported 7 rows")
    expect(requests.get_by_role("link", name=download.suggested_filename)).to_be_visible()
    screenshot(page, "usage-exported")


def test_dashboard_shows_balance_trend_top_models_and_recent_activity(page: Page, fast_stack: LocalStack, traffic):
    dashboard = fast_stack.admin("GET", "/dashboard").json()
    signed_in(page, fast_stack)
    expect(page.get_by_role("heading", level=1)).to_have_text("Dashboard")
    expect(stat(page, "Spend, last 7 days").locator(".cost")).to_have_attribute(
        "data-exact", dashboard["last_7_days"]["totals"]["cost"]
    )
    expect(stat(page, "Balance")).to_have_text("No prepaid limit")
    expect(page.get_by_role("img", name="Daily spend over the last 7 days")).to_be_visible()
    top = section(page, "Top models, last 30 days").locator("tbody tr")
    expect(top).to_have_count(len(dashboard["top_models"]))
    expect(top.first.locator("td").first).to_have_text(dashboard["top_models"][0]["model"])
    expect(section(page, "Recent activity").locator("tbody tr")).to_have_count(len(dashboard["recent_activity"]))
    screenshot(page, "dashboard")

    page.get_by_text("30 days", exact=True).click()
    expect(page.get_by_role("img", name="Daily spend over the last 30 days")).to_be_visible()


def test_activity_groups_by_key_and_exports_csv_and_pdf(page: Page, fast_stack: LocalStack, traffic, tmp_path):
    signed_in(page, fast_stack)
    page.get_by_role("navigation").get_by_role("link", name="Activity").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Activity")
    expect(page.get_by_role("img", name="Spend per day")).to_be_visible()
    screenshot(page, "activity")

    page.get_by_text("1 day", exact=True).click()
    page.get_by_text("API key", exact=True).click()
    expect(page).to_have_url(f"{fast_stack.base}/activity?period=1d&group_by=key")
    groups = fast_stack.admin("GET", "/activity", params={"period": "1d", "group_by": "key"}).json()["groups"]
    table = section(page, "By API key").locator("tbody tr")
    expect(table).to_have_count(len(groups))
    expect(table.locator("td").nth(0)).to_have_text(groups[0]["name"])
    expect(page.get_by_role("img", name="Requests per hour, by key")).to_be_visible()
    screenshot(page, "activity-by-key")

    with page.expect_download() as csv_download:
        page.get_by_role("button", name="Export CSV").click()
    assert csv_download.value.suggested_filename.startswith("activity-key-")
    csv_path = tmp_path / "activity.csv"
    csv_download.value.save_as(csv_path)
    rows = list(csv.DictReader(io.StringIO(csv_path.read_text(encoding="utf-8-sig"))))
    assert sum(int(row["requests"]) for row in rows) == 7
    assert {row["name"] for row in rows if row["group"]} == {"local dev", "batch jobs"}

    with page.expect_download() as pdf_download:
        page.get_by_role("button", name="Export PDF").click()
    assert pdf_download.value.suggested_filename.endswith(".pdf")
    pdf_path = tmp_path / "report.pdf"
    pdf_download.value.save_as(pdf_path)
    assert pdf_path.read_bytes().startswith(b"%PDF")


def test_the_period_changes_from_the_keyboard(page: Page, fast_stack: LocalStack, traffic):
    signed_in(page, fast_stack)
    page.goto(f"{fast_stack.base}/activity?period=1mo&group_by=model")
    month = page.get_by_role("radio", name="1 month")
    expect(month).to_be_checked()
    month.focus()
    page.keyboard.press("ArrowRight")
    expect(page.get_by_role("radio", name="1 year")).to_be_checked()
    expect(page.get_by_role("img", name="Spend per month")).to_be_visible()


def test_a_range_without_usage_says_so_instead_of_drawing_an_empty_scale(page: Page, fast_stack: LocalStack, traffic):
    signed_in(page, fast_stack)
    page.goto(f"{fast_stack.base}/usage?start=2026-06-01&end=2026-06-03")
    expect(stat(page, "Requests")).to_have_text("0")
    chart = section(page, "Over time")
    expect(chart.get_by_text("No usage in this range.")).to_be_visible()
    chart.locator("label", has_text="Requests").click()
    expect(chart.get_by_role("radio", name="Requests")).to_be_checked()
    expect(chart.get_by_text("No usage in this range.")).to_be_visible()
    screenshot(page, "usage-empty")

    # And a range with usage draws its chart, with no such message
    page.goto(f"{fast_stack.base}/usage")
    expect(stat(page, "Requests")).to_have_text("7")
    expect(section(page, "Over time").get_by_text("No usage in this range.")).to_have_count(0)


def test_a_link_with_a_malformed_date_shows_the_default_range_and_says_why(page: Page, fast_stack: LocalStack, traffic):
    signed_in(page, fast_stack)
    page.goto(f"{fast_stack.base}/usage?start=yesterday&end=2026-13-45&model={SONNET}")

    notice = page.get_by_role("status").filter(has_text="not a date")
    expect(notice).to_contain_text("The link's start=yesterday and end=2026-13-45 is not a date (YYYY-MM-DD)")
    expect(page.get_by_role("alert")).to_have_count(0)
    start, end = page.get_by_label("From", exact=True).input_value(), page.get_by_label("To", exact=True).input_value()
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", start) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", end)
    assert f"start={start}" in page.url and f"end={end}" in page.url
    # The model asked for is kept, and the other models of the range are there to choose from
    expect(page.get_by_label("Model", exact=True)).to_have_value(SONNET)
    expect(page.get_by_label("Model", exact=True).locator("option", has_text=GPT5)).to_have_count(1)
    assert {MINI, SONNET, GPT5} <= set(page.get_by_label("Model", exact=True).locator("option").all_inner_texts())
    screenshot(page, "usage-malformed-date")


def test_an_api_error_shows_its_message(page: Page, fast_stack: LocalStack, traffic):
    signed_in(page, fast_stack)
    page.goto(f"{fast_stack.base}/usage")
    expect(stat(page, "Requests")).to_have_text("7")
    page.get_by_label("From", exact=True).fill("2026-12-31")
    page.get_by_label("To", exact=True).fill("2026-01-01")
    page.get_by_label("To", exact=True).dispatch_event("change")
    alert = page.get_by_role("alert")
    expect(alert).to_be_visible()
    answer = fast_stack.admin("GET", "/usage", params={"start": "2026-12-31", "end": "2026-01-01"})
    assert answer.status_code == 400
    expect(alert).to_have_text(answer.json()["error"]["message"])
    screenshot(page, "usage-error")

    # A failing server gets a message and a way to try again, not a blank page.
    page.route(
        "**/api/dashboard",
        lambda route: route.fulfill(status=503, content_type="text/plain", body="Service Unavailable"),
    )
    page.goto(f"{fast_stack.base}/")
    expect(page.get_by_role("alert")).to_contain_text("503")
    expect(page.get_by_role("button", name="Try again")).to_be_visible()
    screenshot(page, "dashboard-error")


@pytest.mark.parametrize("path", ["/", "/usage", "/activity", "/keys"])
def test_every_page_fits_a_phone(phone_page: Page, fast_stack: LocalStack, traffic, path: str):
    signed_in(phone_page, fast_stack)
    phone_page.goto(fast_stack.base + path)
    expect(phone_page.get_by_role("heading", level=1)).to_be_visible()
    expect(phone_page.locator(".loading")).to_have_count(0)
    assert phone_page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(phone_page, f"phone{path.replace('/', '-') if path != '/' else '-dashboard'}")


def test_the_console_works_from_the_keyboard(page: Page, fast_stack: LocalStack, traffic):
    page.goto(fast_stack.base + "/")
    expect(page.get_by_label("Admin key")).to_be_focused()
    page.keyboard.type(str(fast_stack.info["admin_key"]))
    page.keyboard.press("Enter")
    expect(page.get_by_role("navigation")).to_be_visible()

    usage_link = page.get_by_role("navigation").get_by_role("link", name="Usage")
    for _ in range(10):
        page.keyboard.press("Tab")
        if usage_link.evaluate("link => link === document.activeElement"):
            break
    expect(usage_link).to_be_focused()
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{fast_stack.base}/usage")
    expect(page.locator("main")).to_be_focused()
    expect(stat(page, "Requests")).to_have_text("7")


def test_a_late_answer_for_an_old_filter_does_not_overwrite_the_new_one(page: Page, fast_stack: LocalStack, traffic):
    signed_in(page, fast_stack)
    page.goto(f"{fast_stack.base}/usage")
    expect(stat(page, "Requests")).to_have_text("7")
    held: list[Any] = []
    # Given the answer for Sonnet is held back (a slow Lambda, say)
    page.route(lambda url: "/api/usage?" in url and "model=anthropic" in url, lambda route: held.append(route))
    page.get_by_label("Model", exact=True).select_option(SONNET)
    page.wait_for_timeout(300)
    assert len(held) == 1
    # When the user moves on to another model, and only then does Sonnet's answer arrive
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url) if "/api/usage?" in request.url else None)
    page.get_by_label("Model", exact=True).select_option(MINI)
    only_mini = usage(fast_stack, model=MINI)
    expect_totals(page, only_mini)
    # (the range and key are the same, so the model choices are not asked for again)
    assert len(asked) == 1 and "model=openai" in asked[0], asked
    held[0].continue_()
    page.wait_for_timeout(500)
    # Then the page still shows what was asked last, everywhere
    expect_totals(page, only_mini)
    for row in section(page, "Requests").locator("tbody tr").all():
        expect(cell(row, "Model").locator(".model")).to_have_text(MINI)


def test_typing_a_date_asks_once_for_the_whole_date(page: Page, fast_stack: LocalStack, traffic):
    signed_in(page, fast_stack)
    page.goto(f"{fast_stack.base}/usage")
    expect(stat(page, "Requests")).to_have_text("7")
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url) if "/api/usage?" in request.url else None)
    start = datetime.now(UTC).date() - timedelta(days=2)
    field = page.get_by_label("From", exact=True)
    # The field reads YYYY-MM-DD, as the page's links do, whatever the browser's locale
    expect(field).to_have_value(re.compile(r"^\d{4}-\d{2}-\d{2}$"))
    field.fill("")
    # Character by character, as a person types, then on to the next field
    field.press_sequentially(start.isoformat(), delay=40)
    field.press("Tab")
    expect(page).to_have_url(re.compile(f"start={start.isoformat()}"))
    expect(stat(page, "Requests")).to_have_text("7")
    page.wait_for_timeout(600)
    assert asked, "the page never asked for the new range"
    assert all(f"start={start.isoformat()}" in url for url in asked), asked
    assert len(asked) == 1

    # A date not written YYYY-MM-DD is named, and nothing is asked
    field.fill("12/01/2026")
    field.press("Tab")
    expect(page.get_by_role("alert")).to_contain_text("“12/01/2026” is not a date written YYYY-MM-DD")
    page.wait_for_timeout(600)
    assert len(asked) == 1
    expect(page).to_have_url(re.compile(f"start={start.isoformat()}"))
    # The calendar button opens the browser's own picker; what is picked fills the field
    expect(page.get_by_role("button", name="Pick the “From” date from a calendar")).to_be_visible()
    picked = start - timedelta(days=1)
    page.locator(".date-picker").first.fill(picked.isoformat())  # as the picker sets it
    expect(field).to_have_value(picked.isoformat())
    expect(page).to_have_url(re.compile(f"start={picked.isoformat()}"))
