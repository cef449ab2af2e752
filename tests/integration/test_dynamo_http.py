"""The proxy's DynamoDB client (``meterway.core.dynamo_http``): signed as botocore signs, answered
by moto over loopback HTTP, tried again as botocore's standard mode does, and its failures
mapped by ``storage_errors`` as boto3's are."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import socket
import threading
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, RefreshableCredentials

from meterway.accounts.dal import keys_table
from meterway.accounts.dal.key_store import CachedKeyStore, DynamoKeyStore
from meterway.accounts.logic.key_secrets import hash_secret, mint_key
from meterway.core.aws import credentials
from meterway.core.dynamo import ConditionFailed, storage_errors
from meterway.core.dynamo_http import TARGET_PREFIX, DynamoHttp
from meterway.core.errors import StorageError
from meterway.core.http1 import Answer, Origin
from tests.integration.conftest import MOTO_REGION, LoopbackDynamo

UNAVAILABLE = "The store is unavailable; try again."
ERROR_PREFIX = "com.amazonaws.dynamodb.v20120810#"


def put_request(table: str, request_id: str, **options: Any) -> dict[str, Any]:
    return {
        "TableName": table,
        "Item": {"request_id": {"S": request_id}, "cost_usd": {"N": "0.25"}},
        "ConditionExpression": "attribute_not_exists(request_id)",
        **options,
    }


def test_a_call_is_signed_as_botocore_signs_it_and_answered_by_the_table(aws_env, dynamo: LoopbackDynamo):
    # Given an item written with boto3
    table = aws_env["LedgerTable"]
    boto3.client("dynamodb").put_item(**put_request(table, "gen-1"))
    # When the client reads it
    answer = dynamo.run(dynamo.client.call("GetItem", {"TableName": table, "Key": {"request_id": {"S": "gen-1"}}}))

    # Then the table answered it, and the request carries a SigV4 signature botocore computes alike
    assert answer["Item"]["cost_usd"] == {"N": "0.25"}
    [request] = dynamo.sent
    assert request.headers["x-amz-target"] == f"{TARGET_PREFIX}GetItem"
    assert request.headers["content-type"] == "application/x-amz-json-1.0"
    authorization = request.headers["authorization"]
    stamp = request.headers["x-amz-date"]
    assert authorization.startswith(
        f"AWS4-HMAC-SHA256 Credential={credentials().access_key}/{stamp[:8]}/{MOTO_REGION}/dynamodb/aws4_request"
    )
    signed_names = authorization.split("SignedHeaders=")[1].split(",")[0].split(";")
    assert {"content-type", "host", "x-amz-date", "x-amz-target"} <= set(signed_names)
    headers = {name: request.headers[name] for name in signed_names}
    again = AWSRequest(method="POST", url=dynamo.url, data=request.body, headers=headers)
    again.context["timestamp"] = stamp
    signer = SigV4Auth(credentials(), "dynamodb", MOTO_REGION)
    expected = signer.signature(signer.string_to_sign(again, signer.canonical_request(again)), again)
    assert authorization.endswith(f"Signature={expected}")


def test_a_failed_condition_is_condition_failed_with_the_item_when_asked_and_not_tried_again(
    aws_env, dynamo: LoopbackDynamo
):
    table = aws_env["LedgerTable"]
    dynamo.run(dynamo.client.call("PutItem", put_request(table, "gen-2")))
    dynamo.forget()

    def put_again(**options: Any) -> ConditionFailed:
        with pytest.raises(ConditionFailed) as failed, storage_errors(UNAVAILABLE):
            dynamo.run(dynamo.client.call("PutItem", put_request(table, "gen-2", **options)))
        return failed.value

    assert put_again(ReturnValuesOnConditionCheckFailure="ALL_OLD").item == {"request_id": "gen-2", "cost_usd": 0.25}
    assert put_again().item is None
    assert dynamo.operations == ["PutItem", "PutItem"]


def test_a_bad_request_is_unavailable_at_once(aws_env, dynamo: LoopbackDynamo):
    with pytest.raises(StorageError, match="unavailable"), storage_errors(UNAVAILABLE):
        dynamo.run(dynamo.client.call("GetItem", {"TableName": "no-such-table", "Key": {"pk": {"S": "x"}}}))
    assert dynamo.operations == ["GetItem"]


# --- retries, on answers scripted at the HTTP layer ----------------------------------------------


class Scripted:
    """A sender that answers each request with the next of ``answers`` (status, error type or
    document), as DynamoDB does: JSON with its CRC32. Waits are noted, not slept."""

    authority = "dynamodb.test"
    path = "/"

    def __init__(self, *answers: tuple[int, Any] | Answer):
        self.answers = list(answers)
        self.requests: list[dict[str, str]] = []
        self.waits: list[float] = []

    def client(self, credentials_of: Callable[[], Any] | None = None) -> DynamoHttp:
        fixed = Credentials("testing", "testing")
        return DynamoHttp(
            "http://dynamodb.test", MOTO_REGION, credentials_of or (lambda: fixed), origin=self, sleep=self._wait
        )

    async def post(self, headers: list[tuple[str, str]], body: bytes) -> Answer:
        self.requests.append({name.lower(): value for name, value in headers})
        scripted = self.answers.pop(0)
        if isinstance(scripted, Answer):
            return scripted
        status, answer = scripted
        document = {"__type": ERROR_PREFIX + answer, "message": "scripted"} if isinstance(answer, str) else answer
        content = json.dumps(document).encode()
        return Answer(status, {"x-amz-crc32": str(zlib.crc32(content))}, content)

    async def aclose(self) -> None:
        pass

    async def _wait(self, seconds: float) -> None:
        self.waits.append(seconds)


def call(client: DynamoHttp, operation: str = "GetItem") -> dict[str, Any]:
    async def once() -> dict[str, Any]:
        try:
            with storage_errors(UNAVAILABLE):
                return await client.call(operation, {"TableName": "t", "Key": {"pk": {"S": "a"}}})
        finally:
            await client.aclose()

    return asyncio.run(once())


def test_throttling_and_server_errors_are_tried_again_with_botocores_backoff():
    item = {"Item": {"pk": {"S": "a"}}}
    script = Scripted(
        (400, "ProvisionedThroughputExceededException"),
        (400, "ThrottlingException"),
        (500, "InternalServerError"),
        (503, {}),
        (200, item),
    )

    assert call(script.client()) == item

    assert len(script.requests) == 5
    # Each wait is botocore's: a random share of 1 s, 2 s, 4 s…
    assert all(0 <= wait <= bound for wait, bound in zip(script.waits, [1, 2, 4, 8], strict=True)), script.waits


def test_a_call_throttled_six_times_is_unavailable():
    script = Scripted(*[(400, "ThrottlingException")] * 6, (200, {}))

    with pytest.raises(StorageError, match="unavailable"):
        call(script.client(), "PutItem")

    assert len(script.requests) == 6 and len(script.waits) == 5


def test_an_answer_that_does_not_match_its_crc32_is_asked_again():
    corrupt = Answer(200, {"x-amz-crc32": "1"}, b'{"Item":{}}')
    script = Scripted(corrupt, (200, {"Item": {"pk": {"S": "a"}}}))

    assert call(script.client()) == {"Item": {"pk": {"S": "a"}}}
    assert len(script.requests) == 2


def test_refreshed_credentials_sign_the_next_call():
    issued = (f"key-{number}" for number in itertools.count(1))

    def refresh() -> dict[str, str]:
        # Each set is within botocore's mandatory refresh window, so that the next use refreshes it
        return {
            "access_key": next(issued),
            "secret_key": "s",
            "token": "t",
            "expiry_time": (datetime.now(UTC) + timedelta(minutes=5)).isoformat(),
        }

    refreshable = RefreshableCredentials.create_from_metadata(refresh(), refresh, "test")
    script = Scripted((200, {}), (200, {}))

    async def twice() -> None:
        client = script.client(refreshable.get_frozen_credentials)
        await client.call("GetItem", {})
        await client.call("GetItem", {})
        await client.aclose()

    asyncio.run(twice())

    keys = [headers["authorization"].split("Credential=")[1].split("/")[0] for headers in script.requests]
    assert keys == ["key-2", "key-3"]


# --- connections that fail -------------------------------------------------------------------------


@pytest.fixture
def silent_server() -> Iterator[tuple[str, list[socket.socket]]]:
    """A loopback port that takes connections and never answers: the connections it took."""
    listener = socket.create_server(("127.0.0.1", 0))
    taken: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                taken.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}", taken
    stop.set()
    thread.join()
    for connection in taken:
        connection.close()
    listener.close()


def test_a_call_that_times_out_is_tried_again_then_unavailable(silent_server):
    url, taken = silent_server
    waits: list[float] = []

    async def no_wait(seconds: float) -> None:
        waits.append(seconds)

    origin = Origin(url, connect_timeout=3.0, read_timeout=0.2)
    client = DynamoHttp(url, MOTO_REGION, lambda: Credentials("testing", "testing"), origin=origin, sleep=no_wait)

    with pytest.raises(StorageError, match="unavailable"):
        call(client)

    assert len(waits) == 5 and all(wait <= 2**attempt for attempt, wait in enumerate(waits))
    assert len(taken) == 6  # each attempt on a new connection: a timed-out one is not reused


@pytest.fixture
def one_answer_server() -> Iterator[tuple[str, list[socket.socket]]]:
    """A loopback server that answers one request on each connection, keeping it alive, then
    closes it (as a server's idle timeout does): the connections it took."""
    listener = socket.create_server(("127.0.0.1", 0))
    taken: list[socket.socket] = []
    body = json.dumps({"Item": {"pk": {"S": "a"}}}).encode()
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.0\r\nContent-Length: %d\r\n\r\n%s"

    def serve() -> None:
        while True:
            try:
                connection = listener.accept()[0]
            except OSError:
                return
            taken.append(connection)
            connection.recv(65536)
            connection.sendall(answer % (len(body), body))
            connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}", taken
    listener.close()
    thread.join(timeout=5)


