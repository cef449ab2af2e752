"""Members in the KeysTable, one item each under their account (see ``keys_table``)."""

from __future__ import annotations

from typing import Any, Protocol

from meterway.accounts.dal import keys_table
from meterway.accounts.models import Budget, Member
from meterway.core.aws import AwsResource, deserialize, serialize
from meterway.core.dynamo import ConditionFailed, Update, storage_errors

UNAVAILABLE = "The member store is unavailable; try again."


class MemberStore(Protocol):
    def create(self, member: Member) -> bool:
        """Store a new member; False when the account already has one with that id."""

    def get(self, account_id: str, member_id: str) -> Member | None:
        """One member of an account, read consistently."""

    def list_members(self, account_id: str) -> list[Member]:
        """Every member of an account, by id."""

    def update(self, account_id: str, member_id: str, fields: dict[str, Any]) -> Member | None:
        """Set ``fields`` on an existing member and return it; None when there is no such member."""


def member_item(member: Member) -> dict[str, Any]:
    item: dict[str, Any] = keys_table.member_key(member.account_id, member.member_id) | {
        "account_id": member.account_id,
        "member_id": member.member_id,
        "disabled": member.disabled,
        "created_at": member.created_at,
    }
    if member.name is not None:
        item["name"] = member.name
    if member.budget is not None:
        item["budget"] = member.budget.to_item()
    return item


def member_from_item(item: dict[str, Any]) -> Member:
    return Member(
        account_id=item["account_id"],
        member_id=item["member_id"],
        name=item.get("name"),
        created_at=item["created_at"],
        disabled=bool(item.get("disabled", False)),
        budget=Budget.from_item(item.get("budget")),
    )


class DynamoMemberStore(AwsResource):
    def __init__(self, table_name: str, client: Any | None = None):
        super().__init__(client)
        self._table = table_name

    def create(self, member: Member) -> bool:
        try:
            with storage_errors(UNAVAILABLE):
                self.client.put_item(
                    TableName=self._table,
                    Item=serialize(member_item(member)),
                    ConditionExpression="attribute_not_exists(pk)",
                )
        except ConditionFailed:
            return False
        return True

    def get(self, account_id: str, member_id: str) -> Member | None:
        key = serialize(keys_table.member_key(account_id, member_id))
        with storage_errors(UNAVAILABLE):
            response = self.client.get_item(TableName=self._table, Key=key, ConsistentRead=True)
        item = response.get("Item")
        return member_from_item(deserialize(item)) if item else None

    def list_members(self, account_id: str) -> list[Member]:
        with storage_errors(UNAVAILABLE):
            pages = self.client.get_paginator("query").paginate(
                TableName=self._table, **keys_table.account_items(account_id, keys_table.MEMBER_PREFIX)
            )
            return [member_from_item(deserialize(item)) for page in pages for item in page.get("Items", [])]

    def update(self, account_id: str, member_id: str, fields: dict[str, Any]) -> Member | None:
        if not fields:
            return self.get(account_id, member_id)
        # A None value (a cleared name) removes the attribute.
        update = Update(set=fields, condition="attribute_exists(pk)")
        request = update.request(self._table, keys_table.member_key(account_id, member_id))
        try:
            with storage_errors(UNAVAILABLE):
                response = self.client.update_item(**request, ReturnValues="ALL_NEW")
        except ConditionFailed:
            return None
        return member_from_item(deserialize(response["Attributes"]))
