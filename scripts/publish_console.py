"""Publish the built web console (``console/dist``) to a deployed stack.

  .venv/bin/python scripts/publish_console.py --stack-name meterway [--region eu-west-1] [--profile ops]

Reads the stack's outputs (``ApiUrl``, ``ConsoleUrl``, ``ConsoleBucketName``,
``ConsoleDistributionId``) with your AWS credentials, uploads every file of the build with its
content type and cache policy, writes ``config.json`` so the console finds the API, deletes what
the build no longer has, and asks CloudFront to fetch the entry pages again. Build the console
first (``npm run build`` in ``console/``).

Runs on the deployer's machine, never in Lambda: it is not part of the deployed package.
"""

from __future__ import annotations

import argparse
import json
import mimetypes
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

ROOT = Path(__file__).resolve().parents[1]
# Run as a file, this folder is on sys.path but the repository, which holds the `scripts` package, is not.
sys.path.insert(0, str(ROOT))

from scripts.stack_outputs import OutputsUnavailable, read_outputs  # noqa: E402

DIST = ROOT / "console" / "dist"
INDEX_KEY = "index.html"
CONFIG_KEY = "config.json"
# Vite names what it puts under assets/ by content hash: a changed file is a new name.
ASSETS_PREFIX = "assets/"
IMMUTABLE = "public, max-age=31536000, immutable"
# Everything else keeps its name across builds (index.html names the current assets, config.json
# the API), so browsers and CloudFront must check for a newer copy every time.
REVALIDATE = "no-cache"
# "/" is cached apart from "/index.html", though the default root object serves both.
INVALIDATED_PATHS = ("/", "/" + INDEX_KEY, "/" + CONFIG_KEY)
OUTPUTS = ("ApiUrl", "ConsoleUrl", "ConsoleBucketName", "ConsoleDistributionId")
# DeleteObjects takes at most 1,000 keys a call.
DELETE_BATCH = 1000

# The standard library's own table, without the host's /etc/mime.types: the same types from every
# machine. It lacks a few web formats, and names JavaScript differently before Python 3.12.
_TYPES = mimetypes.MimeTypes()
for _type, _extension in (
    ("text/javascript", ".js"),
    ("text/javascript", ".mjs"),
    ("application/json", ".map"),
    ("font/woff", ".woff"),
    ("font/woff2", ".woff2"),
    ("font/ttf", ".ttf"),
    ("image/webp", ".webp"),
):
    _TYPES.add_type(_type, _extension)


class PublishError(Exception):
    """The console cannot be published as asked; the message says why and what to do."""


@dataclass(frozen=True)
class ConsoleTarget:
    """Where a stack serves its console from, and the API the console calls."""

    api_url: str
    console_url: str
    bucket: str
    distribution_id: str


@dataclass(frozen=True)
class ConsoleFile:
    key: str
    path: Path
    content_type: str
    cache_control: str


@dataclass(frozen=True)
class Published:
    uploaded: list[str]
    deleted: list[str]
    invalidation_id: str


def stack_target(cloudformation: Any, stack_name: str) -> ConsoleTarget:
    """Read the console's bucket, distribution and API URL from the stack's outputs."""
    outputs = read_outputs(cloudformation, stack_name, OUTPUTS)
    return ConsoleTarget(
        api_url=outputs["ApiUrl"].rstrip("/"),
        console_url=outputs["ConsoleUrl"],
        bucket=outputs["ConsoleBucketName"],
        distribution_id=outputs["ConsoleDistributionId"],
    )


def content_type(key: str) -> str:
    guessed, _ = _TYPES.guess_type(key, strict=False)
    return guessed or "application/octet-stream"


def cache_control(key: str) -> str:
    return IMMUTABLE if key.startswith(ASSETS_PREFIX) else REVALIDATE


