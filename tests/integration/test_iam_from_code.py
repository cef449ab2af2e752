"""Each function's role, checked against what its code does: IAM derived from the code.

moto does not enforce IAM, so a permission the template forgot would only show once deployed
(a 503, a job stuck ``queued``). Here every function runs its real code paths against moto —
every route of both APIs, each worker, and the failure branches that touch other resources
(a ledger outage spills to SQS, a queue outage fails the export job, a failed upload is
aborted) — while every AWS call it makes is recorded as the IAM action and resource it needs.
Then each call must be allowed by the role SAM generates from template.yaml, and each grant of
that role must be used by the code or by Lambda for the function.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest
from starlette.testclient import TestClient

from devstack.aws_resources import create_resources, env_for, load_template
from devstack.fake_upstream import FakeUpstreamConfig, FakeUpstreamServer
from devstack.workers import DynamoStreamPoller, SqsPoller, only_inserts
from meterway.accounts.dal.key_store import DynamoKeyStore
from meterway.accounts.logic.key_secrets import hash_secret, mint_key
from meterway.accounts.logic.manage_keys import create_key
from meterway.accounts.models import KeyLimits
from meterway.analytics.dal.rollup_store import DynamoRollupStore
from meterway.analytics.handlers import aggregator
from meterway.core.container import container
from meterway.exports.handlers import export_worker
from meterway.ledger.handlers import ledger_replay
from meterway.management_api import handler as management_api
from meterway.proxy.handlers.app import create_app
from meterway.proxy.handlers.deps import build_deps
from meterway.proxy.logic.catalog import CATALOG
from meterway.proxy.providers.bedrock import model_ids
from tests.integration.conftest import call_api, running_moto_server
from tests.integration.iam_access import (
    Access,
    AccessRecorder,
    Fault,
    Role,
    bedrock_accesses,
    deployed_roles,
    service_accesses,
)

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
REGION = "us-east-1"
UPSTREAM_KEY = "sk-upstream-from-the-secret"
ACCOUNT = "acct"
# The catalog's Bedrock models that template.yaml's BedrockModelArns lets the proxy invoke.
BEDROCK_MODELS = sorted(
    route.id
    for route in CATALOG.values()
    if route.provider == "bedrock"
    and route.upstream_model in model_ids(load_template(TEMPLATE)["Parameters"]["BedrockModelArns"]["Default"])
)
FUNCTIONS = sorted(
    logical_id
    for logical_id, resource in load_template(TEMPLATE)["Resources"].items()
    if resource["Type"] == "AWS::Serverless::Function"
)


@dataclass
class Run:
    """What one pass over every function's code paths recorded."""

    recorder: AccessRecorder
    roles: dict[str, Role]
    by_lambda: dict[str, set[Access]]
    requests: dict[str, set[tuple[str, str]]] = field(default_factory=dict)


