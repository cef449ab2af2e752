"""``meterway``: bootstrap keys in a deployed stack (with the deployer's AWS credentials) or
locally, and export usage through the management API.

  meterway keys create-admin --stack-name meterway --name ops
  meterway keys create --table <KeysTableName> --name ci --member alice
  meterway export --start 2026-11-01 --end 2026-11-23 [--model M] [--key K] [-o usage.csv]
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from meterway import export_cli
from meterway.dal.key_store import DynamoKeyStore
from meterway.logic.keys import KeyKind
from meterway.logic.manage_keys import create_key, list_keys


def _table_name(args: argparse.Namespace) -> str:
    if args.table:
        return str(args.table)
    import boto3

    stacks = boto3.client("cloudformation", endpoint_url=args.endpoint_url).describe_stacks(StackName=args.stack_name)
    outputs = {item["OutputKey"]: item["OutputValue"] for item in stacks["Stacks"][0].get("Outputs", [])}
    if "KeysTableName" not in outputs:
        sys.exit(f"stack {args.stack_name} has no KeysTableName output")
    return outputs["KeysTableName"]


def _store(args: argparse.Namespace) -> DynamoKeyStore:
    import boto3

    return DynamoKeyStore(_table_name(args), client=boto3.client("dynamodb", endpoint_url=args.endpoint_url))


def _create(args: argparse.Namespace) -> dict[str, Any]:
    kind: KeyKind = "admin" if args.command == "create-admin" else "api"
    key, secret = create_key(_store(args), args.account, args.name, kind=kind, member=getattr(args, "member", None))
    return {"id": key.key_id, "kind": key.kind, "name": key.name, "account_id": key.account_id, "secret": secret}


def _list(args: argparse.Namespace) -> dict[str, Any]:
    keys = list_keys(_store(args), args.account)
    return {"data": [{"id": k.key_id, "kind": k.kind, "name": k.name, "prefix": k.display_prefix} for k in keys]}


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="meterway", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    groups = root.add_subparsers(dest="group", required=True)
    keys = groups.add_parser("keys", help="create and list keys")
    commands = keys.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("create-admin", "create an admin key"),
        ("create", "create an API key"),
        ("list", "list keys"),
    ):
        command = commands.add_parser(name, help=help_text)
        where = command.add_mutually_exclusive_group(required=True)
        where.add_argument("--stack-name", help="read the KeysTableName output of this CloudFormation stack")
        where.add_argument("--table", help="the keys table name")
        command.add_argument("--endpoint-url", help="AWS endpoint (e.g. the local stack's moto server)")
        command.add_argument("--account", default="default", help="account id (default: %(default)s)")
        if name != "list":
            command.add_argument("--name", required=True, help="a label for the key")
        if name == "create":
            command.add_argument("--member", help="the person who owns the key")
    export_cli.add_parser(groups)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.group == "export":
        return export_cli.run(args)
    result = _list(args) if args.command == "list" else _create(args)
    print(json.dumps(result, indent=2))
    if args.command != "list":
        print("Store the secret now: it is not kept and cannot be shown again.", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