def test_a_kept_connection_the_server_closed_is_replaced_without_a_retry(one_answer_server):
    url, taken = one_answer_server
    waits: list[float] = []

    async def no_wait(seconds: float) -> None:
        waits.append(seconds)

    async def twice() -> list[dict[str, Any]]:
        client = DynamoHttp(url, MOTO_REGION, lambda: Credentials("testing", "testing"), sleep=no_wait)
        try:
            return [await client.call("GetItem", {}) for _ in range(2)]
        finally:
            await client.aclose()

    assert asyncio.run(twice()) == [{"Item": {"pk": {"S": "a"}}}] * 2
    assert len(taken) == 2 and waits == []


def test_the_proxys_key_lookup_finds_a_key_by_its_hash_once_a_cache_ttl(aws_env, dynamo: LoopbackDynamo):
    # Given a key stored as the admin API stores it (boto3)
    key, secret = mint_key("acct", "lookup")
    DynamoKeyStore(aws_env["KeysTable"]).put(key, hash_secret(secret))
    keys = CachedKeyStore(DynamoKeyStore(aws_env["KeysTable"], dynamo=dynamo.client), ttl_seconds=60)

    # When the proxy looks it up twice, and a hash nobody has twice
    found = [dynamo.run(keys.find_by_hash(hash_secret(secret))) for _ in range(2)]
    missing = [dynamo.run(keys.find_by_hash("0" * 64)) for _ in range(2)]

    # Then it is found (with the number of its read copies), the unknown hash is not, and each was
    # read once
    stored = dataclasses.replace(key, secret_copies=keys_table.KEY_COPIES)
    assert found == [stored, stored] and missing == [None, None]
    assert dynamo.operations == ["GetItem", "GetItem"]


