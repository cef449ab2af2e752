"""The console over a month of demo usage (``MW_DEMO_DATA``): the request log pages back in time
and shows the requests that fell back, Activity groups by provider, and every page draws a real
month, in pictures for people to look at."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Locator, Page, expect
from pypdf import PdfReader

from devstack.demo_data import FALLBACK_ROUTES
from meterway.analytics.logic.reports import TOP_GROUPS
from meterway.ledger.models import TOKEN_FIELDS
from tests.e2e.conftest import LocalStack
from tests.e2e.console.conftest import SCREENSHOTS as SCREENSHOTS_DIR
from tests.e2e.console.conftest import cell, screenshot, signed_in
from tests.e2e.test_demo_data import start

SONNET = "anthropic/claude-sonnet-4-5"


@pytest.fixture(scope="module")
def demo_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    state: Path = tmp_path_factory.mktemp("console-demo")
    with start(state) as running:
        yield running


def test_the_request_log_loads_older_requests_page_by_page(page: Page, demo_stack: LocalStack):
    signed_in(page, demo_stack)
    page.goto(f"{demo_stack.base}/usage")
    log = page.locator("section", has=page.get_by_role("heading", name="Requests", exact=True))
    # One row per request (a request that fell back has its failed attempts' rows under it).
    rows = log.locator("tbody tr.request")
    expect(rows).to_have_count(50)
    first_page = rows.locator("time").evaluate_all("times => times.map(t => t.getAttribute('datetime'))")

    # A double click (or an impatient second one) loads the next page once.
    log.get_by_role("button", name="Load more").dblclick()
    expect(rows).to_have_count(100)
    page.wait_for_timeout(500)
    expect(rows).to_have_count(100)
    both = rows.locator("time").evaluate_all("times => times.map(t => t.getAttribute('datetime'))")
    assert both[:50] == first_page
    assert both == sorted(both, reverse=True)
    assert len(set(both)) > 1

    listed = demo_stack.admin("GET", "/usage/requests", params={"limit": 100}).json()["data"]
    assert both == [row["created_at"] for row in listed]


@pytest.mark.parametrize("path", ["/", "/usage", "/activity?period=1mo&group_by=member", "/keys"])
def test_every_page_draws_a_month_of_demo_usage(page: Page, demo_stack: LocalStack, path: str):
    signed_in(page, demo_stack)
    page.goto(demo_stack.base + path)
    # Every table has drawn its rows (the last one to load is the page's last table).
    expect(page.locator("table").last.locator("tbody tr").first).to_be_visible()
    expect(page.locator(".loading")).to_have_count(0)
    expect(page.get_by_role("alert")).to_have_count(0)
    assert page.locator("td.empty").count() == 0
    name = path.split("?")[0].strip("/") or "dashboard"
    screenshot(page, f"demo-{name}")


def decimals(shown: str) -> int:
    return len(shown.split(".")[1]) if "." in shown else 0


@pytest.mark.parametrize("path", ["/", "/usage", "/activity?period=1mo&group_by=model", "/keys"])
def test_a_cost_column_has_one_number_of_decimals_and_the_exact_amount_on_hover(
    page: Page, demo_stack: LocalStack, path: str
):
    signed_in(page, demo_stack)
    page.goto(demo_stack.base + path)
    expect(page.locator("table").last.locator("tbody tr").first).to_be_visible()
    expect(page.locator(".loading")).to_have_count(0)
    costs = page.locator("td .cost").evaluate_all(
        """spans => spans.filter(s => !s.closest('[role=tooltip]')).map(s => ({
            column: [...document.querySelectorAll('table')].indexOf(s.closest('table')) + ' ' + s.closest('td').dataset.label,
            shown: s.textContent, exact: s.dataset.exact, title: s.title}))"""
    )
    columns: dict[str, list[dict[str, str]]] = {}
    for cost in costs:
        columns.setdefault(cost["column"], []).append(cost)
    assert columns, "no cost column on the page"
    for column, cells in columns.items():
        assert len({decimals(shown_cell["shown"]) for shown_cell in cells}) == 1, (
            column,
            [shown_cell["shown"] for shown_cell in cells],
        )
        for shown_cell in cells:
            assert shown_cell["title"] == f"${shown_cell['exact']} exactly"
            places = decimals(shown_cell["shown"])
            shown = Decimal(shown_cell["shown"].replace("$", "").replace(",", "").replace("<", ""))
            assert abs(shown - Decimal(shown_cell["exact"])) <= Decimal(1).scaleb(-places) / 2, shown_cell
        # Small spend never reads as zero
        assert all(c["shown"].strip("$0.,") or Decimal(c["exact"]) == 0 for c in cells), column


def sonnet_fallback(stack: LocalStack) -> dict[str, Any]:
    """A Claude Sonnet request of the demo month that fell back, from the API's request log (one
    whose failed attempt was a 529, when there is one)."""
    today = datetime.now(UTC).date()
    params: dict[str, Any] = {
        "start": str(today - timedelta(days=31)),
        "end": str(today),
        "model": SONNET,
        "limit": 200,
    }
    fallbacks: list[dict[str, Any]] = []
    while True:
        page = stack.admin("GET", "/usage/requests", params=params).json()
        fallbacks += [row for row in page["data"] if row["attempts"]]
        if not page["next_cursor"]:
            break
        params["cursor"] = page["next_cursor"]
    assert fallbacks, "the demo month has no request that fell back"
    return next((row for row in fallbacks if row["attempts"][0]["upstream_status"] == 529), fallbacks[0])


def show_fallback(page: Page, stack: LocalStack, fallback: dict[str, Any]) -> tuple[Locator, Locator]:
    """Opens the request log on the fallback's day and model; its row and its failed attempt's."""
    signed_in(page, stack)
    day = fallback["created_at"][:10]
    page.goto(f"{stack.base}/usage?start={day}&end={day}&model={SONNET}")
    log = page.locator("section", has=page.get_by_role("heading", name="Requests", exact=True))
    row = log.locator("tbody tr.request", has=page.locator(f"time[datetime='{fallback['created_at']}']"))
    expect(row).to_have_count(1)
    # The failed attempt is the row right after its request's.
    return row, row.locator("xpath=following-sibling::tr[1]")


def expect_fallback(row: Locator, attempt_row: Locator, fallback: dict[str, Any]) -> None:
    attempt = fallback["attempts"][0]
    expect(cell(row, "Model").locator(".model")).to_have_text(SONNET)
    expect(cell(row, "Model").locator(".endpoint")).to_have_text("/v1/messages")
    expect(cell(row, "Provider")).to_contain_text("bedrock")
    expect(cell(row, "Provider").get_by_role("tooltip", include_hidden=True)).to_contain_text(FALLBACK_ROUTES[SONNET])
    expect(cell(row, "Cost").locator(".cost")).to_have_attribute("data-exact", fallback["cost"])
    expect(cell(row, "Status")).to_contain_text("fell back after 1 failed attempt")
    expect(attempt_row).to_have_class("attempt")
    expect(cell(attempt_row, "Failed")).to_contain_text("Attempt 1")
    expect(cell(attempt_row, "Provider")).to_have_text("anthropic")
    # Nothing billed, in the decimals of the column's other costs
    expect(cell(attempt_row, "Cost")).to_have_text(re.compile(r"^\$0\.0+$"))
    assert decimals(cell(attempt_row, "Cost").inner_text()) == decimals(cell(row, "Cost").inner_text())
    expect(cell(attempt_row, "Latency")).to_have_text(re.compile(r"^[\d,.]+ m?s$"))
    expect(cell(attempt_row, "Status")).to_contain_text(f"{attempt['upstream_status']} {attempt['error_code']}")
    expect(cell(attempt_row, "Status")).to_contain_text("Error")


def test_the_request_log_shows_a_fallback_with_its_failed_attempt_nested_under_it(
    page: Page, phone_page: Page, demo_stack: LocalStack
):
    # Given a request that Anthropic turned away (529) and Bedrock served
    fallback = sonnet_fallback(demo_stack)
    assert fallback["provider"] == "bedrock" and fallback["route"] == FALLBACK_ROUTES[SONNET]
    assert fallback["attempts"][0]["upstream_status"] == 529 and fallback["attempts"][0]["provider"] == "anthropic"

    # When the request log shows its day, at 1280 px: the request served by bedrock, the route on
    # hover, and under it the failed attempt at anthropic (529, $0)
    row, attempt_row = show_fallback(page, demo_stack, fallback)
    expect_fallback(row, attempt_row, fallback)
    row.evaluate("element => element.scrollIntoView({block: 'center'})")
    provider = cell(row, "Provider").locator(".has-tip")
    provider.hover()
    expect(provider.get_by_role("tooltip")).to_be_visible()
    expect(provider.get_by_role("tooltip")).to_be_in_viewport()
    screenshot(page, "demo-usage-fallback", full_page=False)

    # And on a phone, where each row is a card and the attempt's card is indented under it
    row, attempt_row = show_fallback(phone_page, demo_stack, fallback)
    expect_fallback(row, attempt_row, fallback)
    row_box, attempt_box = row.bounding_box(), attempt_row.bounding_box()
    assert (
        row_box
        and attempt_box
        and attempt_box["x"] > row_box["x"]
        and attempt_box["y"] >= row_box["y"] + row_box["height"]
    )
    assert phone_page.evaluate("document.documentElement.scrollWidth") <= 390
    row.evaluate("element => element.scrollIntoView({block: 'center'})")
    screenshot(phone_page, "demo-usage-fallback-phone", full_page=False)


def test_activity_grouped_by_provider_shows_anthropic_bedrock_and_openai(
    page: Page, phone_page: Page, demo_stack: LocalStack
):
    expected = demo_stack.admin("GET", "/activity", params={"period": "1mo", "group_by": "provider"}).json()
    counts = {group["group"]: group["requests"] for group in expected["groups"]}
    assert set(counts) == {"anthropic", "bedrock", "openai"}

    # Given the activity page grouped by model, when Provider is chosen
    signed_in(page, demo_stack)
    page.goto(f"{demo_stack.base}/activity?period=1mo&group_by=model")
    page.get_by_text("Provider", exact=True).click()
    expect(page).to_have_url(f"{demo_stack.base}/activity?period=1mo&group_by=provider")
    # Then the table has a row per provider, with its requests
    rows = page.locator("section", has=page.get_by_role("heading", name="By provider")).locator("tbody tr")
    expect(rows).to_have_count(3)
    for provider, requests in counts.items():
        row = rows.filter(has=page.get_by_text(provider, exact=True))
        expect(row.locator("td").nth(1)).to_have_text(f"{requests:,}")
    expect(page.locator(".stat", has=page.get_by_text("Providers", exact=True))).to_contain_text("3")
    screenshot(page, "demo-activity-provider")

    # And a phone shows the same, without scrolling sideways
    signed_in(phone_page, demo_stack)
    phone_page.goto(f"{demo_stack.base}/activity?period=1mo&group_by=provider")
    expect(phone_page.get_by_role("radio", name="Provider")).to_be_checked()
    expect(
        phone_page.locator("section", has=phone_page.get_by_role("heading", name="By provider")).locator("tbody tr")
    ).to_have_count(3)
    assert phone_page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(phone_page, "demo-activity-provider-phone")


def logged(stack: LocalStack, **params: Any) -> list[dict[str, Any]]:
    """Every request of the API's request log (the ledger, not the rollups) for ``params``."""
    rows: list[dict[str, Any]] = []
    params = {**params, "limit": 200}
    while True:
        page = stack.admin("GET", "/usage/requests", params=params).json()
        rows += page["data"]
        if not page["next_cursor"]:
            return rows
        params["cursor"] = page["next_cursor"]


