"""template.yaml, checked after the same SAM transform CloudFormation applies on deploy."""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import tomllib
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import lint_file

from devstack.aws_resources import APP_ENV_VARS, load_template
from devstack.gateway import CONSOLE_CSP
from meterway.core.settings import FUNCTION_SETTINGS, fields_of
from scripts.built_artifact import WHEEL_CPU
from tests.sam_template import transformed_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"

LWA_LAYER = "arn:aws:lambda:${AWS::Region}:753240598075:layer:LambdaAdapterLayerArm64:25"
BASIC_EXECUTION = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
XRAY_WRITE = "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess"
SQS_POLLER = "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole"
STREAM_POLLER = "arn:aws:iam::aws:policy/service-role/AWSLambdaDynamoDBExecutionRole"
FUNCTIONS = tuple(
    logical_id
    for logical_id, resource in load_template(TEMPLATE)["Resources"].items()
    if resource["Type"] == "AWS::Serverless::Function"
)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(TEMPLATE)


@pytest.fixture(scope="module")
def resources() -> dict[str, Any]:
    """The CloudFormation resources SAM generates, as `sam package` + deploy would."""
    return transformed_template(TEMPLATE)["Resources"]


def _of_type(resources: dict[str, Any], resource_type: str) -> dict[str, Any]:
    return {lid: res for lid, res in resources.items() if res["Type"] == resource_type}


def _integration(resources: dict[str, Any], path: str) -> dict[str, Any]:
    (api,) = _of_type(resources, "AWS::ApiGateway::RestApi").values()
    return api["Properties"]["Body"]["paths"][path]["x-amazon-apigateway-any-method"]["x-amazon-apigateway-integration"]


def _env(resources: dict[str, Any], function: str) -> dict[str, Any]:
    return resources[function]["Properties"]["Environment"]["Variables"]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _arn(logical_id: str) -> dict[str, Any]:
    return {"Fn::GetAtt": [logical_id, "Arn"]}


def _event_source_mapping(resources: dict[str, Any], function: str) -> dict[str, Any]:
    (mapping,) = (
        res["Properties"]
        for res in _of_type(resources, "AWS::Lambda::EventSourceMapping").values()
        if res["Properties"]["FunctionName"] == {"Ref": function}
    )
    return mapping


# --- API routes -------------------------------------------------------------------------------


def test_v1_routes_stream_from_the_proxy_function(resources):
    # Given the transformed REST API, When a client calls /v1/..., Then API Gateway invokes the
    # proxy with InvokeWithResponseStream and passes chunks on as they arrive.
    integration = _integration(resources, "/v1/{proxy+}")

    assert integration["type"] == "aws_proxy"
    assert integration["httpMethod"] == "POST"
    assert integration["responseTransferMode"] == "STREAM"
    assert integration["timeoutInMillis"] == 900_000
    assert integration["uri"]["Fn::Sub"] == (
        "arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2021-11-15/functions/"
        "${ProxyFunction.Arn}/response-streaming-invocations"
    )


@pytest.mark.parametrize("path", ["/api", "/api/{proxy+}"])
def test_api_routes_go_to_the_api_function_buffered(resources, path):
    integration = _integration(resources, path)

    assert integration["type"] == "aws_proxy"
    assert integration["httpMethod"] == "POST"
    assert integration.get("responseTransferMode", "BUFFERED") == "BUFFERED"
    assert integration["uri"]["Fn::Sub"] == (
        "arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/"
        "${ApiFunction.Arn}/invocations"
    )


def test_only_the_public_routes_are_exposed(resources):
    # The proxy's /healthz readiness path is for the Web Adapter only.
    (api,) = _of_type(resources, "AWS::ApiGateway::RestApi").values()

    assert set(api["Properties"]["Body"]["paths"]) == {"/v1/{proxy+}", "/api", "/api/{proxy+}"}
    assert api["Properties"]["EndpointConfiguration"] == {"Types": ["REGIONAL"]}


def test_stage_is_named_by_parameter_and_traced(resources, template):
    (stage,) = _of_type(resources, "AWS::ApiGateway::Stage").values()

    assert stage["Properties"]["StageName"] == {"Ref": "StageName"}
    assert stage["Properties"]["TracingEnabled"] is True
    assert template["Parameters"]["StageName"]["Default"] == "prod"


def test_inference_traces_are_sampled_at_the_parameters_rate_on_this_apis_stage(resources, template):
    # API Gateway makes the sampling decision and the proxy follows it: the rule must name this
    # stack's API and stage and the inference route, or the default rule (every request of a quiet
    # API) applies instead.
    (rule,) = _of_type(resources, "AWS::XRay::SamplingRule").values()
    sampling = rule["Properties"]["SamplingRule"]
    (api_id,) = _of_type(resources, "AWS::ApiGateway::RestApi")
    (stage,) = _of_type(resources, "AWS::ApiGateway::Stage").values()
    routes = resources[api_id]["Properties"]["Body"]["paths"]

    arn = sampling["ResourceARN"]["Fn::Sub"]
    assert arn.endswith(f"/restapis/${{{api_id}}}/stages/${{{stage['Properties']['StageName']['Ref']}}}")
    assert sampling["URLPath"].removesuffix("*") + "{proxy+}" in routes
    assert sampling["ReservoirSize"] == 0
    assert sampling["FixedRate"] == {"Ref": "InferenceTraceRate"}
    rate = template["Parameters"]["InferenceTraceRate"]
    assert 0 <= rate["Default"] <= rate["MaxValue"] <= 1
    assert len(sampling["RuleName"]["Fn::Sub"].replace(f"${{{api_id}}}", "x" * 10)) <= 32


