"""The request CSV: its header, then one row per ledger record, written page by page."""

from __future__ import annotations

from collections.abc import Callable

from meterway.exports.dal.export_files import FileWriter, PartWriter
from meterway.exports.logic.csv_format import LEDGER_FIELDS, REQUEST_COLUMNS, csv_text
from meterway.exports.logic.wire_rows import page_rows
from meterway.ledger.dal.ledger_store import LedgerQuery, LedgerStore

PAGE_SIZE = 1000
HEADER = csv_text([list(REQUEST_COLUMNS)]).encode("utf-8")


def write_request_rows(
    ledger: LedgerStore,
    query: LedgerQuery,
    writer: FileWriter | PartWriter,
    progress: Callable[[int], None],
    *,
    counted: int = 0,
) -> int:
    """Every record of ``query``, oldest first, as CSV rows, after ``counted`` rows written before;
    returns the count, which ``progress`` hears after each page. Only the page in hand is held:
    memory stays flat however many rows."""
    rows = counted
    for page in ledger.wire_pages(query, PAGE_SIZE, LEDGER_FIELDS):
        page_of_rows = page_rows(page)
        writer.write(csv_text(page_of_rows).encode("utf-8"))
        rows += len(page_of_rows)
        progress(rows)
    return rows
