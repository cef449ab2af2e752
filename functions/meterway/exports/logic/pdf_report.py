"""The PDF usage report of an account over a window: a summary page for all keys, then one page
per key. Pure: figures in (as ``analytics`` shapes them), PDF bytes out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fpdf import FPDF
from fpdf.enums import Align

from meterway.exports.logic.pdf_charts import (
    ENCODING,
    INK,
    MUTED,
    RULE,
    SHADE,
    bar_chart,
    count,
    decimal,
    dollars,
    dollars_rounded,
    put_text,
    readable_moment,
    safe_text,
)
from meterway.ledger.models import TOKEN_FIELDS


@dataclass(frozen=True)
class KeySection:
    """One API key's page: ``totals`` and each entry of ``models`` are usage figures (``models``
    entries also carry ``"model"``, most expensive first); ``daily`` is its spend series as
    (bucket label, cost decimal string) pairs in order."""

    key_id: str
    name: str
    member: str | None
    totals: dict[str, Any]
    models: list[dict[str, Any]]
    daily: list[tuple[str, str]]


@dataclass(frozen=True)
class ReportData:
    """Everything the report shows. ``start`` (inclusive), ``end`` (exclusive) and
    ``generated_at`` are ISO UTC; ``series`` is the account's spend per bucket over the window,
    in order; ``keys`` get one page each in the given order, keys without usage included."""

    account_id: str
    title: str
    start: str
    end: str
    generated_at: str
    totals: dict[str, Any]
    series: list[tuple[str, str]]
    top_models: list[dict[str, Any]]
    keys: list[KeySection]


# A4 portrait, in millimetres. The rows per page below follow from these positions.
_PAGE_W, _PAGE_H, _MARGIN = 210.0, 297.0, 15.0
_CONTENT_W = _PAGE_W - 2 * _MARGIN
_CONTENT_BOTTOM = _PAGE_H - 18.0
_ROW_H, _HEAD_H = 5.0, 6.0
_SUMMARY_TABLE_Y = 174.0
_KEY_TABLE_Y = 138.0
_CONTINUATION_TABLE_Y = 32.0

SUMMARY_MODEL_ROWS = int((_CONTENT_BOTTOM - _SUMMARY_TABLE_Y - _HEAD_H) // _ROW_H)
"""Rows of the summary's top-models table; beyond it the rest are summed into one "Other" row."""
MODELS_PER_KEY_PAGE = int((_CONTENT_BOTTOM - _KEY_TABLE_Y - _HEAD_H) // _ROW_H)
"""Model rows that fit on a key's page under its cards and chart."""
MODELS_PER_CONTINUATION_PAGE = int((_CONTENT_BOTTOM - _CONTINUATION_TABLE_Y - _HEAD_H) // _ROW_H)
"""Model rows on each further page of a key whose models do not fit on its own page."""

_COLUMNS: tuple[tuple[str, float, Align], ...] = (
    ("Model", 42.0, Align.L),
    ("Requests", 16.0, Align.R),
    ("Errors", 13.0, Align.R),
    ("Input", 20.0, Align.R),
    ("Output", 20.0, Align.R),
    ("Cache write", 20.0, Align.R),
    ("Cache read", 20.0, Align.R),
    ("Cost (USD)", 29.0, Align.R),
)
_SUMMED = ("requests", "errors", *TOKEN_FIELDS)


def page_count(data: ReportData) -> int:
    """Pages ``render_report`` produces: 1 + one per key, plus continuation pages for a key
    with more than ``MODELS_PER_KEY_PAGE`` models (``MODELS_PER_CONTINUATION_PAGE`` rows each)."""
    return 1 + sum(len(_model_pages(key.models)) for key in data.keys)


def render_report(data: ReportData) -> bytes:
    """The report as PDF bytes.

    Page 1 summarises the account: window, stat cards (exact cost in USD plus the rounded
    figure, requests, tokens, cache writes and reads), the spend chart of ``series`` and the top
    models (at most ``SUMMARY_MODEL_ROWS`` rows; any further models are summed into an "Other"
    row, so the summary is always exactly one page).

    Then each key gets a page, in order: name, member and id, its totals, its spend chart and
    its per-model table. A key page holds ``MODELS_PER_KEY_PAGE`` (27) model rows; a key with more
    models continues its table on following pages, ``MODELS_PER_CONTINUATION_PAGE`` rows each.
    So the PDF has exactly ``1 + len(keys)`` pages unless some key has more than 27 models;
    ``page_count`` gives the number in every case. Every page's footer reads "Page n of N".

    Text comes from users (key names, member emails, model ids) but the built-in fonts only
    cover Windows-1252: any other character is printed as ``?`` instead of failing the render.
    """
    pdf = _ReportPdf(data, page_count(data))
    _summary_page(pdf, data)
    for key in data.keys:
        _key_pages(pdf, key)
    return bytes(pdf.output())


class _ReportPdf(FPDF):
    def __init__(self, data: ReportData, pages: int) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.core_fonts_encoding = ENCODING
        self._footer_text = f"{data.title} \u00b7 {data.account_id}"
        self._pages = pages
        self.set_margins(_MARGIN, _MARGIN, _MARGIN)
        # Pagination is decided here (see render_report), never by fpdf2 breaking a page mid-table.
        self.set_auto_page_break(False)
        self.set_title(safe_text(data.title))
        self.set_author("Meterway")
        self.set_creator("Meterway")
        generated = _parse_moment(data.generated_at)
        if generated is not None:
            # The same data renders to the same bytes.
            self.set_creation_date(generated)

    def normalize_text(self, text: str) -> str:
        # Every string fpdf2 prints or measures passes here: the last line of defence against
        # a character the core fonts cannot encode.
        return super().normalize_text(safe_text(text))

    def footer(self) -> None:
        self.set_draw_color(*RULE)
        self.set_line_width(0.2)
        self.line(_MARGIN, _PAGE_H - 14, _PAGE_W - _MARGIN, _PAGE_H - 14)
        half = _CONTENT_W / 2
        put_text(self, _MARGIN, _PAGE_H - 13, half, 5, self._footer_text, size=7.5, color=MUTED, shrink=False)
        page = f"Page {self.page_no()} of {self._pages}"
        put_text(self, _MARGIN + half, _PAGE_H - 13, half, 5, page, size=7.5, color=MUTED, align=Align.R)


def _summary_page(pdf: _ReportPdf, data: ReportData) -> None:
    pdf.add_page()
    put_text(pdf, _MARGIN, 15, _CONTENT_W, 10, data.title or "Usage report", size=20, style="B")
    meta = (
        ("Account", data.account_id),
        ("Window", _window_text(data.start, data.end)),
        ("Generated", _moment_text(data.generated_at)),
    )
    for row, (name, value) in enumerate(meta):
        put_text(pdf, _MARGIN, 26 + row * 5, 22, 5, name, size=9, color=MUTED)
        put_text(pdf, _MARGIN + 22, 26 + row * 5, _CONTENT_W - 22, 5, value, size=9)
    _rule(pdf, 43)
    _cards(pdf, 47, data.totals, height=20, value_size=14)
    _heading(pdf, 95, "Spend over the window")
    bar_chart(pdf, data.series, _MARGIN, 96, _CONTENT_W, 68)
    _heading(pdf, _SUMMARY_TABLE_Y - 6, "Top models")
    _table(pdf, _SUMMARY_TABLE_Y, [_model_row(model) for model in _top_rows(data.top_models)])


def _key_pages(pdf: _ReportPdf, key: KeySection) -> None:
    name = key.name or "(unnamed key)"
    pages = _model_pages(key.models)
    pdf.add_page()
    put_text(pdf, _MARGIN, 15, 30, 4, "API KEY", size=7.5, style="B", color=MUTED)
    put_text(pdf, _MARGIN + 30, 15, _CONTENT_W - 30, 4, f"Key ID: {key.key_id}", size=7.5, color=MUTED, align=Align.R)
    put_text(pdf, _MARGIN, 19, _CONTENT_W, 8, name, size=16, style="B")
    put_text(pdf, _MARGIN, 27.5, _CONTENT_W, 5, f"Member: {key.member or 'none'}", size=9, color=MUTED)
    _rule(pdf, 34.5)
    _cards(pdf, 38, key.totals, height=17, value_size=12)
    _heading(pdf, 80, "Spend")
    bar_chart(pdf, key.daily, _MARGIN, 81, _CONTENT_W, 48)
    more = f"  (continued on the next {len(pages) - 1} pages)" if len(pages) > 2 else ""
    more = "  (continued on the next page)" if len(pages) == 2 else more
    _heading(pdf, _KEY_TABLE_Y - 6, f"Models{more}")
    _table(pdf, _KEY_TABLE_Y, [_model_row(model) for model in pages[0]])
    for number, models in enumerate(pages[1:], start=2):
        pdf.add_page()
        put_text(pdf, _MARGIN, 15, _CONTENT_W, 8, name, size=14, style="B")
        part = f"Models, continued ({number} of {len(pages)})     Key ID: {key.key_id}"
        put_text(pdf, _MARGIN, 23, _CONTENT_W, 5, part, size=9, color=MUTED)
        _table(pdf, _CONTINUATION_TABLE_Y, [_model_row(model) for model in models])


def _model_pages(models: Sequence[dict[str, Any]]) -> list[Sequence[dict[str, Any]]]:
    """A key's models split into what its own page holds and what each continuation page holds."""
    pages = [models[:MODELS_PER_KEY_PAGE]]
    rest = models[MODELS_PER_KEY_PAGE:]
    while rest:
        pages.append(rest[:MODELS_PER_CONTINUATION_PAGE])
        rest = rest[MODELS_PER_CONTINUATION_PAGE:]
    return pages


def _top_rows(models: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    if len(models) <= SUMMARY_MODEL_ROWS:
        return list(models)
    shown, rest = list(models[: SUMMARY_MODEL_ROWS - 1]), models[SUMMARY_MODEL_ROWS - 1 :]
    other: dict[str, Any] = {field: sum(int(decimal(m.get(field))) for m in rest) for field in _SUMMED}
    other["cost"] = format(sum((decimal(m.get("cost")) for m in rest), start=decimal(0)), "f")
    other["model"] = f"Other ({len(rest)} models)"
    return [*shown, other]


def _model_row(figures: dict[str, Any]) -> list[str]:
    return [
        str(figures.get("model", "")),
        count(figures.get("requests")),
        count(figures.get("errors")),
        count(figures.get("input_tokens")),
        count(figures.get("output_tokens")),
        count(figures.get("cache_creation_tokens")),
        count(figures.get("cache_read_tokens")),
        dollars(figures.get("cost")),
    ]


def _table(pdf: FPDF, y: float, rows: list[list[str]]) -> None:
    x = _MARGIN
    pdf.set_fill_color(*SHADE)
    pdf.rect(x, y, _CONTENT_W, _HEAD_H, style="F")
    for header, width, align in _COLUMNS:
        put_text(pdf, x, y, width, _HEAD_H, header, size=7.5, style="B", color=MUTED, align=align)
        x += width
    y += _HEAD_H
    _rule(pdf, y)
    if not rows:
        put_text(pdf, _MARGIN, y, _CONTENT_W, _ROW_H + 1, "No usage in this window.", size=8, color=MUTED)
        return
    for index, row in enumerate(rows):
        if index % 2 == 1:
            pdf.set_fill_color(*SHADE)
            pdf.rect(_MARGIN, y, _CONTENT_W, _ROW_H, style="F")
        x = _MARGIN
        for text, (_, width, align) in zip(row, _COLUMNS, strict=True):
            # Names are cut to fit; numbers shrink instead, since a cut number would be wrong.
            put_text(pdf, x, y, width, _ROW_H, text, size=8, align=align, shrink=align is Align.R)
            x += width
        y += _ROW_H
    _rule(pdf, y)


def _cards(pdf: FPDF, y: float, totals: dict[str, Any], *, height: float, value_size: float) -> None:
    """Two rows of stat cards: cost (double width), requests, total tokens; then input, output,
    cache writes, cache reads."""
    cost = totals.get("cost")
    exact, rounded = dollars(cost), dollars_rounded(cost)
    reasoning = int(decimal(totals.get("reasoning_tokens")))
    errors = int(decimal(totals.get("errors")))
    five, hour = count(totals.get("cache_creation_5m_tokens")), count(totals.get("cache_creation_1h_tokens"))
    rows = (
        (
            (2, "Total cost (USD, exact)", exact, f"Rounded: {rounded}" if rounded != exact else ""),
            (1, "Requests", count(totals.get("requests")), f"{errors:,} failed" if errors else "no errors"),
            (1, "Total tokens", count(totals.get("total_tokens")), ""),
        ),
        (
            (1, "Input tokens", count(totals.get("input_tokens")), "excluding cache"),
            (
                1,
                "Output tokens",
                count(totals.get("output_tokens")),
                f"incl. {reasoning:,} reasoning" if reasoning else "",
            ),
            (1, "Cache writes", count(totals.get("cache_creation_tokens")), f"5m {five} \u00b7 1h {hour}"),
            (1, "Cache reads", count(totals.get("cache_read_tokens")), ""),
        ),
    )
    gap = 3.0
    unit = (_CONTENT_W - 3 * gap) / 4
    for row_index, cards in enumerate(rows):
        x, card_y = _MARGIN, y + row_index * (height + gap)
        for span, label, value, note in cards:
            width = unit * span + gap * (span - 1)
            pdf.set_fill_color(*SHADE)
            pdf.rect(x, card_y, width, height, style="F", round_corners=True, corner_radius=1.5)
            put_text(pdf, x + 1, card_y + 1.5, width - 2, 4, label, size=7, color=MUTED)
            put_text(pdf, x + 1, card_y + height / 2 - 3.5, width - 2, 7, value, size=value_size, style="B")
            if note:
                put_text(pdf, x + 1, card_y + height - 5, width - 2, 4, note, size=6.5, color=MUTED)
            x += width + gap


def _heading(pdf: FPDF, y: float, text: str) -> None:
    put_text(pdf, _MARGIN, y, _CONTENT_W, 6, text, size=10.5, style="B", color=INK, shrink=False)


def _rule(pdf: FPDF, y: float) -> None:
    pdf.set_draw_color(*RULE)
    pdf.set_line_width(0.2)
    pdf.line(_MARGIN, y, _PAGE_W - _MARGIN, y)


def _parse_moment(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _window_text(start: str, end: str) -> str:
    """ "1 Nov 2026 00:00 \u2013 23 Nov 2026 00:00 UTC" (the end is exclusive, as in every window)."""
    first, last = _parse_moment(start), _parse_moment(end)
    if first is None or last is None:
        return f"{_moment_text(start)} \u2013 {_moment_text(end)}"
    return f"{readable_moment(first)} \u2013 {readable_moment(last)} UTC"


def _moment_text(text: str) -> str:
    """ "1 Nov 2026 00:00 UTC"; a timestamp that does not parse is shown as given."""
    moment = _parse_moment(text)
    return f"{readable_moment(moment)} UTC" if moment is not None else safe_text(text)
