"""Request CSV rows read straight from a ledger page's JSON: the hot loop of a request export.

A page's items come as DynamoDB sent them, one ``{"S": …}``, ``{"N": …}``, ``{"BOOL": …}`` or
``{"M": …}`` per attribute. Deserializing them (botocore's parser, then boto3's TypeDeserializer, a
``Decimal`` for every number) and formatting each row costs about 140 µs a record; ``json.loads``
into dicts and reading the cells from them, about 40. Here msgspec decodes the page into one small
struct per record with a field per column (``WireRecord``) and one per attribute value (``Cell``):
no dict is built per record or per attribute, and the attributes no row needs are skipped unread.
A number's cell is its text as DynamoDB sent it, when that text is what ``int`` would print.

The rows are those of ``request_row(deserialize(item))`` for every item, byte for byte: every
shape the ledger writes is read the direct way; a record with another shape (a number where it is
not a plain whole number, text where a number belongs, prices that are not a map) is deserialized
and formatted by ``request_row``, and a page holding an attribute of a type the structs do not
know (``NULL``, ``L``, sets, binary) or text msgspec does not take (a lone surrogate escape) is
read whole with ``json.loads`` and every record of it goes that way.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from functools import lru_cache
from typing import Any

import msgspec

from meterway.core.aws import deserialize
from meterway.core.money import money
from meterway.exports.logic.csv_format import FORMULA_STARTS, REQUEST_COLUMNS, request_row


class Cell(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, gc=False):
    """One attribute value in DynamoDB's JSON, of a type a ledger record's columns may have.

    ``gc=False`` (and on ``WireRecord``): a decoded page holds no reference cycle, so its structs
    are left out of the cyclic GC, whose collections while a page's 30,000 of them were made cost
    about as much as the decode itself."""

    S: str | None = None
    N: str | None = None
    BOOL: bool | None = None
    M: dict[str, Cell] | None = None


# A record: its columns in the CSV's order (``price_*`` too, which the ``prices`` map then fills),
# then ``prices``; any other attribute of the item is skipped as the page is decoded.
WireRecord = msgspec.defstruct(
    "WireRecord", [(name, Cell | None, None) for name in (*REQUEST_COLUMNS, "prices")], omit_defaults=True, gc=False
)
PAGE_DECODER = msgspec.json.Decoder(list[WireRecord])  # type: ignore[valid-type]
# The price columns, filled from the record's ``prices`` map (``price_<rate name>``).
_PRICE_AT = {
    column.removeprefix("price_"): at for at, column in enumerate(REQUEST_COLUMNS) if column.startswith("price_")
}
_COST_AT = REQUEST_COLUMNS.index("cost_usd")
# DynamoDB keeps at most 38 significant digits; boto3 refuses more, and so does the direct way.
_MAX_DIGITS = 38
_PLAIN_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?")


class UnusualAttribute(Exception):
    """An attribute of a shape the direct way does not read: the record goes through ``deserialize``."""


def page_rows(items: bytes) -> list[list[str]]:
    """The CSV rows of a page's items (the JSON array of the Query's answer), in their order."""
    try:
        records = PAGE_DECODER.decode(items)
    except msgspec.DecodeError:  # a type the structs do not know, or text msgspec does not take
        return [request_row(deserialize(item)) for item in json.loads(items)]
    return [_row(record) for record in records]


def direct_rows(items: bytes) -> list[list[str]]:
    """The rows read the direct way only: ``UnusualAttribute`` (or msgspec's ``DecodeError``) for
    a record it does not read exactly. For tests: which way a record goes."""
    return [direct_row(record) for record in PAGE_DECODER.decode(items)]


def _row(record: Any) -> list[str]:
    try:
        return direct_row(record)
    except UnusualAttribute:
        return request_row(deserialize(msgspec.to_builtins(record)))


def direct_row(record: Any) -> list[str]:
    """One record's row; ``UnusualAttribute`` for a shape the ledger does not write."""
    *cells, prices = msgspec.structs.astuple(record)
    row: list[str] = []
    _add_cells(cells[:_COST_AT], row)
    cost = cells[_COST_AT]
    row.append("" if cost is None else _money_cell(cost))
    _add_cells(cells[_COST_AT + 1 :], row)
    if prices is not None:
        if prices.M is None:
            raise UnusualAttribute
        for name, rate in prices.M.items():
            at = _PRICE_AT.get(name)
            if at is not None:
                row[at] = _money_cell(rate)
    return row


def _add_cells(cells: list[Cell | None], row: list[str]) -> None:
    add = row.append
    # The common cases inline, no call per cell: this loop runs 37 times a record. A whole number
    # is the text ``int`` prints: ASCII digits, no sign, no leading zero, no exponent.
    for cell in cells:
        if cell is None:
            add("")
        elif (text := cell.S) is not None:
            add("'" + text if text.startswith(FORMULA_STARTS) else text)
        elif (number := cell.N) is not None:
            if not (
                number.isdigit()
                and number.isascii()
                and len(number) <= _MAX_DIGITS
                and (number[0] != "0" or number == "0")
            ):
                raise UnusualAttribute
            add(number)
        elif (flag := cell.BOOL) is not None:
            add("true" if flag else "false")
        else:
            raise UnusualAttribute


def _money_cell(cell: Cell) -> str:
    """An amount of USD (a cost, a rate): its exact decimal text."""
    if cell.N is None or cell.S is not None:
        raise UnusualAttribute
    return _money_text(cell.N)


@lru_cache(maxsize=8192)
def _money_text(number: str) -> str:
    # Rates repeat on every record of a model, costs often enough: each text is formatted once.
    if len(number) > _MAX_DIGITS or not _PLAIN_DECIMAL.fullmatch(number):
        raise UnusualAttribute
    return money(Decimal(number))