class Stack:
    """The functions in-process against moto, each one's AWS calls recorded as its own."""

    def __init__(self, recorder: AccessRecorder, resources: dict[str, str], fake: FakeUpstreamServer):
        self.recorder = recorder
        self.resources = resources
        self.fake = fake
        self.requests: dict[str, set[tuple[str, str]]] = {"ProxyFunction": set(), "ApiFunction": set()}
        proxy = create_app(lambda: build_deps(dynamo=recorder.dynamo_http()))
        self.proxy = TestClient(recorder.asgi_app("ProxyFunction", self._noting_requests(proxy)))
        self._api = recorder.lambda_handler("ApiFunction", management_api.handler)
        self._threads: list[tuple[Any, threading.Thread]] = []

    def _noting_requests(self, app: Any) -> Callable[..., Any]:
        async def noted(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                self.requests["ProxyFunction"].add((scope["method"], scope["path"]))
            await app(scope, receive, send)

        return noted

    def api(self, method: str, path: str, secret: str, body: Any = None, query: dict[str, str] | None = None) -> Any:
        self.requests["ApiFunction"].add((method, path))
        return call_api(method, path, secret, body, query, handler=self._api)

    def start(self, poller: Any) -> Any:
        thread = threading.Thread(target=poller.run, daemon=True)
        thread.start()
        self._threads.append((poller, thread))
        return poller

    def stop(self) -> None:
        for poller, thread in self._threads:
            poller.stop()
            thread.join(timeout=10)


def wait_for(condition: Callable[[], Any], what: str, timeout_s: float = 30) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (found := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return found


def ledger_item(stack: Stack, request_id: str) -> dict[str, Any] | None:
    found = boto3.client("dynamodb").get_item(
        TableName=stack.resources["LedgerTable"], Key={"request_id": {"S": request_id}}
    )
    return found.get("Item")


# --- The code paths, function by function ---------------------------------------------------------


def drive_the_proxy(stack: Stack, api_key: str, limited_key: str, aggregator: DynamoStreamPoller) -> str:
    """Every /v1 route on both providers, refusals, an upstream error and a ledger outage.
    Returns the id of the request whose record was spilled to the queue."""
    auth = {"authorization": f"Bearer {api_key}"}
    hi = [{"role": "user", "content": "Say hello."}]
    assert stack.proxy.get("/healthz").status_code == 200
    calls = [
        ("/v1/chat/completions", {"model": "openai/gpt-4o-mini", "messages": hi}),
        ("/v1/chat/completions", {"model": "anthropic/claude-haiku-4-5", "messages": hi, "stream": True}),
        ("/v1/messages", {"model": "anthropic/claude-haiku-4-5", "max_tokens": 32, "messages": hi, "stream": True}),
        ("/v1/messages", {"model": "openai/gpt-4o-mini", "max_tokens": 32, "messages": hi}),
        ("/v1/messages/count_tokens", {"model": "anthropic/claude-haiku-4-5", "messages": hi}),
        ("/v1/responses", {"model": "openai/gpt-4o-mini", "input": "Say hello.", "stream": True}),
        ("/v1/responses", {"model": "anthropic/claude-haiku-4-5", "input": "Say hello."}),
        ("/v1/embeddings", {"model": "openai/text-embedding-3-small", "input": "hello"}),
    ]
    request_ids = []
    for path, body in calls:
        answered = stack.proxy.post(path, json=body, headers=auth)
        assert answered.status_code == 200, (path, answered.text)
        request_ids.append(answered.headers.get("x-meterway-request-id"))
    # Bedrock: each model the template lets the role invoke, whole and streamed
    for model in BEDROCK_MODELS:
        for stream in (False, True):
            body = {"model": model, "max_tokens": 32, "messages": hi, "stream": stream}
            answered = stack.proxy.post("/v1/messages", json=body, headers=auth)
            assert answered.status_code == 200, (model, answered.text)
    for path in ("/v1/models", "/v1/models/openai/gpt-4o-mini", "/v1/key", f"/v1/generation?id={request_ids[0]}"):
        assert stack.proxy.get(path, headers=auth).status_code == 200, path

    assert stack.proxy.get("/v1/key", headers={"authorization": "Bearer mw-not-a-key"}).status_code == 401
    limited = {"authorization": f"Bearer {limited_key}"}
    spent = [stack.proxy.post("/v1/chat/completions", json=calls[0][1], headers=limited)]
    aggregator.drain(timeout_s=30)  # the first request's spend is counted from the ledger's stream
    spent.append(stack.proxy.post("/v1/chat/completions", json=calls[0][1], headers=limited))
    assert [answer.status_code for answer in spent] == [200, 402], spent[-1].text
    stack.fake.add_faults({"kind": "status", "status": 500})
    assert stack.proxy.post("/v1/chat/completions", json=calls[0][1], headers=auth).status_code == 502

    ledger = stack.resources["LedgerTable"]
    with stack.recorder.failing(Fault("PutItem", ledger)):
        spilled = stack.proxy.post("/v1/chat/completions", json=calls[0][1], headers=auth)
    assert spilled.status_code == 200
    return str(spilled.headers["x-meterway-request-id"])


def drive_the_replay(stack: Stack, spilled_request: str) -> None:
    """The spilled record comes back from the queue into the ledger."""
    assert ledger_item(stack, spilled_request) is None
    handler = stack.recorder.lambda_handler("LedgerReplayFunction", ledger_replay.handler)
    poller = stack.start(SqsPoller(stack.resources["LedgerSpillQueue"], handler, "LedgerReplayFunction"))
    wait_for(lambda: ledger_item(stack, spilled_request), "the replayed record")
    poller.stop()


def start_the_aggregator(stack: Stack) -> DynamoStreamPoller:
    """The ledger's stream into the AggregatorFunction, from the start: rollups and counters."""
    handler = stack.recorder.lambda_handler("AggregatorFunction", aggregator.handler)
    poller = DynamoStreamPoller(
        stack.resources["LedgerTable"], handler, "AggregatorFunction", event_filter=only_inserts
    )
    return stack.start(poller)


def drive_the_api(stack: Stack, admin: str) -> None:
    """Every /api route: keys, members, credit, usage, activity; exports are ``drive_the_exports``."""

    def ok(method: str, path: str, body: Any = None, query: dict[str, str] | None = None) -> Any:
        answered = stack.api(method, path, admin, body, query)
        assert answered["statusCode"] < 300, (method, path, answered["json"])
        return answered["json"]

    ok("GET", "/api/keys")
    ok("POST", "/api/members", {"member_id": "ops@example.com"})
    ok("GET", "/api/members")
    ok("PATCH", "/api/members/ops@example.com", {"name": "Ops"})
    key = ok("POST", "/api/keys", {"name": "ci", "member": "ops@example.com"})
    ok("PATCH", f"/api/keys/{key['id']}", {"name": "ci runner"})
    ok("POST", f"/api/keys/{key['id']}/rotate", {"overlap_seconds": 3600})
    assert ok("GET", f"/api/keys/{key['id']}")["rotating"], "a rotated-out secret is read back"
    ok("DELETE", f"/api/keys/{key['id']}")
    ok("GET", "/api/balance")
    ok("POST", "/api/balance/topups", {"amount_usd": "25"})
    for path in ("/api/usage", "/api/usage/requests", "/api/dashboard"):
        ok("GET", path)
    ok("GET", "/api/usage", query={"model": "openai/gpt-4o-mini"})  # a filter's rows by key
    ok("GET", "/api/activity", query={"period": "1d", "group_by": "key"})


def drive_the_exports(stack: Stack, admin: str) -> None:
    """Each kind of export, start to download link; a queue outage fails its job; a failed upload
    is aborted and retried until the job fails."""
    handler = stack.recorder.lambda_handler("ExportFunction", export_worker.handler)
    stack.start(SqsPoller(stack.resources["ExportQueue"], handler, "ExportFunction", batch_size=1, retry_delay_s=0))

    def export(body: dict[str, Any]) -> dict[str, Any]:
        started = stack.api("POST", "/api/exports", admin, body)
        assert started["statusCode"] == 202, started["json"]
        job_path = f"/api/exports/{started['json']['id']}"
        return wait_for(
            lambda: (job := stack.api("GET", job_path, admin)["json"])["status"] in ("succeeded", "failed") and job,
            f"export {body}",
        )

    for body in (
        {"kind": "requests", "format": "csv"},
        {"kind": "activity", "format": "csv", "group_by": "model"},
        {"kind": "activity", "format": "pdf"},
        # A model's page reads its chart's rows by key (one model has nothing to stack).
        {"kind": "activity", "format": "pdf", "metric": "tokens", "group_by": "model"},
    ):
        job = export(body)
        assert job["status"] == "succeeded" and job["url"], job

    with stack.recorder.failing(Fault("UploadPart", stack.resources["ExportBucket"])):
        assert export({"kind": "requests", "format": "csv"})["status"] == "failed"

    with stack.recorder.failing(Fault("SendMessage", stack.resources["ExportQueue"].rsplit("/", 1)[-1])):
        refused = stack.api("POST", "/api/exports", admin, {"kind": "requests", "format": "csv"})
    assert refused["statusCode"] == 503, refused["json"]
    jobs = boto3.client("dynamodb").scan(TableName=stack.resources["ExportJobsTable"])["Items"]
    unqueued = [job for job in jobs if job.get("error", {}).get("S") == "The job could not be queued."]
    assert [job["status"]["S"] for job in unqueued] == ["failed"]


# --- The pass, once for the module ----------------------------------------------------------------


@pytest.fixture(scope="module")
def run() -> Iterator[Run]:
    recorder = AccessRecorder()
    with (
        pytest.MonkeyPatch.context() as env,
        running_moto_server() as moto_url,
        FakeUpstreamServer(FakeUpstreamConfig(api_key=UPSTREAM_KEY)) as fake,
        recorder.installed(),
    ):
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL": moto_url,
            "MW_S3_ADDRESSING_STYLE": "path",
            "POWERTOOLS_TRACE_DISABLED": "true",
            # Request exports fan out over slices of a few records: the fan-out's calls are recorded too.
            "MW_EXPORT_SLICE_ROWS": "3",
        }.items():
            env.setenv(name, value)
        resources = create_resources(TEMPLATE, prefix="iam")
        for name, value in env_for(resources).items():
            env.setenv(name, value)
        secret = boto3.client("secretsmanager").create_secret(
            Name="iam-UpstreamSecret",
            SecretString=json.dumps({"openai_api_key": UPSTREAM_KEY, "anthropic_api_key": UPSTREAM_KEY}),
        )["ARN"]
        resources = {**resources, "UpstreamSecret": secret}
        for name, value in {
            "MW_UPSTREAM_SECRET_ARN": secret,
            "MW_OPENAI_BASE_URL": fake.openai_base_url,
            "MW_ANTHROPIC_BASE_URL": fake.base_url,
            "MW_BEDROCK_ENDPOINT_URL": fake.base_url,
            "MW_BEDROCK_MODEL_ARNS": load_template(TEMPLATE)["Parameters"]["BedrockModelArns"]["Default"],
        }.items():
            env.setenv(name, value)
        for name in ("MW_OPENAI_API_KEY", "MW_ANTHROPIC_API_KEY"):
            env.delenv(name, raising=False)
        container.reset()  # clients made from now on carry the recorder's hooks

        keys = DynamoKeyStore(resources["KeysTable"])
        _, admin = create_key(keys, ACCOUNT, "ops", kind="admin")
        _, api_key = create_key(keys, ACCOUNT, "dev")
        limited, limited_secret = mint_key(
            ACCOUNT, "spent", limits=KeyLimits(spend_limit_usd=Decimal("0.000000001"), requests_per_minute=1000)
        )
        keys.put(limited, hash_secret(limited_secret))

        # An account an older version counted, just upgraded: its records check its old markers too.
        DynamoRollupStore(resources["RollupsTable"]).start_change(ACCOUNT, "parts", datetime(2999, 1, 1, tzinfo=UTC))
        stack = Stack(recorder, resources, fake)
        try:
            counting = start_the_aggregator(stack)
            with stack.proxy:
                spilled = drive_the_proxy(stack, api_key, limited_secret, counting)
            # The proxy signs its Bedrock calls itself: what they need is read from where they went.
            recorder.accesses["ProxyFunction"] |= {
                access
                for call in fake.requests()
                if call["path"].startswith("/model/")
                for access in bedrock_accesses(call["path"], REGION)
            }
            drive_the_replay(stack, spilled)
            counting.drain(timeout_s=30)
            drive_the_api(stack, admin)
            drive_the_exports(stack, admin)
        finally:
            stack.stop()
        yield Run(
            recorder=recorder,
            roles=deployed_roles(TEMPLATE, resources, REGION),
            by_lambda=service_accesses(TEMPLATE, resources, REGION),
            requests=stack.requests,
        )


# --- The checks -----------------------------------------------------------------------------------


def test_every_function_was_driven_and_every_call_is_understood(run):
    assert run.recorder.unmapped == []
    assert sorted(run.recorder.accesses) == FUNCTIONS
    injected = {operation for operation, _ in run.recorder.failed}
    assert injected >= {"PutItem", "UploadPart", "SendMessage"}, injected


@pytest.mark.parametrize("function", FUNCTIONS)
def test_everything_a_function_does_in_aws_its_role_allows(run, function):
    role = run.roles[function]
    missing = sorted(str(access) for access in run.recorder.accesses[function] if not role.allows(access))
    assert missing == [], f"{function}'s role in template.yaml does not allow: {missing}"


@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_grant_of_a_role_is_used_by_its_function(run, function):
    used = run.recorder.accesses[function] | run.by_lambda.get(function, set())
    unused = [str(grant) for grant in run.roles[function].grants if not any(grant.allows(access) for access in used)]
    assert unused == [], f"{function}'s role grants what nothing does: {unused}"


def _route_pattern(path: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\{[^}:]+(:path)?\}", lambda m: ".+" if m.group(1) else "[^/]+", path) + "$")


def test_every_route_of_both_apps_was_driven(run):
    proxy_routes = {(method, route.path) for route in create_app().routes for method in route.methods or ()}
    api_spec = json.loads(management_api._resolver("").get_openapi_json_schema(title="t", version="1"))
    api_routes = {(method.upper(), path) for path, methods in api_spec["paths"].items() for method in methods}
    for function, routes in (("ProxyFunction", proxy_routes), ("ApiFunction", api_routes)):
        undriven = sorted(
            f"{method} {path}"
            for method, path in routes
            if method != "HEAD"
            and not any(sent == method and _route_pattern(path).match(at) for sent, at in run.requests[function])
        )
        assert undriven == [], f"{function}: no request reached {undriven}"
