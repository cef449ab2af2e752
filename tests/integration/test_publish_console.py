"""scripts/publish_console.py: the built console goes to the stack's bucket, ready for CloudFront."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from scripts import publish_console

STACK = "meterway"
API_URL = "https://abc123.execute-api.us-east-1.amazonaws.com/prod/"
CONSOLE_URL = "https://d111111abcdef8.cloudfront.net"
IMMUTABLE = "public, max-age=31536000, immutable"


def _distribution(bucket: str) -> str:
    config = {
        "CallerReference": "console",
        "Comment": "Meterway web console",
        "Enabled": True,
        "Origins": {
            "Quantity": 1,
            "Items": [
                {
                    "Id": "ConsoleBucket",
                    "DomainName": f"{bucket}.s3.us-east-1.amazonaws.com",
                    "S3OriginConfig": {"OriginAccessIdentity": ""},
                }
            ],
        },
        "DefaultCacheBehavior": {
            "TargetOriginId": "ConsoleBucket",
            "ViewerProtocolPolicy": "redirect-to-https",
            "CachePolicyId": "658327ea-f89d-4fab-a63d-7e88639e58f6",
        },
    }
    distribution_id: str = boto3.client("cloudfront").create_distribution(DistributionConfig=config)["Distribution"][
        "Id"
    ]
    return distribution_id


def _stack(outputs: dict[str, str]) -> None:
    """A stack with just the outputs publishing reads (moto takes a template without resources)."""
    template = {"Resources": {}, "Outputs": {name: {"Value": value} for name, value in outputs.items()}}
    boto3.client("cloudformation").create_stack(StackName=STACK, TemplateBody=json.dumps(template))


@pytest.fixture
def deployed(aws_env: dict[str, str]) -> dict[str, str]:
    """A deployed stack: the template's own console bucket, a distribution in front of it, outputs."""
    bucket = aws_env["ConsoleBucket"]
    outputs = {
        "ApiUrl": API_URL,
        "ConsoleUrl": CONSOLE_URL,
        "ConsoleBucketName": bucket,
        "ConsoleDistributionId": _distribution(bucket),
    }
    _stack(outputs)
    return outputs


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    """A console build as Vite lays it out."""
    files = {
        "index.html": '<!doctype html><script type="module" src="/assets/app-abc.js"></script>',
        "assets/app-abc.js": "console.log('meterway')",
        "assets/app-abc.js.map": '{"version": 3}',
        "assets/app.css": "body { margin: 0 }",
        "favicon.svg": "<svg xmlns='http://www.w3.org/2000/svg'/>",
        # A development config copied from public/: the stack's own must win.
        "config.json": '{"apiBase": "http://127.0.0.1:3000"}',
    }
    root = tmp_path / "dist"
    for key, text in files.items():
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        (root / key).write_text(text)
    return root


