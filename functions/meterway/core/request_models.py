"""What every management API request body is built from: a strict pydantic model and the shared
field types, so that the API accepts exactly what its OpenAPI document says.

A body's booleans and integers are JSON's own (``"yes"``, ``"1"`` or ``1.0`` are refused), its
unknown fields are refused, and times are text in one grammar (``CLIENT_TIME_PATTERN``). A query
string's integers are plain digits (``5``, not ``5.0``, `` 5`` or ``+5``).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictStr

from meterway.core.clock import CLIENT_TIME_PATTERN


class RequestBody(BaseModel):
    """Strict: a field that wants another type than JSON gives it (a decimal string, say) says so
    with ``Field(strict=False)``."""

    model_config = ConfigDict(extra="forbid", strict=True)


ClientTimeText = Annotated[
    StrictStr,
    Field(
        pattern=CLIENT_TIME_PATTERN,
        description="A date (2026-11-23) or ISO datetime (2026-11-23T14:05:00Z); without an offset, UTC",
    ),
]


def _digits(value: object) -> object:
    if isinstance(value, str) and not (value.isascii() and value.isdigit()):
        raise ValueError("must be a whole number written in digits")
    return value


QueryInt = Annotated[int, BeforeValidator(_digits)]
