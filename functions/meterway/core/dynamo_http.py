"""DynamoDB's JSON protocol on the event loop, for the proxy's hot path.

botocore's request pipeline (events, endpoint rules, its urllib3 layer) and the thread each
call needs to leave the event loop cost about 1–1.5 ms of CPU a call, as much as the rest of a
request. A call here is one signed POST on the event loop: ``X-Amz-Target:
DynamoDB_20120810.<Operation>`` and the same request document boto3's low-level client takes
(``TableName``, ``Key`` in DynamoDB JSON…), answered with the document it returns, sent on
kept-alive connections (``meterway.core.http1``).

What stays botocore's: the SigV4 signer and the credentials it finds and refreshes (``credentials``),
and its standard retry mode's rules (``botocore.retries.standard``): up to 6 attempts on throttling,
transient error codes, 500/502/503/504 and broken or timed-out connections, with its jittered
exponential backoff (a random share of 1 s, 2 s, 4 s… up to 20 s) and its client-wide retry quota.
Like botocore, an answer whose CRC32 header does not match its body is asked again. Timeouts are
those of the boto3 clients: 3 s to connect, 10 s to read.

A call that fails raises ``DynamoCallFailed`` with the answer shaped as botocore's ``ClientError``
holds it, so ``meterway.core.dynamo.storage_errors`` maps both the same way.
"""

from __future__ import annotations

import asyncio
import json
import zlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from meterway.core.http1 import Answer, Origin, Unreachable

TARGET_PREFIX = "DynamoDB_20120810."
CONTENT_TYPE = "application/x-amz-json-1.0"
SIGNING_NAME = "dynamodb"
MAX_ATTEMPTS = 6
CONNECT_TIMEOUT_S = 3.0
READ_TIMEOUT_S = 10.0


class Sender(Protocol):
    """Where the signed requests go: an ``Origin`` (tests wrap one, or script the answers)."""

    authority: str
    path: str

    async def post(self, headers: list[tuple[str, str]], body: bytes) -> Answer:
        """The answer to one POST; ``Unreachable`` when none came."""

    async def aclose(self) -> None: ...


class DynamoCallFailed(Exception):
    """A call that did not succeed. ``response`` is what botocore's ``ClientError`` would hold:
    ``Error.Code`` (None when no answer came), ``Error.Message``, and the answer's other fields
    (the ``Item`` a failed condition returns when asked)."""

    def __init__(self, operation: str, response: dict[str, Any]):
        self.operation = operation
        self.response = response
        error = response["Error"]
        super().__init__(f"{operation}: {error.get('Code')}: {error.get('Message')}")


class DynamoHttp:
    """One endpoint's DynamoDB, signed with ``credentials()`` (botocore credentials, frozen or
    refreshable; None when there are none) for ``region``; ``origin`` sends the requests (by
    default kept-alive connections to ``endpoint_url``)."""

    def __init__(
        self,
        endpoint_url: str,
        region: str,
        credentials: Callable[[], Any],
        *,
        origin: Sender | None = None,
        max_attempts: int = MAX_ATTEMPTS,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        user_agent: str = "meterway",
    ):
        from botocore.auth import SigV4Auth

        self._origin = origin or Origin(endpoint_url, connect_timeout=CONNECT_TIMEOUT_S, read_timeout=READ_TIMEOUT_S)
        self._url = endpoint_url
        self._region = region
        self._credentials = credentials
        self._signer = SigV4Auth
        self._retries = _StandardRetries(max_attempts)
        self._sleep = sleep
        self._user_agent = user_agent

    async def call(self, operation: str, request: Mapping[str, Any]) -> dict[str, Any]:
        """``operation``'s answer to ``request`` (boto3's arguments of the same operation)."""
        body = json.dumps(request, separators=(",", ":")).encode()
        retried: dict[str, Any] = {}
        attempt = 1
        while True:
            try:
                response = await self._origin.post(self._signed(operation, body), body)
            except Unreachable as exc:
                delay = self._retries.delay(attempt, retried, caught=exc)
                if delay is None:
                    raise DynamoCallFailed(operation, _no_answer(exc)) from exc
            else:
                answer = _answer(operation, response)
                if isinstance(answer, dict):
                    self._retries.succeeded(retried, response)
                    return answer
                delay = self._retries.delay(attempt, retried, response=response, failed=answer)
                if delay is None:
                    raise answer or DynamoCallFailed(operation, _no_answer(None))
            await self._sleep(delay)
            attempt += 1

    def _signed(self, operation: str, body: bytes) -> list[tuple[str, str]]:
        """The request's headers, signed (Host and Content-Length are the sender's, Host signed too)."""
        from botocore.awsrequest import AWSRequest

        credentials = self._credentials()
        if credentials is None:
            raise DynamoCallFailed(operation, {"Error": {"Code": None, "Message": "no AWS credentials"}})
        headers = {
            "Host": self._origin.authority,
            "Content-Type": CONTENT_TYPE,
            "X-Amz-Target": TARGET_PREFIX + operation,
        }
        signed = AWSRequest(method="POST", url=self._url, data=body, headers=headers)
        self._signer(credentials, SIGNING_NAME, self._region).add_auth(signed)
        # No Accept-Encoding: the answer comes uncompressed, the bytes its CRC32 is of.
        return [
            *((name, value) for name, value in signed.headers.items() if name != "Host"),
            ("User-Agent", self._user_agent),
        ]

    async def aclose(self) -> None:
        await self._origin.aclose()