def _objects(bucket: str) -> dict[str, dict[str, Any]]:
    s3 = boto3.client("s3")
    keys = [item["Key"] for item in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    return {key: s3.get_object(Bucket=bucket, Key=key) for key in keys}


def _invalidated_paths(distribution_id: str) -> list[list[str]]:
    cloudfront = boto3.client("cloudfront")
    listed = cloudfront.list_invalidations(DistributionId=distribution_id)["InvalidationList"].get("Items", [])
    return [
        cloudfront.get_invalidation(DistributionId=distribution_id, Id=item["Id"])["Invalidation"]["InvalidationBatch"][
            "Paths"
        ]["Items"]
        for item in listed
    ]


def test_publishing_serves_the_build_with_its_caching_and_points_the_console_at_the_api(deployed, dist, capsys):
    # Given a bucket still holding a previous build
    s3 = boto3.client("s3")
    bucket = deployed["ConsoleBucketName"]
    s3.put_object(Bucket=bucket, Key="assets/app-old.js", Body=b"old")
    s3.put_object(Bucket=bucket, Key="index.html", Body=b"old page")

    # When the deployer publishes the new build
    code = publish_console.main(["--stack-name", STACK, "--region", "us-east-1", "--dist", str(dist)])

    # Then the bucket holds exactly the build plus the stack's config.json
    assert code == 0
    objects = _objects(bucket)
    assert set(objects) == {
        "index.html",
        "assets/app-abc.js",
        "assets/app-abc.js.map",
        "assets/app.css",
        "favicon.svg",
        "config.json",
    }
    # And each file has its type; hashed assets are cached for a year, the rest is revalidated
    served = {key: (obj["ContentType"], obj["CacheControl"]) for key, obj in objects.items()}
    assert served == {
        "index.html": ("text/html", "no-cache"),
        "assets/app-abc.js": ("text/javascript", IMMUTABLE),
        "assets/app-abc.js.map": ("application/json", IMMUTABLE),
        "assets/app.css": ("text/css", IMMUTABLE),
        "favicon.svg": ("image/svg+xml", "no-cache"),
        "config.json": ("application/json", "no-cache"),
    }
    assert objects["index.html"]["Body"].read() == (dist / "index.html").read_bytes()
    # And the console finds the deployed API at its stage root, without a trailing slash
    assert json.loads(objects["config.json"]["Body"].read()) == {"apiBase": API_URL.rstrip("/")}
    # And CloudFront fetches the entry pages again
    assert _invalidated_paths(deployed["ConsoleDistributionId"]) == [["/", "/index.html", "/config.json"]]
    # And the deployer is told where the console is
    assert CONSOLE_URL in capsys.readouterr().out


def test_publishing_again_removes_the_previous_builds_assets(deployed, dist):
    # Given a published build
    target = publish_console.stack_target(boto3.client("cloudformation"), STACK)
    s3, cloudfront = boto3.client("s3"), boto3.client("cloudfront")
    publish_console.publish(s3, cloudfront, dist, target)

    # When the next build renames its script and is published
    (dist / "assets" / "app-abc.js").rename(dist / "assets" / "app-def.js")
    result = publish_console.publish(s3, cloudfront, dist, target)

    # Then the old script is gone and the new one is there
    assert result.deleted == ["assets/app-abc.js"]
    keys = set(_objects(target.bucket))
    assert "assets/app-def.js" in keys
    assert "assets/app-abc.js" not in keys
    assert len(_invalidated_paths(target.distribution_id)) == 2


def test_an_unbuilt_console_is_refused_before_anything_changes(deployed, tmp_path, capsys):
    # Given a bucket with a working console and a dist folder with no index.html
    s3 = boto3.client("s3")
    bucket = deployed["ConsoleBucketName"]
    s3.put_object(Bucket=bucket, Key="index.html", Body=b"working page")
    (tmp_path / "dist" / "assets").mkdir(parents=True)

    # When the deployer publishes
    code = publish_console.main(["--stack-name", STACK, "--region", "us-east-1", "--dist", str(tmp_path / "dist")])

    # Then it is refused with what to do, and the live console is untouched
    assert code == 1
    assert "build the console first" in capsys.readouterr().err
    assert set(_objects(bucket)) == {"index.html"}
    assert _invalidated_paths(deployed["ConsoleDistributionId"]) == []


def test_a_stack_deployed_before_the_console_existed_is_named_as_such(aws_env, dist, capsys):
    # Given a stack from an older template: an API, no console outputs
    _stack({"ApiUrl": API_URL})

    code = publish_console.main(["--stack-name", STACK, "--region", "us-east-1", "--dist", str(dist)])

    assert code == 1
    error = capsys.readouterr().err
    assert "ConsoleUrl, ConsoleBucketName, ConsoleDistributionId" in error
    assert "deploy the current template.yaml" in error


def test_an_unknown_stack_is_an_error_not_a_traceback(aws_env, dist, capsys):
    code = publish_console.main(["--stack-name", "nope", "--region", "us-east-1", "--dist", str(dist)])

    assert code == 1
    assert "nope" in capsys.readouterr().err