@pytest.mark.parametrize(("function", "route"), [("ProxyFunction", "/v1/*"), ("ApiFunction", "/api*")])
def test_api_gateway_may_invoke_only_its_own_routes(resources, function, route):
    (permission,) = (
        res["Properties"]
        for res in _of_type(resources, "AWS::Lambda::Permission").values()
        if res["Properties"]["FunctionName"] == _arn(function)
    )

    assert permission["Action"] == "lambda:InvokeFunction"
    assert permission["Principal"] == "apigateway.amazonaws.com"
    assert permission["SourceArn"] == {
        "Fn::Sub": "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${MeterwayApi}/*/*" + route
    }


# --- Functions --------------------------------------------------------------------------------


def test_proxy_function_runs_under_the_web_adapter_in_streaming_mode(resources):
    props = resources["ProxyFunction"]["Properties"]
    env = _env(resources, "ProxyFunction")

    assert props["Handler"] == "run.sh"
    assert props["Timeout"] == 900
    assert props["Architectures"] == ["arm64"]
    assert props["Runtime"] == "python3.12"
    assert env["AWS_LAMBDA_EXEC_WRAPPER"] == "/opt/bootstrap"
    assert env["AWS_LWA_INVOKE_MODE"] == "response_stream"
    assert env["PORT"] == "8000"
    assert env["AWS_LWA_READINESS_CHECK_PATH"] == "/healthz"
    assert env["MW_UPSTREAM_SECRET_ARN"] == {"Ref": "UpstreamSecret"}
    assert env["MW_OPENAI_BASE_URL"] == {"Ref": "OpenAIBaseUrl"}
    assert env["MW_ANTHROPIC_BASE_URL"] == {"Ref": "AnthropicBaseUrl"}
    assert env["MW_SPILL_QUEUE_URL"] == {"Ref": "LedgerSpillQueue"}
    layers = props["Layers"]
    assert {"Fn::Sub": LWA_LAYER} in layers
    assert len(layers) == 2
    assert any(layer.get("Ref", "").startswith("DependenciesLayer") for layer in layers)


def test_run_sh_starts_the_proxy_app_on_the_adapter_port():
    run_sh = ROOT / "functions" / "run.sh"
    text = run_sh.read_text()

    assert os.access(run_sh, os.X_OK)
    assert text.startswith("#!/bin/bash\n")
    assert re.search(
        r'^exec python3 -m uvicorn --host 127\.0\.0\.1 --port "\$\{PORT:-8000\}" --http httptools --no-access-log '
        r"meterway\.proxy\.handlers\.app:app$",
        text,
        re.MULTILINE,
    )


@pytest.mark.parametrize(
    ("function", "handler", "timeout"),
    [
        ("ApiFunction", "meterway.management_api.handler.handler", 29),
        ("LedgerReplayFunction", "meterway.ledger.handlers.ledger_replay.handler", 30),
        ("AggregatorFunction", "meterway.analytics.handlers.aggregator.handler", 60),
        ("ExportFunction", "meterway.exports.handlers.export_worker.handler", 900),
    ],
)
def test_python_handlers(resources, function, handler, timeout):
    props = resources[function]["Properties"]

    assert props["Handler"] == handler
    # Lambda's own lookup: the module imports and names a callable.
    module, _, name = handler.rpartition(".")
    assert callable(getattr(importlib.import_module(module), name))
    assert props["Timeout"] == timeout
    assert props["Architectures"] == ["arm64"]
    assert props["Layers"] == [{"Ref": props["Layers"][0]["Ref"]}]
    assert props["Layers"][0]["Ref"].startswith("DependenciesLayer")


@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_function_is_given_each_setting_its_code_requires(resources, function):
    # A required setting has no default: a function started without it would refuse to run.
    required = {
        f"MW_{name.upper()}" for name, field in fields_of(FUNCTION_SETTINGS[function]).items() if field.required
    }
    assert required, f"{function} reads no table, queue or bucket?"
    assert required <= set(_env(resources, function))


@pytest.mark.parametrize("function", FUNCTIONS)
def test_no_function_is_given_a_setting_its_code_does_not_read(resources, function):
    read = {f"MW_{name.upper()}" for name in fields_of(FUNCTION_SETTINGS[function])}
    given = {name for name in _env(resources, function) if name.startswith("MW_")}
    assert given - read == set()