def test_a_chunked_answer_split_across_reads_is_read_whole_and_its_connection_kept():
    # An answer in chunked encoding, its bytes sent in three writes with pauses between them.
    body = json.dumps({"Item": {"pk": {"S": "chunked"}}}).encode()
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.0\r\nX-Amz-Crc32: %d\r\n" % zlib.crc32(body)
    chunked = head + b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    cut = len(head) + 40

    async def scenario() -> tuple[list[Answer], int]:
        accepted = 0

        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal accepted
            accepted += 1
            while await reader.read(65536):
                for part in (chunked[:cut], chunked[cut:-3], chunked[-3:]):
                    writer.write(part)
                    await writer.drain()
                    await asyncio.sleep(0.01)

        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        origin = Origin(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", connect_timeout=3, read_timeout=3)
        try:
            answers = [await origin.post([("X-Amz-Target", "DynamoDB_20120810.GetItem")], b"{}") for _ in range(2)]
        finally:
            await origin.aclose()
            server.close()
        return answers, accepted

    answers, connections = asyncio.run(scenario())

    assert [(answer.status, answer.content) for answer in answers] == [(200, body)] * 2
    assert answers[0].headers["x-amz-crc32"] == str(zlib.crc32(body))
    assert connections == 1


def test_a_header_with_a_line_break_is_refused_before_anything_is_sent():
    origin = Origin("http://127.0.0.1:9", connect_timeout=0.5, read_timeout=0.5)

    with pytest.raises(ValueError, match="line break"):
        asyncio.run(origin.post([("X-Amz-Target", "GetItem\r\nX-Injected: 1")], b"{}"))


def test_a_key_far_from_its_limits_has_its_check_sent_when_the_early_check_returns():
    # The proxy starts a far key's check before reading the body, and gives the event loop the
    # turns the check's tasks need to write their requests (``ProxyDeps.check_early``): counted
    # here against the real quota store and client, so a new task in between is noticed.
    from meterway.accounts.dal.quota_store import DynamoQuotaStore, Standing
    from meterway.proxy.handlers.deps import ProxyDeps
    from tests.ledger_factory import KEYS

    key = dataclasses.replace(KEYS[0], account_id="acct-with-credit")
    scripted = Scripted(*[(200, {})] * 4)
    quotas = DynamoQuotaStore("keys", dynamo=scripted.client())
    deps = ProxyDeps(None, None, quotas, None, None, None, None)  # type: ignore[arg-type]
    deps.headroom.note(key, Standing())

    async def early_check() -> int:
        admission = await deps.check_early(key, "hash")
        assert admission is not None
        sent = len(scripted.requests)
        admission.abandon()
        return sent

    assert asyncio.run(early_check()) >= 1
