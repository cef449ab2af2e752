"""The management API is what its OpenAPI document says: schemathesis runs every phase and every
check against a local stack of this test's own, with the stack's admin key.

It fails on any failure schemathesis reports (a server error, an undocumented status, a response
that breaks its schema, schema-valid input refused or invalid input taken, a method a path lacks
answered otherwise than 405 with ``Allow``). ``positive_data_acceptance`` runs as
``openapi_contract_checks.positive_data_acceptance_but_cross_field_rules``: the same check, but a
400 naming a rule OpenAPI cannot state is accepted (the module lists them and says why).

Generation is deterministic (Hypothesis derandomised, so each run sends the same cases), on one
worker so that the stateful phase sees the same stack state each time, and bounded by
``MAX_EXAMPLES`` per operation.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT, LocalStack, launched

pytestmark = pytest.mark.e2e

MAX_EXAMPLES = 25
PHASES = "examples,coverage,fuzzing,stateful"


@pytest.fixture(scope="module")
def contract_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """A stack of its own: the keys and members the stateful phase creates touch no other test."""
    with launched(tmp_path_factory.mktemp("contract"), token_latency_ms=0, first_token_latency_ms=0) as running:
        yield running


def test_the_management_api_is_its_openapi_document(contract_stack: LocalStack, tmp_path: Path) -> None:
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", f"{contract_stack.base}/api/openapi.json",
        "--header", f"Authorization: Bearer {contract_stack.info['admin_key']}",
        "--phases", PHASES,
        "--checks", "all",
        "--exclude-checks", "positive_data_acceptance",
        "--max-examples", str(MAX_EXAMPLES),
        "--generation-deterministic",
        "--workers", "1",
        "--request-timeout", "30",
        "--no-color",
        "--report", "junit",
        "--report-junit-path", str(tmp_path / "junit.xml"),
    ]  # fmt: skip
    environment = os.environ | {"SCHEMATHESIS_HOOKS": "tests.e2e.openapi_contract_checks", "PYTHONPATH": str(ROOT)}
    started = time.monotonic()
    run = subprocess.run(command, cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=600)
    output = run.stdout + run.stderr
    assert run.returncode == 0, f"schemathesis failed after {time.monotonic() - started:.0f} s:\n{output}"