def test_the_proxy_knows_its_functions_timeout_and_each_wait_ends_before_it(template, resources):
    # The proxy ends a stream still running MW_SETTLE_MARGIN_S before MW_FUNCTION_TIMEOUT_S, so that
    # Lambda never stops it before its record is written: that only holds if the two agree.
    props = resources["ProxyFunction"]["Properties"]
    env = _env(resources, "ProxyFunction")
    settings = fields_of(FUNCTION_SETTINGS["ProxyFunction"])
    assert float(env["MW_FUNCTION_TIMEOUT_S"]) == props["Timeout"]
    margin = settings["settle_margin_s"].default
    # Whatever a deployer chooses, a wait on a provider can end in time to settle
    for parameter in ("UpstreamFirstByteTimeoutSeconds", "UpstreamIdleTimeoutSeconds"):
        assert template["Parameters"][parameter]["MaxValue"] <= props["Timeout"] - margin - 10


@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_function_gets_the_shared_configuration(resources, function):
    props = resources[function]["Properties"]
    env = _env(resources, function)

    assert props["TracingConfig"] == {"Mode": "Active"}
    # The aggregator only does arithmetic and DynamoDB writes. The proxy is sized by its measured
    # peak RSS (bench/gateway_cost.py): Lambda bills each stream's whole length at this size. An
    # export worker is bound by CPU: a whole vCPU (1,769 MB), and a second one when it makes its
    # rows in child processes beside its own. The rest keep the global size.
    if function == "ExportFunction":
        children = int(env.get("MW_EXPORT_ROW_PROCESSES", 0))
        assert props["MemorySize"] >= 1769 * (2 if children else 1)
    else:
        sizes = {"AggregatorFunction": 512, "ProxyFunction": 128}
        assert props["MemorySize"] == sizes.get(function, 1024)
    assert env["POWERTOOLS_SERVICE_NAME"] == "meterway"
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "Meterway"
    assert env["POWERTOOLS_LOG_LEVEL"] == "INFO"
    # A setting names the same table, queue or bucket in AWS as in the local stack.
    for variable, logical_id in APP_ENV_VARS.items():
        if variable in env:
            assert env[variable] == {"Ref": logical_id}, variable


