"""The PDF usage report of an account over a window: a summary page for all keys, then one page
per key; and the breakdown of one metric (spend, tokens or requests) by a grouping: a summary page
for all groups, then one page per group. Pure: figures in (as ``analytics`` shapes them), PDF
bytes out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fpdf import FPDF
from fpdf.enums import Align

from meterway.analytics.models import METRIC_FIELD, METRIC_NAMES
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
class GroupSection:
    """One group's page of a breakdown: ``kind`` says what it is ("API KEY", "MEMBER"…), ``detail``
    is the line under its name; ``totals`` its usage figures; ``series`` the metric per bucket as
    (bucket label, amount) pairs; ``models`` its per-model figures, or None where the rollups keep
    none for such a group (a provider: a model's requests may be served by several)."""

    kind: str
    group_id: str
    name: str
    detail: str
    totals: dict[str, Any]
    series: list[tuple[str, str]]
    models: list[dict[str, Any]] | None
    id_label: str = "ID"


@dataclass(frozen=True)
class BreakdownData:
    """A metric by a grouping over a window: ``metric`` (cost, tokens, requests) and ``grouping``
    (its name: "API key"…); ``totals`` every group's figures together (the overview of spend,
    tokens and requests), ``series`` the metric per bucket, ``groups`` one page each, in order."""

    account_id: str
    metric: str
    grouping: str
    start: str
    end: str
    generated_at: str
    totals: dict[str, Any]
    series: list[tuple[str, str]]
    groups: list[GroupSection]

    @property
    def title(self) -> str:
        return f"{METRIC_NAMES[self.metric]} by {self.grouping}"


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
# The summary table of a breakdown: each group's figures and its share of the metric.
_GROUP_COLUMNS: tuple[tuple[str, float, Align], ...] = (
    ("Group", 58.0, Align.L),
    ("Requests", 18.0, Align.R),
    ("Errors", 14.0, Align.R),
    ("Tokens", 26.0, Align.R),
    ("Cost (USD)", 38.0, Align.R),
    ("Share", 26.0, Align.R),
)


def page_count(data: ReportData | BreakdownData) -> int:
    """Pages ``render_report`` (or ``render_breakdown``) produces: 1 + one per key (group), plus
    continuation pages for one with more than ``MODELS_PER_KEY_PAGE`` models
    (``MODELS_PER_CONTINUATION_PAGE`` rows each)."""
    sections = data.groups if isinstance(data, BreakdownData) else [_key_section(key) for key in data.keys]
    return 1 + sum(len(_model_pages(section.models or [])) for section in sections)


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
        _group_pages(pdf, _key_section(key), "Spend", money=True)
    return bytes(pdf.output())


def render_breakdown(data: BreakdownData) -> bytes:
    """A metric by a grouping as PDF bytes ("Tokens by API key").

    Page 1: the window, the overview cards (spend, requests, tokens and their classes: output
    tokens with the part spent reasoning), the metric's chart over the window, and every group's
    requests, errors, tokens and cost with its share of the metric (at most
    ``SUMMARY_MODEL_ROWS`` rows; the rest summed into an "Other" row). Then a page per group, as
    a key's page in the report: its cards, its chart of the metric, its per-model table (or a
    line saying why there is none). ``page_count`` gives the number of pages.
    """
    pdf = _ReportPdf(data, page_count(data))
    money = data.metric == "cost"
    _page_head(pdf, data.title, data.account_id, data.start, data.end, data.generated_at)
    _cards(pdf, 47, data.totals, height=20, value_size=14)
    _heading(pdf, 95, f"{METRIC_NAMES[data.metric]} over the window")
    bar_chart(pdf, data.series, _MARGIN, 96, _CONTENT_W, 68, money=money)
    _heading(pdf, _SUMMARY_TABLE_Y - 6, f"By {data.grouping}")
    rows = _group_rows(data)
    _table(pdf, _SUMMARY_TABLE_Y, rows, _GROUP_COLUMNS)
    for section in data.groups:
        _group_pages(pdf, section, METRIC_NAMES[data.metric], money=money)
    return bytes(pdf.output())


def _group_rows(data: BreakdownData) -> list[list[str]]:
    """The summary's table: a row per group, most of the metric first; past what fits, "Other"."""
    field = METRIC_FIELD[data.metric]
    whole = decimal(data.totals.get(field))

    def row(name: str, figures: dict[str, Any]) -> list[str]:
        share = f"{decimal(figures.get(field)) * 100 / whole:.1f}%" if whole > 0 else "-"
        tokens = count(figures.get("total_tokens"))
        return [
            name,
            count(figures.get("requests")),
            count(figures.get("errors")),
            tokens,
            dollars(figures.get("cost")),
            share,
        ]

    if len(data.groups) <= SUMMARY_MODEL_ROWS:
        return [row(group.name, group.totals) for group in data.groups]
    shown, rest = data.groups[: SUMMARY_MODEL_ROWS - 1], data.groups[SUMMARY_MODEL_ROWS - 1 :]
    other = _summed([group.totals for group in rest])
    return [*(row(group.name, group.totals) for group in shown), row(f"Other ({len(rest)} groups)", other)]


def _summed(figures: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Figures added up: the "Other" row of a table cut short."""
    total: dict[str, Any] = {name: sum(int(decimal(one.get(name))) for one in figures) for name in _SUMMED}
    total["cost"] = format(sum((decimal(one.get("cost")) for one in figures), start=decimal(0)), "f")
    return total


def _key_section(key: KeySection) -> GroupSection:
    detail = f"Member: {key.member or 'none'}"
    return GroupSection("API KEY", key.key_id, key.name, detail, key.totals, key.daily, key.models, "Key ID")


class _ReportPdf(FPDF):
    def __init__(self, data: ReportData | BreakdownData, pages: int) -> None:
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
    _page_head(pdf, data.title or "Usage report", data.account_id, data.start, data.end, data.generated_at)
    _cards(pdf, 47, data.totals, height=20, value_size=14)
    _heading(pdf, 95, "Spend over the window")
    bar_chart(pdf, data.series, _MARGIN, 96, _CONTENT_W, 68)
    _heading(pdf, _SUMMARY_TABLE_Y - 6, "Top models")
    _table(pdf, _SUMMARY_TABLE_Y, [_model_row(model) for model in _top_rows(data.top_models)])


def _page_head(pdf: _ReportPdf, title: str, account_id: str, start: str, end: str, generated_at: str) -> None:
    """A first page's title, account, window and when it was made."""
    pdf.add_page()
    put_text(pdf, _MARGIN, 15, _CONTENT_W, 10, title, size=20, style="B")
    meta = (
        ("Account", account_id),
        ("Window", _window_text(start, end)),
        ("Generated", _moment_text(generated_at)),
    )
    for row, (name, value) in enumerate(meta):
        put_text(pdf, _MARGIN, 26 + row * 5, 22, 5, name, size=9, color=MUTED)
        put_text(pdf, _MARGIN + 22, 26 + row * 5, _CONTENT_W - 22, 5, value, size=9)
    _rule(pdf, 43)


def _group_pages(pdf: _ReportPdf, section: GroupSection, metric: str, *, money: bool) -> None:
    """A key's (or group's) page: what it is, its cards, its chart of ``metric``, its models."""
    name = section.name or "(unnamed)"
    pages = _model_pages(section.models or [])
    pdf.add_page()
    put_text(pdf, _MARGIN, 15, 30, 4, section.kind, size=7.5, style="B", color=MUTED)
    ident = f"{section.id_label}: {section.group_id}"
    put_text(pdf, _MARGIN + 30, 15, _CONTENT_W - 30, 4, ident, size=7.5, color=MUTED, align=Align.R)
    put_text(pdf, _MARGIN, 19, _CONTENT_W, 8, name, size=16, style="B")
    put_text(pdf, _MARGIN, 27.5, _CONTENT_W, 5, section.detail, size=9, color=MUTED)
    _rule(pdf, 34.5)
    _cards(pdf, 38, section.totals, height=17, value_size=12)
    _heading(pdf, 80, metric)
    bar_chart(pdf, section.series, _MARGIN, 81, _CONTENT_W, 48, money=money)
    if section.models is None:
        _heading(pdf, _KEY_TABLE_Y - 6, "Models")
        why = "The rollups keep no per-model figures by provider: a model's requests may be served by several."
        put_text(pdf, _MARGIN, _KEY_TABLE_Y, _CONTENT_W, 6, why, size=8, color=MUTED)
        return
    more = f"  (continued on the next {len(pages) - 1} pages)" if len(pages) > 2 else ""
    more = "  (continued on the next page)" if len(pages) == 2 else more
    _heading(pdf, _KEY_TABLE_Y - 6, f"Models{more}")
    _table(pdf, _KEY_TABLE_Y, [_model_row(model) for model in pages[0]])
    for number, models in enumerate(pages[1:], start=2):
        pdf.add_page()
        put_text(pdf, _MARGIN, 15, _CONTENT_W, 8, name, size=14, style="B")
        part = f"Models, continued ({number} of {len(pages)})     {section.id_label}: {section.group_id}"
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
    return [*shown, {**_summed(rest), "model": f"Other ({len(rest)} models)"}]


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


def _table(
    pdf: FPDF, y: float, rows: list[list[str]], columns: tuple[tuple[str, float, Align], ...] = _COLUMNS
) -> None:
    x = _MARGIN
    pdf.set_fill_color(*SHADE)
    pdf.rect(x, y, _CONTENT_W, _HEAD_H, style="F")
    for header, width, align in columns:
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
        for text, (_, width, align) in zip(row, columns, strict=True):
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
