"""Integration fixtures: moto's in-process AWS with the template's own tables and queues."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import anthropic
import openai
import pytest
from boto3.dynamodb.types import TypeSerializer
from moto import mock_aws

from devstack import moto_patches
from devstack.aws_resources import create_resources, env_for
from devstack.fake_upstream import FakeUpstreamConfig, FakeUpstreamServer
from meterway.core.aws import credentials
from meterway.core.container import container
from meterway.core.dynamo_http import CONNECT_TIMEOUT_S, READ_TIMEOUT_S, TARGET_PREFIX, DynamoHttp
from meterway.core.http1 import Answer, Origin

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def aws_backend(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Fake credentials, moto, the template's resources, and the app's settings pointing at them."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    moto_patches.apply()
    with mock_aws():
        resources = create_resources(ROOT / "template.yaml", prefix="it")
        for name, value in env_for(resources).items():
            monkeypatch.setenv(name, value)
        container.reset()
        yield resources
        container.reset()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    with aws_backend(monkeypatch) as resources:
        yield resources


@pytest.fixture(scope="module")
def module_aws_env() -> Iterator[dict[str, str]]:
    """One backend for a module whose tests only read what its setup wrote."""
    with pytest.MonkeyPatch.context() as monkeypatch, aws_backend(monkeypatch) as resources:
        yield resources


MOTO_REGION = "us-east-1"


@contextmanager
def running_moto_server() -> Iterator[str]:
    """moto server on a free loopback port, for code that runs its own clients and threads."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    """One moto server for a module's tests."""
    with running_moto_server() as url:
        yield url


@pytest.fixture
def fresh_moto_url() -> Iterator[str]:
    """A moto server of the test's own: nothing another test made is in it."""
    with running_moto_server() as url:
        yield url


T = TypeVar("T")


@dataclass(frozen=True)
class Sent:
    """One request as ``DynamoHttp`` sent it: its headers (names in lower case, Host included)."""

    headers: dict[str, str]
    body: bytes

    @property
    def operation(self) -> str:
        return self.headers["x-amz-target"].removeprefix(TARGET_PREFIX)


class KeptOrigin(Origin):
    """An ``Origin`` that keeps each request it sends, attempt by attempt."""

    def __init__(self, url: str):
        super().__init__(url, connect_timeout=CONNECT_TIMEOUT_S, read_timeout=READ_TIMEOUT_S)
        self.sent: list[Sent] = []

    async def post(self, headers: list[tuple[str, str]], body: bytes) -> Answer:
        named = {name.lower(): value for name, value in headers} | {"host": self.authority}
        self.sent.append(Sent(named, body))
        return await super().post(headers, body)


class LoopbackDynamo:
    """The proxy's DynamoDB client (``DynamoHttp``) on the test's moto tables over loopback HTTP,
    as the local stack reaches moto, and the event loop its calls run on. A moto server in this
    process serves what ``mock_aws`` holds: the boto3 clients of the set-up and the checks see
    the same tables. ``sent`` keeps what the client sent, attempt by attempt."""

    def __init__(self, url: str):
        self.url = url
        self._loop = asyncio.Runner()
        self.origin = KeptOrigin(url)
        self.client = DynamoHttp(url, MOTO_REGION, credentials, origin=self.origin)

    @property
    def sent(self) -> list[Sent]:
        return self.origin.sent

    @property
    def operations(self) -> list[str]:
        return [request.operation for request in self.origin.sent]

    def forget(self) -> None:
        self.origin.sent.clear()

    def run(self, call: Coroutine[Any, Any, T]) -> T:
        """A store's call, run to its end on the client's event loop."""
        return self._loop.run(call)

    def close(self) -> None:
        self.run(self.client.aclose())
        self._loop.close()


@pytest.fixture
def dynamo(aws_env: dict[str, str], moto_url: str) -> Iterator[LoopbackDynamo]:
    """The proxy's DynamoDB client on this test's tables (``aws_env``), over loopback HTTP."""
    loopback = LoopbackDynamo(moto_url)
    yield loopback
    loopback.close()


