"""Start the local stack in a subprocess, as `make dev` starts it, and wait until it answers: for
the end-to-end tests and the benchmarks that need a whole stack."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class StartedStack:
    """A running stack: its ``local.json`` and the file its output goes to."""

    info: dict[str, Any]
    log: Path


@contextmanager
def launched(
    state: Path,
    *,
    token_latency_ms: float,
    first_token_latency_ms: float,
    env: dict[str, str] | None = None,
    startup_s: float = 60,
) -> Iterator[StartedStack]:
    """``python -m devstack`` on a free port, as ``make dev`` runs it, until the block ends;
    ``env`` adds to its environment. A state dir may be used again: the stack's own new
    ``local.json`` is waited for, not one an earlier start left there."""
    log = state / f"stack-{time.monotonic_ns()}.log"
    environment = {
        name: value for name, value in os.environ.items() if name not in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")
    }
    # Every wait on the fake upstream ends after 2 s, so time-outs can be tested in seconds.
    waits = {"MW_UPSTREAM_FIRST_BYTE_TIMEOUT_S": "2", "MW_UPSTREAM_IDLE_TIMEOUT_S": "2"}
    environment |= waits | {"PYTHONUNBUFFERED": "1"} | (env or {})
    command = [sys.executable, "-m", "devstack", "--port", "0", "--state-dir", str(state)]
    command += ["--token-latency-ms", str(token_latency_ms), "--first-token-latency-ms", str(first_token_latency_ms)]
    local_json = state / "local.json"
    stale = local_json.read_text() if local_json.exists() else None
    with log.open("w") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield StartedStack(_wait_until_up(local_json, process, log, stale=stale, timeout_s=startup_s), log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def _wait_until_up(
    path: Path, process: subprocess.Popen[bytes], log: Path, *, stale: str | None, timeout_s: float
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the local stack exited:\n{log.read_text()}")
        if path.exists() and path.read_text() != stale:
            info: dict[str, Any] = json.loads(path.read_text())
            try:
                if httpx.get(str(info["api_base"]).removesuffix("/v1") + "/healthz").status_code == 200:
                    return info
            except httpx.TransportError:
                pass
        time.sleep(0.1)
    raise RuntimeError(f"the local stack did not start in {timeout_s} s:\n{log.read_text()}")
