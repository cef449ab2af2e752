"""How long one request may wait on its upstream, so that every wait ends and every request is
settled before its function is stopped.

Three limits, the first to come wins:
- the first byte: from sending the request until the provider's answer starts (its headers and, for
  a stream, its first event; a non-streamed answer arrives whole, so for it this is the answer);
- idle: between two events of a stream, once it has started;
- the deadline: the function's end (the invocation's own deadline where the Lambda Web Adapter
  passes it, never later than the request's start plus the function's timeout), less the margin
  that settling the record needs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from meterway.core.errors import TimeLimitReached, UpstreamTimeout
from meterway.proxy.models import Wait


@dataclass(frozen=True, slots=True)
class TimeLimits:
    first_byte_s: float
    idle_s: float
    function_timeout_s: float
    settle_margin_s: float


@dataclass(slots=True)
class TimeBudget:
    """One request's waits. Times are ``time.perf_counter()`` values; ``started``: when the request came in."""

    limits: TimeLimits
    ends_at: float
    first_byte_by: float | None = None

    @classmethod
    def starting(cls, limits: TimeLimits, started: float, invocation_deadline: float | None = None) -> TimeBudget:
        """The budget of a request that came in at ``started``; ``invocation_deadline`` is the
        ``time.perf_counter()`` time at which the function will be stopped, when the invocation says so."""
        stopped_at = started + limits.function_timeout_s
        if invocation_deadline is not None:
            stopped_at = min(stopped_at, invocation_deadline)
        return cls(limits, ends_at=stopped_at - limits.settle_margin_s)

    def first_byte(self) -> Wait:
        """The wait for the answer to start; the clock starts at the first call (the request is sent)."""
        now = time.perf_counter()
        if self.first_byte_by is None:
            self.first_byte_by = now + self.limits.first_byte_s
        error = UpstreamTimeout(f"The upstream provider did not start answering within {self.limits.first_byte_s:g} s.")
        return self._bounded(self.first_byte_by - now, error)

    def next_event(self) -> Wait:
        """The wait for a stream's next event, once it has sent one."""
        error = UpstreamTimeout(
            f"The upstream provider sent nothing for {self.limits.idle_s:g} s.", code="upstream_stalled"
        )
        return self._bounded(self.limits.idle_s, error)

    def _bounded(self, seconds: float, error: UpstreamTimeout) -> Wait:
        left = self.ends_at - time.perf_counter()
        if left < seconds:
            return Wait(
                max(0.0, left),
                TimeLimitReached("The request reached the gateway's time limit before the upstream finished."),
            )
        return Wait(max(0.0, seconds), error)