@pytest.fixture
def dynamo_over_loopback(aws_env: dict[str, str], moto_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """DynamoDB clients made from the environment, the proxy's own (``dynamo_http``) as well as
    boto3's, reach this test's tables (``aws_env``) through a moto server on loopback."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", moto_url)
    container.reset()


Poller = TypeVar("Poller", bound="Runnable")


class Runnable(Protocol):
    def run(self) -> None: ...

    def stop(self) -> None: ...


@pytest.fixture
def run_in_thread() -> Iterator[Callable[[Poller], Poller]]:
    """Runs pollers on daemon threads, as the local stack does; stops and joins them after the test."""
    started: list[tuple[Runnable, threading.Thread]] = []

    def run(poller: Poller) -> Poller:
        thread = threading.Thread(target=poller.run, daemon=True)
        thread.start()
        started.append((poller, thread))
        return poller

    yield run
    for poller, thread in started:
        poller.stop()
        thread.join(timeout=5)
        assert not thread.is_alive()


@pytest.fixture
def moto_server_env(monkeypatch: pytest.MonkeyPatch, moto_url: str) -> None:
    """boto3 clients made from the environment reach the module's moto server."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", MOTO_REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)


# --- the fake upstream, one per module ------------------------------------------------------------


@pytest.fixture(scope="module")
def fake_server(request: pytest.FixtureRequest) -> Iterator[FakeUpstreamServer]:
    """A fake upstream for the module, configured by its ``FAKE_CONFIG`` (the defaults without one)."""
    with FakeUpstreamServer(getattr(request.module, "FAKE_CONFIG", FakeUpstreamConfig())) as server:
        yield server


@pytest.fixture
def fake(fake_server: FakeUpstreamServer) -> FakeUpstreamServer:
    """The module's fake upstream, with no request, fault or cache left by an earlier test."""
    fake_server.reset()
    return fake_server


@pytest.fixture
def oai(fake: FakeUpstreamServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=fake.openai_base_url, api_key="sk-test-key", max_retries=0)


@pytest.fixture
def claude(fake: FakeUpstreamServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=fake.base_url, api_key="sk-ant-test", max_retries=0)


def user(text: str) -> Any:
    """A one-message conversation, typed loosely so both SDKs accept it."""
    return [{"role": "user", "content": text}]


def load_event(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((ROOT / "events" / name).read_text())
    return event


def call_api(
    method: str,
    path: str,
    secret: str | None,
    body: Any = None,
    query: dict[str, str] | None = None,
    headers: dict[str, str | list[str]] | None = None,
    handler: Callable[[dict[str, Any], Any], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The ApiFunction handler with an API Gateway REST event, as in AWS; adds ``json`` to the result.
    ``headers`` are added to the request's (a browser's ``Origin``, say; a list for a header sent more
    than once, which ``headers`` holds the last of); ``handler`` stands in for the function's own."""
    import copy

    from devstack.gateway import LocalLambdaContext
    from meterway.management_api import handler as api

    event = copy.deepcopy(load_event("api_get_keys.json"))
    event |= {"httpMethod": method, "path": path, "pathParameters": {"proxy": path.removeprefix("/api/")}}
    for sent in (event["headers"], event["multiValueHeaders"]):
        sent.pop("Authorization", None)
    sent_json = {"Content-Type": "application/json"} if body is not None else {}
    # The test's own headers last: they may send Authorization twice.
    extra = sent_json | ({"Authorization": f"Bearer {secret}"} if secret else {}) | (headers or {})
    for name, value in extra.items():
        values = [value] if isinstance(value, str) else value
        event["headers"][name] = values[-1]
        event["multiValueHeaders"][name] = values
    event["queryStringParameters"] = query or None
    event["multiValueQueryStringParameters"] = {name: [value] for name, value in query.items()} if query else None
    event["body"] = json.dumps(body) if body is not None else None
    response: dict[str, Any] = (handler or api.handler)(event, LocalLambdaContext("ApiFunction"))
    response["json"] = json.loads(response["body"]) if response.get("body") else None
    return response


def stream_event(items: list[dict[str, Any]], table_arn: str) -> dict[str, Any]:
    """The event the ledger's stream mapping delivers (shape of events/ledger_stream_insert.json)."""
    template = load_event("ledger_stream_insert.json")["Records"][0]
    serializer = TypeSerializer()
    records = []
    for number, item in enumerate(items):
        image = {name: serializer.serialize(value) for name, value in item.items()}
        record = json.loads(json.dumps(template))
        record["eventID"] = f"event-{number}"
        record["eventSourceARN"] = table_arn
        record["dynamodb"] |= {
            "Keys": {"request_id": image["request_id"]},
            "NewImage": image,
            "SequenceNumber": f"{100000 + number:021d}",
        }
        records.append(record)
    return {"Records": records}


def count_ledger(aws_env: dict[str, str]) -> None:
    """Run the AggregatorFunction over every record in the ledger, as the stream would deliver
    them: the rollups and the counters their settlements carry."""
    import boto3

    from devstack.gateway import LocalLambdaContext
    from meterway.analytics.handlers import aggregator
    from meterway.core.aws import deserialize

    client = boto3.client("dynamodb")
    pages = client.get_paginator("scan").paginate(TableName=aws_env["LedgerTable"])
    items = sorted((deserialize(item) for page in pages for item in page["Items"]), key=lambda i: i["created_sk"])
    arn = client.describe_table(TableName=aws_env["LedgerTable"])["Table"]["TableArn"]
    handled = aggregator.handler(stream_event(items, arn), LocalLambdaContext("AggregatorFunction"))
    assert handled == {"batchItemFailures": []}
