"""The local gateway's routing to the console's files, as CloudFront and API Gateway route in AWS."""

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from starlette.responses import PlainTextResponse
from starlette.testclient import TestClient

from devstack.gateway import CONSOLE_CSP, LocalGateway

INDEX = "<!doctype html><title>Meterway</title>"


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    dist = tmp_path / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text(INDEX)
    (dist / "assets" / "app.js").write_text("console.log('app')")
    proxy = PlainTextResponse("proxy", status_code=404)
    return TestClient(LocalGateway(proxy, lambda event, context: {"statusCode": 200, "body": "api"}, dist))


@pytest.mark.parametrize("path", ["/", "/usage", "/keys", "/activity/", "/keys/key_123"])
def test_a_console_route_serves_the_app(client, path):
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.text == INDEX
    assert response.headers["content-security-policy"] == CONSOLE_CSP


def test_a_console_file_is_served_as_itself(client):
    response = client.get("/assets/app.js")
    assert response.status_code == 200
    assert response.text == "console.log('app')"


@pytest.mark.parametrize("path", ["/config.json", "/assets/missing.js", "/favicon.ico"])
def test_a_missing_file_stays_not_found(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert INDEX not in response.text


def test_api_and_inference_paths_never_get_the_app(client):
    assert client.get("/api/usage").text == "api"
    assert client.get("/v1/models").text == "proxy"
    assert client.get("/v1").text == "proxy"
    assert client.get("/v1x").status_code == 404
    assert client.get("/apix").status_code == 404


def test_a_write_to_a_console_route_is_refused(client):
    assert client.post("/usage").status_code == 405


def test_a_body_that_is_not_utf8_reaches_the_api_in_base64():
    import anyio
    from starlette.requests import Request

    from devstack.gateway import rest_proxy_event

    async def receive():
        return {"type": "http.request", "body": b'{"name": "\xff"}', "more_body": False}

    scope = {"type": "http", "method": "POST", "path": "/api/keys", "headers": [], "query_string": b""}
    # A loop of its own on a thread of its own: the browser tests' Playwright keeps one running on
    # the main thread for the whole session.
    with ThreadPoolExecutor(1) as thread:
        event = thread.submit(anyio.run, rest_proxy_event, Request(scope, receive)).result()
    assert event["isBase64Encoded"] is True
    assert event["body"] == "eyJuYW1lIjogIv8ifQ=="