def test_failed_requests_are_shown_apart_from_the_requests_served(page: Page, phone_page: Page, demo_stack: LocalStack):
    # Given a day and model of the demo month with a request that failed, as the ledger has them
    today = datetime.now(UTC).date()
    month = logged(demo_stack, start=str(today - timedelta(days=31)), end=str(today))
    days = {(row["created_at"][:10], row["model"]) for row in month if row["status"] == "error"}
    day, model = next(
        (day, model)
        for day, model in sorted(days, reverse=True)
        if any(row["status"] == "ok" and (row["created_at"][:10], row["model"]) == (day, model) for row in month)
    )
    rows = logged(demo_stack, start=day, end=day, model=model)
    errors = sum(row["status"] == "error" for row in rows)
    served = len(rows) - errors
    assert errors and served

    # When the usage page shows that day
    signed_in(page, demo_stack)
    page.goto(f"{demo_stack.base}/usage?start={day}&end={day}&model={model}")
    by_model = page.locator("section", has=page.get_by_role("heading", name="By model"))
    header = by_model.locator("thead th")
    expect(header.nth(1)).to_have_text("Requests")
    expect(header.nth(2)).to_have_text("Errors")
    row = by_model.locator("tbody tr", has=page.get_by_text(model, exact=True))
    # Then its requests are those served and its errors are apart
    expect(cell(row, "Requests")).to_have_text(f"{served:,}")
    expect(cell(row, "Errors")).to_have_text(f"{errors:,}")
    card = page.locator(".stat", has=page.get_by_text("Requests", exact=True))
    expect(card.locator(".stat-value")).to_have_text(f"{served:,}")
    expect(card.locator(".stat-detail")).to_have_text(f"{errors:,} failed (not counted)")
    screenshot(page, "demo-usage-errors")

    # And the request log, asked for the failed ones, lists those only, each with why it failed
    log = page.locator("section", has=page.get_by_role("heading", name="Requests", exact=True))
    log.get_by_label("Status").select_option("error")
    expect(page).to_have_url(re.compile(r"[?&]status=error(&|$)"))
    listed = log.locator("tbody tr.request")
    expect(listed).to_have_count(min(errors, 50))
    for row in listed.all():
        expect(cell(row, "Status")).to_contain_text("Error")
        expect(cell(row, "Status").locator(".why")).to_have_text(re.compile(r"^\d{3} [a-z_]+$"))
        expect(cell(row, "Model").locator(".endpoint")).to_have_text(
            re.compile(r"^/v1/(chat/completions|messages|responses)$")
        )
    screenshot(page, "demo-usage-failed-only")
    # and the served ones with their latency, a stream's with its time to first token
    log.get_by_label("Status").select_option("ok")
    expect(listed.first).to_be_visible()
    served_rows = [row for row in rows if row["status"] == "ok"][:50]  # newest first, as the log
    expect(listed).to_have_count(len(served_rows))
    streams = [row for row in served_rows if row["streamed"]][:1]
    for row in listed.all():  # a request served by a fallback says so
        expect(cell(row, "Status")).to_have_text(re.compile(r"^OK(fell back after \d+ failed attempts?)?$"))
        expect(cell(row, "Latency")).to_contain_text(re.compile(r"\d (ms|s)"))
    if streams:
        first = listed.filter(has=page.locator(f"time[datetime='{streams[0]['created_at']}']"))
        expect(cell(first, "Latency").locator(".ttft")).to_have_text(re.compile(r"^first token [\d,.]+ m?s$"))

    # And activity and the dashboard count them apart too
    expected = demo_stack.admin("GET", "/activity", params={"period": "1mo", "group_by": "model"}).json()
    all_errors = sum(group["errors"] for group in expected["groups"])
    all_served = sum(group["requests"] for group in expected["groups"])
    assert all_errors >= errors
    page.goto(f"{demo_stack.base}/activity?period=1mo&group_by=model")
    card = page.get_by_role("button", name=re.compile(r"^Requests"))
    expect(card.locator(".stat-value")).to_have_text(f"{all_served:,}")
    expect(card.locator(".stat-detail")).to_have_text(f"{all_errors:,} failed (not counted)")
    table = page.locator("section", has=page.get_by_role("heading", name="By model"))
    expect(table.locator("thead th").nth(2)).to_have_text("Errors")
    # On a phone, the failed requests of that day are cards with why each failed
    signed_in(phone_page, demo_stack)
    phone_page.goto(f"{demo_stack.base}/usage?start={day}&end={day}&model={model}&status=error")
    failed_cards = phone_page.locator("section", has=phone_page.get_by_role("heading", name="Requests", exact=True))
    expect(failed_cards.locator("tbody tr.request")).to_have_count(min(errors, 50))
    expect(failed_cards.get_by_label("Status")).to_have_value("error")
    assert phone_page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(phone_page, "demo-usage-failed-phone")

    dashboard = demo_stack.admin("GET", "/dashboard").json()["last_7_days"]["totals"]
    page.goto(f"{demo_stack.base}/")
    seven = page.locator(".stat", has=page.get_by_text("Spend, last 7 days", exact=True))
    failures = f", {dashboard['errors']:,} failed" if dashboard["errors"] else ""  # none said when none failed
    expect(seven.locator(".stat-detail")).to_have_text(f"{dashboard['requests']:,} requests{failures}")


