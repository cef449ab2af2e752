"""The artifact `sam build` makes runs the way Lambda runs it.

The session builds it for real (`make build`, into a temporary directory), then builds its
dependencies layer again for this machine from the same recipe and requirements
(scripts/built_artifact.py). Each handler template.yaml names is imported by a clean interpreter
that sees the function's built code, that layer and the runtime's boto3, and nothing of the
development venv. It gets the environment the template gives the function and a sample event from
events/, against moto server on loopback. The proxy runs the way the Web Adapter starts it:
`bash run.sh` in its built directory.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from devstack.aws_resources import create_resources, function_environment, load_template
from devstack.fake_upstream import FakeUpstreamConfig, FakeUpstreamServer
from devstack.stack import free_port, start_moto
from meterway.accounts.dal.key_store import DynamoKeyStore
from meterway.accounts.logic.manage_keys import create_key
from meterway.analytics.dal.rollup_store import DynamoRollupStore
from meterway.analytics.logic.windows import Window
from meterway.exports.dal.export_jobs import DynamoExportJobStore
from meterway.exports.logic.export_jobs import ExportCreate, new_job
from meterway.ledger.dal.ledger_store import DynamoLedgerStore
from meterway.ledger.dal.spill_queue import decode_settlement
from scripts.built_artifact import (
    HOST_PYTHON,
    WHEEL_CPU,
    CleanPython,
    build_function_code,
    entry_point,
    handlers,
    sam_build,
    start_modules,
)

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
LAMBDA_RUNTIME = Path(__file__).with_name("lambda_runtime.py")
HANDLERS = handlers(TEMPLATE)
REGION = "us-east-1"
STACK = "artifact"
ACCOUNT = "acct_default"  # the account of the sample events
UPSTREAM_KEY = "sk-upstream-artifact"
CONSOLE_ORIGIN = "https://console.example.com"
# Never in a deployed function: type information and test suites.
NOT_SHIPPED = re.compile(r"(^|/)tests?(/|$)|\.pyi$|(^|/)py\.typed$")
RUNTIME = load_template(TEMPLATE)["Globals"]["Function"]["Runtime"]
# `make build` runs sam with the venv's python3, the one running these tests
BUILT_BY_RUNTIMES_PYTHON = f"python{HOST_PYTHON}" == RUNTIME


def event(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((ROOT / "events" / name).read_text())
    return loaded


@dataclass(frozen=True)
class LocalAws:
    """moto server, with the template's resources (and its UpstreamSecret) in it."""

    url: str
    session: boto3.session.Session
    resources: dict[str, str]

    def client(self, service: str) -> Any:
        return self.session.client(service, endpoint_url=self.url)  # type: ignore[call-overload]


@pytest.fixture(scope="session")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    build_dir = tmp_path_factory.mktemp("sam") / "build"
    sam_build(build_dir)
    return build_dir


@pytest.fixture(scope="session")
def clean_python(tmp_path_factory: pytest.TempPathFactory) -> CleanPython:
    return CleanPython.prepare(tmp_path_factory.mktemp("host"))


@pytest.fixture(scope="session")
def aws() -> Iterator[LocalAws]:
    with ExitStack() as stack:
        url = start_moto(stack, "127.0.0.1")
        session = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
        )
        resources = create_resources(TEMPLATE, prefix=STACK, session=session, endpoint_url=url)
        # The proxy reads the provider keys from here, as in AWS; the fake upstream takes no other key.
        secret = session.client("secretsmanager", endpoint_url=url).create_secret(
            Name=f"{STACK}-UpstreamSecret",
            SecretString=json.dumps({"openai_api_key": UPSTREAM_KEY, "anthropic_api_key": UPSTREAM_KEY}),
        )
        yield LocalAws(url, session, resources | {"UpstreamSecret": secret["ARN"]})


@pytest.fixture(scope="session")
def upstream() -> Iterator[FakeUpstreamServer]:
    with FakeUpstreamServer(FakeUpstreamConfig(api_key=UPSTREAM_KEY)) as server:
        yield server


def memory_size(function: str) -> str:
    template = load_template(TEMPLATE)
    own = template["Resources"][function]["Properties"].get("MemorySize")
    return str(own or template["Globals"]["Function"]["MemorySize"])


