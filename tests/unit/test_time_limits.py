"""A request's time budget: which limit ends each wait, and which deadline an invocation has."""

from __future__ import annotations

import json
import time

import pytest
from starlette.requests import Request

from meterway.core.errors import TimeLimitReached, UpstreamTimeout
from meterway.proxy.handlers.http_io import invocation_deadline
from meterway.proxy.logic.time_limits import TimeBudget, TimeLimits

LIMITS = TimeLimits(first_byte_s=300, idle_s=120, function_timeout_s=900, settle_margin_s=10)


def _request(*contexts: str) -> Request:
    headers = [(b"x-amzn-lambda-context", context.encode()) for context in contexts]
    return Request({"type": "http", "method": "POST", "path": "/v1/messages", "headers": headers})


def test_a_request_far_from_its_deadline_waits_the_first_byte_then_the_idle_timeout():
    budget = TimeBudget.starting(LIMITS, started=time.perf_counter())

    first = budget.first_byte()
    assert first.seconds == pytest.approx(300, abs=0.5)
    assert type(first.error) is UpstreamTimeout and first.error.code == "upstream_timeout"
    idle = budget.next_event()
    assert idle.seconds == 120 and idle.error.code == "upstream_stalled"


def test_the_first_byte_clock_runs_from_when_the_request_was_sent():
    budget = TimeBudget.starting(LIMITS, started=time.perf_counter())
    budget.first_byte()  # the request is sent
    budget.first_byte_by = time.perf_counter() + 5  # ... and 295 s have gone by

    assert budget.first_byte().seconds == pytest.approx(5, abs=0.5)


def test_near_the_deadline_every_wait_ends_in_time_to_settle():
    # Given a function that stops in 25 s, 10 of which settling needs
    now = time.perf_counter()
    budget = TimeBudget.starting(LIMITS, started=now - 100, invocation_deadline=now + 25)

    for wait in (budget.first_byte(), budget.next_event()):
        assert wait.seconds == pytest.approx(15, abs=0.5)
        assert isinstance(wait.error, TimeLimitReached) and wait.error.status == 504


def test_past_the_deadline_a_wait_is_over_at_once():
    now = time.perf_counter()
    budget = TimeBudget.starting(LIMITS, started=now, invocation_deadline=now + 3)

    assert budget.next_event().seconds == 0


def test_an_invocation_never_runs_past_the_functions_timeout_whatever_its_context_says():
    # A client can send the adapter's header itself: a deadline a day away must not hold a function
    # past its timeout, where Lambda would stop it before the record is written
    started = time.perf_counter()
    budget = TimeBudget.starting(LIMITS, started=started, invocation_deadline=started + 86_400)

    assert budget.ends_at == pytest.approx(started + 900 - 10)


def test_the_adapters_context_gives_the_invocations_deadline():
    deadline_ms = (time.time() + 60) * 1000

    deadline = invocation_deadline(_request(json.dumps({"request_id": "r", "deadline": deadline_ms})))

    assert deadline == pytest.approx(time.perf_counter() + 60, abs=0.5)


def test_of_two_contexts_the_earliest_deadline_counts():
    soon, later = ((time.time() + seconds) * 1000 for seconds in (30, 600))

    deadline = invocation_deadline(_request(json.dumps({"deadline": later}), json.dumps({"deadline": soon})))

    assert deadline == pytest.approx(time.perf_counter() + 30, abs=0.5)


@pytest.mark.parametrize(
    "context", ["not json", "[1]", json.dumps({"deadline": "soon"}), json.dumps({"deadline": True}), "{}"]
)
def test_a_context_without_a_readable_deadline_is_no_deadline(context):
    assert invocation_deadline(_request(context)) is None
