"""Request CSV rows read straight from DynamoDB's JSON: the hot loop of a request export.

A ledger page comes as DynamoDB sent it, one ``{"S": …}``, ``{"N": …}`` or ``{"BOOL": …}`` per
attribute. Deserializing it first (boto3's TypeDeserializer, a ``Decimal`` for every number) and
then formatting the row costs about 40 µs a record; reading each cell from the JSON costs a
fifth of that. Every shape the ledger writes takes that direct way and gives the row that
``request_row(deserialize(item))`` gives: text with its formula guard, whole numbers as sent, money
and prices through ``money``. Any other shape (a NULL, a number where it is not a plain whole number,
prices that are not a map) sends the whole record the old way, so that a row never differs from
what the deserialized record would give, whatever the item holds.
"""

from __future__ import annotations

import re
from decimal import Decimal
from functools import lru_cache
from typing import Any

from meterway.core.aws import deserialize
from meterway.core.money import money
from meterway.exports.logic.csv_format import FORMULA_STARTS, REQUEST_COLUMNS, request_row

# The price columns, filled from the record's ``prices`` map (``price_<rate name>``).
_PRICE_AT = {
    column.removeprefix("price_"): at for at, column in enumerate(REQUEST_COLUMNS) if column.startswith("price_")
}
# Each column, and whether it is money (read through ``money``, as ``request_row`` reads the cost).
_COLUMNS = tuple((column, column == "cost_usd") for column in REQUEST_COLUMNS)
# DynamoDB keeps at most 38 significant digits; boto3 refuses more, and so does the direct way.
_MAX_DIGITS = 38
_PLAIN_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?")


class UnusualAttribute(Exception):
    """An attribute of a shape the direct way does not read: the record goes through ``deserialize``."""


def wire_request_row(item: dict[str, Any]) -> list[Any]:
    """The CSV row of one ledger record in DynamoDB's JSON, cell for cell ``request_row``'s."""
    try:
        return direct_request_row(item)
    except UnusualAttribute:
        return request_row(deserialize(item))


def direct_request_row(item: dict[str, Any]) -> list[str]:
    """The row read straight from the JSON; ``UnusualAttribute`` for a shape the ledger does not write."""
    get = item.get
    row: list[str] = []
    add = row.append
    # One pass with the common case (text) inline: this loop runs 38 times a record.
    for column, is_money in _COLUMNS:
        attribute = get(column)
        if attribute is None:
            add("")
        elif is_money:
            add(_money_cell(attribute))
        elif (text := attribute.get("S")) is not None:
            add("'" + text if text.startswith(FORMULA_STARTS) else text)
        else:
            add(_number_or_flag(attribute))
    prices = get("prices")
    if prices is not None:
        for name, rate in _map(prices).items():
            at = _PRICE_AT.get(name)
            if at is not None:
                row[at] = _money_cell(rate)
    return row


def _number_or_flag(attribute: dict[str, Any]) -> str:
    """A whole number as ``int`` would print it (no sign, no leading zero, no exponent), or a flag."""
    number = attribute.get("N")
    if (
        number is not None
        and number.isdigit()
        and number.isascii()
        and len(number) <= _MAX_DIGITS
        and (number[0] != "0" or number == "0")
    ):
        return number
    flag = attribute.get("BOOL")
    if flag is True or flag is False:
        return "true" if flag else "false"
    raise UnusualAttribute


def _money_cell(attribute: dict[str, Any]) -> str:
    """An amount of USD (a cost, a rate): its exact decimal text."""
    number = attribute.get("N")
    if number is None:
        raise UnusualAttribute
    return _money_text(number)


@lru_cache(maxsize=8192)
def _money_text(number: str) -> str:
    # Rates repeat on every record of a model, costs often enough: each text is formatted once.
    if len(number) > _MAX_DIGITS or not _PLAIN_DECIMAL.fullmatch(number):
        raise UnusualAttribute
    return money(Decimal(number))


def _map(attribute: dict[str, Any]) -> dict[str, Any]:
    found = attribute.get("M")
    if not isinstance(found, dict):
        raise UnusualAttribute
    return found
