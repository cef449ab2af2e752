"""UTC time as Meterway writes it, and the calendar buckets (minute, hour, day, month) that
rollups, spend periods, windows and exports share.

Every stored time is UTC text with milliseconds and a ``Z``: it sorts as text in time order.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

Granularity = Literal["minute", "hour", "day", "month"]
GRANULARITIES: tuple[Granularity, ...] = ("month", "day", "hour", "minute")  # coarsest first

_LABEL_FORMAT: dict[Granularity, str] = {
    "minute": "%Y-%m-%dT%H:%M",
    "hour": "%Y-%m-%dT%H",
    "day": "%Y-%m-%d",
    "month": "%Y-%m",
}
_ISO_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def utc_now() -> datetime:
    return datetime.now(UTC)


def utc_iso(moment: datetime) -> str:
    """UTC timestamp with milliseconds and a ``Z``: sorts as text in the same order as in time."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_utc_iso(text: str) -> datetime:
    """The moment ``utc_iso`` wrote."""
    return datetime.strptime(text, _ISO_FORMAT).replace(tzinfo=UTC)


def iso_z(moment: datetime) -> str:
    """ISO 8601 as Python writes it, with ``Z`` for UTC (``2026-11-23T14:00:00Z``)."""
    return moment.isoformat().replace("+00:00", "Z")


def floor(moment: datetime, granularity: Granularity) -> datetime:
    """The start of the bucket that holds ``moment``."""
    moment = moment.astimezone(UTC)
    if granularity == "minute":
        return moment.replace(second=0, microsecond=0)
    if granularity == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    if granularity == "day":
        return moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def step(moment: datetime, granularity: Granularity) -> datetime:
    """The start of the next bucket after the one starting at ``moment``."""
    if granularity == "minute":
        return moment + timedelta(minutes=1)
    if granularity == "hour":
        return moment + timedelta(hours=1)
    if granularity == "day":
        return moment + timedelta(days=1)
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    return moment.replace(year=year, month=month)


def step_back(moment: datetime, granularity: Granularity) -> datetime:
    """The start of the bucket before the one starting at ``moment``."""
    if granularity == "month":
        return floor(moment - timedelta(days=1), "month")
    return floor(moment - timedelta(microseconds=1), granularity)


def label(moment: datetime, granularity: Granularity) -> str:
    """The bucket's name (``2026-11-23T14`` for an hour); labels sort as text in time order."""
    return moment.astimezone(UTC).strftime(_LABEL_FORMAT[granularity])


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
