"""Keys, members and credit through the management API handler, on moto with the template's table.

What a user relies on: a secret is shown once and stored never; a rotated-out secret works for
its overlap and not after; disabling a member or a key stops every secret of it; top-ups add up
to the cent; bad input or another account's ids change nothing.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3
import pytest

from meterway import cli
from meterway.accounts.dal.key_store import DynamoKeyStore
from meterway.accounts.logic.auth import authenticate
from meterway.accounts.logic.key_secrets import hash_secret
from meterway.accounts.logic.manage_keys import create_key
from meterway.analytics.dal.rollup_store import DynamoRollupStore
from meterway.analytics.logic.rollups import contribution, count_record
from meterway.core.clock import parse_utc_iso
from meterway.core.container import container
from meterway.core.errors import AuthenticationFailed, StorageError
from meterway.ledger.dal.ledger_store import DynamoLedgerStore
from meterway.management_api.deps import api_deps
from tests.integration.conftest import call_api, count_ledger
from tests.ledger_factory import ledger_item

IN_A_YEAR = (datetime.now(UTC) + timedelta(days=365)).strftime("%Y-%m-%dT%H:%M:%SZ")


class Account:
    """An admin of account ``acct`` (and one of ``other``), and everything the API answered them."""

    def __init__(self, table: str):
        self.table = table
        self.keys = DynamoKeyStore(table)
        self.admin_key, self.admin = create_key(self.keys, "acct", "ops", kind="admin")
        _, self.other_admin = create_key(self.keys, "other", "their ops", kind="admin")
        self.bodies: list[str] = []
        self.secrets: list[str] = [self.admin, self.other_admin]

    def call(self, method: str, path: str, body: Any = None, *, as_other: bool = False) -> dict[str, Any]:
        response = call_api(method, path, self.other_admin if as_other else self.admin, body)
        self.bodies.append(response.get("body") or "")
        return response

    def new_key(self, name: str = "ci", **body: Any) -> dict[str, Any]:
        created = self.call("POST", "/api/keys", {"name": name, **body})
        assert created["statusCode"] == 201, created["json"]
        self.secrets.append(created["json"]["secret"])
        return created["json"]

    def rotate(self, key_id: str, overlap: int | None = None) -> dict[str, Any]:
        body = {"overlap_seconds": overlap} if overlap is not None else None
        rotated = self.call("POST", f"/api/keys/{key_id}/rotate", body)
        assert rotated["statusCode"] == 201, rotated["json"]
        self.secrets.append(rotated["json"]["secret"])
        return rotated["json"]

    def works(self, secret: str) -> bool:
        try:
            authenticate({"authorization": f"Bearer {secret}"}, DynamoKeyStore(self.table), kind="api")
        except AuthenticationFailed:
            return False
        return True

    def item(self, secret: str) -> dict[str, Any] | None:
        key = {"pk": {"S": f"KEYHASH#{hash_secret(secret)}"}, "sk": {"S": "KEY"}}
        item = boto3.client("dynamodb").get_item(TableName=self.table, Key=key).get("Item")
        return boto3.dynamodb.types.TypeDeserializer().deserialize({"M": item}) if item else None

    def scan(self) -> list[dict[str, Any]]:
        items = boto3.client("dynamodb").scan(TableName=self.table)["Items"]
        return sorted(items, key=lambda item: (item["pk"]["S"], item["sk"]["S"]))


@pytest.fixture
def acct(aws_env):
    container.reset()
    yield Account(aws_env["KeysTable"])
    container.reset()


def error_of(response: dict[str, Any]) -> dict[str, Any]:
    assert set(response["json"]) == {"error"}
    assert set(response["json"]["error"]) == {"message", "type", "code"}
    error: dict[str, Any] = response["json"]["error"]
    return error


# --- keys -------------------------------------------------------------------------------------


def test_a_key_with_limits_is_created_listed_changed_and_deleted(acct):
    # Given a member, When the admin creates a key for them with limits and an expiry
    assert acct.call("POST", "/api/members", {"member_id": "Alice@Example.com", "name": "Alice"})["statusCode"] == 201
    limits = {
        "spend_limit_usd": "12.50",
        "spend_period": "monthly",
        "requests_per_minute": 60,
        "tokens_per_minute": 10000,
        "allowed_models": ["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5", "openai/gpt-4o-mini"],
    }
    key = acct.new_key("prod", member="ALICE@example.com", limits=limits, valid_until=IN_A_YEAR)

    # Then the key answers with its limits, its member lowercased, and nothing spent
    assert key["secret"].startswith("mw-live-") and key["prefix"] == key["secret"][:14]
    assert key["member"] == "alice@example.com"
    assert key["limits"] == {
        "spend_limit_usd": "12.5",
        "spend_period": "monthly",
        "requests_per_minute": 60,
        "tokens_per_minute": 10000,
        "allowed_models": ["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"],
    }
    assert key["valid_until"].startswith(IN_A_YEAR[:19])
    # And the hash item holds what the proxy's single lookup needs
    stored = acct.item(key["secret"])
    assert stored["limits"]["spend_limit_usd"] == Decimal("12.50")
    assert stored["gsi1sk"] == f"KEY#{key['id']}" and acct.works(key["secret"])

    listed = acct.call("GET", "/api/keys")["json"]["data"]
    row = next(row for row in listed if row["id"] == key["id"])
    assert "secret" not in row and row["spend_to_date"] == "0" and row["last_used_at"] is None
    assert row["limits"] == key["limits"]
    detail = acct.call("GET", f"/api/keys/{key['id']}")["json"]
    assert detail["rotating"] == [] and detail["name"] == "prod"

    # When limits are replaced with none, the expiry removed and the key renamed
    patched = acct.call("PATCH", f"/api/keys/{key['id']}", {"name": "prod-2", "limits": None, "valid_until": None})
    assert patched["statusCode"] == 200
    assert patched["json"]["name"] == "prod-2" and patched["json"]["valid_until"] is None
    assert patched["json"]["limits"]["allowed_models"] is None
    assert patched["json"]["limits"]["spend_limit_usd"] is None
    assert "valid_until" not in acct.item(key["secret"])

    # And disabled: the secret is refused
    assert acct.call("PATCH", f"/api/keys/{key['id']}", {"disabled": True})["json"]["disabled"] is True
    assert not acct.works(key["secret"])
    assert acct.call("PATCH", f"/api/keys/{key['id']}", {"disabled": False})["json"]["disabled"] is False
    assert acct.works(key["secret"])

    # When it is deleted, Then it is gone and its secret refused
    deleted = acct.call("DELETE", f"/api/keys/{key['id']}")
    assert deleted["statusCode"] == 204 and not deleted.get("body")
    assert error_of(acct.call("GET", f"/api/keys/{key['id']}"))["code"] == "key_not_found"
    assert not acct.works(key["secret"]) and acct.item(key["secret"]) is None


def test_spend_to_date_sums_the_key_rollups_and_last_use_is_its_newest_record(acct, aws_env):
    key = acct.new_key("prod")
    other = acct.new_key("staging")
    stored = acct.keys.get_key("acct", key["id"])
    now = datetime.now(UTC).replace(microsecond=0)
    times = [now - timedelta(days=70), now - timedelta(days=1), now - timedelta(minutes=5)]
    items = [
        ledger_item(moment, key=stored, cost=Decimal(cost))
        for moment, cost in zip(times, ("0.1", "0.2", "0.000001"), strict=True)
    ]
    ledger, rollups = DynamoLedgerStore(aws_env["LedgerTable"]), DynamoRollupStore(aws_env["RollupsTable"])
    for item in items:
        ledger.put(item)
        count_record(rollups, contribution(item))

    rows = {row["id"]: row for row in acct.call("GET", "/api/keys")["json"]["data"]}
    assert rows[key["id"]]["spend_to_date"] == "0.300001"
    assert rows[key["id"]]["last_used_at"] == items[-1]["created_at"]
    assert rows[other["id"]]["spend_to_date"] == "0" and rows[other["id"]]["last_used_at"] is None
    assert acct.call("GET", f"/api/keys/{key['id']}")["json"]["spend_to_date"] == "0.300001"


def test_last_use_is_the_newest_record_whatever_order_the_stream_delivers_in(acct, aws_env):
    # Given a key whose records reach the aggregator out of time order, one of them twice
    key = acct.new_key("prod")
    stored = acct.keys.get_key("acct", key["id"])
    now = datetime.now(UTC).replace(microsecond=0)
    newest, older, oldest = (ledger_item(now - timedelta(minutes=m), key=stored) for m in (1, 30, 90))
    rollups = DynamoRollupStore(aws_env["RollupsTable"])
    for item in (newest, oldest, older, newest):
        count_record(rollups, contribution(item))

    # Then the listing and the key's own page show the newest one's time, not the last delivered
    listed = {row["id"]: row for row in acct.call("GET", "/api/keys")["json"]["data"]}
    assert listed[key["id"]]["last_used_at"] == newest["created_at"]
    assert acct.call("GET", f"/api/keys/{key['id']}")["json"]["last_used_at"] == newest["created_at"]


def test_an_admin_keys_last_use_is_its_latest_call_of_the_api(acct, aws_env):
    # Given a second admin key that has made no call
    idle, _ = create_key(acct.keys, "acct", "idle ops", kind="admin")
    before = datetime.now(UTC) - timedelta(seconds=1)

    # When the first one lists the keys
    rows = {row["id"]: row for row in acct.call("GET", "/api/keys")["json"]["data"]}

    # Then its own row says this very call used it, and the idle one was never used
    assert before <= parse_utc_iso(rows[acct.admin_key.key_id]["last_used_at"]) <= datetime.now(UTC)
    assert rows[idle.key_id]["last_used_at"] is None
    # And admin keys stay out of the keys whose rollup shards the activity reads
    assert acct.admin_key.key_id not in DynamoRollupStore(aws_env["RollupsTable"]).last_used("acct")


def test_a_call_goes_on_when_its_admin_keys_last_use_cannot_be_written(acct, monkeypatch):
    def unavailable(use):
        raise StorageError("throttled")

    monkeypatch.setattr(api_deps().rollups, "raise_last_use", unavailable)

    listed = acct.call("GET", "/api/keys")

    assert listed["statusCode"] == 200
    assert acct.admin_key.key_id in {row["id"] for row in listed["json"]["data"]}


# --- rotation ---------------------------------------------------------------------------------


def test_a_rotated_out_secret_works_for_its_overlap_only(acct, monkeypatch):
    key = acct.new_key("prod")
    first = key["secret"]

    # When the key is rotated with a one-hour overlap
    rotated = acct.rotate(key["id"], 3600)
    second = rotated["secret"]

    # Then both secrets work, the listing shows one row with the new prefix, and the detail the old one
    assert second != first and acct.works(first) and acct.works(second)
    rows = [row for row in acct.call("GET", "/api/keys")["json"]["data"] if row["id"] == key["id"]]
    assert [row["prefix"] for row in rows] == [second[:14]]
    (rotating,) = rotated["rotating"]
    assert rotating["prefix"] == first[:14]
    overlap_end = datetime.fromisoformat(rotating["valid_until"].replace("Z", "+00:00"))
    assert timedelta(minutes=59) < overlap_end - datetime.now(UTC) <= timedelta(hours=1)
    # And the old item is retired: no index attributes, listed by the new current item
    old_item, new_item = acct.item(first), acct.item(second)
    assert "gsi1pk" not in old_item and old_item["valid_until"] == rotating["valid_until"]
    assert new_item["retired_hashes"] == [hash_secret(first)] and new_item["created_at"] == key["created_at"]
    # And once the overlap is over, the old secret is refused
    stored = acct.keys.get_by_hash(hash_secret(first))
    assert stored.expired_at(overlap_end) and not stored.expired_at(overlap_end - timedelta(seconds=1))

    # When it is rotated again with no overlap, Then the second secret stops at once
    third = acct.rotate(key["id"], 0)["secret"]
    assert not acct.works(second) and acct.item(second) is None
    assert acct.works(first) and acct.works(third)
    assert [entry["prefix"] for entry in acct.call("GET", f"/api/keys/{key['id']}")["json"]["rotating"]] == [first[:14]]

    # When a rotation happens after the first overlap ended, Then that secret's item is removed
    later = datetime.now(UTC) + timedelta(hours=2)
    monkeypatch.setattr(api_deps(), "clock", lambda: later)
    fourth = acct.rotate(key["id"])  # the default overlap: one hour
    assert acct.item(first) is None
    assert [entry["prefix"] for entry in fourth["rotating"]] == [third[:14]]
    assert acct.item(fourth["secret"])["retired_hashes"] == [hash_secret(third)]


def test_changes_reach_the_secrets_still_in_overlap(acct):
    key = acct.new_key("prod", limits={"requests_per_minute": 5})
    old = key["secret"]
    new = acct.rotate(key["id"], 7200)["secret"]
    overlap_end = acct.item(old)["valid_until"]

    # An expiry before the overlap ends cuts the old secret short; a later one leaves its own end
    soon = (datetime.now(UTC) + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    acct.call("PATCH", f"/api/keys/{key['id']}", {"valid_until": soon, "limits": {"tokens_per_minute": 7}})
    assert acct.item(old)["valid_until"] == soon == acct.item(new)["valid_until"]
    assert acct.item(old)["limits"] == {"spend_period": "none", "tokens_per_minute": 7}
    acct.call("PATCH", f"/api/keys/{key['id']}", {"valid_until": IN_A_YEAR})
    assert acct.item(old)["valid_until"] == overlap_end
    assert acct.call("PATCH", f"/api/keys/{key['id']}", {"valid_until": None})["json"]["valid_until"] is None
    assert "valid_until" not in acct.item(new) and acct.item(old)["valid_until"] == overlap_end

    # Disabling the key refuses the old secret too; deleting it removes both items
    acct.call("PATCH", f"/api/keys/{key['id']}", {"disabled": True})
    assert not acct.works(old) and not acct.works(new)
    assert acct.call("DELETE", f"/api/keys/{key['id']}")["statusCode"] == 204
    assert acct.item(old) is None and acct.item(new) is None


# --- members ----------------------------------------------------------------------------------


def test_disabling_a_member_disables_every_secret_of_their_keys(acct):
    for member in ("alice@example.com", "bob@example.com"):
        assert acct.call("POST", "/api/members", {"member_id": member})["statusCode"] == 201
    duplicate = acct.call("POST", "/api/members", {"member_id": "ALICE@example.com"})
    assert duplicate["statusCode"] == 409 and error_of(duplicate)["code"] == "member_exists"
    listed = acct.call("GET", "/api/members")["json"]["data"]
    assert [member["member_id"] for member in listed] == ["alice@example.com", "bob@example.com"]

    first = acct.new_key("a1", member="alice@example.com")
    old_secret = first["secret"]
    new_secret = acct.rotate(first["id"], 3600)["secret"]
    second = acct.new_key("a2", member="alice@example.com")
    bobs = acct.new_key("b1", member="bob@example.com")

    # When alice is disabled
    patched = acct.call("PATCH", "/api/members/ALICE%40example.com", {"disabled": True, "name": "Alice"})
    assert patched["statusCode"] == 200 and patched["json"]["disabled"] is True and patched["json"]["name"] == "Alice"

    # Then each of her secrets is refused, bob's still works, and she gets no new key
    assert not any(acct.works(secret) for secret in (old_secret, new_secret, second["secret"]))
    assert acct.works(bobs["secret"])
    refused = acct.call("POST", "/api/keys", {"name": "a3", "member": "alice@example.com"})
    assert refused["statusCode"] == 400 and error_of(refused)["code"] == "member_disabled"
    enable_key = acct.call("PATCH", f"/api/keys/{second['id']}", {"disabled": False})
    assert enable_key["statusCode"] == 400 and error_of(enable_key)["code"] == "member_disabled"

    # When she is enabled again, Then her keys stay disabled until each is enabled on purpose
    assert acct.call("PATCH", "/api/members/alice@example.com", {"disabled": False})["json"]["disabled"] is False
    assert not acct.works(second["secret"])
    assert acct.call("PATCH", f"/api/keys/{second['id']}", {"disabled": False})["statusCode"] == 200
    assert acct.works(second["secret"]) and not acct.works(new_secret)


def test_a_key_for_an_unknown_member_is_a_404_and_creates_nothing(acct):
    before = acct.scan()
    response = acct.call("POST", "/api/keys", {"name": "x", "member": "nobody@example.com"})
    assert response["statusCode"] == 404 and error_of(response)["code"] == "member_not_found"
    assert acct.scan() == before


# --- balance ----------------------------------------------------------------------------------


def test_top_ups_add_up_exactly_and_the_balance_reaches_the_dashboard(acct, monkeypatch):
    # Given no credit yet: no limit, balance null
    empty = acct.call("GET", "/api/balance")["json"]
    assert empty == {
        "credits_usd": "0",
        "spent_usd": "0",
        "spent_before_credit_usd": "0",
        "balance_usd": None,
        "topups": [],
    }
    assert acct.call("GET", "/api/dashboard")["json"]["balance"] is None

    # When credit is added in amounts that binary floats cannot hold, a second apart
    start = datetime.now(UTC)
    clock = iter(start + timedelta(seconds=second) for second in range(10))
    monkeypatch.setattr(api_deps(), "clock", lambda: next(clock))
    for amount in ("0.1", 0.2, "25.50", "0.000001"):
        assert acct.call("POST", "/api/balance/topups", {"amount_usd": amount, "note": "invoice"})["statusCode"] == 201
    # And the proxy has spent some (it ADDs each request's cost)
    boto3.client("dynamodb").update_item(
        TableName=acct.table,
        Key={"pk": {"S": "ACCOUNT#acct"}, "sk": {"S": "BALANCE"}},
        UpdateExpression="ADD spent_usd :cost",
        ExpressionAttributeValues={":cost": {"N": "1.05"}},
    )

    # Then the sums are exact, the top-ups newest first, each naming the admin key that added it
    balance = acct.call("GET", "/api/balance")["json"]
    assert balance["credits_usd"] == "25.800001"
    assert balance["spent_usd"] == "1.05"
    assert balance["spent_before_credit_usd"] == "0"
    assert balance["balance_usd"] == "24.750001"
    assert [topup["amount_usd"] for topup in balance["topups"]] == ["0.000001", "25.5", "0.2", "0.1"]
    assert {topup["created_by"] for topup in balance["topups"]} == {acct.admin_key.key_id}
    monkeypatch.setattr(api_deps(), "clock", lambda: start)
    assert acct.call("GET", "/api/dashboard")["json"]["balance"] == "24.750001"
    # And another account sees none of it
    assert acct.call("GET", "/api/balance", as_other=True)["json"]["balance_usd"] is None


# --- bad input and other accounts ------------------------------------------------------------


BAD_KEY_BODIES = [
    ({"name": "x", "limits": {"spend_limit_usd": -1}}, "spend_limit_usd"),
    ({"name": "x", "limits": {"spend_limit_usd": "lots"}}, "spend_limit_usd"),
    ({"name": "x", "limits": {"requests_per_minute": 0}}, "requests_per_minute"),
    ({"name": "x", "limits": {"tokens_per_minute": "9"}}, "tokens_per_minute"),
    ({"name": "x", "limits": {"spend_period": "yearly"}}, "spend_period"),
    ({"name": "x", "limits": {"allowed_models": ["openai/gpt-4o-mini", "openai/gpt-99"]}}, "openai/gpt-99"),
    ({"name": "x", "limits": {"allowed_models": []}}, "allowed_models"),
    ({"name": "x", "limits": {"rpm": 5}}, "rpm"),
    ({"name": "x", "valid_until": "2020-01-01T00:00:00Z"}, "valid_until"),
    ({"name": "x", "valid_until": "soon"}, "valid_until"),
    ({"name": ""}, "name"),
    ({"name": "x", "member": "a b"}, "member"),
]


def test_a_bad_key_is_a_400_that_names_the_problem_and_changes_nothing(acct):
    before = acct.scan()
    for body, named in BAD_KEY_BODIES:
        response = acct.call("POST", "/api/keys", body)
        assert response["statusCode"] == 400, body
        assert named in error_of(response)["message"], (body, response["json"])
    assert acct.scan() == before


def test_bad_changes_are_refused_and_change_nothing(acct):
    key = acct.new_key("prod")
    key_path = f"/api/keys/{key['id']}"
    admin_path = f"/api/keys/{acct.admin_key.key_id}"
    cases = [
        ("PATCH", key_path, {"name": ""}, 400, None),
        ("PATCH", key_path, {"name": None}, 400, None),
        ("PATCH", key_path, {"disabled": None}, 400, None),
        ("PATCH", key_path, {"limits": {"spend_limit_usd": "-0.01"}}, 400, None),
        ("PATCH", key_path, {"valid_until": "2001-01-01"}, 400, "invalid_valid_until"),
        ("PATCH", key_path, {"kind": "admin"}, 400, None),
        ("POST", key_path + "/rotate", {"overlap_seconds": 604801}, 400, None),
        ("POST", key_path + "/rotate", {"overlap_seconds": -1}, 400, None),
        ("PATCH", "/api/keys/key_doesnotexist", {"name": "x"}, 404, "key_not_found"),
        ("DELETE", "/api/keys/nonsense", None, 404, "key_not_found"),
        ("POST", "/api/keys/key_doesnotexist/rotate", None, 404, "key_not_found"),
        ("PATCH", admin_path, {"limits": {"requests_per_minute": 1}}, 400, "admin_key"),
        ("POST", admin_path + "/rotate", None, 400, "admin_key"),
        ("PATCH", admin_path, {"disabled": True}, 400, "own_key"),
        ("DELETE", admin_path, None, 400, "own_key"),
        ("POST", "/api/members", {"member_id": "has space"}, 400, "invalid_member_id"),
        ("POST", "/api/members", {"member_id": ""}, 400, None),
        ("POST", "/api/members", {"member_id": "x", "role": "boss"}, 400, None),
        ("PATCH", "/api/members/nobody", {"disabled": True}, 404, "member_not_found"),
        ("POST", "/api/balance/topups", {"amount_usd": 0}, 400, None),
        ("POST", "/api/balance/topups", {"amount_usd": "-5"}, 400, None),
        ("POST", "/api/balance/topups", {"amount_usd": "1000000.01"}, 400, None),
        ("POST", "/api/balance/topups", {"amount_usd": "NaN"}, 400, None),
        ("POST", "/api/balance/topups", {"amount_usd": "ten"}, 400, None),
        ("POST", "/api/balance/topups", {}, 400, None),
    ]
    before = acct.scan()
    for method, path, body, status, code in cases:
        response = acct.call(method, path, body)
        assert response["statusCode"] == status, (method, path, body, response["json"])
        error = error_of(response)
        assert code is None or error["code"] == code, (method, path, body, error)
    assert acct.scan() == before
    assert acct.works(key["secret"])


def test_another_accounts_keys_and_members_are_404_and_untouched(acct):
    acct.call("POST", "/api/members", {"member_id": "alice"})
    key = acct.new_key("prod", member="alice")
    before = acct.scan()
    for method, path, body, code in [
        ("GET", f"/api/keys/{key['id']}", None, "key_not_found"),
        ("PATCH", f"/api/keys/{key['id']}", {"disabled": True}, "key_not_found"),
        ("DELETE", f"/api/keys/{key['id']}", None, "key_not_found"),
        ("POST", f"/api/keys/{key['id']}/rotate", {"overlap_seconds": 0}, "key_not_found"),
        ("PATCH", "/api/members/alice", {"disabled": True}, "member_not_found"),
        ("POST", "/api/keys", {"name": "theirs", "member": "alice"}, "member_not_found"),
    ]:
        response = acct.call(method, path, body, as_other=True)
        assert response["statusCode"] == 404 and error_of(response)["code"] == code, (method, path)
    assert acct.scan() == before
    assert acct.call("GET", "/api/keys", as_other=True)["json"]["data"][0]["name"] == "their ops"
    assert acct.call("GET", "/api/members", as_other=True)["json"]["data"] == []
    assert acct.works(key["secret"])


def test_no_secret_or_hash_leaves_the_api_and_no_secret_is_stored(acct):
    acct.call("POST", "/api/members", {"member_id": "alice"})
    key = acct.new_key("prod", member="alice")
    acct.rotate(key["id"], 600)
    acct.rotate(key["id"], 0)
    acct.call("GET", "/api/keys")
    acct.call("GET", f"/api/keys/{key['id']}")
    acct.call("PATCH", f"/api/keys/{key['id']}", {"name": "renamed"})
    acct.call("PATCH", "/api/members/alice", {"disabled": True})
    acct.call("POST", "/api/keys", {"name": "x", "member": "alice"})

    hashes = [hash_secret(secret) for secret in acct.secrets]
    for index, body in enumerate(acct.bodies):
        shown = [secret for secret in acct.secrets if secret in body]
        # A secret appears once: in the response that created or rotated it.
        assert len(shown) <= 1 and not any(key_hash in body for key_hash in hashes), index
    assert sum(secret in body for body in acct.bodies for secret in acct.secrets[2:]) == 3
    table = json.dumps(acct.scan())
    assert not any(secret in table for secret in acct.secrets)


def test_the_openapi_document_lists_the_management_paths(aws_env):
    paths = call_api("GET", "/api/openapi.json", None)["json"]["paths"]
    assert {"get", "post"} <= set(paths["/api/keys"])
    assert {"get", "patch", "delete"} <= set(paths["/api/keys/{key_id}"])
    assert "post" in paths["/api/keys/{key_id}/rotate"]
    assert {"get", "post"} <= set(paths["/api/members"])
    assert "patch" in paths["/api/members/{member_id}"]
    assert "get" in paths["/api/balance"] and "post" in paths["/api/balance/topups"]


# --- CLI and the local stack's bootstrap -------------------------------------------------------


def test_the_cli_bootstraps_members_keys_and_credit(acct, capsys):
    where = ["--table", acct.table, "--account", "acct"]

    assert cli.main(["keys", "create", "--name", "ci", "--member", "Eve@Example.com", *where]) == 0
    secret = json.loads(capsys.readouterr().out)["secret"]
    assert acct.works(secret) and acct.item(secret)["member"] == "eve@example.com"
    assert cli.main(["members", "create", "--member-id", "dan", "--name", "Dan", *where]) == 0
    assert json.loads(capsys.readouterr().out)["member_id"] == "dan"
    assert cli.main(["members", "create", "--member-id", "DAN", *where]) == 1
    assert "already exists" in capsys.readouterr().err

    assert cli.main(["balance", "topup", "--amount", "25.50", "--note", "first", *where]) == 0
    assert cli.main(["balance", "topup", "--amount", "0.25", *where]) == 0
    capsys.readouterr()
    assert cli.main(["balance", "show", *where]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["credits_usd"] == "25.75" and shown["balance_usd"] == "25.75"
    assert cli.main(["balance", "topup", "--amount", "-1", *where]) == 1
    members = acct.call("GET", "/api/members")["json"]["data"]
    assert [member["member_id"] for member in members] == ["dan", "eve@example.com"]


def test_the_local_stack_bootstraps_its_member_before_its_key(aws_env):
    from devstack.stack import LOCAL_ACCOUNT, bootstrap_keys

    secrets = bootstrap_keys()
    store = DynamoKeyStore(aws_env["KeysTable"])
    key = authenticate({"authorization": f"Bearer {secrets['api_key']}"}, store, kind="api")
    assert key.member == "dev@localhost" and key.account_id == LOCAL_ACCOUNT
    members = call_api("GET", "/api/members", secrets["admin_key"])["json"]["data"]
    assert [member["member_id"] for member in members] == ["dev@localhost"]


def test_an_admin_key_is_renamed_or_disabled_and_stops_at_once(acct):
    # Given a second admin key that has just been used (so a warm API holds it in its cache)
    second, second_secret = create_key(acct.keys, "acct", "backup ops", kind="admin")
    assert call_api("GET", "/api/keys", second_secret)["statusCode"] == 200

    # When the first admin renames and disables it
    path = f"/api/keys/{second.key_id}"
    assert acct.call("PATCH", path, {"name": "retired ops"})["json"]["name"] == "retired ops"
    assert acct.call("PATCH", path, {"disabled": True})["json"]["disabled"] is True

    # Then it is refused on its next call
    assert call_api("GET", "/api/keys", second_secret)["statusCode"] == 401


def test_the_first_top_up_starts_the_balance_at_its_amount_whatever_was_spent_before(acct, aws_env):
    # Given an account that spent before it had any credit (every settlement adds to BALANCE)
    from meterway.accounts.models import CounterDelta
    from meterway.ledger.logic.record_usage import with_counters

    ledger = DynamoLedgerStore(aws_env["LedgerTable"])
    tiny = CounterDelta("ACCOUNT#acct", "BALANCE", {"spent_usd": Decimal("1E-9")})
    big = CounterDelta("ACCOUNT#acct", "BALANCE", {"spent_usd": Decimal("99.5")})
    assert ledger.put(with_counters(ledger_item(datetime.now(UTC)), [big]))
    assert ledger.put(with_counters(ledger_item(datetime.now(UTC)), [tiny]))  # a cost under 1e-6 adds too
    count_ledger(aws_env)

    # When credit is added twice
    for amount in ("25", "0.5"):
        response = call_api("POST", "/api/balance/topups", acct.admin, {"amount_usd": amount})
        assert response["statusCode"] == 201, response["body"]

    # Then the balance is exactly the credit added, the credits are the top-ups' sum, and what was
    # spent before them is shown apart
    balance = call_api("GET", "/api/balance", acct.admin)["json"]
    assert balance["balance_usd"] == "25.5"
    assert balance["credits_usd"] == "25.5"
    assert balance["spent_usd"] == "99.500000001"
    assert balance["spent_before_credit_usd"] == "99.500000001"

    # And spending counts against the credit from here on
    assert ledger.put(
        with_counters(
            ledger_item(datetime.now(UTC)), [CounterDelta("ACCOUNT#acct", "BALANCE", {"spent_usd": Decimal("0.25")})]
        )
    )
    count_ledger(aws_env)
    balance = call_api("GET", "/api/balance", acct.admin)["json"]
    assert balance["balance_usd"] == "25.25"
    assert balance["credits_usd"] == "25.5"
    assert balance["spent_usd"] == "99.750000001"
    assert balance["spent_before_credit_usd"] == "99.500000001"


def test_a_deleted_keys_usage_stays_in_the_activity_grouped_by_key(acct, aws_env):
    kept, gone = acct.new_key("kept"), acct.new_key("gone")
    now = datetime.now(UTC).replace(microsecond=0)
    rollups = DynamoRollupStore(aws_env["RollupsTable"])
    for key, cost in ((kept, "0.25"), (gone, "0.5")):
        stored = acct.keys.get_key("acct", key["id"])
        count_record(rollups, contribution(ledger_item(now - timedelta(minutes=3), key=stored, cost=Decimal(cost))))
    assert acct.call("DELETE", f"/api/keys/{gone['id']}")["statusCode"] == 204

    activity = call_api("GET", "/api/activity", acct.admin, query={"period": "1d", "group_by": "key"})

    assert activity["statusCode"] == 200, activity["body"]
    spend = {group["group"]: Decimal(group["cost"]) for group in activity["json"]["groups"]}
    assert spend == {kept["id"]: Decimal("0.25"), gone["id"]: Decimal("0.5")}
