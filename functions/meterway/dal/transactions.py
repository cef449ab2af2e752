"""TransactWriteItems with its cancellation reasons made readable.

A cancelled transaction says, item by item, which condition failed (and, when asked with
``ReturnValuesOnConditionCheckFailure``, what the item held). Stores turn that into domain answers:
a member that is missing, a key that was rotated meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from meterway.dal.aws import deserialize
from meterway.errors import StorageError


@dataclass(frozen=True, slots=True)
class Reason:
    code: str | None
    item: dict[str, Any] | None = None

    @property
    def failed(self) -> bool:
        return self.code not in (None, "", "None")


class TransactionCancelled(Exception):
    """A condition of the transaction failed; ``reasons`` has one entry per item, in order."""

    def __init__(self, reasons: list[Reason]):
        super().__init__("transaction cancelled")
        self.reasons = reasons

    def failed(self, index: int) -> Reason | None:
        """The reason of item ``index`` when that item's condition failed, else None."""
        reason = self.reasons[index] if index < len(self.reasons) else None
        return reason if reason is not None and reason.failed else None


def transact(client: Any, items: list[dict[str, Any]], unavailable: str) -> None:
    """Write ``items`` all or nothing. A failed condition raises ``TransactionCancelled``; any
    other failure (throttling, conflicts with other transactions) a ``StorageError``."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        client.transact_write_items(TransactItems=items)
    except ClientError as exc:
        reasons = _reasons(exc)
        if any(reason.code == "ConditionalCheckFailed" for reason in reasons):
            raise TransactionCancelled(reasons) from exc
        raise StorageError(unavailable) from exc
    except BotoCoreError as exc:
        raise StorageError(unavailable) from exc


def _reasons(exc: Any) -> list[Reason]:
    error = exc.response.get("Error", {})
    if error.get("Code") != "TransactionCanceledException":
        return []
    listed = exc.response.get("CancellationReasons")
    if listed:
        return [
            Reason(reason.get("Code"), deserialize(reason["Item"]) if reason.get("Item") else None) for reason in listed
        ]
    # Some endpoints give the reasons only in the message: "... [ConditionalCheckFailed, None]".
    codes = error.get("Message", "").rpartition("[")[2].rstrip("]")
    return [Reason(code.strip()) for code in codes.split(",")]