def test_members_show_their_keys_spend_and_budget_and_a_budget_can_be_set(
    page: Page, phone_page: Page, demo_stack: LocalStack
):
    members = {member["member_id"]: member for member in demo_stack.admin("GET", "/members").json()["data"]}
    keys = demo_stack.admin("GET", "/keys").json()["data"]
    month = demo_stack.admin("GET", "/activity", params={"period": "1mo", "group_by": "member"}).json()["groups"]
    bob = members["bob@example.com"]
    assert bob["budget"] is not None and Decimal(bob["budget"]["spent_usd"]) > 0  # the demo gives Bob one

    # Given the members page of the demo month
    signed_in(page, demo_stack)
    page.get_by_role("navigation").get_by_role("link", name="Members").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Members")
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(len(members))
    # Then each member shows their keys, their 30 days and their budget
    for group in month:
        if group["group"] not in members:
            continue
        member = members[group["group"]]
        row = rows.filter(has=page.get_by_text(member["name"] or member["member_id"], exact=True))
        expect(cell(row, "Requests (30 d)")).to_have_text(f"{group['requests']:,}")
        expect(cell(row, "Spend (30 d)").locator(".cost")).to_have_attribute("data-exact", group["cost"])
        for key in keys:
            if key["member"] == member["member_id"]:
                expect(cell(row, "Keys")).to_contain_text(key["name"])
    bob_row = rows.filter(has=page.get_by_text("Bob Chen", exact=True))
    budget = cell(bob_row, "Budget")
    expect(budget.locator(".cost").first).to_have_attribute("data-exact", bob["budget"]["spent_usd"])
    expect(budget.locator(".cost").nth(1)).to_have_attribute("data-exact", bob["budget"]["spend_limit_usd"])
    expect(budget).to_contain_text("this month")
    expect(budget.locator("progress")).to_have_attribute("value", re.compile(r"^0\.\d+$"))
    expect(cell(rows.filter(has=page.get_by_text("Alice Martin", exact=True)), "Budget")).to_have_text("No budget")
    screenshot(page, "demo-members")

    # When Alice is given a weekly budget through the dialog
    cell(rows.filter(has=page.get_by_text("Alice Martin", exact=True)), "Actions").get_by_role(
        "button", name="Budget Alice Martin"
    ).click()
    dialog = page.get_by_role("dialog", name="Budget of Alice Martin")
    dialog.get_by_label("Budget (USD)").fill("1000")
    dialog.get_by_label("Period").select_option("weekly")
    dialog.get_by_role("button", name="Save budget").click()
    expect(dialog).to_have_count(0)
    # Then her row shows it, starting from what she spent this week, as the API says
    alice = next(m for m in demo_stack.admin("GET", "/members").json()["data"] if m["member_id"] == "alice@example.com")
    assert alice["budget"]["spend_period"] == "weekly" and Decimal(alice["budget"]["spend_limit_usd"]) == 1000
    alice_budget = cell(rows.filter(has=page.get_by_text("Alice Martin", exact=True)), "Budget")
    expect(alice_budget).to_contain_text("this week")
    expect(alice_budget.locator(".cost").first).to_have_attribute("data-exact", alice["budget"]["spent_usd"])
    expect(page.get_by_role("button", name="Budget Alice Martin")).to_be_focused()

    # And on a phone the page is one card per member, without scrolling sideways
    signed_in(phone_page, demo_stack)
    phone_page.goto(f"{demo_stack.base}/members")
    expect(phone_page.locator("tbody tr")).to_have_count(len(members))
    assert phone_page.evaluate("document.documentElement.scrollWidth") <= 390
    # Every page's link is in sight, none scrolled out of the navigation
    for name in ("Dashboard", "Usage", "Activity", "API keys", "Members", "Credit"):
        expect(phone_page.get_by_role("navigation").get_by_role("link", name=name)).to_be_in_viewport(ratio=1)
    screenshot(phone_page, "demo-members-phone")