def console_files(dist: Path) -> list[ConsoleFile]:
    """Every file of the build, index.html last, so that it never names an asset not there yet.

    A ``config.json`` in the build is left out: the stack's own is written instead.
    """
    if not (dist / INDEX_KEY).is_file():
        raise PublishError(f"{dist} has no {INDEX_KEY}: build the console first (npm run build in console/)")
    keys = sorted(path.relative_to(dist).as_posix() for path in dist.rglob("*") if path.is_file())
    keys = [key for key in keys if key not in (INDEX_KEY, CONFIG_KEY)] + [INDEX_KEY]
    return [ConsoleFile(key, dist / key, content_type(key), cache_control(key)) for key in keys]


def config_json(api_url: str) -> bytes:
    """The console reads this at start to find the API: the stage root, without a trailing slash."""
    return json.dumps({"apiBase": api_url.rstrip("/")}).encode()


def _upload(s3: S3Client, bucket: str, file: ConsoleFile) -> None:
    extra = {"ContentType": file.content_type, "CacheControl": file.cache_control}
    s3.upload_file(str(file.path), bucket, file.key, ExtraArgs=extra)


def _bucket_keys(s3: S3Client, bucket: str) -> Iterator[str]:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            yield item["Key"]


def _delete(s3: S3Client, bucket: str, keys: Sequence[str]) -> None:
    for start in range(0, len(keys), DELETE_BATCH):
        batch = keys[start : start + DELETE_BATCH]
        result = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True})
        if result.get("Errors"):
            failed = ", ".join(f"{error.get('Key')} ({error.get('Code')})" for error in result["Errors"])
            raise PublishError(f"could not delete stale console files: {failed}")


def publish(s3: S3Client, cloudfront: Any, dist: Path, target: ConsoleTarget) -> Published:
    """Upload the build and config.json, delete stale files, and invalidate the entry pages."""
    files = console_files(dist)
    *assets, index = files
    for file in assets:
        _upload(s3, target.bucket, file)
    s3.put_object(
        Bucket=target.bucket,
        Key=CONFIG_KEY,
        Body=config_json(target.api_url),
        ContentType=content_type(CONFIG_KEY),
        CacheControl=REVALIDATE,
    )
    _upload(s3, target.bucket, index)

    uploaded = [file.key for file in files] + [CONFIG_KEY]
    # Only after the new index.html is in place: until then the old one still names these.
    stale = sorted(set(_bucket_keys(s3, target.bucket)) - set(uploaded))
    _delete(s3, target.bucket, stale)

    invalidation = cloudfront.create_invalidation(
        DistributionId=target.distribution_id,
        InvalidationBatch={
            "Paths": {"Quantity": len(INVALIDATED_PATHS), "Items": list(INVALIDATED_PATHS)},
            "CallerReference": f"publish-console-{time.time_ns()}",
        },
    )
    return Published(uploaded=uploaded, deleted=stale, invalidation_id=invalidation["Invalidation"]["Id"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Publish the built web console to a deployed Meterway stack.")
    parser.add_argument("--stack-name", required=True, help="the deployed Meterway stack")
    parser.add_argument("--region", help="the stack's region (default: your AWS configuration's)")
    parser.add_argument("--profile", help="the AWS profile to use")
    parser.add_argument("--dist", type=Path, default=DIST, help=f"the built console (default: {DIST})")
    args = parser.parse_args(argv)

    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        session = boto3.Session(profile_name=args.profile, region_name=args.region)
        target = stack_target(session.client("cloudformation"), args.stack_name)
        result = publish(session.client("s3"), session.client("cloudfront"), args.dist, target)
    except (PublishError, OutputsUnavailable, ClientError, BotoCoreError) as exc:
        print(f"publish_console: {exc}", file=sys.stderr)
        return 1
    print(
        f"Published {len(result.uploaded)} files to s3://{target.bucket} and removed {len(result.deleted)} stale ones.\n"
        f"CloudFront invalidation {result.invalidation_id} is under way (about a minute).\n"
        f"Console: {target.console_url}  (API: {target.api_url})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
