"""POSTs to one origin over kept-alive HTTP/1.1 connections on asyncio streams: the proxy's
DynamoDB calls (``dynamo_http``). The request is written as bytes; the answer is read by httptools
(llhttp, Node.js's HTTP parser, in C; uvicorn's parser in the proxy too).

Why not the proxy's httpx client: on this project's 2-core box an ``httpx.AsyncClient`` request
costs 0.7–1.1 ms of CPU (httpcore's pool, anyio's cancel scopes and locks, header models), as
much as botocore's whole call; the same request here costs about 0.2 ms (0.07 ms less than with
h11, httpx's HTTP/1.1 engine, which it used before). It does only what these calls need: POST
with a body, ``Content-Length`` or chunked answers (not ones ended by closing the connection,
which DynamoDB never sends), keep-alive, TLS with certifi's CAs (as httpx and botocore use), a
connect and a read timeout. No proxies, redirects, cookies or compression.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from functools import cache
from urllib.parse import urlsplit

import httptools

# What a connection that breaks or stalls raises, in asyncio, httptools and the socket layer.
_BROKEN = (OSError, EOFError, TimeoutError, asyncio.IncompleteReadError, httptools.HttpParserError)


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
        fields = [("Host", self.authority), ("Content-Length", str(len(body))), *headers]
        if any("\r" in text or "\n" in text for field in fields for text in field):
            raise ValueError("A header name or value holds a line break.")
        head = f"POST {self.path} HTTP/1.1\r\n" + "".join(f"{name}: {value}\r\n" for name, value in fields) + "\r\n"
        request = head.encode("latin-1") + body
        while self._idle:
            connection = self._idle.pop()
            if connection.closed:
                continue
            try:
                return await self._exchange(connection, request)
            except _Stale:
                continue
        return await self._exchange(await self._connect(), request)

    async def _exchange(self, connection: _Connection, request: bytes) -> Answer:
        try:
            async with asyncio.timeout(self._read_timeout):
                answer = await connection.exchange(request)
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
        self.exchanges = 0
        # Whether any of the current answer arrived.
        self.heard = False
        # Whether the last answer came whole on a connection the server keeps open.
        self.reusable = False

    @property
    def reused(self) -> bool:
        return self.exchanges > 1

    @property
    def closed(self) -> bool:
        return self._writer.is_closing() or self._reader.at_eof()

    async def exchange(self, request: bytes) -> Answer:
        self.exchanges += 1
        self.heard = self.reusable = False
        # One write, so one system call, for the whole request.
        self._writer.write(request)
        answer = _AnswerReader()
        parser = httptools.HttpResponseParser(answer)
        answer.parser = parser
        while not answer.complete:
            data = await self._reader.read(65536)
            if not data:
                raise EOFError("closed before the answer ended")
            self.heard = True
            parser.feed_data(data)
        self.reusable = answer.keep_alive
        return Answer(parser.get_status_code(), answer.headers, b"".join(answer.parts))

    def close(self) -> None:
        self._writer.close()


class _AnswerReader:
    """What httptools' parser calls back with, for one answer."""

    parser: httptools.HttpResponseParser

    def __init__(self) -> None:
        self.headers: dict[str, str] = {}
        self.parts: list[bytes] = []
        self.complete = False
        self.keep_alive = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self.parts.append(body)

    def on_message_complete(self) -> None:
        self.complete = True
        # Read here: the parser knows it only while the answer is its current message.
        self.keep_alive = self.parser.should_keep_alive()


@cache
def _tls() -> ssl.SSLContext:
    import certifi

    return ssl.create_default_context(cafile=certifi.where())
