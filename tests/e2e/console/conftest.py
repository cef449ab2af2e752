"""Browser tests: the built console (``make console``), served by the local stack, driven in Debian's
headless Chromium through Playwright. No browser is downloaded: ``.ci/run`` installs ``chromium``
with apt, and these fixtures fail, never skip, when it is missing."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Locator, Page, Route, expect, sync_playwright
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from devstack.stack import CONSOLE_DIST
from tests.e2e.conftest import ROOT, LocalStack

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    # Containers often give /dev/shm 64 MB, which Chromium's renderers outgrow.
    "--disable-dev-shm-usage",
]
CONSOLE_INDEX = CONSOLE_DIST / "index.html"
SCREENSHOTS = ROOT / ".meterway" / "screenshots"
DEFAULT_TIMEOUT_MS = 10_000
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()

expect.set_options(timeout=DEFAULT_TIMEOUT_MS)


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """Chromium for this package's tests. Playwright's sync API keeps its event loop marked as
    running in this thread while it is open, so it is closed with the package: later tests run
    event loops of their own (``asyncio.run``)."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests use Debian's Chromium "
            "(`apt-get install --no-install-recommends chromium fonts-dejavu-core`, as .ci/run does)"
        )
    if not CONSOLE_INDEX.exists():
        pytest.fail(f"{CONSOLE_INDEX.relative_to(ROOT)} is missing: build the console with `make console`")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh desktop-sized page; the test fails if the page throws an uncaught error."""
    yield from _open_page(browser, request, viewport={"width": 1280, "height": 800})


@pytest.fixture
def phone_page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh phone-sized page (touch, mobile viewport), checked the same way."""
    yield from _open_page(browser, request, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)


@pytest.fixture
def zoned_page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A desktop page whose browser is in the time zone the test names (``indirect``), with the
    phone's size when it is given as ``(zone, "phone")``."""
    zone, *phone = request.param if isinstance(request.param, tuple) else (request.param,)
    size = (
        {"viewport": {"width": 390, "height": 844}, "is_mobile": True}
        if phone
        else {"viewport": {"width": 1280, "height": 800}}
    )
    yield from _open_page(browser, request, timezone_id=zone, **size)


def _open_page(browser: Browser, request: pytest.FixtureRequest, **options: Any) -> Iterator[Page]:
    # Fixed locale and zone, so dates and numbers on the page do not depend on the machine.
    options = {"timezone_id": "UTC", **options}
    context = browser.new_context(accept_downloads=True, locale="en-US", **options)
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    uncaught: list[str] = []
    console_errors: list[str] = []
    outside: list[str] = []

    def refuse_outside(route: Route) -> None:
        outside.append(route.request.url)
        route.abort("blockedbyclient")

    # The console is self-hosted: it loads nothing from other hosts (fonts, CDNs, analytics).
    context.route(_leaves_the_machine, refuse_outside)
    page = context.new_page()
    page.on("pageerror", lambda error: uncaught.append(error.stack or f"{error.name}: {error.message}"))
    page.on("console", lambda message: console_errors.append(message.text) if message.type == "error" else None)
    try:
        yield page
        if _failed(request):
            with contextlib.suppress(PlaywrightError):
                screenshot(page, f"failed-{_file_name(request.node.name)}")
    finally:
        context.close()
    if console_errors:
        print("browser console errors:", *console_errors, sep="\n  ")
    # The local stack serves the console under the Content-Security-Policy CloudFront sends.
    refused = [text for text in console_errors if "Content Security Policy" in text]
    if refused:
        pytest.fail("the page broke its Content-Security-Policy:\n" + "\n".join(refused))
    if uncaught:
        pytest.fail("the page threw:\n" + "\n".join(uncaught))
    if outside:
        pytest.fail("the page reached outside the local stack:\n" + "\n".join(outside))


def _leaves_the_machine(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https", "ws", "wss") and parts.hostname not in LOOPBACK


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Keeps each phase's report on the test, so the page fixture can screenshot a failure."""
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


def _failed(request: pytest.FixtureRequest) -> bool:
    report = request.node.stash.get(_REPORTS, {}).get("call")
    return bool(report and report.failed)


def _file_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")


def screenshot(page: Page, name: str, *, full_page: bool = True) -> Path:
    """Saves the page as ``.meterway/screenshots/<name>.png`` (for people to look at; nothing compares them)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    # Let the page's own requests finish, so the picture shows data rather than "Loading…".
    with contextlib.suppress(PlaywrightTimeoutError):
        page.wait_for_load_state("networkidle", timeout=3_000)
    page.screenshot(path=path, full_page=full_page, animations="disabled")
    return path


def signed_in(page: Page, stack: LocalStack) -> Page:
    """Opens the console and signs in with the stack's admin key, as a user would."""
    page.goto(stack.base + "/")
    page.get_by_label("Admin key").fill(str(stack.info["admin_key"]))
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("navigation")).to_be_visible()
    return page


def cell(row: Locator, column: str) -> Locator:
    """A row's cell in the column of that label (each cell carries its column's label, which a phone
    shows beside it)."""
    return row.locator(f"td[data-label='{column}']")
