"""The upstream client's network layer on asyncio (``meterway.proxy.dal.asyncio_network``), against
servers on loopback: kept-alive connections reused, one the server closed while idle replaced
without an error, timeouts and refusals as httpx's errors (which ``Upstream.send`` maps), and TLS
verified against the CA the context trusts."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpcore
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from meterway.proxy.dal.asyncio_network import AsyncioBackend, AsyncioTransport

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
OK = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok"


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        (int(line.split(b":")[1]) for line in head.lower().split(b"\r\n") if line.startswith(b"content-length")), 0
    )
    return head + await reader.readexactly(length)


class Server:
    """A loopback HTTP/1.1 server that counts its connections and answers with ``handler``."""

    def __init__(self, handler: Handler):
        self.connections = 0
        self.handler = handler

    async def __aenter__(self) -> Server:
        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            try:
                await self.handler(reader, writer)
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.close()

        self._server = await asyncio.start_server(accept, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/v1"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()


def client(**timeouts: float) -> httpx.AsyncClient:
    transport = AsyncioTransport(limits=httpx.Limits(max_connections=10, max_keepalive_connections=5))
    return httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(5.0, **timeouts))


async def keep_answering(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        await read_request(reader)
        writer.write(OK)
        await writer.drain()


async def answer_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)
    writer.write(OK)
    await writer.drain()


def test_requests_in_turn_share_one_kept_alive_connection():
    async def scenario() -> tuple[list[str], int]:
        async with Server(keep_answering) as server, client() as http:
            texts = [(await http.post(server.url, json={"n": n})).text for n in range(3)]
            return texts, server.connections

    assert asyncio.run(scenario()) == (["ok", "ok", "ok"], 1)


def test_a_connection_the_server_closed_while_idle_is_replaced_not_failed():
    async def scenario() -> tuple[list[int], int]:
        async with Server(answer_once) as server, client() as http:
            first = await http.post(server.url, content=b"1")
            await asyncio.sleep(0.05)  # the server's close arrives while the connection is idle
            second = await http.post(server.url, content=b"2")
            return [first.status_code, second.status_code], server.connections

    assert asyncio.run(scenario()) == ([200, 200], 2)


def test_a_streamed_body_arrives_as_the_server_writes_it():
    async def in_parts(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        for part in (b"data: 1\n\n", b"data: 2\n\n"):
            writer.write(b"%x\r\n%s\r\n" % (len(part), part))
            await writer.drain()
            await asyncio.sleep(0.02)
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async def scenario() -> list[bytes]:
        async with Server(in_parts) as server, client() as http, http.stream("POST", server.url) as response:
            return [chunk async for chunk in response.aiter_raw()]

    assert asyncio.run(scenario()) == [b"data: 1\n\n", b"data: 2\n\n"]


def test_a_silent_server_is_a_read_timeout_and_a_closed_port_a_connect_error():
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(5)

    async def scenario() -> None:
        async with Server(silent) as server, client(read=0.1) as http:
            with pytest.raises(httpx.ReadTimeout):
                await http.post(server.url, content=b"x")
            closed = server.url
        async with client() as http:
            with pytest.raises(httpx.ConnectError):
                await http.post(closed, content=b"x")

    asyncio.run(scenario())


def _certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for ``localhost`` and 127.0.0.1, and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def test_tls_is_verified_against_the_trusted_ca_and_its_host_name(tmp_path):
    cert, key = _certificate(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    trusting = ssl.create_default_context(cafile=str(cert))

    async def scenario() -> bytes:
        server = await asyncio.start_server(keep_answering, "127.0.0.1", 0, ssl=server_context)
        port = server.sockets[0].getsockname()[1]
        backend = AsyncioBackend()
        try:
            stream = await backend.connect_tcp("127.0.0.1", port, timeout=5)
            secure = await stream.start_tls(trusting, server_hostname="localhost", timeout=5)
            assert secure.get_extra_info("ssl_object").version().startswith("TLS")
            await secure.write(b"GET / HTTP/1.1\r\nhost: localhost\r\n\r\n", timeout=5)
            answer = await secure.read(65536, timeout=5)
            await secure.aclose()
            # Another name than the certificate's: refused before anything is sent.
            stream = await backend.connect_tcp("127.0.0.1", port, timeout=5)
            with pytest.raises(httpcore.ConnectError):
                await stream.start_tls(trusting, server_hostname="api.example.com", timeout=5)
            # A CA the context does not trust (certifi's, as the upstream client has): refused too.
            stream = await backend.connect_tcp("127.0.0.1", port, timeout=5)
            with pytest.raises(httpcore.ConnectError):
                await stream.start_tls(ssl.create_default_context(), server_hostname="localhost", timeout=5)
            return answer
        finally:
            server.close()

    assert asyncio.run(scenario()) == OK


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy"])
def test_an_http_proxy_in_the_environment_carries_the_upstream_calls(monkeypatch, variable):
    # The asyncio layer connects straight to the provider; with a proxy configured the client is
    # httpx's own, which sends through it (a request in absolute form, to the proxy).
    from meterway.core.settings import ProxySettings
    from meterway.proxy.dal.upstream import build_client

    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    settings = ProxySettings(keys_table="keys", ledger_table="ledger", spill_queue_url="http://queue.invalid/q")
    lines: list[bytes] = []

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        lines.append((await read_request(reader)).split(b"\r\n", 1)[0])
        writer.write(OK)
        await writer.drain()

    async def scenario() -> int:
        async with Server(proxy) as server:
            monkeypatch.setenv(variable, server.url.removesuffix("/v1"))
            async with build_client(settings) as http:
                return (await http.post("http://provider.invalid/v1/chat/completions", content=b"{}")).status_code

    assert asyncio.run(scenario()) == 200
    assert lines == [b"POST http://provider.invalid/v1/chat/completions HTTP/1.1"]


CHAT_EVENTS = [
    {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini", "choices": choices}
    for choices in (
        [{"index": 0, "delta": {"role": "assistant", "content": "Metered."}, "finish_reason": None}],
        [{"index": 0, "delta": {}, "finish_reason": "stop"}],
    )
] + [
    {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [],
        "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11},
    }
]


def chat_stream_server(end_after: float | None) -> Handler:
    """An OpenAI Chat stream in chunked encoding, ``[DONE]`` last; the body's end follows it after
    ``end_after`` seconds (None: never, the connection stays open)."""
    import json

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
            for event in [*(f"data: {json.dumps(chunk)}\n\n" for chunk in CHAT_EVENTS), "data: [DONE]\n\n"]:
                writer.write(b"%x\r\n%s\r\n" % (len(event), event.encode()))
            await writer.drain()
            if end_after is None:
                await asyncio.sleep(30)
            await asyncio.sleep(end_after)
            writer.write(b"0\r\n\r\n")
            await writer.drain()

    return answer


async def relay_chat_streams(url: str, count: int) -> list[tuple[bytes, str]]:
    """``count`` Chat streams relayed in turn as the proxy relays them, on one client: each
    one's frames and the status of its record."""
    import time as clock

    from meterway.ledger.models import UsageRecord
    from meterway.proxy.formats.chat import ChatChunks, ChatEncoder
    from meterway.proxy.logic.catalog import BUILT_IN
    from meterway.proxy.logic.proxy_call import ProxyCall
    from meterway.proxy.logic.relay import relay
    from meterway.proxy.logic.time_limits import TimeBudget, TimeLimits
    from meterway.proxy.providers.sse import server_sent_events
    from tests.ledger_factory import KEYS

    model = "openai/gpt-4o-mini"
    limits = TimeLimits(first_byte_s=5, idle_s=5, function_timeout_s=60, settle_margin_s=1)
    results = []
    async with client() as http:
        for number in range(count):
            record = UsageRecord(
                f"gen-{number}", datetime.datetime.now(datetime.UTC), KEYS[0], model, "openai", "chat", True
            )
            call = ProxyCall(BUILT_IN.resolve(model), {}, record, clock.perf_counter())
            response = await http.send(http.build_request("POST", url, content=b"{}"), stream=True)
            settled: list[UsageRecord] = []

            async def settle(done: UsageRecord, settled: list[UsageRecord] = settled) -> None:
                settled.append(done)

            frames = relay(
                call,
                response,
                server_sent_events(response),
                ChatChunks(model=model, request_id=record.request_id, created=0),
                ChatEncoder(record, model, 0),
                settle,
                TimeBudget.starting(limits, clock.perf_counter()),
            )
            body = b"".join([frame async for frame in frames])
            results.append((body, settled[0].status))
    return results


def test_a_chat_stream_read_to_its_end_leaves_its_connection_for_the_next():
    # The relay stops at [DONE]; the chunked body's end follows a moment later, and is read.
    async def scenario() -> tuple[list[tuple[bytes, str]], int]:
        async with Server(chat_stream_server(end_after=0.01)) as server:
            return await relay_chat_streams(server.url, 3), server.connections

    results, connections = asyncio.run(scenario())

    assert [status for _, status in results] == ["ok"] * 3
    assert all(body.endswith(b"data: [DONE]\n\n") for body, _ in results)
    assert connections == 1


def test_an_upstream_that_never_ends_its_body_after_done_costs_a_tenth_of_a_second_and_its_connection():
    async def scenario() -> tuple[list[tuple[bytes, str]], int, float]:
        async with Server(chat_stream_server(end_after=None)) as server:
            started = asyncio.get_running_loop().time()
            results = await relay_chat_streams(server.url, 2)
            return results, server.connections, asyncio.get_running_loop().time() - started

    results, connections, seconds = asyncio.run(scenario())

    assert [status for _, status in results] == ["ok"] * 2
    assert connections == 2
    assert seconds < 2
