"""An ordered map over forked child processes: a CPU-bound step (an export's pages turned into CSV)
done beside the caller's I/O instead of sharing one core, and one GIL, with it.

Hand-written over ``multiprocessing``'s pipes and forked processes because Lambda has no
``/dev/shm``: ``multiprocessing.Pool`` and ``ProcessPoolExecutor`` need POSIX semaphores there and
fail, while pipes and ``fork`` work.

Each child holds one item at a time; the next item goes to the child whose result is taken, so a
child never waits to send while the caller waits to send to it, and results come back in the
items' order. A child that dies (killed, out of memory) loses nothing: the items it held, and every
later one, are mapped in the caller's process instead. An exception raised by the function in a
child is raised to the caller as it would be in process.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, Generic, TypeVar

from meterway.core.observability import logger

Item = TypeVar("Item")
Result = TypeVar("Result")

_STOP = None  # what a child is sent to end: items are never None
_JOIN_S = 2.0
_LOST = (EOFError, OSError)  # a child gone: its end of the pipe closed or reset


@dataclass
class _Child:
    process: BaseProcess
    connection: Connection


@dataclass
class _Failed:
    """What a child sends back when the function raised: the exception, raised again in the caller."""

    error: BaseException


def _serve(function: Callable[[Any], Any], connection: Connection, inherited: list[Connection]) -> None:
    for other in inherited:  # the caller's ends of earlier children's pipes, copied by fork
        other.close()
    with suppress(*_LOST):  # the caller gone (killed): nothing is waiting for results
        while (item := connection.recv()) is not _STOP:
            try:
                result = function(item)
            except Exception as error:  # noqa: BLE001  (raised again in the caller, where it belongs)
                result = _Failed(error)
            connection.send(result)


class ForkedMap(Generic[Item, Result]):
    """``map(function, items)`` with ``function`` run in ``processes`` forked children (none: in
    this process). ``function`` must be a module-level function; items and results are pickled.
    An ``OSError`` or ``EOFError`` the function raises in a child is taken for the child's loss:
    the item is mapped again in process, where it raises again."""

    def __init__(self, function: Callable[[Item], Result], processes: int):
        self.function, self.processes = function, processes

    def map(self, items: Iterable[Item]) -> Iterator[Result]:
        items = iter(items)
        children = self._start()
        idle, busy = deque(children), deque[tuple[_Child, Item]]()
        received: list[Result] = []  # a result taken but not yet handed on
        unsent: list[Item] = []  # the item taken but not yet with a child
        try:
            for item in items:
                if not children:
                    yield self.function(item)
                    continue
                unsent.append(item)
                if not idle:
                    received.append(_oldest(idle, busy))
                # The next item goes out before the result is handed on: the child works on it
                # while the caller writes the result.
                child = idle.popleft()
                busy.append((child, unsent.pop()))
                child.connection.send(item)
                if received:
                    yield received.pop()
            while busy:
                yield _oldest(idle, busy)
        except _LOST:
            logger.warning("a child process was lost: its items and the rest are mapped in process")
            yield from received
            yield from map(self.function, [held for _, held in busy])
            yield from map(self.function, unsent)
            yield from map(self.function, items)
        finally:
            for child in children:
                _stop(child, working=any(child is working for working, _ in busy))

    def _start(self) -> list[_Child]:
        context = multiprocessing.get_context("fork")
        children: list[_Child] = []
        try:
            for _ in range(self.processes):
                mine, theirs = context.Pipe()
                inherited = [child.connection for child in children] + [mine]
                process = context.Process(target=_serve, args=(self.function, theirs, inherited), daemon=True)
                process.start()
                theirs.close()
                children.append(_Child(process, mine))
        except OSError:  # no process to be had (a limit on processes or memory): map in process
            logger.warning("no child process could be started: the items are mapped in process")
            for child in children:
                _stop(child, working=False)
            return []
        return children


def _oldest(idle: deque[_Child], busy: deque[tuple[_Child, Item]]) -> Any:
    """The result of the oldest item out: its child is idle again."""
    child, _ = busy[0]
    result = child.connection.recv()  # on a loss, the item stays with the busy ones
    busy.popleft()
    idle.append(child)
    if isinstance(result, _Failed):
        raise result.error
    return result


def _stop(child: _Child, *, working: bool) -> None:
    if working:  # the caller stopped early (an error, a superseded job): its result is not wanted
        child.process.kill()
    else:
        with suppress(*_LOST):  # already gone
            child.connection.send(_STOP)
    child.connection.close()
    child.process.join(_JOIN_S)
    if child.process.is_alive():
        child.process.kill()
        child.process.join()
