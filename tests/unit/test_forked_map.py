"""ForkedMap: an export's pages made into rows in child processes, in order, whatever a child does."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from meterway.core.forked_map import ForkedMap

CALLER = os.getpid()


def tagged(item: bytes) -> tuple[int, bytes]:
    """The process that mapped the item, and the item reversed."""
    return os.getpid(), item[::-1]


def refuses_sevens(item: int) -> int:
    if item == 7:
        raise ValueError(f"no {item}")
    return item * 2


def dies_on_three(item: int) -> int:
    """Kills its process on item 3, unless that is the caller's (where the item is mapped again)."""
    if item == 3 and os.getpid() != CALLER:
        os.kill(os.getpid(), signal.SIGKILL)
    return item * 2


def slow(item: int) -> int:
    time.sleep(30 if item == 2 else 0)
    return item


# Items of up to 3 MiB: far more than a pipe holds, so a child sending a result while the caller
# sends it the next item would deadlock.
ITEMS = [bytes([n]) * size for n, size in enumerate([0, 1, 3 << 20, 70_000, 5, 1 << 20, 9, 200_000, 3])]


@pytest.mark.parametrize("processes", [0, 1, 2, 3])
def test_results_come_back_in_the_items_order(processes):
    results = list(ForkedMap(tagged, processes).map(ITEMS))

    assert [reversed_item for _, reversed_item in results] == [item[::-1] for item in ITEMS]
    mapped_by = {pid for pid, _ in results}
    assert (CALLER in mapped_by) == (processes == 0)
    assert len(mapped_by) == max(1, min(processes, len(ITEMS)))
    assert multiprocessing.active_children() == []


def test_an_error_in_a_child_is_raised_to_the_caller_and_no_child_is_left():
    mapped = ForkedMap(refuses_sevens, 2).map(range(20))

    assert [next(mapped) for _ in range(7)] == [0, 2, 4, 6, 8, 10, 12]
    with pytest.raises(ValueError, match="no 7"):
        next(mapped)
    assert multiprocessing.active_children() == []


def test_a_child_killed_midway_loses_no_item(caplog):
    with caplog.at_level(logging.WARNING):
        results = list(ForkedMap(dies_on_three, 2).map(range(12)))

    assert results == [n * 2 for n in range(12)]
    assert "lost" in caplog.text
    assert multiprocessing.active_children() == []


def test_a_caller_that_stops_early_leaves_no_child_running():
    mapped = ForkedMap(slow, 1).map(range(5))
    assert next(mapped) == 0
    assert next(mapped) == 1  # item 2 is in the child now, for 30 s

    started = time.monotonic()
    mapped.close()

    assert time.monotonic() - started < 5
    assert multiprocessing.active_children() == []


def test_without_a_process_to_be_had_the_items_are_mapped_in_process(monkeypatch, caplog):
    def refused(self):
        raise OSError(11, "Resource temporarily unavailable")

    context = multiprocessing.get_context("fork")
    monkeypatch.setattr(context.Process, "start", refused)

    with caplog.at_level(logging.WARNING):
        results = list(ForkedMap(tagged, 2).map(ITEMS[:3]))

    assert {pid for pid, _ in results} == {CALLER}
    assert [reversed_item for _, reversed_item in results] == [item[::-1] for item in ITEMS[:3]]
    assert "mapped in process" in caplog.text


def test_a_child_whose_caller_is_killed_ends_too(tmp_path):
    # The caller maps one item, then dies without stopping its child (SIGKILL: no cleanup runs).
    script = (
        "import os, signal\n"
        "from meterway.core.forked_map import ForkedMap\n"
        "mapped = ForkedMap(len, 1).map(iter([b'1', b'2']))\n"
        "next(mapped)\n"
        "import multiprocessing\n"
        "print(multiprocessing.active_children()[0].pid, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    caller = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    child = int(caller.stdout.split()[0])

    deadline = time.monotonic() + 10
    while Path(f"/proc/{child}").exists() and Path(f"/proc/{child}/stat").read_text().split()[2] != "Z":
        assert time.monotonic() < deadline, "the child outlived its caller"
        time.sleep(0.05)
    assert "Traceback" not in caller.stderr
