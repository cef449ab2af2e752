"""CPU per row of a request export's steps on recorded ledger pages, in one process: where a
worker's time goes, without the queue, the endpoint, S3 or the other workers.

The pages are those ``bench/export_throughput.py`` serves (``bench/ledger_pages.py``: 20 pages of
1,000 records as the export's projection leaves them). Each step runs over all of them, five
times; the best time (``time.process_time``) is kept, per row:
- ``json.loads``: the page parsed into dicts, as the export did before msgspec (for comparison);
- ``decode``: the page decoded into ``wire_rows``' structs;
- ``rows``: the rows made from the decoded structs;
- ``csv``: those rows written as CSV and encoded;
- ``page``: all of it, as ``request_csv`` does per page (``page_rows``, ``csv_text``, encode).

    .venv/bin/python bench/export_page_cpu.py
"""

from __future__ import annotations

import gc
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "functions")]

from bench import ledger_pages  # noqa: E402
from bench.export_throughput import export_projection  # noqa: E402
from meterway.exports.logic import wire_rows  # noqa: E402
from meterway.exports.logic.csv_format import csv_text  # noqa: E402

PAGES, PAGE_SIZE, REPEATS = 20, 1000, 5


def per_row_us(step: Callable[[bytes], object], pages: list[bytes]) -> float:
    best = float("inf")
    for _ in range(REPEATS):
        gc.collect()
        started = time.process_time()
        for page in pages:
            step(page)
        best = min(best, time.process_time() - started)
    return round(best / (len(pages) * PAGE_SIZE) * 1e6, 2)


def main() -> None:
    records, projection = PAGES * PAGE_SIZE, export_projection()
    pages = [
        b"[" + b",".join(ledger_pages.wire_item(first + n, records, projection) for n in range(PAGE_SIZE)) + b"]"
        for first in range(0, records, PAGE_SIZE)
    ]
    decoded = [wire_rows.PAGE_DECODER.decode(page) for page in pages]
    rows = [wire_rows.page_rows(page) for page in pages]
    by_page = {page: (structs, made) for page, structs, made in zip(pages, decoded, rows, strict=True)}
    figures = {
        "json.loads": per_row_us(json.loads, pages),
        "decode": per_row_us(wire_rows.PAGE_DECODER.decode, pages),
        "rows": per_row_us(lambda page: [wire_rows.direct_row(record) for record in by_page[page][0]], pages),
        "csv": per_row_us(lambda page: csv_text(by_page[page][1]).encode("utf-8"), pages),
        "page": per_row_us(lambda page: csv_text(wire_rows.page_rows(page)).encode("utf-8"), pages),
    }
    print(json.dumps({"µs per row": figures, "page_bytes": sum(map(len, pages)) // PAGES}, indent=2))


if __name__ == "__main__":
    main()
