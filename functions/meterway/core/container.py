"""The process's long-lived parts (settings, AWS clients, stores), each built once, on first use.

Lambda keeps a process warm between invocations, so a client or store built for the first
invocation serves the next ones. Nothing is built at import time: importing boto3 and making a
client costs over half a second that a cold start should pay only when it needs them.

Tests switch AWS backends and settings between cases: ``container.reset()`` forgets everything,
and ``container.override`` puts a fake in place of one part.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")


class Container:
    def __init__(self) -> None:
        self._parts: dict[Hashable, Any] = {}
        # Reentrant: building one part may ask for another (a store for its client).
        self._lock = threading.RLock()

    def provide(self, key: Hashable, build: Callable[[], T]) -> T:
        """The part known as ``key``, built by ``build`` the first time it is asked for."""
        try:
            part: T = self._parts[key]
            return part
        except KeyError:
            pass
        with self._lock:
            if key not in self._parts:
                self._parts[key] = build()
            part = self._parts[key]
            return part

    def override(self, key: Hashable, part: Any) -> None:
        """Use ``part`` as ``key`` from now on (a fake in a test)."""
        with self._lock:
            self._parts[key] = part

    def reset(self) -> None:
        """Forget every part: the next request builds them again from the current environment."""
        with self._lock:
            self._parts.clear()


container = Container()


def provided(build: Callable[[], T]) -> Callable[[], T]:
    """Decorates a builder into the getter of its part, which the container keeps under the getter
    itself: ``container.override(rollup_store, fake)`` replaces what ``rollup_store()`` returns."""

    @functools.wraps(build)
    def get() -> T:
        return container.provide(get, build)

    return get
