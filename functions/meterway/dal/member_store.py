"""Members in the KeysTable: ``pk = ACCOUNT#<account>``, ``sk = MEMBER#<member_id>``."""

from __future__ import annotations

from typing import Any, Protocol

from meterway.dal.aws import AwsResource, deserialize, serialize
from meterway.errors import StorageError
from meterway.logic.members import Member

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


def member_key(account_id: str, member_id: str) -> dict[str, str]:
    return {"pk": f"ACCOUNT#{account_id}", "sk": f"MEMBER#{member_id}"}


def member_item(member: Member) -> dict[str, Any]:
    item: dict[str, Any] = member_key(member.account_id, member.member_id) | {
        "account_id": member.account_id,
        "member_id": member.member_id,
        "disabled": member.disabled,
        "created_at": member.created_at,
    }
    if member.name is not None:
        item["name"] = member.name
    return item


def member_from_item(item: dict[str, Any]) -> Member:
    return Member(
        account_id=item["account_id"],
        member_id=item["member_id"],
        name=item.get("name"),
        created_at=item["created_at"],
        disabled=bool(item.get("disabled", False)),
    )


class DynamoMemberStore(AwsResource):
    def __init__(self, table_name: str, client: Any | None = None):
        super().__init__(client)
        self._table = table_name

    def create(self, member: Member) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.put_item(
                TableName=self._table,
                Item=serialize(member_item(member)),
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise StorageError(UNAVAILABLE) from exc
        except BotoCoreError as exc:
            raise StorageError(UNAVAILABLE) from exc
        return True

    def get(self, account_id: str, member_id: str) -> Member | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self.client.get_item(
                TableName=self._table, Key=serialize(member_key(account_id, member_id)), ConsistentRead=True
            )
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(UNAVAILABLE) from exc
        item = response.get("Item")
        return member_from_item(deserialize(item)) if item else None

    def list_members(self, account_id: str) -> list[Member]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            pages = self.client.get_paginator("query").paginate(
                TableName=self._table,
                KeyConditionExpression="pk = :pk AND begins_with(sk, :member)",
                ExpressionAttributeValues=serialize({":pk": f"ACCOUNT#{account_id}", ":member": "MEMBER#"}),
            )
            return [member_from_item(deserialize(item)) for page in pages for item in page.get("Items", [])]
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(UNAVAILABLE) from exc

    def update(self, account_id: str, member_id: str, fields: dict[str, Any]) -> Member | None:
        from botocore.exceptions import BotoCoreError, ClientError

        if not fields:
            return self.get(account_id, member_id)
        names = {f"#f{index}": name for index, name in enumerate(fields)}
        values = {f":f{index}": value for index, value in enumerate(fields.values())}
        try:
            response = self.client.update_item(
                TableName=self._table,
                Key=serialize(member_key(account_id, member_id)),
                UpdateExpression="SET " + ", ".join(f"#f{index} = :f{index}" for index in range(len(fields))),
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=serialize(values),
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return None
            raise StorageError(UNAVAILABLE) from exc
        except BotoCoreError as exc:
            raise StorageError(UNAVAILABLE) from exc
        return member_from_item(deserialize(response["Attributes"]))
