"""UTC time as Meterway writes it, and the calendar buckets (``GRANULARITIES``, minute to year)
that rollups, spend periods, windows and exports share.

Every stored time is UTC text with milliseconds and a ``Z``: it sorts as text in time order.
Years are written with four digits (``0999-01-01``), as ISO 8601 has them.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Literal

Granularity = Literal["minute", "10min", "hour", "6h", "day", "10d", "month", "year"]
# Coarsest first. Each bucket lies in exactly one of every coarser granularity: 10-minute buckets
# start at :00, :10 … :50; 6-hour ones at 00, 06, 12 and 18 h; 10-day ones on the 1st, 11th and
# 21st of a month (the last runs to the month's end, 8 to 11 days).
GRANULARITIES: tuple[Granularity, ...] = ("year", "month", "10d", "day", "6h", "hour", "10min", "minute")

_LABEL_FORMAT: dict[Granularity, str] = {
    "minute": "%Y-%m-%dT%H:%M",
    "10min": "%Y-%m-%dT%H:%M",
    "hour": "%Y-%m-%dT%H",
    "6h": "%Y-%m-%dT%H",
    "day": "%Y-%m-%d",
    "10d": "%Y-%m-%d",
    "month": "%Y-%m",
    "year": "%Y",
}
# A label is the ISO text of the bucket's start, cut at its granularity (strftime's %Y would write
# the year 999 as "999", which sorts after "2026").
_LABEL_LENGTH: dict[Granularity, int] = {
    "minute": 16,
    "10min": 16,
    "hour": 13,
    "6h": 13,
    "day": 10,
    "10d": 10,
    "month": 7,
    "year": 4,
}
_ISO_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
# The times a client may write, and what the OpenAPI document says they may be: a day the calendar
# has, in the years 0002 to 9998, or a datetime on it to the minute, second or microsecond, with
# ``Z``, an offset or (UTC) neither. A year of margin at both ends of datetime's range, so that a
# UTC offset, a bucket's step or a day added to an inclusive end never leaves it.
FIRST_YEAR, LAST_YEAR = 2, 9998
_YEAR = r"(000[2-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])"
_MONTH_DAY = r"((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])|(0[469]|11)-(0[1-9]|[12][0-9]|30)|02-(0[1-9]|1[0-9]|2[0-8]))"
# Years divisible by 4, but of the centuries only those divisible by 400.
_LEAP_YEAR = r"([0-9]{2}(0[48]|[2468][048]|[13579][26])|(0[48]|[2468][048]|[13579][26])00)"
DATE_PATTERN = rf"({_YEAR}-{_MONTH_DAY}|{_LEAP_YEAR}-02-29)"
TIME_PATTERN = (
    DATE_PATTERN + r"T([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])?"
)
CLIENT_TIME_PATTERN = rf"^({DATE_PATTERN}|{TIME_PATTERN})$"
_CLIENT_TIME = re.compile(CLIENT_TIME_PATTERN)
# The UTC range of every time a client can write (its years, widened by a day for the offset).
EARLIEST = datetime(FIRST_YEAR, 1, 1, tzinfo=UTC) - timedelta(days=1)
LATEST = datetime(LAST_YEAR + 1, 1, 1, tzinfo=UTC) + timedelta(days=1)


class OutOfCalendar(ValueError):
    """A time outside ``EARLIEST`` .. ``LATEST``."""


def client_time(text: str) -> datetime:
    """A date (its midnight) or datetime a client wrote, in UTC; ``ValueError`` for anything else
    (text outside the pattern: a day the calendar lacks, a year outside 0002 to 9998)."""
    if not _CLIENT_TIME.fullmatch(text):
        raise ValueError(f"not a date or ISO datetime of the years {FIRST_YEAR:04} to {LAST_YEAR}: {text!r}")
    if len(text) == 10:
        day = date.fromisoformat(text)
        return in_calendar(datetime(day.year, day.month, day.day))
    return in_calendar(datetime.fromisoformat(text))


def utc_now() -> datetime:
    return datetime.now(UTC)


def utc_iso(moment: datetime) -> str:
    """UTC timestamp with milliseconds and a ``Z``: sorts as text in the same order as in time."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def in_calendar(moment: datetime) -> datetime:
    """``moment`` in UTC (a naive one is read as UTC) when it lies between ``EARLIEST`` and
    ``LATEST`` (both included); else ``OutOfCalendar``. Every time a client sends goes through here."""
    try:
        utc = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    except OverflowError as exc:  # an offset that pushes the time past year 1 or 9999
        raise OutOfCalendar(f"times must lie between {EARLIEST.date()} and {LATEST.date()} (UTC)") from exc
    if not EARLIEST <= utc <= LATEST:
        raise OutOfCalendar(f"times must lie between {EARLIEST.date()} and {LATEST.date()} (UTC)")
    return utc


