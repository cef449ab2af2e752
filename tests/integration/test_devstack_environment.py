"""devstack.stack's environment and .meterway/local.json, against a moto server as `make dev` runs."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest

from devstack.stack import StackOptions, configure_environment, write_local_json


@pytest.fixture
def restored_environ() -> Iterator[None]:
    # configure_environment writes os.environ directly, as the stack's process needs it to.
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_the_app_gets_the_export_resources_and_path_style_s3(restored_environ, fresh_moto_url, tmp_path):
    # Given the local stack's AWS backend
    options = StackOptions(state_dir=tmp_path)

    # When the stack configures its environment and writes local.json
    env = configure_environment(fresh_moto_url, None, options)
    path = write_local_json(options, 3000, {"admin_key": "a", "api_key": "b"}, env)

    # Then the app finds the export bucket, jobs table and queue, and addresses S3 by path
    assert env["MW_S3_ADDRESSING_STYLE"] == "path"
    assert env["MW_EXPORT_BUCKET"] == "meterway-local-exportbucket"
    assert env["MW_EXPORT_JOBS_TABLE"] == "meterway-local-ExportJobsTable"
    assert env["MW_EXPORT_QUEUE_URL"].endswith("/meterway-local-ExportQueue")
    assert os.environ["MW_S3_ADDRESSING_STYLE"] == "path"
    info = json.loads(path.read_text())
    assert info["buckets"] == {"exports": "meterway-local-exportbucket"}
    assert info["tables"]["export_jobs"] == "meterway-local-ExportJobsTable"
