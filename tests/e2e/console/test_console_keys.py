"""API keys in the browser: a created key's secret is shown once and works; rotation hands out a new
secret while the old one keeps working for the overlap; disabling and limits reach the gateway."""

from __future__ import annotations

import re
import time
from typing import Any

import openai
from playwright.sync_api import Locator, Page, expect

from tests.e2e.conftest import LocalStack
from tests.e2e.console.conftest import screenshot, signed_in

MODEL = "openai/gpt-4o-mini"


def calls(stack: LocalStack, secret: str) -> bool:
    """Whether the gateway accepts ``secret`` for one small completion."""
    client = openai.OpenAI(base_url=stack.info["api_base"], api_key=secret, max_retries=0)
    try:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "ping"}], max_tokens=5)
    except (openai.AuthenticationError, openai.PermissionDeniedError):
        return False
    return True


def key_row(page: Page, name: str) -> Locator:
    return page.locator("tbody tr", has=page.locator("strong", has_text=re.compile(f"^{re.escape(name)}$")))


def on_keys_page_with(page: Page, stack: LocalStack, name: str) -> dict[str, Any]:
    """A key made through the API, then the keys page as an admin sees it."""
    response = stack.admin("POST", "/keys", json={"name": name})
    response.raise_for_status()
    signed_in(page, stack)
    page.goto(f"{stack.base}/keys")
    return dict(response.json())


def shown_secret(page: Page) -> str:
    dialog = page.get_by_role("dialog")
    secret = dialog.get_by_label("Secret key")
    expect(secret).to_have_value(re.compile(r"^mw-live-"))
    value = secret.input_value()
    dialog.get_by_role("button", name="Copy").click()
    expect(dialog.get_by_role("status")).to_have_text(re.compile(r"Copied|Selected"))
    return value


def test_create_a_key_see_its_secret_once_and_rotate_it(page: Page, fast_stack: LocalStack):
    signed_in(page, fast_stack)
    page.get_by_role("navigation").get_by_role("link", name="API keys").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("API keys")
    screenshot(page, "keys")

    page.get_by_role("button", name="Create key").click()
    dialog = page.get_by_role("dialog", name="Create an API key")
    dialog.get_by_label("Name").fill("checkout service")
    dialog.get_by_label("Requests per minute").fill("100")
    screenshot(page, "keys-create", full_page=False)
    dialog.get_by_role("button", name="Create key").click()

    expect(page.get_by_role("dialog", name="Your new API key")).to_be_visible()
    secret = shown_secret(page)
    screenshot(page, "keys-secret-shown-once", full_page=False)
    page.get_by_role("button", name="Done").click()
    expect(page.get_by_role("dialog")).to_have_count(0)
    # Shown once: nowhere on the page any more, and the list knows only its prefix.
    expect(page.get_by_text(secret)).to_have_count(0)
    row = key_row(page, "checkout service")
    expect(row).to_contain_text(secret[:14])
    expect(row).to_contain_text("100 req/min")
    assert calls(fast_stack, secret)

    row.get_by_role("button", name="Rotate").click()
    rotate = page.get_by_role("dialog", name="Rotate “checkout service”")
    rotate.get_by_label("Old secret keeps working for").select_option("3600")
    rotate.get_by_role("button", name="Rotate secret").click()
    expect(page.get_by_role("dialog", name="New secret")).to_be_visible()
    rotated = shown_secret(page)
    page.get_by_role("button", name="Done").click()
    assert rotated != secret
    # During the overlap both secrets work; the list shows the new prefix.
    assert calls(fast_stack, rotated)
    assert calls(fast_stack, secret)
    expect(key_row(page, "checkout service")).to_contain_text(rotated[:14])
    screenshot(page, "keys-rotated")


def test_rotation_without_overlap_refuses_the_old_secret_at_once(page: Page, fast_stack: LocalStack):
    created = on_keys_page_with(page, fast_stack, "short lived")
    key_row(page, "short lived").get_by_role("button", name="Rotate").click()
    dialog = page.get_by_role("dialog", name="Rotate “short lived”")
    dialog.get_by_label("Old secret keeps working for").select_option("0")
    dialog.get_by_role("button", name="Rotate secret").click()
    rotated = shown_secret(page)
    page.get_by_role("button", name="Done").click()
    assert calls(fast_stack, rotated)
    assert not calls(fast_stack, created["secret"])


