"""The fault matrix: the local stack driven through every kind of failure, and the ledger checked.

Run against a stack started with ``STACK_ENV``: AWS behind devstack/aws_faults.py, every stream
batch delivered to the aggregator twice, short waits on the provider. Each kind
sends its requests through the gateway while the fault is on, from several workers at once, each
with an API key of its own so that an AWS fault can be aimed at one request's calls. Then:

- the client got the answer it should (a status, or an error event in a 200 stream);
- records = the requests the upstream served: none lost, none doubled;
- when every kind is done, each key's spend counter and the account's balance equal the ledger,
  nothing is left in flight, and the rollups (read through ``/api/usage``) equal the ledger.

tests/e2e/test_fault_matrix.py runs it in ``make test``; bench/fault_matrix.py runs it at 1,000
requests a kind and prints the table in the README.
"""

from __future__ import annotations

import csv
import io
import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import cycle
from pathlib import Path
from typing import Any

import boto3
import httpx
from boto3.dynamodb.types import TypeDeserializer

from meterway.accounts.dal.keys_table import balance_key, spend_key
from meterway.accounts.logic.key_secrets import hash_secret

# The local stack's environment for the matrix. A failed replay of a spilled record comes back
# after 10 s, so that its 5 receives outlast an outage round (an 8-request round under an outage
# takes about 7 s: each settlement waits out botocore's retries before it spills).
STACK_ENV = {
    "MW_LOCAL_AWS_FAULTS": "1",
    "MW_LOCAL_REDELIVER_STREAMS": "1",
    "MW_LOCAL_SPILL_RETRY_S": "10",
    "MW_UPSTREAM_FIRST_BYTE_TIMEOUT_S": "0.5",
    "MW_UPSTREAM_IDLE_TIMEOUT_S": "0.5",
}

PROMPT = "Name three rivers of Europe, one line each."
# Attempts botocore makes per call (meterway.core.aws): a fault that fails this many calls in a row
# outlasts its retries.
AWS_ATTEMPTS = 6


@dataclass(frozen=True)
class Door:
    path: str
    body: dict[str, Any]

    def request(self, *, stream: bool, user: str) -> dict[str, Any]:
        """The body, with ``user`` as the client names its end user (the record's ``user``)."""
        named = {"metadata": {"user_id": user}} if self.path == "/v1/messages" else {"user": user}
        return {**self.body, **named, "stream": stream}