def _build_commands(code_dir: str, logical_id: str) -> str:
    """What `sam build` would run for the resource: its Makefile target, printed by `make -n`."""
    done = subprocess.run(
        ["make", "-n", "-C", str(ROOT / code_dir), f"build-{logical_id}", "ARTIFACTS_DIR=/artifacts"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_function_is_built_by_its_makefile_target(template, function):
    # Given a function of the template, Then sam build finds its target in functions/Makefile (a
    # function without one fails the build), and the target ships the meterway package
    assert template["Resources"][function]["Metadata"] == {"BuildMethod": "makefile"}
    assert "meterway" in _build_commands("functions", function)


def test_dependencies_layer_is_built_for_the_functions_runtime_and_architecture(template, resources):
    (layer,) = _of_type(resources, "AWS::Lambda::LayerVersion").values()
    source = template["Resources"]["DependenciesLayer"]
    runtime = template["Globals"]["Function"]["Runtime"]
    (architecture,) = template["Globals"]["Function"]["Architectures"]

    assert layer["Properties"]["CompatibleRuntimes"] == [runtime]
    assert layer["Properties"]["CompatibleArchitectures"] == [architecture]
    assert source["Properties"]["ContentUri"] == "layers/"
    assert source["Metadata"] == {"BuildMethod": "makefile", "BuildArchitecture": architecture}
    # pip fetches wheels for Lambda's interpreter and CPU, whatever machine runs the build
    pip = _build_commands("layers", "DependenciesLayer")
    assert f"--python-version {runtime.removeprefix('python')}" in pip
    assert f"--platform manylinux2014_{WHEEL_CPU[architecture]}" in pip
    assert "--only-binary=:all:" in pip


def test_layer_requirements_cover_the_runtime_dependencies():
    # Given the dependencies the tests run with, Then the deployed layer installs the same pins
    # (boto3 excepted: the Lambda runtime ships it).
    def name(requirement: str) -> str:
        return re.split(r"[\[<>=!~ ;]", requirement, maxsplit=1)[0].lower()

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    lines = (ROOT / "layers" / "requirements.txt").read_text().splitlines()
    layer = [line.strip() for line in lines if line.strip() and not line.startswith("#")]

    assert {name(r) for r in project} - {"boto3"} == {name(r) for r in layer}
    assert all("==" in requirement for requirement in layer)
    pinned = {r for r in project if "==" in r}
    assert pinned <= set(layer)
    for requirement in layer:
        assert requirement.split("==")[1] == version(name(requirement)), requirement


# --- IAM --------------------------------------------------------------------------------------
# What each role grants is checked against what the code does in
# tests/integration/test_iam_from_code.py; here, only the rules no code path can show.


def _role_actions(role: dict[str, Any]) -> set[str]:
    return {
        action
        for policy in role["Properties"].get("Policies", [])
        for statement in policy["PolicyDocument"]["Statement"]
        for action in _as_list(statement["Action"])
    }


def test_only_the_export_function_can_write_the_export_bucket(resources):
    # Given every role the stack creates, Then exactly one may put objects, and no role may
    # change the bucket itself (its policy, ACLs or lifecycle) or delete exports early.
    roles = _of_type(resources, "AWS::IAM::Role")
    writers = {logical_id for logical_id, role in roles.items() if "s3:PutObject" in _role_actions(role)}
    s3_actions = {action for role in roles.values() for action in _role_actions(role) if action.startswith("s3:")}

    assert writers == {"ExportFunctionRole"}
    assert s3_actions <= {"s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"}


@pytest.mark.parametrize(
    ("function", "managed"),
    [
        ("ProxyFunction", [BASIC_EXECUTION, XRAY_WRITE]),
        ("ApiFunction", [BASIC_EXECUTION, XRAY_WRITE]),
        # SAM attaches the SQS poller policy for the queue event source.
        ("LedgerReplayFunction", [BASIC_EXECUTION, XRAY_WRITE, SQS_POLLER]),
        # And the stream reader policy for the DynamoDB stream event source.
        ("AggregatorFunction", [BASIC_EXECUTION, XRAY_WRITE, STREAM_POLLER]),
        ("ExportFunction", [BASIC_EXECUTION, XRAY_WRITE, SQS_POLLER]),
    ],
)
def test_managed_policies_are_only_those_sam_adds(resources, function, managed):
    assert resources[f"{function}Role"]["Properties"]["ManagedPolicyArns"] == managed


def test_no_inline_policy_grants_on_every_resource(resources):
    for logical_id, role in _of_type(resources, "AWS::IAM::Role").items():
        for policy in role["Properties"].get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                targets = _as_list(statement["Resource"])
                assert "*" not in targets, logical_id
                assert "*" not in _as_list(statement["Action"]), logical_id


# --- Queues -----------------------------------------------------------------------------------


def test_replay_function_drains_the_spill_queue(resources):
    mapping = _event_source_mapping(resources, "LedgerReplayFunction")

    assert mapping["EventSourceArn"] == _arn("LedgerSpillQueue")
    assert mapping["BatchSize"] == 10
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_only_the_three_event_sources_exist(resources):
    mappings = _of_type(resources, "AWS::Lambda::EventSourceMapping").values()

    assert sorted(m["Properties"]["FunctionName"]["Ref"] for m in mappings) == [
        "AggregatorFunction",
        "ExportFunction",
        "LedgerReplayFunction",
    ]


def test_spill_queue_parks_poison_records_in_the_dead_letter_queue(resources):
    queue = resources["LedgerSpillQueue"]["Properties"]
    dlq = resources["LedgerSpillDeadLetterQueue"]["Properties"]

    assert queue["SqsManagedSseEnabled"] is True
    assert queue["VisibilityTimeout"] == 180
    assert queue["MessageRetentionPeriod"] == 14 * 24 * 3600
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": _arn("LedgerSpillDeadLetterQueue"),
        "maxReceiveCount": 5,
    }
    assert dlq["SqsManagedSseEnabled"] is True
    assert dlq["MessageRetentionPeriod"] == 14 * 24 * 3600


def test_export_function_takes_one_job_at_a_time_from_the_export_queue(resources):
    mapping = _event_source_mapping(resources, "ExportFunction")

    assert mapping["EventSourceArn"] == _arn("ExportQueue")
    assert mapping["BatchSize"] == 1
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_export_queue_outlasts_the_worker_and_parks_failed_jobs(resources):
    # Given the export queue, Then a job stays hidden for six function timeouts while it runs,
    # and after three failed attempts it moves to the dead-letter queue instead of looping.
    queue = resources["ExportQueue"]["Properties"]
    dlq = resources["ExportDeadLetterQueue"]["Properties"]
    timeout = resources["ExportFunction"]["Properties"]["Timeout"]

    assert queue["SqsManagedSseEnabled"] is True
    assert queue["VisibilityTimeout"] == 6 * timeout == 5400
    assert queue["RedrivePolicy"] == {"deadLetterTargetArn": _arn("ExportDeadLetterQueue"), "maxReceiveCount": 3}
    assert queue["MessageRetentionPeriod"] > 3 * queue["VisibilityTimeout"]
    assert dlq["SqsManagedSseEnabled"] is True
    assert dlq["MessageRetentionPeriod"] == 14 * 24 * 3600


def _dead_letter_queues(resources: dict[str, Any]) -> set[str]:
    """Queues that park what failed: a queue's redrive target or a stream mapping's on-failure destination."""
    targets = [
        res["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]
        for res in _of_type(resources, "AWS::SQS::Queue").values()
        if "RedrivePolicy" in res["Properties"]
    ] + [
        mapping["Properties"]["DestinationConfig"]["OnFailure"]["Destination"]
        for mapping in _of_type(resources, "AWS::Lambda::EventSourceMapping").values()
        if "DestinationConfig" in mapping["Properties"]
    ]
    return {target["Fn::GetAtt"][0] for target in targets}


def test_every_dead_letter_queue_keeps_failures_two_weeks_and_raises_its_own_alarm(resources):
    queues = _dead_letter_queues(resources)
    alarms = {
        alarm["Properties"]["Dimensions"][0]["Value"]["Fn::GetAtt"][0]: alarm["Properties"]
        for alarm in _of_type(resources, "AWS::CloudWatch::Alarm").values()
        if alarm["Properties"]["Namespace"] == "AWS/SQS"
    }

    assert len(queues) == 3 and set(alarms) == queues
    for queue in queues:
        assert resources[queue]["Properties"] == {
            "SqsManagedSseEnabled": True,
            "MessageRetentionPeriod": 14 * 24 * 3600,
        }
        alarm = alarms[queue]
        assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
        assert (alarm["Statistic"], alarm["ComparisonOperator"], alarm["Threshold"]) == (
            "Maximum",
            "GreaterThanThreshold",
            0,
        )
        assert alarm["TreatMissingData"] == "notBreaching"
    # Each alarm says what its parked messages mean for users.
    assert len({alarm["AlarmDescription"] for alarm in alarms.values()}) == 3


# --- Ledger stream ----------------------------------------------------------------------------


def test_aggregator_reads_every_new_ledger_record_from_the_stream(resources):
    # Given the aggregator's event source mapping
    mapping = _event_source_mapping(resources, "AggregatorFunction")

    # Then it reads the ledger's stream from the oldest record the stream still holds, in batches
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": ["LedgerTable", "StreamArn"]}
    assert mapping["StartingPosition"] == "TRIM_HORIZON"
    assert mapping["BatchSize"] == 100
    assert mapping["MaximumBatchingWindowInSeconds"] == 1
    # And only inserts reach it: a TTL deletion or a rewrite never changes a rollup
    assert [json.loads(f["Pattern"]) for f in mapping["FilterCriteria"]["Filters"]] == [{"eventName": ["INSERT"]}]


def test_aggregator_retries_from_the_failed_record_and_reports_what_it_gives_up(resources):
    mapping = _event_source_mapping(resources, "AggregatorFunction")

    # A partial failure retries from the failed record; a crash bisects to isolate a poison record
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BisectBatchOnFunctionError"] is True
    assert mapping["MaximumRetryAttempts"] == 10
    # Given up before the stream's 24-hour retention drops the record, never silently
    assert 0 < mapping["MaximumRecordAgeInSeconds"] < 24 * 3600
    assert mapping["DestinationConfig"] == {"OnFailure": {"Destination": _arn("AggregatorDeadLetterQueue")}}
    dlq = resources["AggregatorDeadLetterQueue"]["Properties"]
    assert dlq["SqsManagedSseEnabled"] is True
    assert dlq["MessageRetentionPeriod"] == 14 * 24 * 3600


# --- Tables, secret, logs ---------------------------------------------------------------------


def _table(resources: dict[str, Any], logical_id: str) -> dict[str, Any]:
    table = resources[logical_id]
    assert table["DeletionPolicy"] == "Retain"
    assert table["UpdateReplacePolicy"] == "Retain"
    props = table["Properties"]
    assert "TableName" not in props
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["SSESpecification"] == {"SSEEnabled": True}
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    return props


def _keys(schema: list[dict[str, str]]) -> list[tuple[str, str]]:
    return [(key["AttributeName"], key["KeyType"]) for key in schema]


def _gsis(props: dict[str, Any]) -> dict[str, tuple[list[tuple[str, str]], str]]:
    return {
        gsi["IndexName"]: (_keys(gsi["KeySchema"]), gsi["Projection"]["ProjectionType"])
        for gsi in props["GlobalSecondaryIndexes"]
    }


def test_keys_table_schema(resources):
    props = _table(resources, "KeysTable")

    assert _keys(props["KeySchema"]) == [("pk", "HASH"), ("sk", "RANGE")]
    assert _gsis(props) == {"ByAccount": ([("gsi1pk", "HASH"), ("gsi1sk", "RANGE")], "ALL")}
    assert {a["AttributeName"]: a["AttributeType"] for a in props["AttributeDefinitions"]} == dict.fromkeys(
        ("pk", "sk", "gsi1pk", "gsi1sk"), "S"
    )
    assert "StreamSpecification" not in props


def test_ledger_table_schema_and_stream(resources):
    props = _table(resources, "LedgerTable")

    assert _keys(props["KeySchema"]) == [("request_id", "HASH")]
    assert _gsis(props) == {
        "ByAccountTime": ([("account_id", "HASH"), ("created_sk", "RANGE")], "ALL"),
        "ByKeyTime": ([("key_id", "HASH"), ("created_sk", "RANGE")], "ALL"),
    }
    assert {a["AttributeName"]: a["AttributeType"] for a in props["AttributeDefinitions"]} == dict.fromkeys(
        ("request_id", "account_id", "key_id", "created_sk"), "S"
    )
    assert props["StreamSpecification"] == {"StreamViewType": "NEW_IMAGE"}


def test_rollups_table_schema(resources):
    props = _table(resources, "RollupsTable")

    assert _keys(props["KeySchema"]) == [("pk", "HASH"), ("sk", "RANGE")]
    assert {a["AttributeName"]: a["AttributeType"] for a in props["AttributeDefinitions"]} == {"pk": "S", "sk": "S"}
    assert "GlobalSecondaryIndexes" not in props
    assert "LocalSecondaryIndexes" not in props
    assert "StreamSpecification" not in props


def test_export_jobs_table_schema(resources):
    props = _table(resources, "ExportJobsTable")

    assert _keys(props["KeySchema"]) == [("job_id", "HASH")]
    assert props["AttributeDefinitions"] == [{"AttributeName": "job_id", "AttributeType": "S"}]
    assert "GlobalSecondaryIndexes" not in props
    assert "StreamSpecification" not in props


# --- Export bucket ----------------------------------------------------------------------------


@pytest.mark.parametrize("bucket_id", ["ExportBucket", "ConsoleBucket"])
def test_buckets_are_private_and_encrypted(resources, bucket_id):
    bucket = resources[bucket_id]
    props = bucket["Properties"]

    # No public access of any kind, no ACLs, SSE-S3 with a bucket key, a generated name; nobody
    # reads either bucket directly (presigned URLs for exports, CloudFront for the console)
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert props["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    assert props["BucketEncryption"] == {
        "ServerSideEncryptionConfiguration": [
            {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}, "BucketKeyEnabled": True}
        ]
    }
    assert "BucketName" not in props
    assert "AccessControl" not in props
    assert "WebsiteConfiguration" not in props
    # Temporary exports and a rebuildable console: neither bucket is kept when the stack goes
    assert bucket["DeletionPolicy"] == "Delete"
    assert bucket["UpdateReplacePolicy"] == "Delete"


def test_exports_expire_after_a_week_and_stray_uploads_after_a_day(resources, template):
    (rule,) = resources["ExportBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]

    assert rule["Status"] == "Enabled"
    assert rule["Prefix"] == "exports/"
    assert rule["ExpirationInDays"] == 7
    assert rule["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    # A presigned URL never outlives the file it points to
    assert template["Parameters"]["ExportUrlTtlSeconds"]["MaxValue"] <= 7 * 24 * 3600


def _deny_insecure_transport(bucket: str) -> dict[str, Any]:
    return {
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [_arn(bucket), {"Fn::Sub": f"${{{bucket}.Arn}}/*"}],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }


def test_export_bucket_refuses_plain_http(resources):
    policy = resources["ExportBucketPolicy"]["Properties"]

    assert policy["Bucket"] == {"Ref": "ExportBucket"}
    assert policy["PolicyDocument"]["Statement"] == [_deny_insecure_transport("ExportBucket")]


def test_every_bucket_has_its_own_policy(resources):
    policies = _of_type(resources, "AWS::S3::BucketPolicy").values()

    assert sorted(policy["Properties"]["Bucket"]["Ref"] for policy in policies) == ["ConsoleBucket", "ExportBucket"]


# --- Console hosting --------------------------------------------------------------------------

DISTRIBUTION_ARN = "arn:${AWS::Partition}:cloudfront::${AWS::AccountId}:distribution/${ConsoleDistribution}"
CACHING_OPTIMIZED = "658327ea-f89d-4fab-a63d-7e88639e58f6"
CONSOLE_ORIGIN = {
    "Fn::If": ["HasConsoleOrigin", {"Ref": "ConsoleOrigin"}, {"Fn::Sub": "https://${ConsoleDistribution.DomainName}"}]
}


def _distribution(resources: dict[str, Any]) -> dict[str, Any]:
    (distribution,) = _of_type(resources, "AWS::CloudFront::Distribution").values()
    config: dict[str, Any] = distribution["Properties"]["DistributionConfig"]
    return config


def test_only_the_console_distribution_may_read_the_console_bucket(resources):
    policy = resources["ConsoleBucketPolicy"]["Properties"]
    statements = policy["PolicyDocument"]["Statement"]
    allows = [statement for statement in statements if statement["Effect"] == "Allow"]

    # Given the bucket's policy, Then CloudFront may read objects, and only on behalf of this
    # stack's distribution: another account's distribution pointed at the bucket gets nothing
    assert policy["Bucket"] == {"Ref": "ConsoleBucket"}
    assert allows == [
        {
            "Sid": "ConsoleDistributionReads",
            "Effect": "Allow",
            "Principal": {"Service": "cloudfront.amazonaws.com"},
            "Action": "s3:GetObject",
            "Resource": {"Fn::Sub": "${ConsoleBucket.Arn}/*"},
            "Condition": {"StringEquals": {"AWS:SourceArn": {"Fn::Sub": DISTRIBUTION_ARN}}},
        }
    ]
    # And, like the export bucket, nothing travels over plain HTTP
    assert _deny_insecure_transport("ConsoleBucket") in statements
    assert len(statements) == 2


def test_console_distribution_reads_the_bucket_through_its_origin_access_control(resources):
    config = _distribution(resources)
    (origin,) = config["Origins"]
    oac = resources["ConsoleOriginAccessControl"]["Properties"]["OriginAccessControlConfig"]

    assert origin["DomainName"] == {"Fn::GetAtt": ["ConsoleBucket", "RegionalDomainName"]}
    assert origin["OriginAccessControlId"] == {"Fn::GetAtt": ["ConsoleOriginAccessControl", "Id"]}
    # Empty: signed by the origin access control, not a legacy origin access identity
    assert origin["S3OriginConfig"] == {"OriginAccessIdentity": ""}
    assert (oac["OriginAccessControlOriginType"], oac["SigningBehavior"], oac["SigningProtocol"]) == (
        "s3",
        "always",
        "sigv4",
    )


def test_console_distribution_serves_the_app_over_https(resources):
    config = _distribution(resources)
    behavior = config["DefaultCacheBehavior"]

    assert config["Enabled"] is True
    assert config["DefaultRootObject"] == "index.html"
    assert config["HttpVersion"] == "http2and3"
    assert config["PriceClass"] == "PriceClass_100"
    assert config["Comment"]
    assert behavior["TargetOriginId"] == config["Origins"][0]["Id"]
    assert behavior["ViewerProtocolPolicy"] == "redirect-to-https"
    assert behavior["Compress"] is True
    assert behavior["CachePolicyId"] == CACHING_OPTIMIZED
    assert behavior["ResponseHeadersPolicyId"] == {"Ref": "ConsoleHeadersPolicy"}
    # Read-only: the console is static files
    assert set(behavior["AllowedMethods"]) == {"GET", "HEAD"}


def _directives(policy: str) -> dict[str, str]:
    return {part.split(" ", 1)[0]: part.split(" ", 1)[1] for part in (p.strip() for p in policy.split(";")) if part}


def test_console_headers_forbid_foreign_scripts_and_match_the_local_stack(resources):
    # Given the console's response headers policy on CloudFront
    config = resources["ConsoleHeadersPolicy"]["Properties"]["ResponseHeadersPolicyConfig"]["SecurityHeadersConfig"]
    policy = _directives(config["ContentSecurityPolicy"]["ContentSecurityPolicy"]["Fn::Sub"])
    # Then scripts, styles and everything else come from the console itself, and it calls only
    # itself and an execute-api host of the stack's region
    assert policy["default-src"] == "'self'"
    assert policy["object-src"] == "'none'"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["connect-src"] == "'self' https://*.execute-api.${AWS::Region}.${AWS::URLSuffix}"
    assert "script-src" not in policy and "style-src" not in policy
    # And the local stack (where the browser tests run) serves the same policy, less connect-src
    assert {k: v for k, v in policy.items() if k != "connect-src"} == _directives(CONSOLE_CSP)
    assert config["StrictTransportSecurity"]["AccessControlMaxAgeSec"] >= 31536000
    assert config["FrameOptions"]["FrameOption"] == "DENY"
    assert all(header["Override"] for header in config.values())


def test_console_routes_load_the_app(resources):
    # Given /usage, /activity or /keys typed or reloaded in the address bar, which are not files:
    # S3 answers 403 (CloudFront may not list the bucket) or 404, Then the app's page comes back
    responses = _distribution(resources)["CustomErrorResponses"]

    assert sorted((r["ErrorCode"], r["ResponseCode"], r["ResponsePagePath"]) for r in responses) == [
        (403, 200, "/index.html"),
        (404, 200, "/index.html"),
    ]


def test_api_allows_the_console_origin_only(resources, template):
    # Given no ConsoleOrigin, the origin is the stack's own distribution; given one, it is that one
    assert template["Conditions"]["HasConsoleOrigin"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "ConsoleOrigin"}, ""]}]}
    assert _env(resources, "ApiFunction")["MW_CONSOLE_ORIGIN"] == CONSOLE_ORIGIN
    assert "MW_CONSOLE_ORIGIN" not in _env(resources, "ProxyFunction")


