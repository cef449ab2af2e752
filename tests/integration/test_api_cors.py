"""CORS on the management API: the web console's origin, and only it, may call it from a browser."""

from __future__ import annotations

from typing import Any

import pytest

from meterway.accounts.dal.key_store import DynamoKeyStore
from meterway.accounts.logic.manage_keys import create_key
from meterway.core.container import container
from tests.integration.conftest import call_api

CONSOLE = "https://d111111abcdef8.cloudfront.net"
FOREIGN = "https://evil.example"


def _admin_key(table: str) -> str:
    _, secret = create_key(DynamoKeyStore(table), "acct", "ops", kind="admin")
    return secret


def _configure(monkeypatch: pytest.MonkeyPatch, console_origin: str | None) -> None:
    if console_origin is None:
        monkeypatch.delenv("MW_CONSOLE_ORIGIN", raising=False)
    else:
        monkeypatch.setenv("MW_CONSOLE_ORIGIN", console_origin)
    container.reset()


@pytest.fixture
def console_api(aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> str:
    """A stack whose console is served from CONSOLE; returns an admin key."""
    _configure(monkeypatch, CONSOLE)
    return _admin_key(aws_env["KeysTable"])


@pytest.fixture
def no_console_api(aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> str:
    """A stack with no console origin configured; returns an admin key."""
    _configure(monkeypatch, None)
    return _admin_key(aws_env["KeysTable"])


def _headers(response: dict[str, Any]) -> dict[str, str]:
    """Response headers by lowercase name, from either shape API Gateway accepts."""
    found = {name.lower(): value for name, value in (response.get("headers") or {}).items()}
    for name, values in (response.get("multiValueHeaders") or {}).items():
        found[name.lower()] = ",".join(values)
    return found


def _cors_headers(response: dict[str, Any]) -> dict[str, str]:
    return {name: value for name, value in _headers(response).items() if name.startswith("access-control-")}


def _preflight(path: str, method: str, origin: str) -> dict[str, Any]:
    return call_api(
        "OPTIONS",
        path,
        None,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )


@pytest.mark.parametrize(
    ("path", "method"),
    [("/api/usage", "GET"), ("/api/keys", "POST"), ("/api/keys/k1", "PATCH"), ("/api/keys/k1", "DELETE")],
)
def test_the_console_preflight_is_answered_without_an_admin_key(console_api, path, method):
    # Given a stack whose console is at CONSOLE
    # When the browser asks, before the real call and without credentials, whether it may send it
    response = _preflight(path, method, CONSOLE)

    # Then it may: from that origin, with the admin key header and a JSON body, cached 10 minutes
    assert 200 <= response["statusCode"] < 300
    headers = _headers(response)
    assert headers["access-control-allow-origin"] == CONSOLE
    assert method in headers["access-control-allow-methods"].split(",")
    allowed = {name.strip().lower() for name in headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type"} <= allowed
    assert headers["access-control-max-age"] == "600"
    # And no cookies are ever involved
    assert "access-control-allow-credentials" not in headers


def test_a_foreign_origin_is_not_allowed(console_api):
    # Given a page on another origin, When it sends a preflight and then a request with a stolen key
    preflight = _preflight("/api/usage", "GET", FOREIGN)
    response = call_api("GET", "/api/usage", console_api, headers={"Origin": FOREIGN})

    # Then neither answer lets its browser read anything
    assert "access-control-allow-origin" not in _headers(preflight)
    assert "access-control-allow-origin" not in _headers(response)


def test_the_console_reads_the_usage_it_asked_for(console_api):
    response = call_api("GET", "/api/usage", console_api, headers={"Origin": CONSOLE})

    assert response["statusCode"] == 200
    assert "totals" in response["json"]
    assert _headers(response)["access-control-allow-origin"] == CONSOLE


@pytest.mark.parametrize(
    ("path", "query", "with_key", "status"),
    [
        ("/api/usage", None, False, 401),
        ("/api/usage", {"start": "not-a-date"}, True, 400),
        ("/api/no-such-endpoint", None, True, 404),
    ],
)
def test_the_console_can_read_the_error_message(console_api, path, query, with_key, status):
    # Given the console calls the API wrongly (no key, bad input, an unknown endpoint)
    response = call_api("GET", path, console_api if with_key else None, query=query, headers={"Origin": CONSOLE})

    # Then the error is allowed to its origin, so it can show the envelope's message
    assert response["statusCode"] == status
    assert _headers(response)["access-control-allow-origin"] == CONSOLE
    assert response["json"]["error"]["message"]


def test_without_a_console_origin_no_cors_headers_are_sent(no_console_api):
    # Given a stack with no console origin configured, When a browser calls from anywhere
    preflight = _preflight("/api/usage", "GET", CONSOLE)
    ok = call_api("GET", "/api/usage", no_console_api, headers={"Origin": CONSOLE})
    refused = call_api("GET", "/api/usage", None, headers={"Origin": CONSOLE})

    # Then no answer carries a CORS header, so no browser page may read the API
    assert ok["statusCode"] == 200
    assert refused["statusCode"] == 401
    for response in (preflight, ok, refused):
        assert _cors_headers(response) == {}


def test_the_origin_follows_the_configuration(aws_env, monkeypatch):
    # Given a warm function configured without a console origin, then with one (a redeploy)
    secret = _admin_key(aws_env["KeysTable"])
    _configure(monkeypatch, None)
    before = call_api("GET", "/api/keys", secret, headers={"Origin": CONSOLE})
    _configure(monkeypatch, CONSOLE)
    after = call_api("GET", "/api/keys", secret, headers={"Origin": CONSOLE})

    # Then the new origin applies, and every route still answers with the admin key it was given
    assert before["statusCode"] == after["statusCode"] == 200
    assert "access-control-allow-origin" not in _headers(before)
    assert _headers(after)["access-control-allow-origin"] == CONSOLE
    assert [key["name"] for key in after["json"]["data"]] == ["ops"]