CHAT = Door("/v1/chat/completions", {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": PROMPT}]})
MESSAGES = Door(
    "/v1/messages",
    {"model": "anthropic/claude-sonnet-4-5", "max_tokens": 200, "messages": [{"role": "user", "content": PROMPT}]},
)
RESPONSES = Door("/v1/responses", {"model": "openai/gpt-4o-mini", "input": PROMPT})
DOORS = (CHAT, MESSAGES, RESPONSES)


@dataclass(frozen=True)
class Answer:
    """What one client saw."""

    status: int
    request_id: str | None
    body: str
    streamed: bool

    @property
    def error_event(self) -> bool:
        """The stream ended with an error event, in any door's format (OpenAI Chat's ``data:
        {"error": …}``, Anthropic's and Responses' ``event: error``)."""
        events = [event for event in self.body.split("\n\n") if event.strip() and event.strip() != "data: [DONE]"]
        return self.streamed and bool(events) and ("event: error" in events[-1] or 'data: {"error"' in events[-1])


@dataclass(frozen=True)
class Worker:
    """One client, with an API key of its own."""

    key_id: str
    secret: str

    @property
    def key_hash(self) -> str:
        return hash_secret(self.secret)


@dataclass(frozen=True)
class Call:
    """One request: the worker that sends it, the door, and the end user it names (for this
    request alone, so that a fault can be aimed at its settlement)."""

    worker: Worker
    door: Door
    user: str = field(default_factory=lambda: f"matrix-{uuid.uuid4().hex}")


@dataclass(frozen=True)
class AimedFault:
    """An AWS fault aimed at one request: its first ``times`` ``operation`` calls that carry what
    ``aim`` picks out of the call fail as ``kind`` (a fault kind of devstack/aws_faults.py)."""

    operation: str
    kind: str
    times: int
    aim: Callable[[Call, dict[str, str]], str | list[str]]

    def for_call(self, call: Call, tables: dict[str, str]) -> dict[str, Any]:
        return {"operation": self.operation, "kind": self.kind, "times": self.times, "match": self.aim(call, tables)}


@dataclass(frozen=True)
class Kind:
    """One kind of failure: what goes wrong, how the request is sent, and what the client should see.

    ``upstream``: a fault for the fake provider, queued once per request. ``aws``: a fault for the
    AWS gate, aimed at each request in turn, or, with ``aws_outage``, one fault that fails every matching call while the kind runs. ``reaches_upstream``:
    whether a request gets as far as the provider.
    """

    name: str
    stream: bool
    expect: Callable[[Answer], bool]
    upstream: dict[str, Any] | None = None
    aws: AimedFault | None = None
    aws_outage: Callable[[dict[str, str]], dict[str, Any]] | None = None
    disconnect: bool = False
    reaches_upstream: bool = True
    doors: tuple[Door, ...] = DOORS


def _status(code: int) -> Callable[[Answer], bool]:
    return lambda answer: answer.status == code


def _ok(answer: Answer) -> bool:
    return answer.status == 200 and not answer.error_event


def _ok_or_unavailable(answer: Answer) -> bool:
    """Served, or refused before the provider with a 503 (the key store would not take the
    reservation after botocore's retries) that bills nothing."""
    return _ok(answer) or (answer.status == 503 and "The key store is unavailable" in answer.body)


def _error_event(answer: Answer) -> bool:
    return answer.status == 200 and answer.error_event


def _reserve(call: Call, tables: dict[str, str]) -> str:
    """What only this request's reservation carries (its worker sends one request at a time): the
    hash of its key."""
    del tables
    return f"KEYHASH#{call.worker.key_hash}"


def _settle(call: Call, tables: dict[str, str]) -> list[str]:
    """What only this request's settlement carries: its ledger item, with its key's counters in it,
    holding the end user named for this request alone (the replay of an earlier record of the same
    key does not hold it)."""
    return [tables["ledger"], f"QUOTA#{call.worker.key_id}", call.user]


# The outages come last: botocore's standard retry mode spends a per-client retry quota (500, 5 a
# retry) that only calls succeeding at the first attempt fill again, so after an outage a client
# retries less for a while. The gateway then fails a reservation at once (503) and spills a
# settlement at once: nothing is lost, but a throttle right after an outage is not retried.
KINDS: tuple[Kind, ...] = (
    Kind("upstream 5xx", stream=False, expect=_status(502), upstream={"kind": "status", "status": 500}),
    Kind(
        "upstream 429", stream=False, expect=_status(429), upstream={"kind": "status", "status": 429, "retry_after": 1}
    ),
    Kind("connection dropped", stream=False, expect=_status(502), upstream={"kind": "drop"}),
    Kind("first-byte timeout", stream=True, expect=_status(504), upstream={"kind": "timeout", "seconds": 5}),
    Kind("idle stall", stream=True, expect=_error_event, upstream={"kind": "stall", "after_tokens": 2, "seconds": 5}),
    Kind("cut stream", stream=True, expect=_error_event, upstream={"kind": "cut", "after_tokens": 3}),
    Kind("malformed answer", stream=False, expect=_status(502), upstream={"kind": "malformed"}),
    Kind(
        "error event in a 200 stream",
        stream=True,
        expect=_error_event,
        upstream={"kind": "stream_error", "after_tokens": 2},
    ),
    Kind("client disconnect", stream=True, expect=lambda answer: answer.status == 200, disconnect=True),
    Kind(
        "DynamoDB throttling at the reserve",
        stream=False,
        # Each reservation is throttled twice, which botocore retries; but a retried call gives back
        # less of the client's retry quota than it took, so at volume the quota runs dry and a
        # throttled reservation is refused at once instead.
        expect=_ok_or_unavailable,
        # The reserve's checks are single-item reads: the key's own item is read by every one.
        aws=AimedFault("GetItem", "throttle", times=2, aim=_reserve),
    ),
    Kind(
        "DynamoDB throttling at the settle",
        stream=True,
        expect=_ok,
        # The settle is one conditional put of the record (its counters in it, for the aggregator).
        aws=AimedFault("PutItem", "throttle", times=2, aim=_settle),
    ),
    Kind(
        "DynamoDB unavailable at the reserve",
        stream=False,
        expect=_status(503),
        aws_outage=lambda t: {
            "operation": "GetItem",
            "kind": "unavailable",
            "times": None,
            "match": "KEYHASH#",
        },
        reaches_upstream=False,
    ),
    Kind(
        "DynamoDB unavailable at the settle",
        stream=False,
        expect=_ok,
        aws_outage=lambda t: {
            "operation": "PutItem",
            "kind": "unavailable",
            "times": None,
            "match": t["ledger"],
        },
    ),
)


@dataclass
class KindResult:
    kind: str
    requests: int
    served: int
    records: int
    # Calls the faults failed: upstream requests that got their fault, and AWS calls the gate
    # failed. A kind whose fault never struck proves nothing.
    struck: int = 0
    wrong_answers: list[str] = field(default_factory=list)
    # How many clients got each status.
    statuses: dict[int, int] = field(default_factory=dict)

    @property
    def lost(self) -> int:
        return max(0, self.served - self.records)

    @property
    def doubled(self) -> int:
        return max(0, self.records - self.served)


class FaultMatrix:
    """The matrix against one running local stack (its ``local.json``)."""

    def __init__(self, info: dict[str, Any], *, workers: int = 4):
        self.info = info
        self.base = str(info["api_base"]).removesuffix("/v1")
        self.fake = str(info["fake_upstream"])
        self.gate = str(info["aws_faults"])
        self.tables: dict[str, str] = info["tables"]
        self.http = httpx.Client(timeout=120)
        self.dynamodb = boto3.client(
            "dynamodb",
            endpoint_url=info["aws_endpoint_url"],
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",  # noqa: S106 (moto takes any credentials)
        )
        self.workers = [self._new_worker(n) for n in range(workers)]
        self.request_ids: set[str] = set()

    def close(self) -> None:
        self.http.close()

    # --- the stack's own APIs -------------------------------------------------------------------

    def _admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"authorization": f"Bearer {self.info['admin_key']}"}
        return self.http.request(method, f"{self.base}/api{path}", headers=headers, **kwargs)

    def _new_worker(self, n: int) -> Worker:
        # A spend limit far above what the matrix spends, so that each key keeps a spend counter.
        body = {"name": f"fault-matrix-{n}", "limits": {"spend_limit_usd": "1000", "requests_per_minute": 100_000}}
        created = self._admin("POST", "/keys", json=body)
        created.raise_for_status()
        return Worker(created.json()["id"], created.json()["secret"])

    def _fake_served(self) -> int:
        """Provider requests the fake upstream has taken so far (count_tokens aside)."""
        received: dict[str, int] = self.http.get(f"{self.fake}/_fake/requests/count").json()
        return sum(count for path, count in received.items() if not path.endswith("count_tokens"))

    def _upstream_faults(self, fault: dict[str, Any], doors: list[Door]) -> None:
        faults = [{**fault, "match": {"path": door.path}} for door in doors]
        self.http.post(f"{self.fake}/_fake/faults", json={"faults": faults}).raise_for_status()

    def _aws_faults(self, *faults: dict[str, Any]) -> None:
        self.http.post(f"{self.gate}/_faults", json={"faults": list(faults)}).raise_for_status()

    def _aws_struck(self) -> int:
        """AWS calls the gate's faults have failed since they were queued."""
        return sum(fault["failed"] for fault in self.http.get(f"{self.gate}/_faults").json())

    def _clear_faults(self) -> None:
        self.http.delete(f"{self.gate}/_faults").raise_for_status()
        self.http.delete(f"{self.fake}/_fake/faults").raise_for_status()

    # --- one request ------------------------------------------------------------------------------

    def send(self, call: Call, *, stream: bool, disconnect: bool = False) -> Answer:
        url = f"{self.base}{call.door.path}"
        body = call.door.request(stream=stream, user=call.user)
        headers = {"authorization": f"Bearer {call.worker.secret}"}
        if not stream:
            response = self.http.post(url, json=body, headers=headers)
            return Answer(response.status_code, response.headers.get("x-meterway-request-id"), response.text, False)
        with self.http.stream("POST", url, json=body, headers=headers) as response:
            request_id = response.headers.get("x-meterway-request-id")
            if response.status_code != 200 or not disconnect:
                text = response.read().decode()
                return Answer(response.status_code, request_id, text, response.status_code == 200)
            # Hang up after the first bytes of the answer.
            first = next(response.iter_bytes(), b"")
            return Answer(200, request_id, first.decode(errors="replace"), True)

    # --- one kind -----------------------------------------------------------------------------------

    def run(self, kind: Kind, requests: int) -> KindResult:
        served_before = self._fake_served()
        plan = [Call(worker, door) for worker, door, _ in zip(cycle(self.workers), cycle(kind.doors), range(requests))]
        if kind.upstream:
            self._upstream_faults(kind.upstream, [call.door for call in plan])
        # An outage comes in rounds of one request per worker: the outage starts, the round's
        # requests are answered, the outage ends, and the next round waits until the records this
        # one spilled are replayed. A spilled record is retried maxReceiveCount (5) times before its
        # dead-letter queue takes it: 15 minutes of outage in AWS (180 s apart), 50 s here
        # (STACK_ENV), so an outage here must stay shorter.
        size = len(self.workers) if kind.aws_outage else requests
        answers: list[Answer] = []
        per_request = [0]
        struck = 0
        try:
            for start in range(0, requests, size):
                if kind.aws_outage:
                    self._aws_faults(kind.aws_outage(self.tables))
                round_answers = self._round(kind, plan[start : start + size], per_request)
                answers += round_answers
                struck += self._aws_struck()
                if kind.aws_outage:
                    self.http.delete(f"{self.gate}/_faults").raise_for_status()
                    # The round's served requests answered 200 (the kind's own count of what the
                    # provider served is taken once, at the end).
                    round_served = {answer.request_id for answer in round_answers if answer.status == 200}
                    self._records_of({rid for rid in round_served if rid}, expected=len(round_served))
            struck += per_request[0]
            struck += requests - len(self.http.get(f"{self.fake}/_fake/faults").json()) if kind.upstream else 0
        finally:
            self._clear_faults()
        ids = {answer.request_id for answer in answers if answer.request_id}
        self.request_ids |= ids
        served = self._fake_served() - served_before
        records = self._records_of(ids, expected=served)
        wrong = [f"{answer.status}: {answer.body[-300:]}" for answer in answers if not kind.expect(answer)]
        if not kind.reaches_upstream and served:
            wrong.append(f"{served} requests reached the upstream")
        statuses = dict(sorted(Counter(answer.status for answer in answers).items()))
        return KindResult(kind.name, requests, served, records, struck, wrong, statuses)

    def _round(self, kind: Kind, plan: list[Call], struck: list[int]) -> list[Answer]:
        """Send the planned requests, each worker its own in turn, the workers at once; ``struck[0]``
        counts the calls that requests' own faults failed."""

        def one(worker_index: int) -> list[Answer]:
            answers = []
            for call in plan[worker_index :: len(self.workers)]:
                if kind.aws:
                    self._aws_faults(kind.aws.for_call(call, self.tables))
                answers.append(self.send(call, stream=kind.stream, disconnect=kind.disconnect))
                if kind.aws:
                    # What the request left of its fault (a client out of retry quota stops at the
                    # first failure) must not strike the next request, or the replay of this one.
                    aimed = {"match": [call.worker.key_id, call.worker.key_hash]}
                    dropped = self.http.delete(f"{self.gate}/_faults", params=aimed)
                    struck[0] += sum(fault["failed"] for fault in dropped.raise_for_status().json())
            return answers

        with ThreadPoolExecutor(len(self.workers)) as pool:
            return [answer for batch in pool.map(one, range(len(self.workers))) for answer in batch]

    def _records_of(self, ids: set[str], *, expected: int, patience_s: float = 30) -> int:
        """How many of these requests have a ledger record, once the spilled ones are replayed:
        waits while records keep arriving, up to ``patience_s`` without a new one. Only the ids
        still missing are looked up (a scan of the whole ledger each time would load moto enough
        to slow the very replay it waits for)."""
        missing, last_progress = set(ids), time.monotonic()
        while True:
            arrived = self._in_ledger(missing)
            if arrived:
                missing -= arrived
                last_progress = time.monotonic()
            found = len(ids) - len(missing)
            if found >= expected or time.monotonic() - last_progress > patience_s:
                return found
            time.sleep(0.5)

    def _in_ledger(self, ids: set[str]) -> set[str]:
        """Which of these request ids have a ledger record (BatchGetItem, 100 keys a call)."""
        table, wanted, present = self.tables["ledger"], sorted(ids), set()
        for start in range(0, len(wanted), 100):
            keys: list[dict[str, Any]] = [
                {"request_id": {"S": request_id}} for request_id in wanted[start : start + 100]
            ]
            while keys:
                answer = self.dynamodb.batch_get_item(
                    RequestItems={table: {"Keys": keys, "ProjectionExpression": "request_id"}}
                )
                present |= {item["request_id"]["S"] for item in answer["Responses"].get(table, [])}
                keys = answer.get("UnprocessedKeys", {}).get(table, {}).get("Keys", [])
        return present

    # --- an export whose worker dies mid-upload -------------------------------------------------------

    def export_after_a_failed_upload(self) -> list[str]:
        """Export today's requests while S3 drops every upload call of the first worker invocation
        (more than botocore retries): the invocation fails mid-upload, the queue hands the job to
        the next one, and the file must hold each ledger row exactly once."""
        window = _window()
        self._aws_faults({"operation": "UploadPart", "kind": "reset", "times": AWS_ATTEMPTS})
        try:
            started = self._admin("POST", "/exports", json={"kind": "requests", **window})
            started.raise_for_status()
            job = self._job(started.json()["id"])
            struck = self._aws_struck()
        finally:
            self._clear_faults()
        if struck < AWS_ATTEMPTS:
            return [f"the upload fault struck {struck} calls, fewer than one invocation makes"]
        if job["status"] != "succeeded":
            return [f"export job {job['status']}: {job.get('error')}"]
        rows = list(csv.DictReader(io.StringIO(self.http.get(job["url"]).text)))
        exported = [row["request_id"] for row in rows]
        today = {item["request_id"] for item in self.ledger() if _in_window(item["created_at"], window)}
        problems = []
        if len(exported) != len(set(exported)):
            problems.append(f"{len(exported) - len(set(exported))} rows exported twice")
        if set(exported) != today:
            problems.append(f"exported {len(set(exported))} requests, the ledger holds {len(today)}")
        return problems

    def _job(self, job_id: str, wait_s: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + wait_s
        while True:
            job: dict[str, Any] = self._admin("GET", f"/exports/{job_id}").json()
            if job["status"] in ("succeeded", "failed") or time.monotonic() > deadline:
                return job
            time.sleep(0.25)

    # --- the books ----------------------------------------------------------------------------------

    def ledger(self) -> Iterator[dict[str, Any]]:
        pages = self.dynamodb.get_paginator("scan").paginate(TableName=self.tables["ledger"])
        deserialize = TypeDeserializer().deserialize
        for page in pages:
            for item in page["Items"]:
                yield {name: deserialize(value) for name, value in item.items()}

    def _item(self, key: dict[str, str]) -> dict[str, Any]:
        found = self.dynamodb.get_item(
            TableName=self.tables["keys"], Key={name: {"S": value} for name, value in key.items()}, ConsistentRead=True
        )
        deserialize = TypeDeserializer().deserialize
        return {name: deserialize(value) for name, value in found.get("Item", {}).items()}

    def books(self) -> list[str]:
        """Where the counters or the rollups disagree with the ledger; empty when the books balance.
        The aggregator adds both from the ledger's stream, in one transaction: the rollups are
        waited for first."""
        records = list(self.ledger())
        problems = self._rollups_against(records)
        spent_by_key: dict[str, Decimal] = {}
        for record in records:
            spent_by_key[record["key_id"]] = spent_by_key.get(record["key_id"], Decimal(0)) + record["cost_usd"]
        for worker in self.workers:
            counter = self._item(spend_key(worker.key_id, "ALL"))
            if counter.get("spent_usd", Decimal(0)) != spent_by_key.get(worker.key_id, Decimal(0)):
                problems.append(
                    f"key {worker.key_id}: counter {counter.get('spent_usd')} != ledger {spent_by_key.get(worker.key_id)}"
                )
        balance = self._item(balance_key("default"))
        total = sum((record["cost_usd"] for record in records), Decimal(0))
        if balance.get("spent_usd", Decimal(0)) != total:
            problems.append(f"balance spent {balance.get('spent_usd')} != ledger {total}")
        return problems

    def _rollups_against(self, records: list[dict[str, Any]], patience_s: float = 30) -> list[str]:
        """The usage API's totals (from the rollups) against the ledger's, once the aggregator has
        caught up: waits while its count keeps growing, up to ``patience_s`` without progress."""
        window = _window()
        errors = sum(record["status"] == "error" for record in records)
        want = (len(records) - errors, errors, sum((record["cost_usd"] for record in records), Decimal(0)))
        seen, last_progress = -1, time.monotonic()
        while True:
            totals = self._admin("GET", "/usage", params=window).json()["totals"]
            got = (totals["requests"], totals["errors"], Decimal(totals["cost"]))
            if got == want:
                return []
            if got[0] + got[1] > seen:
                seen, last_progress = got[0] + got[1], time.monotonic()
            if time.monotonic() - last_progress > patience_s:
                return [f"rollups {got} != ledger {want}"]
            time.sleep(0.5)


def _window() -> dict[str, str]:
    """A window around today, for the usage API and exports."""
    today = datetime.now(UTC).date()
    return {"start": (today - timedelta(days=1)).isoformat(), "end": (today + timedelta(days=1)).isoformat()}


def _in_window(created_at: str, window: dict[str, str]) -> bool:
    return window["start"] <= created_at[:10] < window["end"]


def table(results: list[KindResult]) -> str:
    """The results as the README's Markdown table."""
    lines = [
        "| kind | requests | calls failed by the fault | answers | served by the upstream | records | lost | doubled "
        "| wrong answers |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for result in results:
        lines.append(
            f"| {result.kind} | {result.requests} | {result.struck} "
            f"| {', '.join(f'{status} × {count}' for status, count in result.statuses.items())} "
            f"| {result.served} | {result.records} | {result.lost} "
            f"| {result.doubled} | {len(result.wrong_answers)} |"
        )
    return "\n".join(lines)


def load_info(path: Path) -> dict[str, Any]:
    """The stack's ``local.json``."""
    info: dict[str, Any] = json.loads(path.read_text())
    return info
