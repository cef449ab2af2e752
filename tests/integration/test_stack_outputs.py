"""scripts/stack_outputs.py: after a deploy, the URLs and the next commands, ready to paste."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import boto3
import pytest

from devstack.aws_resources import load_template
from meterway.cli import main as meterway_command
from meterway.proxy.providers import KEYED_PROVIDERS
from scripts import stack_outputs

ROOT = Path(__file__).resolve().parents[2]
STACK = "meterway"
API_URL = "https://abc123.execute-api.us-east-1.amazonaws.com/prod"
CONSOLE_URL = "https://d111111abcdef8.cloudfront.net"


def _stack(outputs: dict[str, str]) -> None:
    """A stack with just these outputs (moto takes a template without resources)."""
    template = {"Resources": {}, "Outputs": {name: {"Value": value} for name, value in outputs.items()}}
    boto3.client("cloudformation").create_stack(StackName=STACK, TemplateBody=json.dumps(template))


@pytest.fixture
def deployed(aws_env: dict[str, str]) -> dict[str, str]:
    """A deployed stack: the template's keys table, an upstream secret, and the outputs naming them."""
    secret = boto3.client("secretsmanager").create_secret(
        Name="meterway-UpstreamSecret", SecretString='{"openai_api_key": "", "anthropic_api_key": ""}'
    )
    outputs = {
        "ApiUrl": API_URL,
        "OpenAIBaseUrl": f"{API_URL}/v1",
        "ConsoleUrl": CONSOLE_URL,
        "UpstreamSecretArn": secret["ARN"],
        "KeysTableName": aws_env["KeysTable"],
    }
    _stack(outputs)
    return outputs


def _command(printed: str, words: str) -> list[str]:
    """The printed command line that contains `words`, split as a shell would."""
    (line,) = [line for line in printed.splitlines() if words in line]
    return shlex.split(line)


def test_the_template_gives_every_output_the_script_reads():
    assert set(stack_outputs.OUTPUTS) <= set(load_template(ROOT / "template.yaml")["Outputs"])


def test_it_prints_the_urls(deployed, capsys):
    assert stack_outputs.main(["--stack-name", STACK, "--region", "us-east-1"]) == 0

    printed = capsys.readouterr().out
    assert f"API:     {API_URL}" in printed
    assert f"base_url {API_URL}/v1" in printed
    assert f"Console: {CONSOLE_URL}" in printed


def test_the_secret_command_stores_what_the_proxy_reads_in_the_stacks_secret(deployed, capsys):
    stack_outputs.main(["--stack-name", STACK, "--region", "us-east-1"])
    command = _command(capsys.readouterr().out, "put-secret-value")

    # Given the printed aws CLI command, When its arguments are sent as the aws CLI sends them
    assert command[:3] == ["aws", "secretsmanager", "put-secret-value"]
    arguments = dict(zip(command[3::2], command[4::2], strict=True))
    assert arguments["--region"] == "us-east-1"
    boto3.client("secretsmanager").put_secret_value(
        SecretId=arguments["--secret-id"], SecretString=arguments["--secret-string"]
    )

    # Then the stack's secret holds one `<provider>_api_key` entry per provider the proxy knows
    stored = boto3.client("secretsmanager").get_secret_value(SecretId=deployed["UpstreamSecretArn"])
    assert set(json.loads(stored["SecretString"])) == {f"{name}_api_key" for name in KEYED_PROVIDERS}


def test_the_admin_key_command_creates_an_admin_key_in_the_stacks_table(deployed, capsys, monkeypatch):
    stack_outputs.main(["--stack-name", STACK, "--region", "us-east-1"])
    command = _command(capsys.readouterr().out, "create-admin")

    # Given the printed command: a region for boto3, then the meterway CLI and its arguments
    setting, program, *arguments = command
    name, _, region = setting.partition("=")
    assert (name, region, program) == ("AWS_DEFAULT_REGION", "us-east-1", ".venv/bin/meterway")
    monkeypatch.setenv(name, region)

    # When it runs
    assert meterway_command(arguments) == 0

    # Then an admin key is in the stack's keys table, and its secret was printed once
    created = json.loads(capsys.readouterr().out)
    assert created["kind"] == "admin"
    assert created["secret"].startswith("mw-admin-")
    listed = meterway_command(["keys", "list", "--stack-name", STACK])
    assert listed == 0
    assert created["id"] in capsys.readouterr().out


def test_commands_carry_the_profile_the_outputs_were_read_with():
    outputs = dict.fromkeys(stack_outputs.OUTPUTS, "x")

    printed = stack_outputs.next_steps(STACK, "eu-west-1", outputs, profile="ops")

    put_secret = _command(printed, "put-secret-value")
    assert put_secret[put_secret.index("--profile") + 1] == "ops"
    assert _command(printed, "create-admin")[:3] == [
        "AWS_DEFAULT_REGION=eu-west-1",
        "AWS_PROFILE=ops",
        ".venv/bin/meterway",
    ]


def test_a_stack_from_an_older_template_is_named_as_such(aws_env, capsys):
    _stack({"ApiUrl": API_URL})

    assert stack_outputs.main(["--stack-name", STACK, "--region", "us-east-1"]) == 1

    error = capsys.readouterr().err
    assert "OpenAIBaseUrl, ConsoleUrl, UpstreamSecretArn, KeysTableName" in error
    assert "deploy the current template.yaml" in error


def test_an_unknown_stack_is_an_error_not_a_traceback(aws_env, capsys):
    assert stack_outputs.main(["--stack-name", "nope", "--region", "us-east-1"]) == 1

    assert "nope" in capsys.readouterr().err