def test_the_credit_page_shows_the_balance_and_history_and_adds_credit(
    page: Page, phone_page: Page, demo_stack: LocalStack
):
    before = demo_stack.admin("GET", "/balance").json()
    assert len(before["topups"]) >= 2  # the demo's opening credit and refill

    signed_in(page, demo_stack)
    page.get_by_role("navigation").get_by_role("link", name="Credit").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Credit")
    balance = page.locator(".stat", has=page.get_by_text("Balance", exact=True))
    expect(balance.locator(".cost")).to_have_attribute("data-exact", before["balance_usd"])
    history = page.locator("section", has=page.get_by_role("heading", name="Top-ups")).locator("tbody tr")
    expect(history).to_have_count(len(before["topups"]))
    for row, topup in zip(history.all(), before["topups"], strict=True):
        expect(cell(row, "Amount").locator(".cost")).to_have_attribute("data-exact", topup["amount_usd"])
        expect(cell(row, "Note")).to_have_text(topup["note"])
    screenshot(page, "demo-credit")

    # When $12.50 is added with a note
    page.get_by_label("Amount (USD)").fill("12.50")
    page.get_by_label("Note").fill("invoice 2001")
    page.get_by_role("button", name="Add credit").click()
    # Then the balance and the history show it, as the API does
    expect(page.get_by_role("status").filter(has_text="Added $12.50")).to_be_visible()
    after = demo_stack.admin("GET", "/balance").json()
    assert Decimal(after["credits_usd"]) == Decimal(before["credits_usd"]) + Decimal("12.5")
    expect(balance.locator(".cost")).to_have_attribute("data-exact", after["balance_usd"])
    expect(history).to_have_count(len(before["topups"]) + 1)
    expect(cell(history.first, "Note")).to_have_text("invoice 2001")
    expect(cell(history.first, "By")).to_have_text(re.compile(r".+"))
    # A refused amount says why and adds nothing
    page.get_by_label("Amount (USD)").fill("-3")
    page.get_by_role("button", name="Add credit").click()
    expect(page.get_by_role("alert")).to_be_visible()
    assert demo_stack.admin("GET", "/balance").json()["credits_usd"] == after["credits_usd"]

    # And the dashboard's balance links here
    page.goto(f"{demo_stack.base}/")
    page.locator(".stat", has=page.get_by_text("Balance", exact=True)).get_by_role("link").click()
    expect(page).to_have_url(f"{demo_stack.base}/credit")

    signed_in(phone_page, demo_stack)
    phone_page.goto(f"{demo_stack.base}/credit")
    expect(
        phone_page.locator("section", has=phone_page.get_by_role("heading", name="Top-ups")).locator("tbody tr")
    ).to_have_count(len(after["topups"]))
    assert phone_page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(phone_page, "demo-credit-phone")


