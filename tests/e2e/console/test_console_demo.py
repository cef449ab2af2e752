"""The console over a month of demo usage (``MW_DEMO_DATA``): the request log pages back in time,
and every page draws a real month, in pictures for people to look at."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import LocalStack
from tests.e2e.console.conftest import screenshot, signed_in
from tests.e2e.test_demo_data import start


@pytest.fixture(scope="module")
def demo_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    state: Path = tmp_path_factory.mktemp("console-demo")
    with start(state) as running:
        yield running


def test_the_request_log_loads_older_requests_page_by_page(page: Page, demo_stack: LocalStack):
    signed_in(page, demo_stack)
    page.goto(f"{demo_stack.base}/usage")
    log = page.locator("section", has=page.get_by_role("heading", name="Requests", exact=True))
    rows = log.locator("tbody tr")
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