def lambda_environment(function: str, code_dir: Path, aws: LocalAws, upstream: FakeUpstreamServer) -> dict[str, str]:
    """The template's environment for `function`, resolved against the local resources (with the
    upstream parameters pointing at the fake), and what Lambda itself sets."""
    parameters = {
        "OpenAIBaseUrl": upstream.openai_base_url,
        "AnthropicBaseUrl": upstream.base_url,
        "ConsoleOrigin": CONSOLE_ORIGIN,
    }
    template_env = function_environment(
        TEMPLATE, function, resources=aws.resources, prefix=STACK, region=REGION, parameters=parameters
    )
    return template_env | {
        "AWS_LAMBDA_FUNCTION_NAME": function,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": memory_size(function),
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "LAMBDA_TASK_ROOT": str(code_dir),
        "TZ": ":UTC",
        # Active tracing, as the template asks: a sampled trace, and an X-Ray daemon address on
        # loopback where nothing listens, so the X-Ray SDK is imported and used as in Lambda.
        "_X_AMZN_TRACE_ID": "Root=1-6740a1b2-0123456789abcdef01234567;Parent=53995c3f42cd8ad8;Sampled=1",
        "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
        # In Lambda, the role's credentials; here moto's, whose endpoint serves buckets by path only.
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_ENDPOINT_URL": aws.url,
        "MW_S3_ADDRESSING_STYLE": "path",
    }