def test_a_key_with_a_spend_limit_shows_what_it_used_of_it_this_period(
    page: Page, phone_page: Page, demo_stack: LocalStack
):
    limited = [key for key in demo_stack.admin("GET", "/keys").json()["data"] if key["limits"]["spend_limit_usd"]]
    assert len(limited) >= 2  # the demo's monthly and daily ones
    signed_in(page, demo_stack)
    page.goto(f"{demo_stack.base}/keys")
    for key in limited:
        row = page.locator("tbody tr", has=page.locator("strong", has_text=re.compile(f"^{re.escape(key['name'])}$")))
        used = cell(row, "Limits").locator(".budget")
        expect(used.locator(".cost").first).to_have_attribute("data-exact", key["spent_this_period"])
        expect(used.locator(".cost").nth(1)).to_have_attribute("data-exact", key["limits"]["spend_limit_usd"])
        words = {"monthly": "this month", "daily": "today", "weekly": "this week", "none": "in all"}
        expect(used).to_contain_text(words[key["limits"]["spend_period"]])
        if key["limits"]["spend_period"] == "monthly":  # (a daily one may not have run yet today)
            assert Decimal(key["spent_this_period"]) > 0
    unlimited = next(key for key in demo_stack.admin("GET", "/keys").json()["data"] if key not in limited)
    assert unlimited["spent_this_period"] is None
    screenshot(page, "demo-keys-used-of-limit")

    signed_in(phone_page, demo_stack)
    phone_page.goto(f"{demo_stack.base}/keys")
    expect(phone_page.locator(".budget").first).to_be_visible()
    assert phone_page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(phone_page, "demo-keys-used-of-limit-phone")