def _answer(operation: str, response: Answer) -> dict[str, Any] | DynamoCallFailed | None:
    """The answer's document, its error, or None when the body is not what its CRC32 says."""
    content = response.content
    checksum = response.headers.get("x-amz-crc32")
    if checksum is not None and zlib.crc32(content) & 0xFFFFFFFF != int(checksum):
        return None
    try:
        document = json.loads(content) if content else {}
    except ValueError:
        document = {}
    if response.status < 300 and isinstance(document, dict):
        return document
    fields = dict(document) if isinstance(document, dict) else {}
    code = str(fields.pop("__type", "")).rpartition("#")[2] or None
    message = fields.pop("message", None) or fields.pop("Message", None) or f"HTTP {response.status}"
    return DynamoCallFailed(operation, {**fields, "Error": {"Code": code, "Message": message}})


def _no_answer(failure: Exception | None) -> dict[str, Any]:
    reason = str(failure) if failure is not None else "a body that does not match its CRC32"
    return {"Error": {"Code": None, "Message": f"no answer: {reason}"}}


class _RetryResponse:
    """What botocore's retry rules read of an answer."""

    def __init__(self, answer: Answer):
        self.status_code = answer.status
        self.headers = answer.headers


class _StandardRetries:
    """botocore's standard retry mode, asked with what one attempt got."""

    def __init__(self, max_attempts: int):
        from botocore.retries import quota, standard

        throttling = standard.ThrottlingErrorDetector(None)
        self._context = standard.RetryContext
        self._policy = standard.RetryPolicy(
            standard.OrRetryChecker(
                [
                    # botocore's own list is of its HTTP layer's errors; this is ours.
                    standard.TransientRetryableChecker(transient_exception_cls=(Unreachable,)),  # type: ignore[arg-type]
                    standard.ThrottledRetryableChecker(),
                ]
            ),
            standard.ExponentialBackoff(service_name=SIGNING_NAME, throttling_detector=throttling),
        )
        self._max_attempts = max_attempts
        self._quota = standard.RetryQuotaChecker(quota.RetryQuota(), throttling)

    def delay(
        self,
        attempt: int,
        retried: dict[str, Any],
        *,
        response: Answer | None = None,
        failed: DynamoCallFailed | None = None,
        caught: Exception | None = None,
    ) -> float | None:
        """How long to wait before attempt ``attempt + 1``; None to give up. An attempt with a
        response but neither ``failed`` nor ``caught`` had a body that failed its CRC32.
        ``retried`` is the call's own record of what its retries took from the quota."""
        if attempt >= self._max_attempts:
            return None
        context = self._context(
            attempt,
            parsed_response=failed.response if failed is not None else None,
            http_response=_RetryResponse(response) if response is not None else None,
            caught_exception=caught,
            request_context=retried,
        )
        corrupt = response is not None and failed is None and caught is None
        if not (corrupt or self._policy.should_retry(context)) or not self._quota.acquire_retry_quota(context):
            return None
        delay: float = self._policy.compute_retry_delay(context)
        return delay

    def succeeded(self, retried: dict[str, Any], response: Answer) -> None:
        """Give back to the quota what the call's last retry took from it (one, without retries)."""
        # botocore hands it the request's context dict, as here (its stubs say a RetryContext).
        self._quota.release_retry_quota(retried, _RetryResponse(response))  # type: ignore[arg-type]
