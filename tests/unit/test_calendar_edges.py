"""Times a client writes, at the edges of the calendar: every one is either accepted and written
back zero-padded, or refused with a 400 in the envelope; none overflows."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterway.accounts.logic.manage_keys import expiry, parse_expiry
from meterway.analytics.logic import reports
from meterway.analytics.logic.windows import parse_window
from meterway.core.clock import EARLIEST, GRANULARITIES, LATEST, label, parse_label, parse_utc_iso, utc_iso
from meterway.core.errors import InvalidRequest
from meterway.exports.logic.export_jobs import ExportCreate, filename
from tests.fakes import InMemoryRollups

NOW = datetime(2026, 3, 2, 10, 17, 30, tzinfo=UTC)
ISO = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")

offsets = st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(lambda minutes: timezone(timedelta(minutes=minutes)))
moments = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59, 999_999))


def written(moment: datetime, tz: timezone | None, style: int) -> str:
    """``moment`` as a client may write it: a date, or a datetime with Z, an offset or neither."""
    if style == 0:
        return moment.date().isoformat()
    text = moment.replace(tzinfo=tz).isoformat(timespec=("minutes", "seconds", "microseconds")[style % 3])
    return text.replace("+00:00", "Z") if style == 4 else text


texts = st.builds(written, moments, st.none() | offsets, st.integers(0, 5))


@given(start=texts, end=st.none() | texts)
def test_any_window_edge_is_accepted_or_a_400(start, end):
    try:
        window = parse_window(start, end, NOW, from_rollups=False)
    except InvalidRequest as refused:
        assert refused.status == 400
        assert refused.code in ("invalid_date", "invalid_window")
        return
    assert EARLIEST <= window.start < window.end <= LATEST + timedelta(days=1)
    assert ISO.fullmatch(window.start_iso) and ISO.fullmatch(window.end_iso)


@given(
    start=moments.filter(lambda m: EARLIEST.replace(tzinfo=None) <= m < datetime(9998, 1, 1)), days=st.integers(1, 500)
)
def test_a_window_anywhere_in_the_calendar_reports_without_overflow(start, days):
    first = start.date()
    window = parse_window(first.isoformat(), (first + timedelta(days=days - 1)).isoformat(), NOW, from_rollups=False)
    usage = reports.usage_summary(InMemoryRollups(), "acct", window)
    assert usage["start"] == f"{first.isoformat()}T00:00:00.000Z"
    assert usage["totals"]["requests"] == 0
    assert all(ISO.fullmatch(bucket["start"]) for bucket in usage["series"]["buckets"])
    export = ExportCreate(kind="requests", start=window.start_iso[:10])
    assert filename(export, window).startswith(f"usage-{first.isoformat()}_")


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("0001-01-01", "0001-01-02"),
        ("9999-12-30", "9999-12-31"),
        ("0001-12-31T23:00:00-05:00", None),
        ("9999-01-01", None),
        ("2100-02-29", None),
        ("9998-12-31T23:59:00-05:00", "9999-01-01T04:58"),
        ("2026-02-30", None),
        ("2026-11-23T14:05:00.1234567Z", None),
        (" 2026-11-23", None),
    ],
)
def test_edges_of_the_calendar_are_invalid_dates(start, end):
    # The year as written counts, whatever the offset makes of it in UTC.
    with pytest.raises(InvalidRequest) as refused:
        parse_window(start, end, NOW, from_rollups=False)
    assert refused.value.code == "invalid_date"


@given(moments)
def test_times_are_written_zero_padded_and_sort_as_text(moment):
    moment = moment.replace(tzinfo=UTC)
    text = utc_iso(moment)
    assert ISO.fullmatch(text)
    assert parse_utc_iso(text) == moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    for granularity in GRANULARITIES:
        assert parse_label(label(moment, granularity), granularity) <= moment
    assert utc_iso(datetime(999, 1, 1, tzinfo=UTC)) < utc_iso(datetime(1000, 1, 1, tzinfo=UTC))


@given(moment=moments, tz=offsets)
def test_an_expiry_is_stored_or_a_400(moment, tz):
    try:
        stored = expiry(moment.replace(tzinfo=tz), NOW)
    except InvalidRequest as refused:
        assert refused.code == "invalid_valid_until"
        return
    assert stored is not None and ISO.fullmatch(stored) and stored > utc_iso(NOW)


@given(texts | st.text(max_size=40))
def test_an_expiry_as_written_is_a_time_or_a_400(text):
    try:
        parse_expiry(text)
    except InvalidRequest as refused:
        assert refused.code == "invalid_valid_until"


def test_an_expiry_past_9999_in_utc_is_refused():
    late = datetime(9999, 12, 31, 23, 0, tzinfo=timezone(timedelta(hours=-5)))
    with pytest.raises(InvalidRequest, match="9999-01-02"):
        expiry(late, NOW)


@pytest.mark.parametrize(
    "text", ["0002-01-01T00:00+23:59", "9998-12-31T23:59-23:59", "2000-02-29", "2024-02-29T12:00Z"]
)
def test_any_offset_on_the_first_and_last_days_is_a_time(text):
    assert EARLIEST <= parse_expiry(text) <= LATEST
