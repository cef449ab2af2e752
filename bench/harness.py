"""What the proxy benches share: the processes they start, and how they time and measure them.

`GatewayStack` starts moto server, the counting relay in front of it (in this process), the fake
upstream and the proxy app under uvicorn (as run.sh starts it on Lambda), each but the relay in
a process of its own, so that the proxy's CPU time and memory can be read from /proc.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import uvicorn

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "functions")]

from bench.aws_relay import CountingRelay  # noqa: E402
from devstack.aws_resources import create_resources, env_for  # noqa: E402
from devstack.stack import free_port, stop_process  # noqa: E402
from meterway.accounts.dal.key_store import DynamoKeyStore  # noqa: E402
from meterway.accounts.logic.manage_keys import create_key  # noqa: E402

DIRECT_HEADERS = {"authorization": "Bearer bench", "x-api-key": "bench", "anthropic-version": "2023-06-01"}
BASE_ENV = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
    "PYTHONPATH": f"{ROOT / 'functions'}:{ROOT}",
}


def serve_in_thread(app: Any, port: int) -> None:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    threading.Thread(target=server.run, daemon=True).start()
    wait_for(f"http://127.0.0.1:{port}/", any_status=True)


def serve_as_run_sh(
    stack: ExitStack, app: str, env: dict[str, str], output: IO[bytes] | None = None
) -> tuple[str, int]:
    """``app`` (``module:attribute``) under uvicorn in a process of its own, started as `run.sh`
    starts the proxy on Lambda (loopback, httptools, no access log); its URL and pid, once its
    ``/healthz`` answers."""
    port = free_port()
    args = ["--host", "127.0.0.1", "--port", str(port), "--http", "httptools", "--no-access-log"]
    pid = spawn(stack, [sys.executable, "-m", "uvicorn", *args, "--log-level", "warning", app], env, output)
    url = f"http://127.0.0.1:{port}"
    wait_for(f"{url}/healthz")
    return url, pid


def wait_for(url: str, any_status: bool = False, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url)
            if any_status or response.status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def spawn(stack: ExitStack, args: list[str], env: dict[str, str], output: IO[bytes] | None = None) -> int:
    """Start a process that the stack stops; its pid."""
    sink = output or subprocess.DEVNULL
    process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=sink, stderr=sink)
    stack.callback(stop_process, process)
    return process.pid


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants, alive now."""
    pids, index = [pid], 0
    while index < len(pids):
        for task in Path(f"/proc/{pids[index]}/task").glob("*/children"):
            pids += [int(child) for child in task.read_text().split()]
        index += 1
    return pids


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of ``pid`` and its live descendants."""
    total = 0
    for member in process_tree(pid):
        fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def status_kib(pid: int, field_name: str) -> int:
    """A ``/proc/<pid>/status`` figure in KiB (VmRSS: now, VmHWM: the peak so far)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field_name}:"):
            return int(line.split()[1])
    raise KeyError(field_name)


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


@dataclass
class GatewayStack:
    """moto, the relay, the fake upstream and the proxy, started by `start` and stopped with ``stack``.

    ``fake_args`` go to ``python -m devstack.fake_upstream`` (its latencies, say); ``gateway_log``
    receives the proxy's stdout and stderr; ``gateway_env`` adds to or overrides its environment.
    """

    fake_args: list[str] = field(default_factory=list)
    gateway_log: IO[bytes] | None = None
    gateway_env: dict[str, str] = field(default_factory=dict)
    relay: CountingRelay = field(init=False)
    fake_url: str = field(init=False)
    gateway_url: str = field(init=False)
    gateway_pid: int = field(init=False)
    relay_url: str = field(init=False)
    moto_url: str = field(init=False)
    resources: dict[str, str] = field(init=False)
    secret: str = field(init=False)

    def start(self, stack: ExitStack) -> GatewayStack:
        gateway_env = self.start_backends(stack)
        self.gateway_url, self.gateway_pid = serve_as_run_sh(
            stack, "meterway.proxy.handlers.app:app", gateway_env, self.gateway_log
        )
        return self

    def start_backends(self, stack: ExitStack) -> dict[str, str]:
        """Everything but the proxy; the environment the proxy runs with (``bench/profile_proxy.py``
        runs it in its own process)."""
        env = {**os.environ, **BASE_ENV}
        moto_port, relay_port, fake_port = (free_port() for _ in range(3))
        self.moto_url, self.fake_url = f"http://127.0.0.1:{moto_port}", f"http://127.0.0.1:{fake_port}"
        spawn(stack, [sys.executable, "-m", "devstack.moto_server", "--port", str(moto_port)], env)
        fake = [sys.executable, "-m", "devstack.fake_upstream", "--port", str(fake_port), "--log-level", "warning"]
        spawn(stack, [*fake, *self.fake_args], env)
        wait_for(f"{self.moto_url}/moto-api/", any_status=True)
        self.relay = CountingRelay(self.moto_url)
        self.relay_url = f"http://127.0.0.1:{relay_port}"
        serve_in_thread(self.relay.app, relay_port)
        os.environ.update({k: v for k, v in env.items() if k.startswith("AWS_")})
        os.environ["AWS_ENDPOINT_URL"] = self.moto_url
        self.resources = create_resources(ROOT / "template.yaml", prefix="bench", endpoint_url=self.moto_url)
        _, self.secret = create_key(DynamoKeyStore(self.resources["KeysTable"]), "bench", "bench")
        gateway_env = (
            env
            | env_for(self.resources)
            | {
                "AWS_ENDPOINT_URL": self.relay_url,
                "MW_OPENAI_BASE_URL": f"{self.fake_url}/v1",
                "MW_OPENAI_API_KEY": "bench",
                "MW_ANTHROPIC_BASE_URL": self.fake_url,
                "MW_ANTHROPIC_API_KEY": "bench",
                "POWERTOOLS_LOG_LEVEL": "WARNING",
            }
            | self.gateway_env
        )
        wait_for(f"{self.fake_url}/_fake/health")
        return gateway_env

    @property
    def gateway_headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.secret}"}
