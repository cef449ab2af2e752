"""USD amounts as exact decimal strings: what every API response, record and export shows.

Sums of many small prices must not pick up float error, so money travels as ``Decimal`` and is
written without an exponent or trailing zeros (``"25.5"``, ``"0.0000001"``, ``"0"``).
"""

from __future__ import annotations

from decimal import Decimal


def to_decimal(value: Decimal | int | float | str | None) -> Decimal:
    """A stored or sent amount as a ``Decimal`` (None is 0; floats through their text, not their bits)."""
    if value is None:
        return Decimal(0)
    return value if isinstance(value, Decimal) else Decimal(str(value))


def money(value: Decimal | int | float | str | None) -> str:
    """The exact decimal string of an amount; None and zero are ``"0"``."""
    amount = to_decimal(value)
    return format(amount.normalize(), "f") if amount else "0"


def optional_money(value: Decimal | None) -> str | None:
    """Like ``money``, but None stays None (no such amount, as opposed to zero)."""
    return None if value is None else money(value)
