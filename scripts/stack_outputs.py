"""What to do after `make deploy`: the stack's URLs and the exact commands that come next.

  .venv/bin/python scripts/stack_outputs.py --stack-name meterway [--region eu-west-1] [--profile ops]

Reads the stack's outputs (`describe_stacks`) with your AWS credentials and prints the API and
console URLs, the command that stores the provider keys in the stack's UpstreamSecret, and the one
that creates the first admin key. Every command names the region, so it works from any shell.
`make deploy` runs it last. Runs on the deployer's machine, never in Lambda.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Collection, Sequence
from typing import Any

OUTPUTS = ("ApiUrl", "OpenAIBaseUrl", "ConsoleUrl", "UpstreamSecretArn", "KeysTableName")
# The proxy reads `<provider>_api_key` entries from the secret (meterway.proxy.providers).
SECRET_TEMPLATE = {"openai_api_key": "sk-...", "anthropic_api_key": "sk-ant-..."}


class OutputsUnavailable(Exception):
    """The stack's outputs cannot be read as asked; the message says why and what to do."""


def read_outputs(cloudformation: Any, stack_name: str, required: Collection[str]) -> dict[str, str]:
    """The stack's outputs by key; every one of `required` must be there and not empty."""
    (stack,) = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    outputs = {item["OutputKey"]: item["OutputValue"] for item in stack.get("Outputs", [])}
    missing = [name for name in required if not outputs.get(name)]
    if missing:
        raise OutputsUnavailable(
            f"stack {stack_name} has no {', '.join(missing)} output: deploy the current template.yaml first"
        )
    return outputs


def next_steps(stack_name: str, region: str, outputs: dict[str, str], profile: str | None = None) -> str:
    """The URLs and the commands to run next, each naming the region (and profile) it was read with."""
    put_secret = [
        *("aws", "secretsmanager", "put-secret-value", "--region", region),
        *(("--profile", profile) if profile else ()),
        *("--secret-id", outputs["UpstreamSecretArn"], "--secret-string", json.dumps(SECRET_TEMPLATE)),
    ]
    settings = {"AWS_DEFAULT_REGION": region} | ({"AWS_PROFILE": profile} if profile else {})
    meterway = " ".join([*(f"{name}={shlex.quote(value)}" for name, value in settings.items()), ".venv/bin/meterway"])
    where = f"--stack-name {shlex.quote(stack_name)}"
    return "\n".join(
        [
            f"Meterway stack {stack_name} is up in {region}.",
            "",
            f"  API:     {outputs['ApiUrl']}",
            f"           OpenAI clients: base_url {outputs['OpenAIBaseUrl']}; Anthropic clients and Claude Code: the API URL",
            f"  Console: {outputs['ConsoleUrl']}",
            "",
            "Next:",
            "1. Store your provider keys in the stack's secret (the proxy reads them there, never from the template):",
            f"     {shlex.join(put_secret)}",
            "2. Create the first admin key. Its secret is printed once: it signs you in to the console.",
            f"     {meterway} keys create-admin {where} --name admin",
            "3. Sign in to the console and create API keys on its API keys page, or here:",
            f"     {meterway} keys create {where} --name ci --member you@example.com",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print a deployed Meterway stack's URLs and next steps.")
    parser.add_argument("--stack-name", required=True, help="the deployed Meterway stack")
    parser.add_argument("--region", help="the stack's region (default: your AWS configuration's)")
    parser.add_argument("--profile", help="the AWS profile to use")
    args = parser.parse_args(argv)

    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        session = boto3.Session(profile_name=args.profile, region_name=args.region)
        if not session.region_name:
            raise OutputsUnavailable("no AWS region: pass --region (make deploy REGION=...) or set AWS_REGION")
        outputs = read_outputs(session.client("cloudformation"), args.stack_name, OUTPUTS)
    except (OutputsUnavailable, ClientError, BotoCoreError) as exc:
        print(f"stack_outputs: {exc}", file=sys.stderr)
        return 1
    print(next_steps(args.stack_name, session.region_name, outputs, args.profile))
    return 0


if __name__ == "__main__":
    sys.exit(main())