@pytest.mark.parametrize("response_type", ["DEFAULT_4XX", "DEFAULT_5XX"])
def test_errors_api_gateway_raises_itself_are_readable_by_the_console(resources, response_type):
    # Throttling, an integration timeout or a crashed function never reach the resolver's CORS
    (api,) = _of_type(resources, "AWS::ApiGateway::RestApi").values()
    response = api["Properties"]["Body"]["x-amazon-apigateway-gateway-responses"][response_type]

    # A gateway response header value is a quoted literal
    assert response["responseParameters"] == {
        "gatewayresponse.header.Access-Control-Allow-Origin": {
            "Fn::If": [
                "HasConsoleOrigin",
                {"Fn::Sub": "'${ConsoleOrigin}'"},
                {"Fn::Sub": "'https://${ConsoleDistribution.DomainName}'"},
            ]
        }
    }


def test_a_new_console_origin_reaches_the_deployed_stage(template):
    # The gateway responses are part of the stage's deployment, whose hash ignores parameter values
    assert template["Resources"]["MeterwayApi"]["Properties"]["AlwaysDeploy"] is True


def test_preflight_requests_reach_the_api_function(resources):
    # Given the /api routes, Then OPTIONS is one of their methods (ANY) and no authorizer or API key
    # stands in front: the function answers the browser's credential-less preflight itself
    (api,) = _of_type(resources, "AWS::ApiGateway::RestApi").values()
    body = api["Properties"]["Body"]

    for path in ("/api", "/api/{proxy+}"):
        assert set(body["paths"][path]) == {"x-amazon-apigateway-any-method"}
        method = body["paths"][path]["x-amazon-apigateway-any-method"]
        assert "security" not in method
    assert "security" not in body
    assert "securitySchemes" not in body.get("components", {})
    assert not _of_type(resources, "AWS::ApiGateway::Authorizer")