@pytest.fixture
def invoke(
    artifact: Path, clean_python: CleanPython, aws: LocalAws, upstream: FakeUpstreamServer, tmp_path: Path
) -> Callable[[str, dict[str, Any]], Any]:
    """Calls a function's handler, as the template names it, once with an event; returns its answer."""

    def call(function: str, sample: dict[str, Any]) -> Any:
        code_dir = artifact / function
        answer = tmp_path / "answer.json"
        environment = clean_python.environment(code_dir) | lambda_environment(function, code_dir, aws, upstream)
        done = subprocess.run(
            [*clean_python.command, "-P", str(LAMBDA_RUNTIME), HANDLERS[function], str(answer)],
            input=json.dumps(sample),
            env=environment,
            cwd=code_dir,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return json.loads(answer.read_text())

    return call


# --- The artifact's shape ---------------------------------------------------------------------


def shipped_files(directory: Path) -> set[str]:
    return {path.relative_to(directory).as_posix() for path in directory.rglob("*") if path.is_file()}


@pytest.mark.parametrize("function", sorted(HANDLERS))
def test_each_function_holds_the_meterway_package_alone(artifact, function):
    code_dir = artifact / function
    handler_script = {HANDLERS[function]} if (ROOT / "functions" / HANDLERS[function]).is_file() else set()
    source = ROOT / "functions" / "meterway"

    assert {entry.name for entry in code_dir.iterdir()} == {"meterway"} | handler_script
    shipped = shipped_files(code_dir / "meterway")
    assert not [path for path in shipped if NOT_SHIPPED.search(path)]
    assert {path for path in shipped if path.endswith(".py")} == {
        path for path in shipped_files(source) if path.endswith(".py")
    }
    assert_bytecode_as_built(code_dir / "meterway")


def test_the_layer_holds_the_pinned_requirements_for_lambdas_python_and_cpu_without_boto3(artifact):
    template = load_template(TEMPLATE)
    python = template["Globals"]["Function"]["Runtime"].removeprefix("python").replace(".", "")
    (architecture,) = template["Globals"]["Function"]["Architectures"]
    cpu = WHEEL_CPU[architecture]
    layer = artifact / "DependenciesLayer"
    packages = layer / "python"

    assert [entry.name for entry in layer.iterdir()] == ["python"]
    installed = {path.name.lower() for path in packages.glob("*.dist-info")}
    for requirement in (ROOT / "layers" / "requirements.txt").read_text().splitlines():
        if "==" in requirement:
            name, pinned = re.sub(r"\[.*\]", "", requirement).split("==")
            assert f"{name.replace('-', '_')}-{pinned}.dist-info".lower() in installed
    # The runtime's boto3 and botocore are used, not a copy that would stand in front of them
    assert not {"boto3", "botocore", "s3transfer"} & {path.name for path in packages.iterdir()}
    assert not [path for path in shipped_files(packages) if NOT_SHIPPED.search(path)]
    assert_bytecode_as_built(packages)
    extensions = [path.name for path in packages.rglob("*.cpython-*.so")]
    assert extensions
    assert all(f".cpython-{python}-{cpu}-linux-gnu.so" in name for name in extensions), extensions


# --- Every handler imports from the artifact alone --------------------------------------------

WHERE_MODULES_CAME_FROM = """
import importlib, json, sys
module = importlib.import_module(sys.argv[1])
files = [getattr(loaded, "__file__", None) for loaded in list(sys.modules.values())]
print(json.dumps({"handler": callable(getattr(module, sys.argv[2])), "files": [f for f in files if f]}))
"""


@pytest.mark.parametrize("function", sorted(HANDLERS))
def test_every_handler_imports_in_a_clean_interpreter(artifact, clean_python, function):
    code_dir = artifact / function
    module, attribute = entry_point(HANDLERS[function], code_dir)

    done = subprocess.run(
        [*clean_python.command, "-c", WHERE_MODULES_CAME_FROM, module, attribute],
        env=clean_python.environment(code_dir),
        cwd=code_dir,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["handler"] is True
    # The function's code, the layer, the runtime's boto3 and the standard library: no site-packages
    allowed = (str(code_dir), str(clean_python.layer), str(clean_python.runtime), sysconfig.get_path("stdlib"))
    assert [path for path in found["files"] if "site-packages" in path or not path.startswith(allowed)] == []


# --- Each handler, driven with its sample event -----------------------------------------------


def test_the_api_lists_the_accounts_keys(invoke, aws):
    key, admin_secret = create_key(
        DynamoKeyStore(aws.resources["KeysTable"], client=aws.client("dynamodb")),
        ACCOUNT,
        "artifact admin",
        kind="admin",
    )
    request = event("api_get_keys.json")
    for name, value in {"Authorization": f"Bearer {admin_secret}", "Origin": CONSOLE_ORIGIN}.items():
        request["headers"][name] = value
        request["multiValueHeaders"][name] = [value]

    answer = invoke("ApiFunction", request)

    assert answer["statusCode"] == 200
    listed = {item["id"]: item for item in json.loads(answer["body"])["data"]}
    assert listed[key.key_id]["name"] == "artifact admin"
    assert listed[key.key_id]["kind"] == "admin"
    assert answer["multiValueHeaders"]["Access-Control-Allow-Origin"] == [CONSOLE_ORIGIN]


def test_the_aggregator_folds_the_stream_record_into_rollups(invoke, aws):
    sample = event("ledger_stream_insert.json")
    record = sample["Records"][0]["dynamodb"]["NewImage"]
    day = record["created_at"]["S"][:10]
    spent_before = balance_spent(aws, record["account_id"]["S"])

    answer = invoke("AggregatorFunction", sample)

    assert answer == {"batchItemFailures": []}
    rollups = DynamoRollupStore(aws.resources["RollupsTable"], client=aws.client("dynamodb"))
    (total,) = rollups.query(record["account_id"]["S"], "day", "total", day, day)
    assert total["requests"] == 1
    assert total["cost_usd"] == Decimal(record["cost_usd"]["N"])
    assert total["input_tokens"] == int(record["input_tokens"]["N"])
    (by_model,) = rollups.query(record["account_id"]["S"], "day", "model", day, day)
    assert by_model["value"] == record["model"]["S"]
    # and the settlement the record carries is added to its account's balance
    assert balance_spent(aws, record["account_id"]["S"]) - spent_before == Decimal(record["cost_usd"]["N"])


def balance_spent(aws: LocalAws, account: str) -> Decimal:
    item = aws.client("dynamodb").get_item(
        TableName=aws.resources["KeysTable"], Key={"pk": {"S": f"ACCOUNT#{account}"}, "sk": {"S": "BALANCE"}}
    )
    return Decimal(item.get("Item", {}).get("spent_usd", {}).get("N", "0"))


def test_the_replay_writes_the_spilled_record_carrying_its_counters(invoke, aws):
    sample = event("sqs_ledger_spill.json")
    spilled = decode_settlement(sample["Records"][0]["body"])

    answer = invoke("LedgerReplayFunction", sample)

    assert answer == {"batchItemFailures": []}
    stored = DynamoLedgerStore(aws.resources["LedgerTable"], client=aws.client("dynamodb")).get(spilled["request_id"])
    assert stored is not None
    assert stored["cost_usd"] == spilled["cost_usd"]
    assert stored["cache_read_tokens"] == spilled["cache_read_tokens"]
    # the counters travel in the record, for the aggregator to add from the ledger's stream
    assert stored["counters"] == spilled["counters"] and stored["counters"]


def test_the_export_worker_writes_the_csv_and_marks_the_job_done(invoke, aws):
    # Given the spilled sample record in the ledger, and a requests export of its day
    sample = event("sqs_ledger_spill.json")
    record = decode_settlement(sample["Records"][0]["body"])
    DynamoLedgerStore(aws.resources["LedgerTable"], client=aws.client("dynamodb")).put(record)
    day = datetime.fromisoformat(record["created_at"]).replace(hour=0, minute=0, second=0, microsecond=0)
    window = Window(day, day + timedelta(days=1))
    job = new_job(record["account_id"], ExportCreate(kind="requests"), window, datetime.now(UTC))
    jobs = DynamoExportJobStore(aws.resources["ExportJobsTable"], client=aws.client("dynamodb"))
    jobs.create(job)
    message = event("sqs_export_job.json")
    message["Records"][0]["body"] = json.dumps({"job_id": job["job_id"]})

    # When the worker takes the job's message
    answer = invoke("ExportFunction", message)

    # Then the job is done and its CSV, in the bucket, holds the record
    assert answer == {"batchItemFailures": []}
    finished = jobs.get(job["job_id"])
    assert finished is not None
    assert (finished["status"], finished["rows"]) == ("succeeded", 1)
    body = aws.client("s3").get_object(Bucket=aws.resources["ExportBucket"], Key=job["object_key"])["Body"].read()
    (row,) = csv.DictReader(io.StringIO(body.decode()))
    assert row["request_id"] == record["request_id"]
    assert Decimal(row["cost_usd"]) == record["cost_usd"]


# --- The proxy, started by run.sh -------------------------------------------------------------


@pytest.fixture
def proxy(artifact, clean_python, aws, upstream) -> Iterator[str]:
    """run.sh from the built ProxyFunction directory, as the Web Adapter starts it; its base URL.

    run.sh puts Lambda's /opt/python (absent here) in front of PYTHONPATH, which already holds the
    layer built for this machine and the runtime's boto3, in the same order; its `python3` is the
    clean interpreter."""
    code_dir = artifact / "ProxyFunction"
    port = free_port()
    environment = (
        clean_python.environment(code_dir)
        | lambda_environment("ProxyFunction", code_dir, aws, upstream)
        | {"PORT": str(port)}
    )
    server = subprocess.Popen(["bash", HANDLERS["ProxyFunction"]], cwd=code_dir, env=environment)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(base, server)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=10)


def wait_until_healthy(base: str, server: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    """What the Web Adapter does before it hands the function any invoke."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert server.poll() is None, "run.sh exited before the app was ready"
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"no healthy /healthz within {timeout_s} s")


def test_the_proxy_answers_a_chat_completion_and_records_it(proxy, aws):
    key, secret = create_key(
        DynamoKeyStore(aws.resources["KeysTable"], client=aws.client("dynamodb")), "acct_proxy", "artifact proxy"
    )

    response = httpx.post(
        f"{proxy}/v1/chat/completions",
        json={"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello."}]},
        headers={"authorization": f"Bearer {secret}"},
        timeout=30,
    )

    # The fake upstream answers only the key kept in Secrets Manager
    assert response.status_code == 200, response.text
    completion = response.json()
    assert completion["choices"][0]["message"]["content"]
    record = DynamoLedgerStore(aws.resources["LedgerTable"], client=aws.client("dynamodb")).get(completion["id"])
    assert record is not None
    assert (record["key_id"], record["status"], record["model"]) == (key.key_id, "ok", "openai/gpt-4o-mini")
    assert record["output_tokens"] == completion["usage"]["completion_tokens"]
    assert record["cost_usd"] == Decimal(str(completion["usage"]["cost"]))


# --- Bytecode: shipped when the build's Python is the runtime's, and loaded as zipped -----------

LOADED_CODE = re.compile(r"^# code object from '?([^']+)'?$", re.MULTILINE)


def loaded_code(clean_python: CleanPython, code_dir: Path, modules: list[str], *, bytecode: bool) -> list[str]:
    """The file each module's code came from, as `python -v` tells, importing `modules`."""
    done = subprocess.run(
        [*clean_python.command, "-v", "-c", "; ".join(f"import {module}" for module in modules)],
        env=clean_python.environment(code_dir, bytecode=bytecode),
        cwd=code_dir,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return LOADED_CODE.findall(done.stderr)


def test_a_build_by_the_runtimes_python_ships_bytecode_that_is_used_as_sam_deploy_zips_it(clean_python, tmp_path):
    # Given the proxy built as for a runtime of this Python's version, its files dated as `sam
    # deploy` zips them (1980-01-01), which no timestamp .pyc would match
    code_dir = build_function_code("ProxyFunction", tmp_path / "ProxyFunction")
    for path in [*code_dir.rglob("*"), *clean_python.layer.rglob("*.py")]:
        os.utime(path, (315_532_800, 315_532_800))
    modules = start_modules(HANDLERS["ProxyFunction"], code_dir)

    # When the cold start's imports run, Then no module of the function or its layer is compiled
    loaded = loaded_code(clean_python, code_dir, modules, bytecode=True)
    ours = [path for path in loaded if path.startswith((str(code_dir), str(clean_python.layer)))]
    assert any(path.startswith(str(code_dir / "meterway" / "proxy")) for path in ours)
    assert [path for path in ours if not path.endswith(f".cpython-{HOST_PYTHON.replace('.', '')}.pyc")] == []


def test_a_build_by_another_python_ships_no_bytecode_and_says_so(tmp_path):
    other = f"{sys.version_info.major}.{sys.version_info.minor + 1}"

    built = subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT / "functions"), "build-ProxyFunction"],
        env={**os.environ, "ARTIFACTS_DIR": str(tmp_path), "PYTHON": sys.executable, "RUNTIME_PYTHON_VERSION": other},
        capture_output=True,
        text=True,
        check=True,
    )

    assert f"the build's Python is not {other}" in built.stdout
    assert sources_of(tmp_path / "meterway") and not bytecode_of(tmp_path / "meterway")


