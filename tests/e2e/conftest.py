"""The local stack, started once per session exactly as ``make dev`` starts it (``python -m devstack``),
on a free port, with the fake upstream; tests talk to it over loopback only."""

from __future__ import annotations

import gc
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from devstack.launch import StartedStack
from devstack.launch import launched as launch_stack

ROOT = Path(__file__).resolve().parents[2]


class LocalStack(StartedStack):
    """A running stack, with what the tests ask of it."""

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
def launched(state: Path, **options: Any) -> Iterator[LocalStack]:
    """``python -m devstack`` in a subprocess until the block ends (``devstack.launch.launched``)."""
    with launch_stack(state, **options) as running:
        yield LocalStack(running.info, running.log)


@contextmanager
def launched_with_providers(
    state: Path, providers: dict[str, Any], env: dict[str, str] | None = None, **options: Any
) -> Iterator[LocalStack]:
    """A stack whose providers file is ``providers`` (written into ``state``) instead of the local one."""
    file = state / "providers.json"
    file.write_text(json.dumps(providers))
    options.setdefault("token_latency_ms", 0)
    options.setdefault("first_token_latency_ms", 0)
    with launched(state, env={"MW_PROVIDERS_FILE": str(file)} | (env or {}), **options) as running:
        yield running


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


@contextmanager
def no_client_pauses() -> Iterator[None]:
    """The test process's cyclic GC off while a stream's arrival times are taken. A full
    collection over what its imports made (genai-prices' data, the SDKs) stops it for a few hundred
    milliseconds, and the events it then reads from the socket look bunched though they came
    spaced (seen: a Messages stream's 23 text events within 0.3 ms of each other)."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