@pytest.mark.parametrize("value", ["https://console.example.com", "http://localhost:5173", ""])
def test_console_origin_accepts_origins(template, value):
    assert re.fullmatch(template["Parameters"]["ConsoleOrigin"]["AllowedPattern"], value)


@pytest.mark.parametrize("value", ["https://console.example.com/", "https://example.com/console", "example.com", "*"])
def test_console_origin_refuses_what_no_browser_sends_as_an_origin(template, value):
    assert not re.fullmatch(template["Parameters"]["ConsoleOrigin"]["AllowedPattern"], value)


def test_upstream_secret_ships_placeholders_only(resources):
    secret = resources["UpstreamSecret"]["Properties"]

    assert json.loads(secret["SecretString"]) == {"openai_api_key": "", "anthropic_api_key": ""}
    assert "put-secret-value" in secret["Description"]
    assert "GenerateSecretString" not in secret


@pytest.mark.parametrize("function", FUNCTIONS)
def test_each_function_logs_to_a_group_with_retention(resources, template, function):
    (group,) = (
        res["Properties"]
        for res in _of_type(resources, "AWS::Logs::LogGroup").values()
        if res["Properties"]["LogGroupName"] == {"Fn::Sub": f"/aws/lambda/${{{function}}}"}
    )

    assert group["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    assert template["Parameters"]["LogRetentionDays"]["Default"] == 30


# --- Parameters, outputs, lint ----------------------------------------------------------------


@pytest.mark.parametrize("function", FUNCTIONS)
def test_a_parameters_default_is_the_default_of_the_setting_it_feeds(template, resources, function):
    # The local stack runs on the settings' defaults, a deployed stack on the parameters': a stack
    # deployed with no parameters must behave as the one the tests ran.
    fields = fields_of(FUNCTION_SETTINGS[function])
    for variable, value in _env(resources, function).items():
        parameter = value.get("Ref") if isinstance(value, dict) else None
        if variable.startswith("MW_") and parameter in template["Parameters"]:
            default = fields[variable.removeprefix("MW_").lower()].default
            assert template["Parameters"][parameter]["Default"] == default, (function, variable)


def test_outputs_give_clients_and_tests_what_they_need(template):
    outputs = template["Outputs"]

    assert set(outputs) >= {
        "ApiUrl",
        "OpenAIBaseUrl",
        "KeysTableName",
        "LedgerTableName",
        "RollupsTableName",
        "UpstreamSecretArn",
        "LedgerSpillQueueUrl",
        "ProxyFunctionName",
        "ApiFunctionName",
        "ExportBucketName",
        "ExportJobsTableName",
        "ExportQueueUrl",
        "ConsoleUrl",
        "ConsoleBucketName",
        "ConsoleDistributionId",
    }
    api_url = "https://${MeterwayApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/${StageName}"
    assert outputs["ApiUrl"]["Value"] == {"Fn::Sub": api_url}
    assert outputs["OpenAIBaseUrl"]["Value"] == {"Fn::Sub": api_url + "/v1"}
    assert outputs["RollupsTableName"]["Value"] == {"Ref": "RollupsTable"}
    assert outputs["ExportBucketName"]["Value"] == {"Ref": "ExportBucket"}
    assert outputs["ExportJobsTableName"]["Value"] == {"Ref": "ExportJobsTable"}
    assert outputs["ExportQueueUrl"]["Value"] == {"Ref": "ExportQueue"}
    assert outputs["ConsoleUrl"]["Value"] == {"Fn::Sub": "https://${ConsoleDistribution.DomainName}"}
    assert outputs["ConsoleBucketName"]["Value"] == {"Ref": "ConsoleBucket"}
    assert outputs["ConsoleDistributionId"]["Value"] == {"Ref": "ConsoleDistribution"}


def test_cfn_lint_reports_nothing():
    matches = lint_file(TEMPLATE)

    assert [str(match) for match in matches] == []
