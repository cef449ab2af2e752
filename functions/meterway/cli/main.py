"""``meterway``: bootstrap keys, members and credit in a deployed stack (with the deployer's AWS
credentials, straight to the keys table) or locally, and export usage through the management API.

  meterway keys create-admin --stack-name meterway --name ops
  meterway keys create --table <KeysTableName> --name ci --member alice@example.com
  meterway members create --stack-name meterway --member-id alice@example.com --name Alice
  meterway balance topup --stack-name meterway --amount 25.50 --note "invoice 42"
  meterway balance show --stack-name meterway
  meterway rollups backfill --stack-name meterway
  meterway rollups recount-errors --stack-name meterway
  meterway rollups add-attribution --stack-name meterway
  meterway export --start 2026-11-01 --end 2026-11-23 [--model M] [--key K] [--user U] [--app A] [-o usage.csv]
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from meterway.accounts.dal.balance_store import DynamoBalanceStore
from meterway.accounts.dal.key_store import DynamoKeyStore
from meterway.accounts.dal.member_store import DynamoMemberStore
from meterway.accounts.logic.balance import Balance, account_balance, top_up
from meterway.accounts.logic.manage_keys import create_key, list_keys
from meterway.accounts.logic.manage_members import create_member, ensure_member
from meterway.accounts.models import KeyKind
from meterway.analytics.dal.rollup_store import DynamoRollupStore
from meterway.analytics.logic.backfill import backfill
from meterway.analytics.logic.recount import add_attribution, recount_errors
from meterway.cli import export as export_cli
from meterway.core.clock import utc_iso, utc_now
from meterway.core.errors import MeterwayError
from meterway.core.money import money, optional_money
from meterway.ledger.dal.ledger_store import DynamoLedgerStore

# Who a top-up made here is recorded as: there is no admin key, only the deployer's credentials.
CLI_ACTOR = "cli"


def _table_name(args: argparse.Namespace, output: str = "KeysTableName") -> str:
    if args.table:
        return str(args.table)
    import boto3

    stacks = boto3.client("cloudformation", endpoint_url=args.endpoint_url).describe_stacks(StackName=args.stack_name)
    outputs = {item["OutputKey"]: item["OutputValue"] for item in stacks["Stacks"][0].get("Outputs", [])}
    if output not in outputs:
        sys.exit(f"stack {args.stack_name} has no {output} output")
    return outputs[output]


def _client(args: argparse.Namespace) -> Any:
    import boto3

    return boto3.client("dynamodb", endpoint_url=args.endpoint_url)


def _store(args: argparse.Namespace) -> DynamoKeyStore:
    return DynamoKeyStore(_table_name(args), client=_client(args))


def _members(args: argparse.Namespace) -> DynamoMemberStore:
    return DynamoMemberStore(_table_name(args), client=_client(args))


def _create(args: argparse.Namespace) -> dict[str, Any]:
    kind: KeyKind = "admin" if args.command == "create-admin" else "api"
    member = getattr(args, "member", None)
    if member is not None:
        # Bootstrapping: the member is created when the account does not have it yet.
        member = ensure_member(_members(args), args.account, member).member_id
    key, secret = create_key(_store(args), args.account, args.name, kind=kind, member=member)
    return {"id": key.key_id, "kind": key.kind, "name": key.name, "account_id": key.account_id, "secret": secret}


def _list(args: argparse.Namespace) -> dict[str, Any]:
    keys = list_keys(_store(args), args.account)
    return {"data": [{"id": k.key_id, "kind": k.kind, "name": k.name, "prefix": k.display_prefix} for k in keys]}


def _create_member(args: argparse.Namespace) -> dict[str, Any]:
    member = create_member(_members(args), args.account, args.member_id, args.name)
    return {"member_id": member.member_id, "name": member.name, "account_id": member.account_id}


def _balance(args: argparse.Namespace) -> dict[str, Any]:
    store = DynamoBalanceStore(_table_name(args), client=_client(args))
    balance: Balance
    if args.command == "topup":
        balance = top_up(store, args.account, args.amount, note=args.note, created_by=CLI_ACTOR)
    else:
        balance = account_balance(store, args.account)
    return {
        "account_id": args.account,
        "credits_usd": money(balance.topped_up_usd),
        "spent_usd": money(balance.spent_usd),
        "spent_before_credit_usd": money(balance.spent_before_credit_usd),
        "balance_usd": optional_money(balance.balance_usd),
    }


def _backfill(args: argparse.Namespace) -> dict[str, Any]:
    store = DynamoRollupStore(_table_name(args, "RollupsTableName"), client=_client(args))
    done = backfill(store, args.account, utc_now())
    _not_waiting(done.waiting_until, "A batch of the version before may still be running")
    return {
        "account_id": done.account_id,
        "complete_from": utc_iso(done.complete_from) if done.complete_from else None,
        "rows_written": done.written,
    }


def _not_waiting(until: datetime | None, why: str) -> None:
    """A one-off command that must wait until ``until`` says so and when to run it again."""
    if until is not None:
        raise MeterwayError(f"{why} until {utc_iso(until)}: run this again then.")


def _recount(args: argparse.Namespace) -> dict[str, Any]:
    client = _client(args)
    store = DynamoRollupStore(_table_name(args, "RollupsTableName"), client=client)
    if args.stack_name:
        ledger_table = _table_name(args, "LedgerTableName")
    elif args.ledger_table:
        ledger_table = args.ledger_table
    else:
        raise MeterwayError("--ledger-table is needed with --table.")
    ledger = DynamoLedgerStore(ledger_table, client=client)
    if args.command == "add-attribution":
        done = add_attribution(store, ledger, args.account, utc_now())
        _not_waiting(done.waiting_until, "Records may be counted without their user and app")
        since, counts = "attribution_from", {"added": done.moved, "added_before": done.moved_before}
    else:
        done = recount_errors(store, ledger, args.account, utc_now())
        _not_waiting(done.waiting_until, "Failed requests may be counted as requests")
        since, counts = "errors_apart_from", {"moved": done.moved, "moved_before": done.moved_before}
    return {"account_id": done.account_id, since: utc_iso(done.changed_from) if done.changed_from else None, **counts}


def _amount(text: str) -> Decimal:
    try:
        amount = Decimal(text)
    except InvalidOperation as exc:
        raise argparse.ArgumentTypeError(f"not a decimal amount: {text!r}") from exc
    if not amount.is_finite():
        raise argparse.ArgumentTypeError(f"not a decimal amount: {text!r}")
    return amount


def _where(command: argparse.ArgumentParser, output: str = "KeysTableName", table: str = "the keys table") -> None:
    where = command.add_mutually_exclusive_group(required=True)
    where.add_argument("--stack-name", help=f"read the {output} output of this CloudFormation stack")
    where.add_argument("--table", help=f"{table}'s name")
    command.add_argument("--endpoint-url", help="AWS endpoint (e.g. the local stack's moto server)")
    command.add_argument("--account", default="default", help="account id (default: %(default)s)")


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
        _where(command)
        if name != "list":
            command.add_argument("--name", required=True, help="a label for the key")
        if name == "create":
            command.add_argument("--member", help="the member who owns the key (created if missing)")
    members = groups.add_parser("members", help="create members")
    member_commands = members.add_subparsers(dest="command", required=True)
    create = member_commands.add_parser("create", help="create a member")
    _where(create)
    create.add_argument("--member-id", required=True, help="e.g. an email (stored lowercased)")
    create.add_argument("--name", help="a display name")
    balance = groups.add_parser("balance", help="prepaid credit")
    balance_commands = balance.add_subparsers(dest="command", required=True)
    topup = balance_commands.add_parser("topup", help="add credit (the first top-up turns the credit limit on)")
    _where(topup)
    topup.add_argument("--amount", required=True, type=_amount, help="USD, e.g. 25.50")
    topup.add_argument("--note", help="what the credit is for")
    _where(balance_commands.add_parser("show", help="credits, spend and balance"))
    rollups = groups.add_parser("rollups", help="the analytics rollups")
    rollup_commands = rollups.add_subparsers(dest="command", required=True)
    _where(
        rollup_commands.add_parser(
            "backfill",
            help="derive the 10-minute to year rows a version before them did not write (once, after upgrading)",
        ),
        "RollupsTableName",
        "the rollups table",
    )
    for name, what in (
        ("recount-errors", "count as errors the failed requests a version before counted as requests"),
        ("add-attribution", "count by user and app the records a version before counted without them"),
    ):
        recount = rollup_commands.add_parser(name, help=f"{what} (once, after upgrading)")
        _where(recount, "RollupsTableName", "the rollups table")
        recount.add_argument("--ledger-table", help="the ledger table's name (with --table)")
    export_cli.add_parser(groups)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.group == "export":
        return export_cli.run(args)
    try:
        if args.group == "members":
            result = _create_member(args)
        elif args.group == "balance":
            result = _balance(args)
        elif args.group == "rollups":
            result = _backfill(args) if args.command == "backfill" else _recount(args)
        else:
            result = _list(args) if args.command == "list" else _create(args)
    except MeterwayError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    if args.group == "keys" and args.command != "list":
        print("Store the secret now: it is not kept and cannot be shown again.", file=sys.stderr)
    return 0
