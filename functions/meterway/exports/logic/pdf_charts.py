"""Drawing helpers for the PDF usage report: text the core fonts can print, text fitted to a
width, money and count formatting, and the spend bar chart (fpdf2 primitives only)."""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from fpdf import FPDF
from fpdf.enums import Align

# The core fonts are written with WinAnsiEncoding: cp1252 is latin-1 plus the typographic
# characters the report needs (en dash, ellipsis, middle dot).
ENCODING = "cp1252"
ELLIPSIS = "…"
FONT = "Helvetica"

INK = (31, 41, 55)
MUTED = (107, 114, 128)
RULE = (209, 213, 219)
GRID = (229, 231, 235)
BAR = (37, 99, 235)
SHADE = (243, 246, 250)

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_CENT = Decimal("0.01")
_WHITESPACE = frozenset("\t\n\r\v\f\u2028\u2029")
_Y_GUTTER = 20.0
_X_GUTTER = 6.0
_LABEL_GAP = 3.0
_MAX_BAR = 12.0
_MIN_BAR = 0.3
_TICKS = 4


def safe_text(text: object) -> str:
    """``text`` with every character a core font cannot print replaced: compatibility forms
    first (full-width letters, ligatures), else ``?``. Control and format characters (bidi
    overrides, zero-width joiners) are dropped and line breaks become spaces, because names
    and model ids are user input and must neither crash the render nor reshape the page."""
    result = []
    for char in unicodedata.normalize("NFC", str(text)):
        if char in _WHITESPACE:
            result.append(" ")
        elif unicodedata.category(char) in ("Cc", "Cf"):
            continue
        elif _encodable(char):
            result.append(char)
        else:
            compatible = unicodedata.normalize("NFKC", char)
            result.append(compatible if compatible != char and _encodable(compatible) else "?")
    return "".join(result)


def _encodable(text: str) -> bool:
    try:
        text.encode(ENCODING)
    except UnicodeEncodeError:
        return False
    return True


def fit_text(pdf: FPDF, text: str, width: float, size: float, *, min_size: float = 6.0) -> tuple[str, float]:
    """The font size (from ``size`` down to ``min_size``) at which ``text`` fits ``width``, and
    the text itself, cut with an ellipsis when even ``min_size`` is too wide."""
    text = safe_text(text)
    current = size
    while True:
        pdf.set_font_size(current)
        if pdf.get_string_width(text) <= width:
            return text, current
        if current - 0.5 < min_size:
            break
        current -= 0.5
    while text and pdf.get_string_width(text + ELLIPSIS) > width:
        text = text[:-1]
    return text.rstrip() + ELLIPSIS, current


def put_text(
    pdf: FPDF,
    x: float,
    y: float,
    width: float,
    height: float,
    text: str,
    *,
    size: float,
    style: str = "",
    color: tuple[int, int, int] = INK,
    align: Align = Align.L,
    shrink: bool = True,
) -> None:
    """One line of text in the box, shrunk (``shrink``) or cut to its width, never spilling over."""
    pdf.set_font(FONT, style, size)
    pdf.set_text_color(*color)
    inner = width - 2 * pdf.c_margin
    fitted, fitted_size = fit_text(pdf, text, inner, size, min_size=5.5 if shrink else size)
    pdf.set_font_size(fitted_size)
    pdf.set_xy(x, y)
    pdf.cell(width, height, fitted, align=align)


def decimal(value: object) -> Decimal:
    """A figure's cost as a Decimal; anything unreadable counts as zero rather than failing the report."""
    try:
        number = Decimal(str(value if value is not None else 0))
    except InvalidOperation:
        return Decimal(0)
    return number if number.is_finite() else Decimal(0)


def count(value: object) -> str:
    """An integer figure with thousands separators."""
    return f"{int(decimal(value)):,}"


def dollars(value: object) -> str:
    """The exact cost in USD, with thousands separators and at least two decimals: "$1,234.567891"."""
    number = decimal(value).normalize()
    exponent = number.as_tuple().exponent
    if isinstance(exponent, int) and exponent > -2:
        number = number.quantize(_CENT)
    sign = "-" if number < 0 else ""
    return f"{sign}${abs(number):,f}"


