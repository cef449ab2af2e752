"""Routes, retries and fallbacks: which routes a request may take (the providers file's routes,
the client's pin), when an attempt moves on, how long it waits, and that a failed attempt becomes a
record of its own that bills nothing."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import anyio
import httpx
import pytest

from meterway.core.errors import InvalidRequest, UpstreamError, UpstreamTimeout
from meterway.ledger.models import TokenUsage, UsageRecord
from meterway.proxy.logic.catalog import BUILT_IN, ModelRoute
from meterway.proxy.logic.fallbacks import (
    Attempts,
    Failure,
    Leg,
    ProviderPin,
    RetryPolicy,
    allowed_routes,
    first_answer,
    pin_of,
    retry_after_seconds,
)
from meterway.proxy.logic.providers_config import ProvidersFileError, load_catalog, parse_providers
from meterway.proxy.logic.proxy_call import ProxyCall, attempt_records, charge, take
from meterway.proxy.models import UpstreamRequest, Wait
from meterway.proxy.providers.base import status_error
from tests.ledger_factory import KEYS

SONNET = "anthropic/claude-sonnet-4-5"
SONNET_ON_BEDROCK = "bedrock/us.anthropic.claude-sonnet-4-5-20250929-v1:0"
ROUTES = {"routes": {SONNET: [SONNET, SONNET_ON_BEDROCK]}}


def catalog_with(routes: dict[str, Any]) -> Any:
    return load_catalog(parse_providers(json.dumps(routes)))


# The providers file's routes


def test_a_model_is_served_by_its_routes_in_order_and_by_itself_when_it_has_none():
    catalog = catalog_with(ROUTES)

    assert [r.id for r in catalog.routes_for(catalog.resolve(SONNET))] == [SONNET, SONNET_ON_BEDROCK]
    assert [r.id for r in catalog.routes_for(catalog.resolve("openai/gpt-4o"))] == ["openai/gpt-4o"]


@pytest.mark.parametrize(
    ("routes", "said"),
    [
        ({"anthropic/claude-nine": [SONNET]}, "routes.anthropic/claude-nine: no such model in the catalog"),
        ({SONNET: [SONNET, "bedrock/nope"]}, "'bedrock/nope' is not a model of the catalog"),
        ({SONNET: [SONNET, SONNET]}, "a route is listed twice"),
        ({SONNET: ["openai/text-embedding-3-small"]}, "is an embeddings model, not a chat one"),
    ],
)
def test_routes_to_what_the_catalog_does_not_have_stop_the_start_saying_where(routes, said):
    with pytest.raises(ProvidersFileError) as refused:
        catalog_with({"routes": routes})

    assert said in str(refused.value)


def test_a_route_list_must_name_at_least_one_route():
    with pytest.raises(ProvidersFileError, match="routes"):
        catalog_with({"routes": {SONNET: []}})


# The client's pin


def test_the_provider_field_is_taken_out_of_the_body_and_pins_the_routes():
    body = {"model": SONNET, "provider": {"only": ["bedrock"]}}
    routes = catalog_with(ROUTES).routes_for(BUILT_IN.resolve(SONNET))

    pin = pin_of(body, {})

    assert "provider" not in body  # never forwarded
    assert [r.id for r in allowed_routes(routes[0], routes, pin)] == [SONNET_ON_BEDROCK]


def test_the_header_pins_too_and_a_route_id_is_as_good_as_a_provider_name():
    routes = catalog_with(ROUTES).routes_for(BUILT_IN.resolve(SONNET))

    by_header = pin_of({}, {"x-meterway-provider": " anthropic , "})
    by_id = pin_of({"provider": {"only": [SONNET_ON_BEDROCK]}}, {})

    assert [r.id for r in allowed_routes(routes[0], routes, by_header)] == [SONNET]
    assert [r.id for r in allowed_routes(routes[0], routes, by_id)] == [SONNET_ON_BEDROCK]


def test_no_fallbacks_keeps_the_first_allowed_route_alone():
    routes = catalog_with(ROUTES).routes_for(BUILT_IN.resolve(SONNET))

    pin = pin_of({"provider": {"allow_fallbacks": False}}, {})

    assert [r.id for r in allowed_routes(routes[0], routes, pin)] == [SONNET]


@pytest.mark.parametrize(
    "field", [{"only": "bedrock"}, {"only": []}, {"order": ["bedrock"]}, "bedrock", {"allow_fallbacks": "no"}]
)
def test_a_malformed_provider_field_is_a_400(field):
    with pytest.raises(InvalidRequest) as refused:
        pin_of({"provider": field}, {})

    assert refused.value.code == "invalid_provider_preferences"


def test_a_pin_no_route_matches_is_a_400_that_names_the_models_providers():
    routes = catalog_with(ROUTES).routes_for(BUILT_IN.resolve(SONNET))

    with pytest.raises(InvalidRequest) as refused:
        allowed_routes(routes[0], routes, ProviderPin(frozenset({"groq"})))

    assert refused.value.code == "provider_not_available"
    assert "its providers: anthropic, bedrock" in refused.value.message


# When to try again, and how long to wait


def error_of(status: int, retry_after: str | None = None) -> UpstreamError:
    return status_error(status, "message", retry_after)


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504, 529])
def test_a_transient_failure_is_tried_again_within_the_backoff(status):
    policy = RetryPolicy(retries=2, backoff_s=0.5)

    first, second = policy.delay(error_of(status), 1, 60), policy.delay(error_of(status), 2, 60)

    assert first is not None and 0 <= first <= 0.5
    assert second is not None and 0 <= second <= 1.0
    assert policy.delay(error_of(status), 3, 60) is None  # its retries are spent


@pytest.mark.parametrize(
    "error",
    [
        error_of(400),
        error_of(404),
        error_of(413),
        UpstreamTimeout("slow"),
        UpstreamError("gateway refused", upstream_status=401, gateway_fault=True),
    ],
)
def test_what_the_same_route_would_answer_again_is_not_retried(error):
    assert RetryPolicy(retries=3).delay(error, 1, 60) is None


def test_retry_after_is_the_wait_unless_it_is_longer_than_the_policy_or_the_budget_allows():
    policy = RetryPolicy(retries=1, max_wait_s=10)

    assert policy.delay(error_of(429, "2"), 1, 60) == 2.0
    assert policy.delay(error_of(429, "30"), 1, 60) is None  # more than max_wait_s: the next route
    assert policy.delay(error_of(429, "2"), 1, 1.5) is None  # more than the first-byte budget left


def test_retry_after_may_be_an_http_date():
    in_five = format_datetime(datetime.now(UTC) + timedelta(seconds=5), usegmt=True)

    assert 3 <= (retry_after_seconds(in_five) or 0) <= 5
    assert retry_after_seconds("soon") is None


# Along the routes


def leg(route_id: str) -> Leg:
    route = BUILT_IN.resolve(route_id)
    return Leg.of(BUILT_IN.resolve(SONNET), route, None, UpstreamRequest(f"https://{route.provider}.invalid", {}))  # type: ignore[arg-type]


def answers(*outcomes: UpstreamError | int) -> tuple[list[str], Any]:
    """A sender that answers each attempt with the next outcome (an error, or a status that succeeds)."""
    sent: list[str] = []
    queue = list(outcomes)

    async def send(attempted: Leg, wait: Wait) -> httpx.Response:
        assert wait.seconds > 0
        sent.append(attempted.route.id)
        outcome = queue.pop(0)
        if isinstance(outcome, UpstreamError):
            raise outcome
        return httpx.Response(outcome)

    return sent, send


def run(legs: list[Leg], send: Any, policy: RetryPolicy, attempts: Attempts) -> tuple[Leg, httpx.Response]:
    # On a thread of its own: a browser test earlier in the session may hold this thread's loop.
    first_byte = lambda: Wait(60, UpstreamTimeout("slow"))  # noqa: E731
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(anyio.run, first_answer, legs, send, first_byte, policy, attempts).result()


def test_an_overloaded_route_is_retried_then_the_next_route_answers():
    sent, send = answers(error_of(529), error_of(529), 200)
    attempts = Attempts()

    served, response = run([leg(SONNET), leg(SONNET_ON_BEDROCK)], send, RetryPolicy(retries=1, backoff_s=0), attempts)

    assert sent == [SONNET, SONNET, SONNET_ON_BEDROCK]
    assert served.route.id == SONNET_ON_BEDROCK and response.status_code == 200
    assert [(f.leg.route.id, f.error.upstream_status) for f in attempts.failures] == [(SONNET, 529), (SONNET, 529)]


def test_no_connection_moves_on_and_the_clients_own_error_stops_at_once():
    unreachable = UpstreamError("could not be reached", unreachable=True)
    sent, send = answers(unreachable, error_of(400))
    attempts = Attempts()

    with pytest.raises(UpstreamError) as raised:
        run([leg(SONNET), leg(SONNET_ON_BEDROCK), leg(SONNET)], send, RetryPolicy(), attempts)

    assert sent == [SONNET, SONNET_ON_BEDROCK]  # the 400 is final: no third route
    assert raised.value.upstream_status == 400 and attempts.count == 2


def test_when_every_route_fails_the_last_error_is_the_answer():
    sent, send = answers(error_of(529), error_of(429, "1"))
    attempts = Attempts()

    with pytest.raises(UpstreamError) as raised:
        run([leg(SONNET), leg(SONNET_ON_BEDROCK)], send, RetryPolicy(), attempts)

    assert raised.value.status == 429 and raised.value.headers["retry-after"] == "1"
    assert len(sent) == attempts.count == 2


# On the ledger


def test_each_failed_attempt_is_a_record_of_its_own_billing_nothing_and_the_request_keeps_its_id():
    model = BUILT_IN.resolve(SONNET)
    record = UsageRecord("gen-1", datetime(2026, 12, 2, tzinfo=UTC), KEYS[0], SONNET, "anthropic", "messages", True)
    call = ProxyCall(model, {}, record, 0.0)
    failed = [
        Failure(leg(SONNET), error_of(529), 120),
        Failure(leg(SONNET), UpstreamError("down", unreachable=True), 3),
    ]

    take(call, leg(SONNET_ON_BEDROCK), attempts=3)
    charge(call, TokenUsage(input_tokens=1000, output_tokens=100))
    records = attempt_records(record, failed)

    assert (record.request_id, record.provider, record.route, record.attempts) == (
        "gen-1",
        "bedrock",
        SONNET_ON_BEDROCK,
        3,
    )
    assert record.cost_usd > 0 and record.prices  # at the serving route's rates
    assert [(r.request_id, r.attempt_of, r.attempt, r.provider, r.route) for r in records] == [
        ("gen-1.1", "gen-1", 1, "anthropic", None),
        ("gen-1.2", "gen-1", 2, "anthropic", None),
    ]
    first = records[0].to_item()
    assert (first["status"], first["upstream_status"], first["latency_ms"], first["cost_usd"]) == ("error", 529, 120, 0)
    assert first["total_tokens"] == 0 and first["created_at"] == record.to_item()["created_at"]
    assert "attempts" not in first and "attempt_of" not in record.to_item()


def test_a_leg_goes_by_the_requested_models_id_at_the_serving_routes_prices():
    served = leg(SONNET_ON_BEDROCK)

    assert served.as_requested.id == SONNET
    assert served.as_requested.prices_ref == ("aws", "us.anthropic.claude-sonnet-4-5-20250929-v1:0")
    assert isinstance(served.route, ModelRoute) and served.route.id == SONNET_ON_BEDROCK
