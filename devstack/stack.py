"""The whole stack on one machine: moto server (AWS), the fake upstream, the proxy and the API.

Tables, queues and buckets are made from template.yaml's own resource definitions, so the local
schema is the deployed one. Background workers stand in for the event source mappings.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from devstack.workers import DynamoStreamPoller

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"
CONSOLE_DIST = ROOT / "console" / "dist"
LOCAL_ACCOUNT = "default"


@dataclass
class StackOptions:
    host: str = "127.0.0.1"
    port: int = 3000
    state_dir: Path = ROOT / ".meterway"
    token_latency_ms: float = 15.0
    first_token_latency_ms: float = 150.0
    openai_api_key: str | None = None
    anthropic_api_key: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    # Requests of made-up usage to seed before start-up (MW_DEMO_DATA); 0 seeds none.
    demo_requests: int = 0
    # For the fault tests: AWS behind a fault gate (devstack/aws_faults.py), and every stream batch
    # delivered to the aggregator twice.
    aws_faults: bool = False
    redeliver_streams: bool = False
    # Seconds before a spilled record that failed to replay is tried again (AWS: the queue's 180 s
    # VisibilityTimeout). Its 5 receives must outlast a local outage (MW_LOCAL_SPILL_RETRY_S).
    spill_retry_s: int = 2
    # Upstream base URLs for the real providers (OPENAI_BASE_URL, ANTHROPIC_BASE_URL), and the
    # providers file (MW_PROVIDERS_FILE).
    openai_base_url: str | None = None
    anthropic_base_url: str | None = None
    providers_file: Path | None = None


# What every boto3 client of the stack signs with; moto takes any, the fake Bedrock checks these.
LOCAL_AWS_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def start_moto(stack: ExitStack, host: str) -> str:
    """moto server in its own process (see devstack/moto_server.py); stopped with the stack."""
    import httpx

    port = free_port(host)
    command = [sys.executable, "-m", "devstack.moto_server", "--host", host, "--port", str(port)]
    process = subprocess.Popen(command, cwd=ROOT, preexec_fn=die_with_parent)
    stack.callback(stop_process, process)
    url = f"http://{host}:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("moto server exited at start-up")
        try:
            httpx.get(f"{url}/moto-api/", timeout=1)
            return url
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError("moto server did not start in 30 s")


def die_with_parent() -> None:
    """Linux: the child gets SIGTERM when the stack's process dies, even by SIGKILL, so no moto
    server outlives its stack."""
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it has not exited 5 s later."""
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()


def start_fake_upstream(stack: ExitStack, options: StackOptions) -> str:
    from devstack.fake_upstream import FakeUpstreamConfig, FakeUpstreamServer

    config = FakeUpstreamConfig(
        first_token_latency_s=options.first_token_latency_ms / 1000,
        per_token_latency_s=options.token_latency_ms / 1000,
        # Its Bedrock endpoint checks each SigV4 signature against the stack's AWS credentials.
        aws_access_key_id=LOCAL_AWS_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_AWS_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )
    server = FakeUpstreamServer(config=config)
    server.start()
    stack.callback(server.stop)
    return str(server.base_url)


