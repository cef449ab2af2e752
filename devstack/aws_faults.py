"""A fault gate in front of moto: AWS as it fails, for the local stack's fault tests.

With ``MW_LOCAL_AWS_FAULTS=1`` the local stack points every boto3 client (``AWS_ENDPOINT_URL``)
here instead of at moto. Each call is forwarded to moto unchanged, unless a queued fault matches
it; then the gate answers as AWS does when it fails, and botocore's own retries, error parsing
and the gateway's handling of what is left all run for real:

- ``throttle``: DynamoDB's ``ThrottlingException`` (400), SQS's ``ThrottlingException``, S3's
  ``SlowDown`` (503) — what botocore retries as throttling;
- ``unavailable``: a 500 ``InternalServerError`` / ``InternalError`` — retried as transient;
- ``reset``: the connection closed without an answer, as a process killed mid-call leaves it.

``POST /_faults`` queues ``{"faults": [{"operation", "kind", "times", "match"}]}``:
``operation`` is the API's name (``TransactWriteItems``, ``SendMessage``, ``UploadPart``…),
``times`` how many matching calls fail (``null``: every one until ``DELETE /_faults``), and
``match`` a string, or strings, the call's body must contain (a table name, a key's id). ``GET /_faults`` shows what
is pending and how many calls each fault has failed; ``DELETE /_faults`` drops them all, or with
``?match=<text>`` only those aimed with that text, and lists what it dropped.
"""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

KINDS = ("throttle", "unavailable", "reset")
# Hop-by-hop headers, and the ones the forwarding client sets itself.
_NOT_FORWARDED = frozenset({"host", "connection", "keep-alive", "transfer-encoding", "content-length", "expect"})


class FaultSpecError(ValueError):
    """The body sent to ``POST /_faults`` is not a fault list."""


@dataclass
class AwsFault:
    operation: str
    kind: str
    times: int | None = 1
    match: tuple[str, ...] = ()
    failed: int = 0

    def wants(self, operation: str, body: bytes) -> bool:
        return (
            self.operation == operation
            and (self.times is None or self.failed < self.times)
            and all(part.encode() in body for part in self.match)
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "operation": self.operation,
            "kind": self.kind,
            "times": self.times,
            "match": list(self.match),
            "failed": self.failed,
        }


def parse_faults(payload: Any) -> list[AwsFault]:
    if not isinstance(payload, dict) or not isinstance(payload.get("faults"), list):
        raise FaultSpecError("body must be an object with a 'faults' list")
    faults = []
    for spec in payload["faults"]:
        if not isinstance(spec, dict) or not isinstance(spec.get("operation"), str) or spec.get("kind") not in KINDS:
            raise FaultSpecError(f"each fault needs an 'operation' and a 'kind' among {', '.join(KINDS)}")
        times = spec.get("times", 1)
        if times is not None and (isinstance(times, bool) or not isinstance(times, int) or times < 1):
            raise FaultSpecError("times must be an integer >= 1, or null for every call until cleared")
        match = spec.get("match") or []
        match = [match] if isinstance(match, str) else match
        if not isinstance(match, list) or not all(isinstance(part, str) for part in match):
            raise FaultSpecError("match must be a string, or a list of strings the body must all contain")
        faults.append(AwsFault(spec["operation"], spec["kind"], times, tuple(match)))
    return faults


@dataclass
class FaultBook:
    """The faults queued, oldest first; the first that wants a call takes it."""

    faults: list[AwsFault] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, operation: str, body: bytes) -> AwsFault | None:
        with self.lock:
            for fault in self.faults:
                if fault.wants(operation, body):
                    fault.failed += 1
                    return fault
        return None


def operation_of(method: str, path: str, headers: Any) -> str:
    """The API operation a call is: from ``X-Amz-Target`` for the JSON protocols (DynamoDB, SQS),
    from the method and query for S3's REST calls."""
    target = headers.get("x-amz-target")
    if target:
        return str(target).rpartition(".")[2]
    query = parse_qs(urlsplit(path).query, keep_blank_values=True)
    if method == "PUT":
        return "UploadPart" if "partNumber" in query else "PutObject"
    if method == "POST":
        return (
            "CreateMultipartUpload"
            if "uploads" in query
            else "CompleteMultipartUpload"
            if "uploadId" in query
            else "Post"
        )
    if method == "DELETE":
        return "AbortMultipartUpload" if "uploadId" in query else "DeleteObject"
    return "GetObject" if method == "GET" else method.title()