def test_a_metric_card_expands_into_that_metric_by_the_grouping_and_exports_it(
    page: Page, phone_page: Page, demo_stack: LocalStack, tmp_path: Path
):
    expected = demo_stack.admin("GET", "/activity", params={"period": "1mo", "group_by": "key"}).json()
    by_tokens = sorted(expected["groups"], key=lambda group: -group["total_tokens"])
    signed_in(page, demo_stack)
    page.goto(f"{demo_stack.base}/activity?period=1mo&group_by=key")
    tokens_card = page.get_by_role("button", name=re.compile(r"^Tokens"))
    expect(tokens_card).to_have_attribute("aria-expanded", "false")

    # When the Tokens card is clicked, it opens "Tokens by API key": every key, most tokens first,
    # with its output's reasoning part and its share
    tokens_card.click()
    expect(tokens_card).to_have_attribute("aria-expanded", "true")
    expect(page).to_have_url(f"{demo_stack.base}/activity?period=1mo&group_by=key&metric=tokens")
    detail = page.locator("#metric-detail")
    expect(detail.get_by_role("heading", name="Tokens by API key")).to_be_visible()
    rows = detail.locator("tbody tr")
    expect(rows).to_have_count(len(by_tokens))
    total = sum(group["total_tokens"] for group in by_tokens)
    for row, group in zip(rows.all(), by_tokens, strict=True):
        expect(cell(row, "API key")).to_have_text(group["name"])
        expect(cell(row, "Total")).to_have_text(f"{group['total_tokens']:,}")
        expect(cell(row, "Share")).to_have_text(f"{group['total_tokens'] * 100 / total:.1f}%")
        if group["reasoning_tokens"]:
            expect(cell(row, "Output")).to_contain_text(f"({group['reasoning_tokens']:,} reasoning)")
    expect(detail.get_by_role("img", name=re.compile(r"^Tokens per day, by key"))).to_be_visible()
    screenshot(page, "demo-activity-tokens-by-key")

    # And its PDF is "Tokens by API key": a summary page, then a page per key
    with page.expect_download() as download:
        detail.get_by_role("button", name="Export PDF").click()
    assert download.value.suggested_filename.startswith("tokens-by-key-")
    SCREENSHOTS_DIR.mkdir(parents=True, exist_ok=True)
    pdf_path = SCREENSHOTS_DIR / "demo-tokens-by-key.pdf"
    download.value.save_as(pdf_path)
    text = [p.extract_text() for p in PdfReader(pdf_path).pages]
    assert text[0].startswith("Tokens by API key") and len(text) == 1 + len(by_tokens)
    for page_text, group in zip(text[1:], by_tokens, strict=True):
        assert group["name"] in page_text and f"{group['total_tokens']:,}" in page_text
    if shutil.which("pdftoppm"):  # page images, for people to look at
        subprocess.run(
            ["pdftoppm", "-r", "60", "-png", str(pdf_path), str(SCREENSHOTS_DIR / "demo-tokens-by-key")], check=True
        )
    # and its CSV has the token counters only
    with page.expect_download() as download:
        detail.get_by_role("button", name="Export CSV").click()
    csv_path = tmp_path / "tokens.csv"
    download.value.save_as(csv_path)
    header = csv_path.read_text(encoding="utf-8-sig").splitlines()[0].split(",")
    assert header[5:] == list(TOKEN_FIELDS)

    # When Requests is clicked instead, requests and errors by key; clicked again, it closes
    page.get_by_role("button", name=re.compile(r"^Requests")).click()
    expect(detail.get_by_role("heading", name="Requests by API key")).to_be_visible()
    expect(detail.locator("thead th")).to_have_text(
        [
            re.compile("API key", re.I),
            re.compile("Requests", re.I),
            re.compile("Errors", re.I),
            re.compile("Share", re.I),
        ]
    )
    page.get_by_role("button", name=re.compile(r"^Requests")).click()
    expect(page.locator("#metric-detail")).to_have_count(0)
    expect(page).to_have_url(f"{demo_stack.base}/activity?period=1mo&group_by=key")

    # And a phone opens a shared link to the spend breakdown without scrolling sideways
    signed_in(phone_page, demo_stack)
    phone_page.goto(f"{demo_stack.base}/activity?period=1mo&group_by=member&metric=cost")
    expect(phone_page.locator("#metric-detail").get_by_role("heading", name="Spend by member")).to_be_visible()
    assert phone_page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(phone_page, "demo-activity-spend-by-member-phone")