def test_measuring_imports_leaves_the_artifact_as_built(artifact, clean_python):
    # The build report times imports from the build that `sam deploy` uploads, and writes nothing
    code_dir = artifact / "AggregatorFunction"
    before = shipped_files(code_dir)
    modules = start_modules(HANDLERS["AggregatorFunction"], code_dir)

    wall, cpu = clean_python.import_seconds(code_dir, modules, bytecode=False)

    assert wall > 0 and cpu > 0
    assert shipped_files(code_dir) == before
    assert not list(clean_python.layer_sources.rglob("*.pyc"))
    # and without bytecode, every module of the function and its layer is compiled from its source
    loaded = loaded_code(clean_python, code_dir, modules, bytecode=False)
    assert [path for path in loaded if path.startswith((str(code_dir), str(clean_python.layer_sources)))]
    assert [path for path in loaded if path.endswith(".pyc") and path.startswith(str(code_dir))] == []
    assert [path for path in loaded if path.endswith(".pyc") and path.startswith(str(clean_python.layer_sources))] == []


def assert_bytecode_as_built(directory: Path) -> None:
    """Bytecode for every module exactly when the build's Python was the runtime's; else none."""
    if BUILT_BY_RUNTIMES_PYTHON:
        assert bytecode_of(directory) == sources_of(directory)
    else:
        assert not list(directory.rglob("*.pyc"))


def sources_of(directory: Path) -> set[str]:
    """The modules under `directory`, by their path without the suffix."""
    return {str(path.relative_to(directory).with_suffix("")) for path in directory.rglob("*.py")}


def bytecode_of(directory: Path) -> set[str]:
    """The modules under `directory` whose unchecked-hash bytecode for this Python is beside them."""
    tag = sys.implementation.cache_tag
    found = set()
    for path in directory.rglob(f"__pycache__/*.{tag}.pyc"):
        flags = int.from_bytes(path.read_bytes()[4:8], "little")
        if flags == 0b01:  # hash-based, not checked against the source (PEP 552)
            found.add(str(path.parent.parent.relative_to(directory) / path.name.removesuffix(f".{tag}.pyc")))
    return found
