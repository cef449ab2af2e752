"""Gateway overhead, measured in one run against the same fake upstream (the budgets in docs/architecture.md).

Processes: moto server (AWS), the fake upstream, and the proxy app under uvicorn, each on its own
so that the gateway's CPU time can be read from /proc. A counting relay in front of moto tells
how many DynamoDB calls each request makes. N requests go straight to the upstream and N through
the gateway, interleaved, so machine noise hits both alike; the figures are the differences.

    .venv/bin/python bench/proxy_overhead.py [--requests 300]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "functions")]

from devstack.aws_resources import create_resources, env_for  # noqa: E402
from devstack.stack import free_port  # noqa: E402
from meterway.accounts.dal.key_store import DynamoKeyStore  # noqa: E402
from meterway.accounts.logic.manage_keys import create_key  # noqa: E402

PROMPT = [{"role": "user", "content": "Say something short."}]


@dataclass(frozen=True)
class Case:
    """One front door, timed against the same request sent straight to the fake upstream."""

    label: str
    path: str  # the gateway's, and the fake's (the fake serves every format under /v1)
    direct: dict[str, Any]  # the body sent to the fake, with the upstream's model id
    model: str  # the client-facing id the gateway is sent

    @property
    def gateway(self) -> dict[str, Any]:
        return self.direct | {"model": self.model}


CASES = [
    Case("chat", "/v1/chat/completions", {"model": "gpt-4o-mini", "messages": PROMPT}, "openai/gpt-4o-mini"),
    Case(
        "chat stream",
        "/v1/chat/completions",
        {"model": "gpt-4o-mini", "messages": PROMPT, "stream": True, "stream_options": {"include_usage": True}},
        "openai/gpt-4o-mini",
    ),
    Case(
        "messages stream",
        "/v1/messages",
        {"model": "claude-haiku-4-5", "max_tokens": 200, "messages": PROMPT, "stream": True},
        "anthropic/claude-haiku-4-5",
    ),
    Case(
        "responses stream",
        "/v1/responses",
        {"model": "gpt-4o-mini", "input": "Say something short.", "stream": True, "store": False},
        "openai/gpt-4o-mini",
    ),
]


class CountingRelay:
    """Forwards AWS calls to moto and counts them by operation (``X-Amz-Target``)."""

    def __init__(self, target: str):
        self.counts: collections.Counter[str] = collections.Counter()
        self._client = httpx.Client(base_url=target)
        self.app = Starlette(routes=[Route("/{path:path}", self._forward, methods=["GET", "POST", "PUT", "DELETE"])])

    async def _forward(self, request: Request) -> Response:
        self.counts[request.headers.get("x-amz-target", request.url.path)] += 1
        body = await request.body()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        upstream = self._client.request(request.method, request.url.path, content=body, headers=headers)
        return Response(upstream.content, status_code=upstream.status_code, headers=dict(upstream.headers))


def serve_in_thread(app: Any, port: int) -> None:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    threading.Thread(target=server.run, daemon=True).start()
    wait_for(f"http://127.0.0.1:{port}/", any_status=True)


def wait_for(url: str, any_status: bool = False, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url)
            if any_status or response.status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


def spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(client: httpx.Client, url: str, body: dict[str, Any], headers: dict[str, str]) -> tuple[float, float]:
    """Seconds to the first body byte and to the end."""
    started = time.perf_counter()
    with client.stream("POST", url, json=body, headers=headers) as response:
        first = None
        for _ in response.iter_raw():
            first = first or time.perf_counter()
        response.raise_for_status()
    end = time.perf_counter()
    return (first or end) - started, end - started


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def import_time() -> float:
    code = "import time; t=time.perf_counter(); import meterway.proxy.handlers.app; print(time.perf_counter()-t)"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "functions")}
    runs = [float(subprocess.check_output([sys.executable, "-c", code], env=env)) for _ in range(5)]
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    n = args.requests
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "PYTHONPATH": f"{ROOT / 'functions'}:{ROOT}",
    }
    moto_port, relay_port, fake_port, gateway_port = (free_port() for _ in range(4))
    processes = [
        spawn([sys.executable, "-m", "devstack.moto_server", "--port", str(moto_port)], env),
        spawn([sys.executable, "-m", "devstack.fake_upstream", "--port", str(fake_port)], env),
    ]
    try:
        wait_for(f"http://127.0.0.1:{moto_port}/moto-api/", any_status=True)
        relay = CountingRelay(f"http://127.0.0.1:{moto_port}")
        serve_in_thread(relay.app, relay_port)
        os.environ.update({k: v for k, v in env.items() if k.startswith("AWS_")})
        os.environ["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{moto_port}"
        resources = create_resources(
            ROOT / "template.yaml", prefix="bench", endpoint_url=f"http://127.0.0.1:{moto_port}"
        )
        _, secret = create_key(DynamoKeyStore(resources["KeysTable"]), "bench", "bench")
        gateway_env = (
            env
            | env_for(resources)
            | {
                "AWS_ENDPOINT_URL": f"http://127.0.0.1:{relay_port}",
                "MW_OPENAI_BASE_URL": f"http://127.0.0.1:{fake_port}/v1",
                "MW_OPENAI_API_KEY": "bench",
                "MW_ANTHROPIC_BASE_URL": f"http://127.0.0.1:{fake_port}",
                "MW_ANTHROPIC_API_KEY": "bench",
                "POWERTOOLS_LOG_LEVEL": "WARNING",
            }
        )
        uvicorn_args = ["--port", str(gateway_port), "--log-level", "warning", "--no-access-log"]
        command = [sys.executable, "-m", "uvicorn", *uvicorn_args, "meterway.proxy.handlers.app:app"]
        processes.append(spawn(command, gateway_env))
        wait_for(f"http://127.0.0.1:{fake_port}/_fake/health")
        wait_for(f"http://127.0.0.1:{gateway_port}/healthz")
        gateway_pid = processes[-1].pid
        gateway_base = f"http://127.0.0.1:{gateway_port}"

        direct_headers = {"authorization": "Bearer bench", "x-api-key": "bench", "anthropic-version": "2023-06-01"}
        gateway_headers = {"authorization": f"Bearer {secret}"}
        results: dict[str, dict[str, list[float]]] = {}
        with httpx.Client(timeout=30) as client:
            for case in CASES:
                direct_url, gateway_url = f"http://127.0.0.1:{fake_port}{case.path}", f"{gateway_base}{case.path}"
                for _ in range(30):  # warm: key cache, connection pools, genai-prices
                    timed(client, direct_url, case.direct, direct_headers)
                    timed(client, gateway_url, case.gateway, gateway_headers)
                relay.counts.clear()
                cpu_before = cpu_seconds(gateway_pid)
                direct, through = [], []
                for _ in range(n):
                    direct.append(timed(client, direct_url, case.direct, direct_headers))
                    through.append(timed(client, gateway_url, case.gateway, gateway_headers))
                cpu = cpu_seconds(gateway_pid) - cpu_before
                results[case.label] = {
                    "direct_total": [t for _, t in direct],
                    "gateway_total": [t for _, t in through],
                    "direct_first": [f for f, _ in direct],
                    "gateway_first": [f for f, _ in through],
                    "cpu_ms_per_request": [cpu * 1000 / n],
                    "dynamodb_calls_per_request": [sum(relay.counts.values()) / n],
                    "calls": [dict(relay.counts)],  # type: ignore[list-item]
                }
        report(results, n, import_time())
    finally:
        for process in processes:
            process.terminate()


def report(results: dict[str, dict[str, list[Any]]], n: int, imported: float) -> None:
    ms = 1000
    summary: dict[str, Any] = {"requests_each": n, "proxy_import_s": round(imported, 3)}
    for label, data in results.items():
        added_total = [g - d for g, d in zip(data["gateway_total"], data["direct_total"], strict=True)]
        added_first = [g - d for g, d in zip(data["gateway_first"], data["direct_first"], strict=True)]
        summary[label] = {
            "direct_p50_ms": round(statistics.median(data["direct_total"]) * ms, 2),
            "gateway_p50_ms": round(statistics.median(data["gateway_total"]) * ms, 2),
            "added_p50_ms": round(statistics.median(added_total) * ms, 2),
            "added_p99_ms": round(percentile(added_total, 0.99) * ms, 2),
            "added_first_byte_p50_ms": round(statistics.median(added_first) * ms, 2),
            "gateway_cpu_ms_per_request": round(data["cpu_ms_per_request"][0], 2),
            "dynamodb_calls_per_request": round(data["dynamodb_calls_per_request"][0], 2),
            "dynamodb_calls": data["calls"][0],
        }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