def dollars_rounded(value: object) -> str:
    """The cost rounded to cents: "$1,234.57"."""
    number = decimal(value).quantize(_CENT, rounding=ROUND_HALF_UP)
    sign = "-" if number < 0 else ""
    return f"{sign}${abs(number):,f}"


def dollars_brief(value: object) -> str:
    """Cents for amounts of a cent or more; sub-cent amounts exactly, so they do not read as $0.00."""
    number = decimal(value)
    return dollars_rounded(number) if abs(number) >= _CENT or number == 0 else dollars(number)


def readable_moment(moment: datetime) -> str:
    """ "1 Nov 2026 00:00", independent of the process locale."""
    return f"{moment.day} {MONTHS[moment.month - 1]} {moment.year} {moment:%H:%M}"


_DAY = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_HOUR = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2})(?::(\d{2}))?$")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


def short_label(label: str, *, with_year: bool = False) -> str:
    """Bucket labels as the rollups write them ('2026-11-04', '2026-11-04T13', '2026-11-04T13:05',
    '2026-11'), shortened for an axis; any other label is shown as given."""
    if (match := _DAY.match(label)) and 1 <= int(match[2]) <= 12:
        year = f" {match[1]}" if with_year else ""
        return f"{int(match[3])} {MONTHS[int(match[2]) - 1]}{year}"
    if (match := _HOUR.match(label)) and 1 <= int(match[2]) <= 12:
        if match[5] is not None:
            return f"{match[4]}:{match[5]}"
        return f"{int(match[3])} {MONTHS[int(match[2]) - 1]} {match[4]}:00"
    if (match := _MONTH.match(label)) and 1 <= int(match[2]) <= 12:
        return f"{MONTHS[int(match[2]) - 1]} {match[1]}"
    return safe_text(label)


def _nice_step(peak: Decimal, ticks: int) -> Decimal:
    """A 1/2/2.5/5 x 10^k step so ``ticks`` steps cover ``peak``: round numbers on the axis."""
    raw = peak / ticks
    magnitude = Decimal(1).scaleb(raw.adjusted())
    for nice in ("1", "2", "2.5", "5"):
        if raw <= Decimal(nice) * magnitude:
            return Decimal(nice) * magnitude
    return 10 * magnitude


def _axis_label(value: Decimal, step: Decimal, money: bool = True) -> str:
    exponent = step.normalize().as_tuple().exponent
    decimals = max(0, -exponent) if isinstance(exponent, int) else 2
    if not money:
        return f"{value:,.{decimals}f}"
    # Cents read better than "$0.5" once the axis is below a dollar.
    decimals = max(decimals, 2) if step < 1 else decimals
    return f"${value:,.{decimals}f}"


def bar_chart(
    pdf: FPDF,
    series: Sequence[tuple[str, str]],
    x: float,
    y: float,
    width: float,
    height: float,
    *,
    money: bool = True,
) -> None:
    """Spend per bucket (or, not ``money``, a count: tokens, requests) as bars in the box (its top
    line holds the peak, right-aligned, so a heading can share it): a y axis of round-number
    gridlines (whole numbers for a count), x labels for as many buckets as fit without
    overlapping, the first always. An empty or all-zero series draws the baseline and says so."""
    costs = [decimal(cost) for _, cost in series]
    labels = [label for label, _ in series]
    plot_x, plot_w = x + _Y_GUTTER, width - _Y_GUTTER
    plot_y, plot_h = y + 5.0, height - 5.0 - _X_GUTTER
    peak = max(costs, default=Decimal(0))
    pdf.set_line_width(0.2)
    if peak > 0:
        # A count's gridlines fall on whole numbers: no tick between two requests.
        step = _nice_step(peak, _TICKS) if money else max(_nice_step(peak, _TICKS), Decimal(1))
        # As many gridlines as the peak needs, so the tallest bar nearly fills the plot.
        ticks = max(1, math.ceil(peak / step))
        _gridlines(pdf, x, plot_x, plot_y, plot_w, plot_h, step, ticks, money)
        _bars(pdf, [float(cost) for cost in costs], plot_x, plot_y, plot_w, plot_h, float(step * ticks))
        peak_index = costs.index(peak)
        shown = dollars_brief(peak) if money else count(peak)
        caption = f"Peak {shown} on {short_label(labels[peak_index], with_year=True)}"
        put_text(pdf, plot_x, y - 1, plot_w, 4, caption, size=7, color=MUTED, align=Align.R)
    else:
        _gridlines(pdf, x, plot_x, plot_y, plot_w, plot_h, Decimal(0), 0, money)
        message = (
            ("No spend in this period" if money else "No usage in this period") if costs else "No data for this period"
        )
        put_text(pdf, plot_x, plot_y + plot_h / 2 - 3, plot_w, 6, message, size=8, color=MUTED, align=Align.C)
    _x_labels(pdf, labels, plot_x, plot_y + plot_h + 0.5, plot_w)


