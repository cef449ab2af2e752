"""POSTs to one origin over kept-alive HTTP/1.1 connections on asyncio streams, with h11 (httpx's
own HTTP/1.1 engine) speaking the protocol: the proxy's DynamoDB calls (``dynamo_http``).

Why not the proxy's httpx client: on this project's 2-core box an ``httpx.AsyncClient`` request
costs 0.7–1.1 ms of CPU (httpcore's pool, anyio's cancel scopes and locks, header models), as
much as botocore's whole call; the same request here costs about 0.2 ms. It does only what these
calls need: POST with a body, ``Content-Length`` or chunked answers, keep-alive, TLS with
certifi's CAs (as httpx and botocore use), a connect and a read timeout. No proxies, redirects,
cookies or compression.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from functools import cache
from urllib.parse import urlsplit

import h11

# What a connection that breaks or stalls raises, in asyncio, h11 and the socket layer.
_BROKEN = (OSError, EOFError, TimeoutError, asyncio.IncompleteReadError, h11.ProtocolError)


class Unreachable(Exception):
    """No answer came: the connection could not be made, broke, or a timeout passed."""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: dict[str, str]  # names in lower case
    content: bytes


class Origin:
    """One origin (``scheme://host[:port]``), its idle connections kept for the next request."""

    def __init__(self, url: str, *, connect_timeout: float, read_timeout: float, max_idle: int = 16):
        parts = urlsplit(url)
        secure = parts.scheme == "https"
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if secure else 80)
        # The Host header: what the request is signed with, too.
        self.authority = parts.netloc
        self.path = parts.path or "/"
        self._secure = secure
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._max_idle = max_idle
        self._idle: list[_Connection] = []

    async def post(self, headers: list[tuple[str, str]], body: bytes) -> Answer:
        """The answer to one POST of ``body`` (``headers`` without Host and Content-Length).
        A kept connection the server closed meanwhile is replaced once, before anything was read."""
        request = h11.Request(
            method="POST",
            target=self.path,
            headers=[("Host", self.authority), ("Content-Length", str(len(body))), *headers],
        )
        while self._idle:
            connection = self._idle.pop()
            if connection.closed:
                continue
            try:
                return await self._exchange(connection, request, body)
            except _Stale:
                continue
        return await self._exchange(await self._connect(), request, body)

    async def _exchange(self, connection: _Connection, request: h11.Request, body: bytes) -> Answer:
        try:
            async with asyncio.timeout(self._read_timeout):
                answer = await connection.exchange(request, body)
        except _BROKEN as exc:
            connection.close()
            if connection.reused and not connection.heard and not isinstance(exc, TimeoutError):
                raise _Stale from exc
            raise Unreachable(f"{type(exc).__name__} from {self.authority}") from exc
        except BaseException:
            connection.close()
            raise
        if connection.reusable and len(self._idle) < self._max_idle:
            self._idle.append(connection)
        else:
            connection.close()
        return answer

    async def _connect(self) -> _Connection:
        try:
            async with asyncio.timeout(self._connect_timeout):
                reader, writer = await asyncio.open_connection(
                    self.host, self.port, ssl=_tls() if self._secure else None
                )
        except _BROKEN as exc:
            raise Unreachable(f"{type(exc).__name__} connecting to {self.authority}") from exc
        return _Connection(reader, writer)

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()


class _Stale(Exception):
    """A kept connection was closed by the server before it answered anything."""


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self._reader = reader
        self._writer = writer
        self._h11 = h11.Connection(h11.CLIENT)
        self.exchanges = 0
        # Whether any of the current answer arrived.
        self.heard = False

    @property
    def reused(self) -> bool:
        return self.exchanges > 1

    @property
    def closed(self) -> bool:
        return self._writer.is_closing() or self._reader.at_eof()

    @property
    def reusable(self) -> bool:
        return self._h11.our_state is h11.DONE and self._h11.their_state is h11.DONE

    async def exchange(self, request: h11.Request, body: bytes) -> Answer:
        self.exchanges += 1
        self.heard = False
        if self.exchanges > 1:
            self._h11.start_next_cycle()
        connection = self._h11
        # One write, so one system call, for the whole request.
        self._writer.write(
            b"".join(
                (connection.send(request), connection.send(h11.Data(data=body)), connection.send(h11.EndOfMessage()))
            )
        )
        status, headers, parts = 0, {}, []
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                data = await self._reader.read(65536)
                self.heard = self.heard or bool(data)
                connection.receive_data(data)
            elif isinstance(event, h11.Response):
                status = event.status_code
                headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in event.headers}
            elif isinstance(event, h11.Data):
                parts.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return Answer(status, headers, b"".join(parts))
            elif isinstance(event, h11.ConnectionClosed):
                raise EOFError("closed before the answer ended")

    def close(self) -> None:
        self._writer.close()


@cache
def _tls() -> ssl.SSLContext:
    import certifi

    return ssl.create_default_context(cafile=certifi.where())