def parse_utc_iso(text: str) -> datetime:
    """The moment ``utc_iso`` wrote."""
    return datetime.strptime(text, _ISO_FORMAT).replace(tzinfo=UTC)


def iso_z(moment: datetime) -> str:
    """ISO 8601 as Python writes it, with ``Z`` for UTC (``2026-11-23T14:00:00Z``)."""
    return moment.isoformat().replace("+00:00", "Z")


def floor(moment: datetime, granularity: Granularity) -> datetime:
    """The start of the bucket that holds ``moment``."""
    moment = moment.astimezone(UTC).replace(second=0, microsecond=0)
    if granularity == "minute":
        return moment
    if granularity == "10min":
        return moment.replace(minute=moment.minute - moment.minute % 10)
    moment = moment.replace(minute=0)
    if granularity == "hour":
        return moment
    if granularity == "6h":
        return moment.replace(hour=moment.hour - moment.hour % 6)
    moment = moment.replace(hour=0)
    if granularity == "day":
        return moment
    if granularity == "10d":
        return moment.replace(day=min(moment.day - 1, 20) // 10 * 10 + 1)
    moment = moment.replace(day=1)
    return moment if granularity == "month" else moment.replace(month=1)


_FIXED_STEPS: dict[Granularity, timedelta] = {
    "minute": timedelta(minutes=1),
    "10min": timedelta(minutes=10),
    "hour": timedelta(hours=1),
    "6h": timedelta(hours=6),
    "day": timedelta(days=1),
}


def step(moment: datetime, granularity: Granularity) -> datetime:
    """The start of the next bucket after the one starting at ``moment`` (a ``ValueError`` or
    ``OverflowError`` past the year 9999)."""
    fixed = _FIXED_STEPS.get(granularity)
    if fixed is not None:
        return moment + fixed
    if granularity == "year":
        return moment.replace(year=moment.year + 1)
    if granularity == "10d" and moment.day < 21:
        return moment + timedelta(days=10)
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    return moment.replace(year=year, month=month, day=1)


def step_back(moment: datetime, granularity: Granularity) -> datetime:
    """The start of the bucket before the one starting at ``moment``."""
    if granularity == "month":
        return floor(moment - timedelta(days=1), "month")
    return floor(moment - timedelta(microseconds=1), granularity)


def label(moment: datetime, granularity: Granularity) -> str:
    """The name of the bucket that holds ``moment`` (``2026-11-23T14`` for an hour); labels of one
    granularity sort as text in time order."""
    start = floor(moment, granularity).replace(tzinfo=None)
    return start.isoformat(timespec="minutes")[: _LABEL_LENGTH[granularity]]


def parse_label(text: str, granularity: Granularity) -> datetime:
    return datetime.strptime(text, _LABEL_FORMAT[granularity]).replace(tzinfo=UTC)


def buckets(start: datetime, end: datetime, granularity: Granularity) -> list[datetime]:
    """Bucket starts from ``start`` (aligned) up to, not including, ``end``."""
    result, cursor = [], floor(start, granularity)
    while cursor < end:
        result.append(cursor)
        cursor = step(cursor, granularity)
    return result


def seconds_to_next_minute(now: datetime) -> int:
    """Whole seconds until the next minute starts, at least 1 (a ``retry-after``)."""
    return max(1, int((step(floor(now, "minute"), "minute") - now).total_seconds() + 0.999))
