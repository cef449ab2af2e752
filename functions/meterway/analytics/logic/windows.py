"""Time windows of the analytics API: parsed, checked and aligned to whole minutes (UTC)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from meterway.analytics.logic.rollups import MINUTE_RETENTION, SUB_HOUR, decompose
from meterway.core.clock import FIRST_YEAR, LAST_YEAR, client_time, floor, utc_iso
from meterway.core.errors import InvalidRequest

DEFAULT_DAYS = 30
# Fifty years: "since 2000" still reads all of an account's history, and a typo's year 0002 is
# refused rather than charted in 24,000 monthly buckets.
MAX_SPAN = timedelta(days=18_262)


@dataclass(frozen=True, slots=True)
class Window:
    """[start, end) in UTC, both whole minutes."""

    start: datetime
    end: datetime

    @property
    def start_iso(self) -> str:
        return utc_iso(self.start)

    @property
    def end_iso(self) -> str:
        return utc_iso(self.end)


def _parse(text: str, name: str, *, is_end: bool) -> datetime:
    try:
        moment = client_time(text)
    except ValueError as exc:
        raise InvalidRequest(
            f"'{name}' must be a date (2026-11-23) or an ISO datetime (2026-11-23T14:05:00Z)"
            f" of the years {FIRST_YEAR:04} to {LAST_YEAR}.",
            code="invalid_date",
        ) from exc
    # A date as the end means the whole of that day (still in datetime's range: see clock.LAST_YEAR).
    if is_end and len(text) == 10:
        return moment + timedelta(days=1)
    return floor(moment, "minute")


def parse_window(start: str | None, end: str | None, now: datetime, *, from_rollups: bool = True) -> Window:
    """The window a query asks for; by default the last 30 days up to now, today included.

    Datetimes are cut to the minute, the finest rollup. Minute rollups are kept for 8 days, so a
    window read from rollups that is older must start and end on whole hours; one read from the
    ledger itself (``from_rollups=False``) has no such limit.
    """
    window_end = _parse(end, "end", is_end=True) if end else floor(now, "minute") + timedelta(minutes=1)
    if start:
        window_start = _parse(start, "start", is_end=False)
    else:
        window_start = floor(window_end - timedelta(minutes=1), "day") - timedelta(days=DEFAULT_DAYS - 1)
    if window_end <= window_start:
        raise InvalidRequest("'end' must be after 'start'.", code="invalid_window")
    if window_end - window_start > MAX_SPAN:
        raise InvalidRequest("A window spans at most 50 years: narrow 'start' and 'end'.", code="invalid_window")
    oldest_minute = floor(now - MINUTE_RETENTION, "hour") + timedelta(hours=1)
    # Minute and 10-minute rows live 8 days: the parts of the window finer than an hour must be newer.
    needs_minutes = [span for span in decompose(window_start, window_end) if span.granularity in SUB_HOUR]
    if from_rollups and any(span.first < oldest_minute for span in needs_minutes):
        raise InvalidRequest(
            "Minute precision is kept for 8 days: for an older window, start and end on whole hours.",
            code="invalid_window",
        )
    return Window(window_start, window_end)
