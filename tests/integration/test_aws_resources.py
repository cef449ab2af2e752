"""devstack.aws_resources builds the template's tables, queues and buckets on moto, unchanged."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto import mock_aws

from devstack.aws_resources import create_resources, env_for, function_environment

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
REGION = "us-east-1"


@pytest.fixture(autouse=True)
def fake_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


def _keys(schema: list[dict[str, str]]) -> list[tuple[str, str]]:
    return [(key["AttributeName"], key["KeyType"]) for key in schema]


def _gsis(table: dict[str, Any]) -> dict[str, tuple[list[tuple[str, str]], str]]:
    return {
        gsi["IndexName"]: (_keys(gsi["KeySchema"]), gsi["Projection"]["ProjectionType"])
        for gsi in table["GlobalSecondaryIndexes"]
    }


def _ledger_item() -> dict[str, Any]:
    event = json.loads((ROOT / "events" / "ledger_stream_insert.json").read_text())
    return event["Records"][0]["dynamodb"]["NewImage"]


def test_tables_get_the_template_schema(aws):
    # Given the template, When the local stack creates its resources
    created = create_resources(TEMPLATE, prefix="it")
    dynamodb = boto3.client("dynamodb")

    # Then each table has the deployed keys, indexes, stream, TTL, PITR and encryption
    keys = dynamodb.describe_table(TableName=created["KeysTable"])["Table"]
    assert created["KeysTable"] == "it-KeysTable"
    assert _keys(keys["KeySchema"]) == [("pk", "HASH"), ("sk", "RANGE")]
    assert _gsis(keys) == {"ByAccount": ([("gsi1pk", "HASH"), ("gsi1sk", "RANGE")], "ALL")}
    assert keys["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert "StreamSpecification" not in keys

    ledger = dynamodb.describe_table(TableName=created["LedgerTable"])["Table"]
    assert _keys(ledger["KeySchema"]) == [("request_id", "HASH")]
    assert _gsis(ledger) == {
        "ByAccountTime": ([("account_id", "HASH"), ("created_sk", "RANGE")], "ALL"),
        "ByKeyTime": ([("key_id", "HASH"), ("created_sk", "RANGE")], "ALL"),
    }
    assert ledger["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
    assert ledger["SSEDescription"]["Status"] == "ENABLED"

    rollups = dynamodb.describe_table(TableName=created["RollupsTable"])["Table"]
    assert created["RollupsTable"] == "it-RollupsTable"
    assert _keys(rollups["KeySchema"]) == [("pk", "HASH"), ("sk", "RANGE")]
    assert not rollups.get("GlobalSecondaryIndexes")
    assert "StreamSpecification" not in rollups
    assert rollups["SSEDescription"]["Status"] == "ENABLED"

    for name in (created["KeysTable"], created["LedgerTable"], created["RollupsTable"]):
        ttl = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}
        backups = dynamodb.describe_continuous_backups(TableName=name)["ContinuousBackupsDescription"]
        assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"


def test_aggregator_dead_letter_queue_keeps_failures_for_two_weeks(aws):
    created = create_resources(TEMPLATE, prefix="it")

    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=created["AggregatorDeadLetterQueue"], AttributeNames=["All"]
    )["Attributes"]

    assert attributes["MessageRetentionPeriod"] == "1209600"
    assert attributes["SqsManagedSseEnabled"] == "true"


def test_spill_queue_redrives_to_its_dead_letter_queue(aws):
    created = create_resources(TEMPLATE, prefix="it")
    sqs = boto3.client("sqs")

    def attributes_of(logical_id: str) -> dict[str, str]:
        return sqs.get_queue_attributes(QueueUrl=created[logical_id], AttributeNames=["All"])["Attributes"]

    dlq_arn = attributes_of("LedgerSpillDeadLetterQueue")["QueueArn"]
    attributes = attributes_of("LedgerSpillQueue")

    assert created["LedgerSpillQueue"].endswith("/it-LedgerSpillQueue")
    assert json.loads(attributes["RedrivePolicy"]) == {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 5}
    assert attributes["VisibilityTimeout"] == "180"
    assert attributes["MessageRetentionPeriod"] == "1209600"
    assert attributes["SqsManagedSseEnabled"] == "true"


def test_creating_again_leaves_existing_resources_and_data_alone(aws):
    # Given resources that already hold data
    first = create_resources(TEMPLATE, prefix="it")
    dynamodb = boto3.client("dynamodb")
    dynamodb.put_item(TableName=first["LedgerTable"], Item=_ledger_item())
    boto3.client("sqs").send_message(QueueUrl=first["LedgerSpillQueue"], MessageBody="{}")

    # When the local stack starts again
    second = create_resources(TEMPLATE, prefix="it")

    # Then it finds the same resources, with their data
    assert second == first
    assert dynamodb.scan(TableName=first["LedgerTable"])["Count"] == 1
    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=first["LedgerSpillQueue"], AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "1"


def test_env_for_points_the_app_at_the_created_resources(aws):
    created = create_resources(TEMPLATE, prefix="it")

    assert env_for(created) == {
        "MW_KEYS_TABLE": "it-KeysTable",
        "MW_LEDGER_TABLE": "it-LedgerTable",
        "MW_ROLLUPS_TABLE": "it-RollupsTable",
        "MW_SPILL_QUEUE_URL": created["LedgerSpillQueue"],
        "MW_EXPORT_BUCKET": "it-exportbucket",
        "MW_EXPORT_JOBS_TABLE": "it-ExportJobsTable",
        "MW_EXPORT_QUEUE_URL": created["ExportQueue"],
    }
    # The addressing style is the local stack's business, not a template resource's
    assert "MW_S3_ADDRESSING_STYLE" not in env_for(created)
    with pytest.raises(KeyError, match="LedgerTable"):
        env_for({"KeysTable": "x", "LedgerSpillQueue": "y"})


def test_export_jobs_table_and_queue_get_the_template_settings(aws):
    created = create_resources(TEMPLATE, prefix="it")
    dynamodb = boto3.client("dynamodb")
    sqs = boto3.client("sqs")

    jobs = dynamodb.describe_table(TableName=created["ExportJobsTable"])["Table"]
    assert _keys(jobs["KeySchema"]) == [("job_id", "HASH")]
    assert jobs["SSEDescription"]["Status"] == "ENABLED"
    ttl = dynamodb.describe_time_to_live(TableName=created["ExportJobsTable"])["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}

    dlq_arn = sqs.get_queue_attributes(QueueUrl=created["ExportDeadLetterQueue"], AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    attributes = sqs.get_queue_attributes(QueueUrl=created["ExportQueue"], AttributeNames=["All"])["Attributes"]
    assert attributes["VisibilityTimeout"] == "5400"
    assert json.loads(attributes["RedrivePolicy"]) == {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 3}
    assert attributes["SqsManagedSseEnabled"] == "true"


def test_export_bucket_is_private_encrypted_and_expires_exports(aws):
    # Given the template, When the local stack creates its resources
    created = create_resources(TEMPLATE, prefix="it")
    s3 = boto3.client("s3", config=Config(s3={"addressing_style": "path"}))
    bucket = created["ExportBucket"]

    # Then the export bucket has the deployed public access block, ownership, encryption and lifecycle
    assert bucket == "it-exportbucket"
    assert s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }
    assert s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"] == {
        "Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]
    }
    assert s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"] == {
        "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}, "BucketKeyEnabled": True}]
    }
    (rule,) = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert rule["Status"] == "Enabled"
    assert rule["Filter"] == {"Prefix": "exports/"}
    assert rule["Expiration"] == {"Days": 7}
    assert rule["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    # And objects written there are encrypted at rest
    s3.put_object(Bucket=bucket, Key="exports/probe.csv", Body=b"a,b\n")
    assert s3.head_object(Bucket=bucket, Key="exports/probe.csv")["ServerSideEncryption"] == "AES256"


def test_a_bucket_property_the_local_stack_cannot_translate_is_an_error(aws, tmp_path):
    # Silently dropping it would make the local bucket differ from the deployed one.
    template = tmp_path / "template.yaml"
    template.write_text(
        "Resources:\n"
        "  ExportBucket:\n"
        "    Type: AWS::S3::Bucket\n"
        "    Properties:\n"
        "      CorsConfiguration:\n"
        "        CorsRules: []\n"
    )

    with pytest.raises(ValueError, match="CorsConfiguration"):
        create_resources(template, prefix="it")
    assert boto3.client("s3").list_buckets()["Buckets"] == []


def test_export_bucket_takes_multipart_uploads_and_serves_presigned_urls_on_the_moto_server(fresh_moto_url):
    # Given the resources on a moto server, as the local stack runs them (plain HTTP, path-style)
    session = boto3.session.Session(region_name=REGION)
    created = create_resources(TEMPLATE, prefix="it", session=session, endpoint_url=fresh_moto_url)
    s3 = session.client("s3", endpoint_url=fresh_moto_url, config=Config(s3={"addressing_style": "path"}))
    bucket, key = created["ExportBucket"], "exports/job-1/usage-2026-11-01_2026-11-30.csv"

    # When an export is written in parts, as the worker streams it
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key, ContentType="text/csv")
    # Every part but the last must be at least 5 MiB.
    first, second = b"request_id,cost_usd\n" + b"x" * (5 * 1024 * 1024), b"gen-1,0.001\n"
    parts = []
    for number, body in enumerate((first, second), start=1):
        etag = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload["UploadId"], PartNumber=number, Body=body)["ETag"]
        parts.append({"PartNumber": number, "ETag": etag})
    s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload["UploadId"], MultipartUpload={"Parts": parts})

    # Then a presigned GET downloads it, named for the user (the TLS-only policy is not applied
    # locally, where the endpoint is plain HTTP)
    url = s3.generate_presigned_url(
        "get_object",
        Params={"Bucket": bucket, "Key": key, "ResponseContentDisposition": 'attachment; filename="usage.csv"'},
        ExpiresIn=900,
    )
    assert url.startswith(f"{fresh_moto_url}/{bucket}/")
    with urllib.request.urlopen(url) as response:
        assert response.headers["Content-Disposition"] == 'attachment; filename="usage.csv"'
        assert response.read() == first + second


def test_buckets_are_created_with_lowercase_names(aws, tmp_path):
    # Given a template with a bucket (the exports bucket will be one)
    template = tmp_path / "template.yaml"
    template.write_text(
        "Resources:\n"
        "  ExportBucket:\n"
        "    Type: AWS::S3::Bucket\n"
        "    Properties:\n"
        "      BucketName: !Sub ${AWS::StackName}-ignored\n"
    )

    # When it is created twice
    created = create_resources(template, prefix="Dev")
    assert create_resources(template, prefix="Dev") == created

    # Then the bucket exists under its lowercased local name, reachable path-style
    assert created == {"ExportBucket": "dev-exportbucket"}
    s3 = boto3.client("s3", config=Config(s3={"addressing_style": "path"}))
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["dev-exportbucket"]


def test_ledger_stream_delivers_inserts_on_the_moto_server(fresh_moto_url):
    # Given the tables on a moto server, as the local stack runs them
    session = boto3.session.Session(region_name=REGION)
    created = create_resources(TEMPLATE, prefix="it", session=session, endpoint_url=fresh_moto_url)
    dynamodb = session.client("dynamodb", endpoint_url=fresh_moto_url)
    streams = session.client("dynamodbstreams", endpoint_url=fresh_moto_url)

    # When the proxy writes a ledger record
    item = _ledger_item()
    dynamodb.put_item(TableName=created["LedgerTable"], Item=item)

    # Then the aggregator's stream sees it as an INSERT with the whole new image
    stream_arn = dynamodb.describe_table(TableName=created["LedgerTable"])["Table"]["LatestStreamArn"]
    shards = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]
    iterator = streams.get_shard_iterator(
        StreamArn=stream_arn, ShardId=shards[0]["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    records = streams.get_records(ShardIterator=iterator)["Records"]

    assert [record["eventName"] for record in records] == ["INSERT"]
    assert records[0]["dynamodb"]["NewImage"] == item
    assert records[0]["dynamodb"]["SequenceNumber"]


# --- A function's environment -------------------------------------------------------------------

LOCAL_NAMES = {
    "KeysTable": "local-keys",
    "LedgerTable": "local-ledger",
    "RollupsTable": "local-rollups",
    "ExportJobsTable": "local-jobs",
    "ExportBucket": "local-exports",
    "ExportQueue": "http://127.0.0.1:5000/123456789012/local-exports",
    "LedgerSpillQueue": "http://127.0.0.1:5000/123456789012/local-spill",
    "UpstreamSecret": "arn:aws:secretsmanager:us-east-1:123456789012:secret:local-upstream",
}


def test_a_functions_environment_is_the_globals_and_its_own_with_refs_resolved():
    env = function_environment(
        TEMPLATE,
        "ProxyFunction",
        resources=LOCAL_NAMES,
        prefix="it",
        region=REGION,
        parameters={"OpenAIBaseUrl": "http://127.0.0.1:9/v1"},
    )

    # Globals: literals, resources and parameter defaults
    assert env["POWERTOOLS_SERVICE_NAME"] == "meterway"
    assert env["MW_KEYS_TABLE"] == "local-keys"
    assert env["MW_KEY_CACHE_TTL_SECONDS"] == "30"
    # The function's own: an overridden parameter, a default one, and resources
    assert env["MW_OPENAI_BASE_URL"] == "http://127.0.0.1:9/v1"
    assert env["MW_ANTHROPIC_BASE_URL"] == "https://api.anthropic.com"
    assert env["MW_SPILL_QUEUE_URL"] == LOCAL_NAMES["LedgerSpillQueue"]
    assert env["MW_UPSTREAM_SECRET_ARN"] == LOCAL_NAMES["UpstreamSecret"]
    assert "MW_CONSOLE_ORIGIN" not in env


def test_a_condition_picks_the_branch_its_parameters_choose():
    def console_origin(origin: str) -> str:
        env = function_environment(
            TEMPLATE,
            "ApiFunction",
            resources=LOCAL_NAMES,
            prefix="it",
            region=REGION,
            parameters={"ConsoleOrigin": origin},
        )
        return env["MW_CONSOLE_ORIGIN"]

    assert console_origin("https://console.example.com") == "https://console.example.com"
    # Empty: the stack's own distribution, which was not given, so it cannot be resolved
    with pytest.raises(ValueError, match=r"ConsoleDistribution\.DomainName"):
        console_origin("")


def test_a_resource_not_given_is_named():
    with pytest.raises(ValueError, match="LedgerSpillQueue"):
        function_environment(
            TEMPLATE,
            "ProxyFunction",
            resources={name: value for name, value in LOCAL_NAMES.items() if name != "LedgerSpillQueue"},
            prefix="it",
            region=REGION,
        )
