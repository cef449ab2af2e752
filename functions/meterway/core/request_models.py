"""What every management API request body is built from: a strict pydantic model and the shared
field types, so that the API accepts exactly what its OpenAPI document says.

A body's booleans and integers are JSON's own (``"yes"``, ``"1"`` or ``1.0`` are refused), its
unknown fields are refused, and times are text in one grammar (``CLIENT_TIME_PATTERN``). A query
string's integers are plain digits (``5``, not ``5.0``, `` 5`` or ``+5``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    StrictStr,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

from meterway.core.clock import CLIENT_TIME_PATTERN


class RequestBody(BaseModel):
    """Strict: a field that wants another type than JSON gives it (a decimal string, say) says so
    with ``Field(strict=False)``."""

    model_config = ConfigDict(extra="forbid", strict=True)


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def omissible(**constraints: Any) -> Any:
    """A body field that may be left out, but not sent as null: its type has no null, and the
    document shows no null default (``changes()`` reads only the fields sent)."""
    return Field(default=None, json_schema_extra=_no_default, **constraints)


def _integral(value: object) -> object:
    # JSON Schema's integer is any number without a fraction: 5.0 is the integer 5.
    return int(value) if isinstance(value, float) and value.is_integer() else value


# A body's integer is JSON's own (``"5"`` and ``true`` are refused), 5.0 included:
# ``Annotated[int, Field(ge=…, le=…), WHOLE]``. Bounds go before it: after it, pydantic writes them
# into the document as ``ge``/``le``, which no OpenAPI reader takes for ``minimum``/``maximum``.
WHOLE = BeforeValidator(_integral)


ClientTimeText = Annotated[
    StrictStr,
    Field(
        pattern=CLIENT_TIME_PATTERN,
        description="A date (2026-11-23) or ISO datetime (2026-11-23T14:05:00Z); without an offset, UTC",
    ),
]


def whole_number(value: object) -> object:
    """A query string's integer: plain digits."""
    if isinstance(value, str) and not (value.isascii() and value.isdigit()):
        raise ValueError("must be a whole number written in digits")
    return value


QueryInt = Annotated[int, BeforeValidator(whole_number)]


MONEY_PLACES = 10


def _amount_pattern(integer_digits: int, *, zero: bool) -> str:
    """Plain decimal text from 0 (or just above it) to ``10**integer_digits``, at most
    ``MONEY_PLACES`` decimals: what the document can say of a decimal's range and precision."""
    fraction = rf"(\.[0-9]{{1,{MONEY_PLACES}}})?"
    below_top = rf"[1-9][0-9]{{0,{integer_digits - 1}}}{fraction}"
    top = rf"1{'0' * integer_digits}(\.0{{1,{MONEY_PLACES}}})?"
    under_one = [rf"0\.0{{{zeros}}}[1-9][0-9]{{0,{MONEY_PLACES - 1 - zeros}}}" for zeros in range(MONEY_PLACES)]
    nought = [rf"0(\.0{{1,{MONEY_PLACES}}})?"] if zero else []
    return "^(" + "|".join([below_top, top, *under_one, *nought]) + ")$"


@dataclass(frozen=True)
class MoneyAmount:
    """Field metadata for a USD amount from 0 (``zero``) or more than 0 up to ``10**integer_digits``:
    decimal text (exact, at most ``MONEY_PLACES`` decimals) or a JSON number (binary, so rounded
    to them). ``Annotated[Decimal, MoneyAmount(6, zero=False)]``; the document states the same."""

    integer_digits: int
    zero: bool

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_before_validator_function(self._read, handler(source))

    def __get_pydantic_json_schema__(self, _: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        lowest = 0 if self.zero else float(Decimal(1).scaleb(-MONEY_PLACES))
        number = {"type": "number", "minimum": lowest, "maximum": 10**self.integer_digits}
        return {"anyOf": [number, {"type": "string", "pattern": _amount_pattern(self.integer_digits, zero=self.zero)}]}

    def _read(self, value: object) -> Decimal:
        if (isinstance(value, str) and re.fullmatch(_amount_pattern(self.integer_digits, zero=self.zero), value)) or (
            isinstance(value, int) and not isinstance(value, bool)
        ):
            amount = Decimal(value)
        elif isinstance(value, float) and abs(value) <= 10**self.integer_digits:
            amount = Decimal(repr(value)).quantize(Decimal(1).scaleb(-MONEY_PLACES))
        elif not isinstance(value, float):
            raise ValueError("must be a decimal string or a number")
        else:
            amount = Decimal(repr(value))
        top = Decimal(10) ** self.integer_digits
        if not (amount >= 0 if self.zero else amount > 0) or amount > top:
            raise ValueError(
                f"must be from {'0' if self.zero else 'above 0'} to {top}, {MONEY_PLACES} decimals at most"
            )
        return amount