def test_disable_and_enable_a_key(page: Page, fast_stack: LocalStack):
    created = on_keys_page_with(page, fast_stack, "nightly batch")
    row = key_row(page, "nightly batch")
    row.get_by_role("button", name="Disable").click()
    expect(page.get_by_role("status").filter(has_text="nightly batch disabled:")).to_be_visible()
    expect(key_row(page, "nightly batch")).to_contain_text("Disabled")
    assert not calls(fast_stack, created["secret"])
    screenshot(page, "keys-disabled")

    key_row(page, "nightly batch").get_by_role("button", name="Enable").click()
    expect(key_row(page, "nightly batch")).to_contain_text("Active")
    expect(page.get_by_role("status").filter(has_text="nightly batch enabled.")).to_contain_text("30 seconds")
    # Disabling is refused at once; a gateway that cached the disabled key takes it back within
    # KeyCacheTtlSeconds (30 s by default), as the message says.
    deadline = time.monotonic() + 40
    while not calls(fast_stack, created["secret"]):
        assert time.monotonic() < deadline, "the enabled key was still refused after the key cache's TTL"
        time.sleep(1)


def test_edit_limits_and_see_a_refused_change_explained(page: Page, fast_stack: LocalStack):
    created = on_keys_page_with(page, fast_stack, "analytics")
    key_row(page, "analytics").get_by_role("button", name="Edit limits").click()
    dialog = page.get_by_role("dialog", name="Limits of “analytics”")

    # A model the catalog does not have is refused by the API; the dialog says why and stays open.
    dialog.get_by_label("Allowed models").fill("openai/gpt-9-ultra")
    dialog.get_by_role("button", name="Save limits").click()
    expect(dialog.get_by_role("alert")).to_contain_text("gpt-9-ultra")
    screenshot(page, "keys-limits-refused", full_page=False)
    assert fast_stack.admin("GET", f"/keys/{created['id']}").json()["limits"]["allowed_models"] is None

    dialog.get_by_label("Allowed models").fill(MODEL)
    dialog.get_by_label("Spend limit (USD)").fill("12.5")
    dialog.get_by_label("Spend period").select_option("monthly")
    dialog.get_by_role("button", name="Save limits").click()
    expect(page.get_by_role("dialog")).to_have_count(0)
    expect(key_row(page, "analytics")).to_contain_text("$12.5 monthly")
    limits = fast_stack.admin("GET", f"/keys/{created['id']}").json()["limits"]
    assert limits["allowed_models"] == [MODEL]
    assert limits["spend_period"] == "monthly"
    assert float(limits["spend_limit_usd"]) == 12.5


def test_per_key_stats_show_what_each_key_spent(page: Page, fast_stack: LocalStack):
    created = fast_stack.admin("POST", "/keys", json={"name": "reporting"}).json()
    assert calls(fast_stack, created["secret"])
    deadline = time.monotonic() + 20
    month = fast_stack.admin("GET", "/activity", params={"period": "1mo", "group_by": "key"}).json()
    while not any(group["group"] == created["id"] for group in month["groups"]):
        assert time.monotonic() < deadline, "the aggregator did not roll the request up"
        time.sleep(0.2)
        month = fast_stack.admin("GET", "/activity", params={"period": "1mo", "group_by": "key"}).json()
    stats = next(group for group in month["groups"] if group["group"] == created["id"])
    signed_in(page, fast_stack)
    page.goto(f"{fast_stack.base}/keys")
    cells = key_row(page, "reporting").locator("td")
    expect(cells.nth(1)).to_have_text("1")
    expect(cells.nth(2)).to_have_text(f"{stats['total_tokens']:,}")
    expect(cells.nth(3).locator(".cost")).to_have_attribute("data-exact", stats["cost"])
    expect(cells.nth(5)).to_have_text("just now")


def test_the_admin_key_signed_in_with_shows_its_use(page: Page, fast_stack: LocalStack):
    signed_in(page, fast_stack)
    page.goto(f"{fast_stack.base}/keys")
    admin = key_row(page, "local admin")
    expect(admin).to_contain_text("admin key")
    expect(admin.locator("td").nth(5)).to_have_text("just now")
    screenshot(page, "keys-admin-last-used")


def test_signing_out_forgets_the_key(page: Page, fast_stack: LocalStack):
    signed_in(page, fast_stack)
    assert page.evaluate("sessionStorage.length") == 1
    assert fast_stack.info["admin_key"] not in page.url
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("Admin key")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0
    page.goto(f"{fast_stack.base}/keys")
    expect(page.get_by_label("Admin key")).to_be_visible()