def test_activity_groups_by_app_and_by_user_and_a_group_opens_its_usage(
    page: Page, phone_page: Page, demo_stack: LocalStack
):
    expected = demo_stack.admin("GET", "/activity", params={"period": "1mo", "group_by": "app"}).json()
    apps = {group["group"]: group for group in expected["groups"]}
    assert {"support-bot", "code-review", "research-agent", "evals", "(none)"} <= set(apps)
    start, end = expected["start"][:10], str(datetime.fromisoformat(expected["end"]).date() - timedelta(days=1))
    # The support bot's requests as the ledger has them (not the rollups), and its busiest end user
    bot = logged(demo_stack, start=start, end=end, app="support-bot")
    assert len(bot) == apps["support-bot"]["requests"] + apps["support-bot"]["errors"]
    users = [row["user"] for row in bot]
    user = max(set(users), key=lambda name: (users.count(name), name))
    theirs = logged(demo_stack, start=start, end=end, user=user)
    assert theirs and {row["app"] for row in theirs} == {"support-bot"}

    # Given the activity page grouped by model, when App is chosen
    signed_in(page, demo_stack)
    page.goto(f"{demo_stack.base}/activity?period=1mo&group_by=model")
    page.get_by_text("App", exact=True).click()
    expect(page).to_have_url(f"{demo_stack.base}/activity?period=1mo&group_by=app")
    # Then the table has a row per app (the requests that named none as "(none)"), with its requests
    rows = page.locator("section", has=page.get_by_role("heading", name="By app")).locator("tbody tr")
    expect(rows).to_have_count(len(apps))
    for app, group in apps.items():
        expect(cell(rows.filter(has=page.get_by_text(app, exact=True)), "Requests")).to_have_text(
            f"{group['requests']:,}"
        )
    screenshot(page, "demo-activity-app")

    # When an app's name is followed, the usage page shows that app over the same days
    rows.get_by_role("link", name="support-bot", exact=True).click()
    expect(page).to_have_url(re.compile(rf"/usage\?start={start}&end={end}&app=support-bot$"))
    expect(page.get_by_label("App", exact=True)).to_have_value("support-bot")
    served = sum(row["status"] != "error" for row in bot)
    requests_card = page.locator(".stat", has=page.get_by_text("Requests", exact=True)).locator(".stat-value")
    expect(requests_card).to_have_text(f"{served:,}")
    log = page.locator("section", has=page.get_by_role("heading", name="Requests", exact=True))
    expect(cell(log.locator("tbody tr.request").first, "Key, user, app")).to_contain_text("app support-bot")

    # And a user typed in their field replaces the app (usage filters by one of them at a time)
    page.get_by_label("User", exact=True).fill(user)
    page.get_by_label("User", exact=True).press("Tab")
    expect(page).to_have_url(re.compile(rf"[?&]user={re.escape(user)}(&|$)"))
    assert "app=" not in page.url
    expect(page.get_by_label("App", exact=True)).to_have_value("")
    expect(requests_card).to_have_text(f"{sum(row['status'] != 'error' for row in theirs):,}")
    expect(log.locator("tbody tr.request")).to_have_count(min(len(theirs), 50))
    for row in log.locator("tbody tr.request").all()[:5]:
        expect(cell(row, "Key, user, app")).to_contain_text(f"user {user}")
    screenshot(page, "demo-usage-user")

    # And on a phone, activity by user lists the 15 users who spent most, and the rest as Other
    by_user = demo_stack.admin("GET", "/activity", params={"period": "1mo", "group_by": "user"}).json()
    month = logged(demo_stack, start=start, end=end)
    listed = len(by_user["groups"])  # the top spenders of the two months, those with requests in the period
    assert len({row["user"] or "(none)" for row in month}) > TOP_GROUPS >= listed > 0
    shown = {group["group"] for group in by_user["groups"]}
    rest = [row for row in month if (row["user"] or "(none)") not in shown]
    assert by_user["other"]["requests"] == sum(row["status"] != "error" for row in rest) > 0
    signed_in(phone_page, demo_stack)
    phone_page.goto(f"{demo_stack.base}/activity?period=1mo&group_by=user")
    expect(phone_page.get_by_role("radio", name="User")).to_be_checked()
    table = phone_page.locator("section", has=phone_page.get_by_role("heading", name="By user"))
    expect(table.locator("tbody tr")).to_have_count(listed + 1)
    expect(cell(table.locator("tbody tr").last, "User")).to_have_text("Other users")
    expect(cell(table.locator("tbody tr").last, "Requests")).to_have_text(f"{by_user['other']['requests']:,}")
    users_card = phone_page.locator(".stat", has=phone_page.get_by_text("Users", exact=True))
    expect(users_card).to_contain_text(f"{listed}+")
    assert phone_page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(phone_page, "demo-activity-user-phone")


def test_the_usage_chart_is_stacked_by_model_and_says_each_models_part(
    page: Page, phone_page: Page, demo_stack: LocalStack
):
    usage = demo_stack.admin("GET", "/usage").json()
    assert usage["series"]["by_model"] and len(usage["models"]) > 1
    for bucket in usage["series"]["buckets"]:  # each day's models add up to the day
        assert sum(figures["requests"] for figures in bucket["models"].values()) == bucket["requests"]

    # Given the usage page of the last 30 days, the chart stacks the models, as the table lists them
    signed_in(page, demo_stack)
    page.goto(f"{demo_stack.base}/usage")
    chart = page.get_by_role("img", name=re.compile(r"^Spend per day by model from"))
    expect(chart).to_be_visible()
    named = re.findall(r"([a-z]+/[\w.:-]+) \$", chart.get_attribute("aria-label") or "")
    assert named == [row["model"] for row in usage["models"]]
    # When it shows requests, each model's part is the table's
    over_time = page.locator("section", has=page.get_by_role("heading", name="Over time"))
    over_time.locator("label", has_text="Requests").click()
    chart = page.get_by_role("img", name=re.compile(r"^Requests per day by model from"))
    expect(chart).to_be_visible()
    said = chart.get_attribute("aria-label") or ""
    for row in usage["models"]:
        assert f"{row['model']} {row['requests']:,}" in said
        by_model = page.locator("section", has=page.get_by_role("heading", name="By model"))
        expect(
            cell(by_model.locator("tbody tr", has=page.get_by_text(row["model"], exact=True)), "Requests")
        ).to_have_text(f"{row['requests']:,}")
    screenshot(page, "demo-usage-stacked")
    # and the request log fits the page at 1280 px, its status column in view
    log = page.locator("section", has=page.get_by_role("heading", name="Requests", exact=True))
    assert log.locator(".table-wrap").evaluate("wrap => wrap.scrollWidth <= wrap.clientWidth")
    status = cell(log.locator("tbody tr.request").first, "Status").bounding_box()
    assert status and status["x"] + status["width"] <= 1280

    # And one model's chart has nothing to stack
    page.goto(f"{demo_stack.base}/usage?model={usage['models'][0]['model']}")
    expect(page.get_by_role("img", name=re.compile(r"^Spend per day from"))).to_be_visible()

    # And a phone shows the stacked chart without scrolling sideways
    signed_in(phone_page, demo_stack)
    phone_page.goto(f"{demo_stack.base}/usage")
    expect(phone_page.get_by_role("img", name=re.compile(r"^Spend per day by model"))).to_be_visible()
    assert phone_page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(phone_page, "demo-usage-stacked-phone")


