"""A member's budget caps what all of their keys spend together, on the local stack: set through
the management API from the spend of the period so far, carried by keys made before and after,
enforced like a key's own limit (the openai SDK sees the 402), and shown in ``/v1/key`` and the
members' listing."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import httpx
import openai
import pytest

from tests.e2e.test_quotas import chat, ledger_of

pytestmark = pytest.mark.e2e


def member_spent(stack, member_id: str) -> Decimal:
    """The member's spend over the last day, from the rollups (what a budget starts from)."""
    groups = stack.admin("GET", "/activity", params={"period": "1d", "group_by": "member"}).json()["groups"]
    return next((Decimal(group["cost"]) for group in groups if group["group"] == member_id), Decimal(0))


def wait_counted(stack, member_id: str, key_ids: list[str], timeout_s: float = 30) -> Decimal:
    """Wait until the rollups hold every record of the keys; their spend."""
    deadline = time.monotonic() + timeout_s
    while True:
        spent = sum((Decimal(str(r["cost_usd"])) for k in key_ids for r in ledger_of(stack, k)), Decimal(0))
        if member_spent(stack, member_id) == spent:
            return spent
        assert time.monotonic() < deadline, f"not counted: {member_spent(stack, member_id)} against {spent}"
        time.sleep(0.2)


def new_key(stack, member_id: str) -> dict[str, Any]:
    created = stack.admin("POST", "/keys", json={"name": f"budget {time.monotonic_ns()}", "member": member_id})
    assert created.status_code == 201, created.text
    return dict(created.json())


def test_a_members_budget_stops_all_their_keys_together(stack):
    member_id = f"budget-{time.monotonic_ns()}@example.com"
    assert stack.admin("POST", "/members", json={"member_id": member_id, "name": "Budgeted"}).status_code == 201
    # Given a key of the member that spent before any budget
    before = new_key(stack, member_id)
    assert chat(stack, before["secret"]).status_code == 200
    spent_before = wait_counted(stack, member_id, [before["id"]])
    assert spent_before > 0

    # When the member is given a monthly budget a little over that
    limit = spent_before + Decimal("0.0003")
    patched = stack.admin(
        "PATCH",
        f"/members/{quote(member_id)}",
        json={"budget": {"spend_limit_usd": str(limit), "spend_period": "monthly"}},
    )
    assert patched.status_code == 200, patched.text
    budget = patched.json()["budget"]
    # Then it starts from what the member spent this month
    assert (Decimal(budget["spend_limit_usd"]), Decimal(budget["spent_usd"])) == (limit, spent_before)
    assert budget["spend_period"] == "monthly" and budget["next_reset"].endswith("T00:00:00.000Z")

    # And a key made after it carries it, as /v1/key shows
    after = new_key(stack, member_id)
    status = httpx.get(f"{stack.base}/v1/key", headers={"authorization": f"Bearer {after['secret']}"}).json()["data"]
    assert status["member_budget"]["spend_limit_usd"] == budget["spend_limit_usd"]
    assert Decimal(status["member_budget"]["spent_usd"]) == spent_before

    # And its requests stop once the member's spend (both keys') reaches the budget
    client = openai.OpenAI(base_url=f"{stack.base}/v1", api_key=after["secret"], max_retries=0)
    answered, refusal = 0, None
    for _ in range(40):
        try:
            client.chat.completions.create(
                model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "budget, please"}]
            )
            answered += 1
        except openai.APIStatusError as error:
            refusal = error
            break
        wait_counted(stack, member_id, [before["id"], after["id"]])
    assert refusal is not None and answered >= 1
    assert refusal.status_code == 402
    assert refusal.body["code"] == "member_spend_limit_reached"
    assert "member reached their spend limit" in refusal.body["message"]
    assert chat(stack, after["secret"]).status_code == 402  # and stays stopped

    spent = wait_counted(stack, member_id, [before["id"], after["id"]])
    listed = stack.admin("GET", "/members").json()["data"]
    shown = next(member for member in listed if member["member_id"] == member_id)["budget"]
    assert Decimal(shown["spent_usd"]) == spent >= limit
    assert Decimal(shown["remaining_usd"]) == 0

    # And removing the budget lets the key through again
    assert stack.admin("PATCH", f"/members/{quote(member_id)}", json={"budget": None}).json()["budget"] is None
    fresh = new_key(stack, member_id)
    assert chat(stack, fresh["secret"]).status_code == 200