def _failure(fault: AwsFault, operation: str, target: str | None) -> tuple[int, dict[str, str], bytes]:
    """The status, headers and body AWS answers with when it fails this way."""
    throttled = fault.kind == "throttle"
    if target is None:  # S3 speaks XML
        code, status = ("SlowDown", 503) if throttled else ("InternalError", 500)
        body = f"<Error><Code>{code}</Code><Message>Injected for {operation}</Message></Error>".encode()
        return status, {"content-type": "application/xml"}, body
    service = "com.amazonaws.dynamodb.v20120810" if target.startswith("DynamoDB") else "com.amazonaws.sqs"
    code, status = (
        ("ThrottlingException", 400)
        if throttled
        else (("InternalServerError", 500) if service.endswith("v20120810") else ("InternalError", 500))
    )
    body = json.dumps({"__type": f"{service}#{code}", "message": f"Injected for {operation}"}).encode()
    headers = {"content-type": "application/x-amz-json-1.0"}
    if not service.endswith("v20120810"):
        headers["x-amzn-query-error"] = f"{code};Sender" if throttled else f"{code};Receiver"
    return status, headers, body


def _aimed_at(fault: AwsFault, aimed: list[str] | None) -> bool:
    """Whether a fault is one of those aimed with any of ``aimed`` (None: every fault)."""
    return aimed is None or any(text in part for text in aimed for part in fault.match)


class _GateServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], book: FaultBook, client: httpx.Client):
        super().__init__(address, _GateHandler)
        self.book = book
        self.client = client


class _GateHandler(BaseHTTPRequestHandler):
    """One call: the control API under ``/_faults``, else a fault or moto's own answer."""

    protocol_version = "HTTP/1.1"
    server: _GateServer

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        self._handle()

    do_PUT = do_POST = do_DELETE = do_HEAD = do_GET

    def _handle(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.path.startswith("/_faults"):
            self._control(body)
            return
        operation = operation_of(self.command, self.path, self.headers)
        fault = self.server.book.take(operation, body)
        if fault is None:
            self._forward(body)
        elif fault.kind == "reset":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        else:
            self._answer(*_failure(fault, operation, self.headers.get("x-amz-target")))

    def _forward(self, body: bytes) -> None:
        headers = {name: value for name, value in self.headers.items() if name.lower() not in _NOT_FORWARDED}
        answer = self.server.client.request(self.command, self.path, content=body, headers=headers)
        kept = {n: v for n, v in answer.headers.items() if n.lower() not in _NOT_FORWARDED | {"content-encoding"}}
        length = answer.headers.get("content-length") if self.command == "HEAD" else None
        self._answer(answer.status_code, kept, answer.content, length)

    def _control(self, body: bytes) -> None:
        book = self.server.book
        if self.command == "POST":
            try:
                faults = parse_faults(json.loads(body or b"null"))
            except (ValueError, FaultSpecError) as exc:
                self._answer(400, {"content-type": "application/json"}, json.dumps({"error": str(exc)}).encode())
                return
            with book.lock:
                book.faults.extend(faults)
        elif self.command == "DELETE":
            # ``?match=<text>`` (repeatable): only the faults aimed with that text, one client's say;
            # the answer lists the faults dropped, with the calls each failed.
            aimed = parse_qs(urlsplit(self.path).query).get("match")
            with book.lock:
                dropped = [fault for fault in book.faults if _aimed_at(fault, aimed)]
                book.faults[:] = [fault for fault in book.faults if fault not in dropped]
            self._answer(200, {"content-type": "application/json"}, json.dumps([f.to_dict() for f in dropped]).encode())
            return
        with book.lock:
            listed = [fault.to_dict() for fault in book.faults]
        self._answer(200, {"content-type": "application/json"}, json.dumps(listed).encode())

    def _answer(self, status: int, headers: dict[str, str], body: bytes, length: str | None = None) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        # A HEAD answer has no body but tells the object's length.
        self.send_header("content-length", length or str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class AwsFaultGate:
    """The gate on a free port of ``host``, forwarding to ``upstream`` (moto's URL)."""

    def __init__(self, upstream: str, host: str = "127.0.0.1"):
        self.book = FaultBook()
        self._client = httpx.Client(base_url=upstream, timeout=60)
        self._server = _GateServer((host, 0), self.book, self._client)
        self.url = f"http://{host}:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="aws-fault-gate", daemon=True)

    def start(self) -> str:
        self._thread.start()
        return self.url

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._client.close()
