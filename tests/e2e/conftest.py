"""The local stack, started once per session exactly as ``make dev`` starts it (``python -m devstack``),
on a free port, with the fake upstream; tests talk to it over loopback only."""

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

import boto3
import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class LocalStack:
    info: dict[str, Any]
    log: Path

    @property
    def base(self) -> str:
        return str(self.info["api_base"]).removesuffix("/v1")

    @property
    def api_key(self) -> str:
        return str(self.info["api_key"])

    @property
    def fake(self) -> str:
        return str(self.info["fake_upstream"])

    def openai(self, **kwargs: Any) -> Any:
        import openai

        return openai.OpenAI(base_url=self.info["api_base"], api_key=self.api_key, max_retries=0, **kwargs)

    def dynamodb(self) -> Any:
        return boto3.client(
            "dynamodb",
            endpoint_url=self.info["aws_endpoint_url"],
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )

    def ledger_count(self) -> int:
        return int(self.dynamodb().scan(TableName=self.info["tables"]["ledger"], Select="COUNT")["Count"])

    def generation(self, request_id: str, *, wait_s: float = 5.0) -> dict[str, Any]:
        """The ledger record through the public ``/v1/generation`` endpoint, waiting for it to settle."""
        deadline = time.monotonic() + wait_s
        while True:
            response = httpx.get(
                f"{self.base}/v1/generation",
                params={"id": request_id},
                headers={"authorization": f"Bearer {self.api_key}"},
            )
            if response.status_code == 200:
                record: dict[str, Any] = response.json()["data"]
                return record
            if time.monotonic() > deadline:
                raise AssertionError(f"no ledger record for {request_id}: {response.status_code} {response.text}")
            time.sleep(0.05)

    def fake_requests(self) -> list[dict[str, Any]]:
        return list(httpx.get(f"{self.fake}/_fake/requests").json())

    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A management API call with the admin key."""
        headers = {"authorization": f"Bearer {self.info['admin_key']}"}
        return httpx.request(method, f"{self.base}/api{path}", headers=headers, timeout=30, **kwargs)

    def fake_faults(self, *faults: dict[str, Any], **match: str) -> None:
        httpx.post(f"{self.fake}/_fake/faults", json={"faults": list(faults), "match": match}).raise_for_status()


@contextmanager
def launched(
    state: Path,
    *,
    token_latency_ms: float,
    first_token_latency_ms: float,
    env: dict[str, str] | None = None,
    startup_s: float = 60,
) -> Iterator[LocalStack]:
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
        yield LocalStack(_wait_until_up(local_json, process, log, stale=stale, timeout_s=startup_s), log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The stack with a fake upstream that takes its time, so streaming can be seen."""
    with launched(tmp_path_factory.mktemp("stack"), token_latency_ms=20, first_token_latency_ms=50) as running:
        yield running


@pytest.fixture(scope="module")
def fast_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """A fresh stack whose fake upstream answers at once: for volume (exports), not for timing."""
    with launched(tmp_path_factory.mktemp("fast"), token_latency_ms=0, first_token_latency_ms=0) as running:
        yield running


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
