"""The console opens, refuses a wrong key and lets the admin in."""

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import LocalStack
from tests.e2e.console.conftest import screenshot, signed_in


def test_the_sign_in_page_asks_for_the_admin_key(page: Page, stack: LocalStack):
    page.goto(stack.base + "/")
    expect(page.get_by_role("heading", level=1, name="Meterway")).to_be_visible()
    key = page.get_by_label("Admin key")
    expect(key).to_be_visible()
    expect(key).to_have_attribute("type", "password")
    expect(page.get_by_role("button", name="Sign in")).to_be_enabled()
    expect(page.get_by_role("navigation")).to_have_count(0)
    screenshot(page, "sign-in")


@pytest.mark.parametrize(
    ("which", "said"),
    [
        ("unknown key", "Sign-in failed: Invalid or disabled admin key."),
        ("api key", "Sign-in failed: This endpoint needs an admin key."),
    ],
)
def test_a_key_that_is_not_an_admin_key_is_refused(page: Page, stack: LocalStack, which: str, said: str):
    page.goto(stack.base + "/")
    page.get_by_label("Admin key").fill("mw-admin-not-a-real-key" if which == "unknown key" else stack.api_key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text(said)
    expect(page.get_by_label("Admin key")).to_be_visible()
    expect(page.get_by_role("navigation")).to_have_count(0)
    screenshot(page, f"sign-in-refused-{which.replace(' ', '-')}")


def test_the_admin_key_signs_in(page: Page, stack: LocalStack):
    signed_in(page, stack)
    expect(page.get_by_label("Admin key")).to_have_count(0)
    screenshot(page, "signed-in")


def test_the_sign_in_page_fits_a_phone(phone_page: Page, stack: LocalStack):
    phone_page.goto(stack.base + "/")
    expect(phone_page.get_by_label("Admin key")).to_be_in_viewport()
    expect(phone_page.get_by_role("button", name="Sign in")).to_be_in_viewport()
    assert phone_page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(phone_page, "sign-in-phone")