def configure_environment(moto_url: str, fake_upstream_url: str | None, options: StackOptions) -> dict[str, str]:
    """Point boto3 at moto and the proxy at the upstreams; returns what it set."""
    from devstack.aws_resources import create_resources, env_for, function_environment

    env = {
        "AWS_ENDPOINT_URL": moto_url,
        # A local endpoint serves buckets by path only: virtual-hosted addressing would need
        # <bucket>.127.0.0.1 to resolve. The app's S3 clients, and so its presigned URLs, follow this.
        "MW_S3_ADDRESSING_STYLE": "path",
        **LOCAL_AWS_CREDENTIALS,
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "Meterway",
        "MW_KEY_CACHE_TTL_SECONDS": "5",
    }
    os.environ.update(env)
    resources = create_resources(TEMPLATE, prefix="meterway-local", endpoint_url=moto_url)
    env |= env_for(resources)
    # The export worker makes rows in child processes as deployed (its own setting, no other
    # function reads it, so the one environment of the local stack can hold it).
    export = function_environment(
        TEMPLATE, "ExportFunction", resources=resources, prefix="meterway-local", region="us-east-1"
    )
    env["MW_EXPORT_ROW_PROCESSES"] = export["MW_EXPORT_ROW_PROCESSES"]
    if options.openai_api_key:
        base = options.openai_base_url or "https://api.openai.com/v1"
        env |= {"MW_OPENAI_BASE_URL": base, "MW_OPENAI_API_KEY": options.openai_api_key}
    elif fake_upstream_url:
        env |= {"MW_OPENAI_BASE_URL": f"{fake_upstream_url}/v1", "MW_OPENAI_API_KEY": "fake-openai-key"}
    if options.anthropic_api_key:
        base = options.anthropic_base_url or "https://api.anthropic.com"
        env |= {"MW_ANTHROPIC_BASE_URL": base, "MW_ANTHROPIC_API_KEY": options.anthropic_api_key}
    elif fake_upstream_url:
        env |= {"MW_ANTHROPIC_BASE_URL": fake_upstream_url, "MW_ANTHROPIC_API_KEY": "fake-anthropic-key"}
    if fake_upstream_url:
        # No AWS here: Bedrock is always the fake's (the proxy signs with the credentials above).
        env["MW_BEDROCK_ENDPOINT_URL"] = fake_upstream_url
        env["MW_FAKE_UPSTREAM_URL"] = fake_upstream_url
    if options.providers_file:
        env |= providers_environment(options.providers_file.read_text(), fake_upstream_url, os.environ)
    env |= options.extra_env
    os.environ.update(env)
    return env


def providers_environment(text: str, fake_upstream_url: str | None, environ: Mapping[str, str]) -> dict[str, str]:
    """The providers file for the proxy and the API (``MW_PROVIDERS``), where
    ``${MW_FAKE_UPSTREAM_URL}`` stands for the local fake upstream, and its providers' keys, each
    from ``<NAME>_API_KEY`` in the environment (``MW_PROVIDER_API_KEYS``, by secret entry)."""
    from meterway.proxy.logic.providers_config import parse_providers

    if fake_upstream_url:
        text = text.replace("${MW_FAKE_UPSTREAM_URL}", fake_upstream_url)
    file = parse_providers(text)
    keys = {
        file.key_entry(name): environ[variable]
        for name in file.providers
        if (variable := f"{name.upper().replace('-', '_')}_API_KEY") in environ
    }
    return {"MW_PROVIDERS": text, "MW_PROVIDER_API_KEYS": json.dumps(keys)}


def check_settings() -> None:
    """Every function's settings, read from the environment just configured: a variable the
    template's resources did not provide stops the stack here, naming it."""
    from meterway.core.settings import FUNCTION_SETTINGS, load_settings
    from meterway.proxy.logic.providers_config import load_catalog, parse_providers

    for kind in FUNCTION_SETTINGS.values():
        load_settings(kind)
    # A providers file that does not parse, or prices a model genai-prices does not know, stops it too.
    load_catalog(parse_providers(os.environ.get("MW_PROVIDERS")))


def bootstrap_keys() -> dict[str, str]:
    """One admin key and one API key in the local account, as ``meterway keys create`` makes them."""
    from meterway.accounts.dal.key_store import DynamoKeyStore
    from meterway.accounts.dal.member_store import DynamoMemberStore
    from meterway.accounts.logic.manage_keys import create_key
    from meterway.accounts.logic.manage_members import ensure_member
    from meterway.core.settings import ApiSettings, load_settings

    table = load_settings(ApiSettings).keys_table
    store = DynamoKeyStore(table)
    _, admin_secret = create_key(store, LOCAL_ACCOUNT, "local admin", kind="admin")
    member = ensure_member(DynamoMemberStore(table), LOCAL_ACCOUNT, "dev@localhost")
    _, api_secret = create_key(store, LOCAL_ACCOUNT, "local dev", member=member.member_id)
    return {"admin_key": admin_secret, "api_key": api_secret}