def zone_window(zone: str, first: date, last: date, *, hour_before: datetime | None = None) -> dict[str, str]:
    """The API window of the days ``first``..``last`` in ``zone``: from its midnights, an edge
    older than ``hour_before`` moved back to its UTC hour (minute rows are kept 8 days)."""

    def edge(day: date) -> str:
        moment = datetime.combine(day, datetime.min.time(), tzinfo=ZoneInfo(zone)).astimezone(UTC)
        if hour_before is not None and moment < hour_before:
            moment = moment.replace(minute=0)
        return moment.isoformat().replace("+00:00", "Z")

    return {"start": edge(first), "end": edge(last + timedelta(days=1))}


@pytest.mark.parametrize("zoned_page", ["Europe/Paris"], indirect=True)
def test_usage_dates_are_the_browsers_days_with_a_switch_to_utc(zoned_page: Page, demo_stack: LocalStack):
    page = zoned_page
    today = datetime.now(ZoneInfo("Europe/Paris")).date()
    first, last = today - timedelta(days=10), today - timedelta(days=3)
    local = demo_stack.admin("GET", "/usage", params=zone_window("Europe/Paris", first, last)).json()["totals"]
    utc = demo_stack.admin("GET", "/usage", params={"start": str(first), "end": str(last)}).json()["totals"]

    # Given a browser in Paris, the usage page's days are Paris days (from 23:00 UTC)
    signed_in(page, demo_stack)
    page.goto(f"{demo_stack.base}/usage?start={first}&end={last}")
    expect(page.get_by_text(re.compile(r"Dates are whole days in Europe/Paris \(UTC\+01:00\)"))).to_be_visible()
    requests_card = page.locator(".stat", has=page.get_by_text("Requests", exact=True)).locator(".stat-value")
    expect(requests_card).to_have_text(f"{local['requests']:,}")
    cost = page.locator(".stat", has=page.get_by_text("Total cost", exact=True)).locator(".cost")
    expect(cost).to_have_attribute("data-exact", local["cost"])
    log = page.locator("section", has=page.get_by_role("heading", name="Requests", exact=True))
    expect(cell(log.locator("tbody tr.request").first, "Time")).to_have_text(re.compile(r" CET$"))
    expect(page.locator(".utc-bars")).to_contain_text("Each bar is a day in UTC")
    screenshot(page, "demo-usage-paris")

    # When the top bar's switch says UTC, the same dates are UTC days, and it is remembered
    page.get_by_label("Times").select_option("utc")
    expect(page.get_by_text("Dates are whole days in UTC;")).to_be_visible()
    expect(requests_card).to_have_text(f"{utc['requests']:,}")
    expect(cell(log.locator("tbody tr.request").first, "Time")).to_have_text(re.compile(r" UTC$"))
    expect(page.locator(".utc-bars")).to_have_count(0)
    page.reload()
    expect(page.get_by_label("Times")).to_have_value("utc")
    expect(requests_card).to_have_text(f"{utc['requests']:,}")


@pytest.mark.parametrize("zoned_page", [("Asia/Kolkata", "phone")], indirect=True)
def test_a_half_hour_zone_reads_older_days_from_the_utc_hour_and_says_so(zoned_page: Page, demo_stack: LocalStack):
    page = zoned_page
    today = datetime.now(ZoneInfo("Asia/Kolkata")).date()
    first, last = today - timedelta(days=20), today - timedelta(days=1)
    # Minute rows are kept 8 days: the first day's 18:30 UTC start is read from 18:00; the end is recent.
    minute_rows = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=8) + timedelta(hours=2)
    window = zone_window("Asia/Kolkata", first, last, hour_before=minute_rows)
    assert window["start"].endswith("T18:00:00Z") and window["end"].endswith("T18:30:00Z")
    expected = demo_stack.admin("GET", "/usage", params=window).json()["totals"]

    signed_in(page, demo_stack)
    page.goto(f"{demo_stack.base}/usage?start={first}&end={last}")
    expect(page.get_by_text(re.compile(r"Dates are whole days in Asia/Calcutta|Asia/Kolkata"))).to_be_visible()
    expect(page.get_by_role("status").filter(has_text="not on a UTC hour")).to_contain_text("UTC+05:30")
    requests_card = page.locator(".stat", has=page.get_by_text("Requests", exact=True)).locator(".stat-value")
    expect(requests_card).to_have_text(f"{expected['requests']:,}")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(page, "demo-usage-kolkata-phone")
