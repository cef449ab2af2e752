"""The ``meterway`` CLI against the local stack, as a deployer bootstraps keys."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx
import pytest

pytestmark = pytest.mark.e2e


def cli(stack, *args: str) -> dict:
    env = os.environ | {
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    where = ["--table", stack.info["tables"]["keys"], "--endpoint-url", stack.info["aws_endpoint_url"]]
    done = subprocess.run(
        [sys.executable, "-m", "meterway.cli", "keys", *args, *where],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    if args[0] != "list":
        assert "cannot be shown again" in done.stderr
    return json.loads(done.stdout)


def test_cli_keys_work_and_one_account_cannot_read_another_accounts_generations(stack):
    # Given an admin and an API key that the CLI created in a second account
    admin = cli(stack, "create-admin", "--account", "other", "--name", "other ops")
    other = cli(stack, "create", "--account", "other", "--name", "other ci", "--member", "eve")
    assert admin["secret"].startswith("mw-admin-")
    assert other["secret"].startswith("mw-live-")

    # When that key makes a request
    response = httpx.post(
        f"{stack.base}/v1/chat/completions",
        json={"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "ping"}]},
        headers={"authorization": f"Bearer {other['secret']}"},
    )
    assert response.status_code == 200
    request_id = response.json()["id"]

    # Then its own account sees the record and the local account does not
    own = httpx.get(
        f"{stack.base}/v1/generation", params={"id": request_id}, headers={"authorization": f"Bearer {other['secret']}"}
    )
    assert own.status_code == 200
    assert own.json()["data"]["member"] == "eve"
    foreign = httpx.get(
        f"{stack.base}/v1/generation", params={"id": request_id}, headers={"authorization": f"Bearer {stack.api_key}"}
    )
    assert foreign.status_code == 404

    # And the new admin key manages only its own account's keys through the API
    listed = httpx.get(f"{stack.base}/api/keys", headers={"authorization": f"Bearer {admin['secret']}"})
    assert listed.status_code == 200
    assert {key["name"] for key in listed.json()["data"]} == {"other ops", "other ci"}
    assert cli(stack, "list", "--account", "other")["data"][0]["name"] in {"other ops", "other ci"}