def write_local_json(options: StackOptions, port: int, secrets: dict[str, str], env: dict[str, str]) -> Path:
    options.state_dir.mkdir(parents=True, exist_ok=True)
    base = f"http://{options.host}:{port}"
    info: dict[str, Any] = {
        "api_base": f"{base}/v1",
        "console_url": f"{base}/",
        "management_api": f"{base}/api",
        **secrets,
        "aws_endpoint_url": env["AWS_ENDPOINT_URL"],
        "tables": {
            "keys": env["MW_KEYS_TABLE"],
            "ledger": env["MW_LEDGER_TABLE"],
            "rollups": env["MW_ROLLUPS_TABLE"],
            "export_jobs": env["MW_EXPORT_JOBS_TABLE"],
        },
        "buckets": {"exports": env["MW_EXPORT_BUCKET"]},
        "upstreams": {
            "openai": env.get("MW_OPENAI_BASE_URL"),
            "anthropic": env.get("MW_ANTHROPIC_BASE_URL"),
            "bedrock": env.get("MW_BEDROCK_ENDPOINT_URL"),
        },
    }
    if "MW_FAKE_UPSTREAM_URL" in env:
        info["fake_upstream"] = env["MW_FAKE_UPSTREAM_URL"]
    if options.aws_faults:
        info["aws_faults"] = env["AWS_ENDPOINT_URL"]
    path = options.state_dir / "local.json"
    path.write_text(json.dumps(info, indent=2) + "\n")
    path.chmod(0o600)
    return path


def start_spill_replayer(stack: ExitStack, queue_url: str | None, retry_delay_s: int) -> None:
    """Polls the spill queue and hands batches to the LedgerReplayFunction's handler; a record
    that fails to replay comes back after ``retry_delay_s``."""
    if not queue_url:
        return
    from devstack.workers import SqsPoller
    from meterway.ledger.handlers import ledger_replay

    poller = SqsPoller(
        queue_url, ledger_replay.handler, function_name="LedgerReplayFunction", retry_delay_s=retry_delay_s
    )
    thread = threading.Thread(target=poller.run, name="spill-replayer", daemon=True)
    thread.start()
    stack.callback(poller.stop)


def start_export_worker(stack: ExitStack, queue_url: str | None) -> None:
    """Polls the export queue and hands each job to the ExportFunction's handler, one per event
    as its BatchSize 1 mapping does; a failed job is retried after a few seconds."""
    if not queue_url:
        return
    from devstack.workers import SqsPoller
    from meterway.exports.handlers import export_worker

    poller = SqsPoller(queue_url, export_worker.handler, function_name="ExportFunction", batch_size=1)
    thread = threading.Thread(target=poller.run, name="export-worker", daemon=True)
    thread.start()
    stack.callback(poller.stop)


def start_aggregator(stack: ExitStack, table_name: str, *, redeliver: bool = False) -> DynamoStreamPoller:
    """Feeds new ledger records from the table's stream to the AggregatorFunction's handler, with
    the template's INSERT-only filter (``redeliver``: every batch twice). Call `drain()` on the
    result to wait for the rollups."""
    from devstack.workers import DynamoStreamPoller, only_inserts
    from meterway.analytics.handlers import aggregator

    poller = DynamoStreamPoller(
        table_name,
        aggregator.handler,
        function_name="AggregatorFunction",
        event_filter=only_inserts,
        redeliver=redeliver,
    )
    thread = threading.Thread(target=poller.run, name="aggregator", daemon=True)
    thread.start()
    stack.callback(poller.stop)
    return poller
