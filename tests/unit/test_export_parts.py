"""A run of an upload's parts: cut so that every part but the run's last is ``part_size``, and the
last is at least S3's minimum whenever the run wrote that much."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterway.core.errors import StorageError
from meterway.exports.dal.export_files import S3PartWriter
from tests.fakes import InMemoryFiles

PART, MINIMUM = 8192, 4096


def a_run(files: InMemoryFiles, first: int = 1, last: int = 10_000) -> tuple[str, S3PartWriter]:
    upload = files.start_upload("exports/a/b/usage.csv", "text/csv")
    return upload, files.part_writer("exports/a/b/usage.csv", upload, first, last)


@given(writes=st.lists(st.integers(0, 3 * PART), max_size=30))
def test_a_run_is_the_bytes_written_in_parts_s3_accepts(writes):
    files = InMemoryFiles(part_size=PART, min_part_size=MINIMUM)
    upload, writer = a_run(files, first=501)
    data = b"".join(bytes([n % 251]) * size for n, size in enumerate(writes))
    for n, size in enumerate(writes):
        writer.write(bytes([n % 251]) * size)
    assert writer.long_enough == (len(data) >= MINIMUM)

    parts = writer.close()

    bodies = [files.uploads[upload][part["PartNumber"]] for part in parts]
    assert b"".join(bodies) == data
    assert [part["PartNumber"] for part in parts] == list(range(501, 501 + len(parts)))
    assert all(len(body) == PART for body in bodies[:-1])
    if len(data) >= MINIMUM:
        assert MINIMUM <= len(bodies[-1]) < PART + MINIMUM


def test_a_run_that_wrote_nothing_has_no_part_unless_it_ends_the_file():
    files = InMemoryFiles(part_size=PART, min_part_size=MINIMUM)
    assert a_run(files)[1].close() == []
    upload, writer = a_run(files)
    assert [part["PartNumber"] for part in writer.close(ends_file=True)] == [1]
    assert files.uploads[upload][1] == b""


def test_a_run_that_outgrows_its_part_numbers_fails():
    files = InMemoryFiles(part_size=PART, min_part_size=MINIMUM)
    _, writer = a_run(files, first=1, last=2)
    with pytest.raises(StorageError, match="outgrew"):
        writer.write(b"x" * (4 * PART))