def _gridlines(
    pdf: FPDF,
    x: float,
    plot_x: float,
    plot_y: float,
    plot_w: float,
    plot_h: float,
    step: Decimal,
    ticks: int,
    money: bool = True,
) -> None:
    for tick in range(ticks + 1):
        tick_y = plot_y + plot_h - (plot_h * tick / ticks if ticks else 0)
        pdf.set_draw_color(*(RULE if tick == 0 else GRID))
        pdf.line(plot_x, tick_y, plot_x + plot_w, tick_y)
        text = _axis_label(step * tick, step, money) if ticks else ("$0" if money else "0")
        put_text(pdf, x, tick_y - 2, _Y_GUTTER - 1, 4, text, size=6.5, color=MUTED, align=Align.R)


def _bars(pdf: FPDF, values: list[float], x: float, y: float, width: float, height: float, top: float) -> None:
    slot = width / len(values)
    bar = min(slot * 0.72 if slot > 1 else slot * 0.85, _MAX_BAR)
    pdf.set_fill_color(*BAR)
    for index, value in enumerate(values):
        if value <= 0:
            continue
        # A tiny but non-zero spend still shows as a sliver, unlike a day with none.
        bar_h = max(height * value / top, _MIN_BAR)
        pdf.rect(x + index * slot + (slot - bar) / 2, y + height - bar_h, bar, bar_h, style="F")


def _x_labels(pdf: FPDF, labels: list[str], x: float, y: float, width: float) -> None:
    """Labels centred under their bars, kept inside the plot; a label is skipped when it would
    touch the previous one, so 1 bucket and 365 buckets both stay readable."""
    if not labels:
        return
    spans_years = len({label[:4] for label in labels}) > 1
    texts = [short_label(label, with_year=spans_years) for label in labels]
    pdf.set_font(FONT, "", 6.5)
    pdf.set_text_color(*MUTED)
    widest = max(pdf.get_string_width(text) for text in texts) + 2 * pdf.c_margin
    slot = width / len(labels)
    every = max(1, math.ceil((widest + _LABEL_GAP) / slot))
    last_right, index = -math.inf, 0
    while index < len(labels):
        text, size = fit_text(pdf, texts[index], width - 2 * pdf.c_margin, 6.5)
        pdf.set_font_size(size)
        label_w = pdf.get_string_width(text) + 2 * pdf.c_margin
        centre = x + (index + 0.5) * slot
        left = min(max(centre - label_w / 2, x), x + width - label_w)
        if left < last_right + _LABEL_GAP:
            # Only a label pushed inwards at an edge can collide: try the next bucket instead
            # of leaving a double gap.
            index += 1
            continue
        pdf.set_draw_color(*RULE)
        pdf.line(centre, y - 0.5, centre, y + 0.5)
        pdf.set_xy(left, y + 0.5)
        pdf.cell(label_w, 4, text, align=Align.C)
        last_right, index = left + label_w, index + every
