"""The request CSV: its header, then one row per ledger record, written page by page."""

from __future__ import annotations

from collections.abc import Callable

from meterway.core.forked_map import ForkedMap
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
    processes: int = 0,
) -> int:
    """Every record of ``query``, oldest first, as CSV rows, after ``counted`` rows written before;
    returns the count, which ``progress`` hears after each page. Only the pages in hand are held
    (one being read, one per child process being made into rows, one being written): memory stays
    flat however many rows. With ``processes``, the pages become rows in that many child processes
    while this one reads the next pages and writes the rows before (``ForkedMap``)."""
    rows = counted
    pages = ledger.wire_pages(query, PAGE_SIZE, LEDGER_FIELDS)
    for count, text in ForkedMap(page_csv, processes).map(pages):
        writer.write(text)
        rows += count
        progress(rows)
    return rows


def page_csv(page: bytes) -> tuple[int, bytes]:
    """A ledger page's rows as CSV: how many, and their text."""
    rows = page_rows(page)
    return len(rows), csv_text(rows).encode("utf-8")
