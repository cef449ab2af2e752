"""Thirty days of made-up but plausible usage for the local console (``MW_DEMO_DATA=1``).

This module only plans: who the members and keys are, and which requests they made when, with
what tokens, as the ledger records them (`UsageRecord`); `plan_fallbacks` which of them Anthropic
turned away, so that they fell back to Claude on Bedrock; `for_key` prices a record with the app's
own pricing once its key exists. Everything is drawn from `random.Random`s with fixed seeds, so the
same ``now`` always gives the same plan. `devstack.demo_seed` writes the plan through the app's own
logic and stores.

The shape: most traffic in European office hours on weekdays, little at weekends, a nightly
evaluation job, usage growing over the month. Requests come in sessions whose context grows
turn by turn, so later turns read the prompt cache that earlier ones wrote.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Literal

from meterway.accounts.models import ApiKey, KeyLimits
from meterway.ledger.logic.record_usage import new_request_id
from meterway.ledger.models import TokenUsage, UsageRecord
from meterway.proxy.logic.catalog import CATALOG
from meterway.proxy.logic.pricing import price_usage
from meterway.proxy.logic.proxy_call import attempt_record
from meterway.proxy.providers.base import status_error

SEED = 20261123
REQUESTS = 3000
DAYS = 30
MAX_OUTPUT_TOKENS = 4096
MAX_REASONING_TOKENS = 6000
# OpenAI caches prompt prefixes of 1,024 tokens and more, in steps of 128.
OPENAI_CACHE_MIN, OPENAI_CACHE_STEP = 1024, 128

Hours = Literal["office", "night"]

# Relative traffic per UTC hour: a team in Europe, with a lunch dip.
OFFICE_HOURS = (
    0.04, 0.03, 0.03, 0.03, 0.05, 0.10, 0.25, 0.55, 0.90, 1.00, 1.00, 0.95,
    0.65, 0.85, 1.00, 1.00, 0.90, 0.70, 0.45, 0.30, 0.22, 0.15, 0.10, 0.06,
)  # fmt: skip
NIGHT_HOURS = tuple(1.0 if hour == 2 else 0.0 for hour in range(24))
# Monday to Sunday.
OFFICE_DAYS = (1.0, 1.0, 0.95, 1.0, 0.85, 0.15, 0.12)
NIGHT_DAYS = (1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0)


@dataclass(frozen=True, slots=True)
class DemoMember:
    member_id: str
    name: str | None


@dataclass(frozen=True, slots=True)
class DemoKey:
    """One API key and how it is used."""

    name: str
    member: str | None
    # Share of all requests, roughly.
    share: float
    models: tuple[tuple[str, float], ...]
    hours: Hours
    # Requests per session (inclusive bounds) and seconds between them (median).
    session: tuple[int, int]
    gap_s: float
    # Prompt tokens a session starts with (median), and output tokens per answer (median).
    context: int
    answer: int
    stream_share: float
    app: str | None = None
    # End users the key's app names in ``user``; 0 when it names none.
    users: int = 0
    tools: bool = False
    # Anthropic: how much of the starting context is cached for an hour rather than 5 minutes.
    long_cache_share: float = 0.0
    limits: KeyLimits | None = None


MEMBERS = (
    DemoMember("alice@example.com", "Alice Martin"),
    DemoMember("bob@example.com", "Bob Chen"),
    DemoMember("carol@example.com", "Carol Diaz"),
    # The local stack's own member (bootstrap_keys makes it); the playground key is theirs.
    DemoMember("dev@localhost", None),
)

KEYS = (
    DemoKey(
        "support-bot",
        "alice@example.com",
        share=0.40,
        models=(("openai/gpt-4o-mini", 0.7), ("anthropic/claude-haiku-4-5", 0.3)),
        hours="office",
        session=(2, 8),
        gap_s=40,
        context=1800,
        answer=180,
        stream_share=0.8,
        app="support-bot",
        users=140,
        limits=KeyLimits(spend_limit_usd=Decimal(5), spend_period="monthly", requests_per_minute=600),
    ),
    DemoKey(
        "code-review",
        "bob@example.com",
        share=0.22,
        models=(("anthropic/claude-sonnet-4-5", 0.8), ("openai/gpt-5-mini", 0.2)),
        hours="office",
        session=(1, 5),
        gap_s=90,
        context=6000,
        answer=600,
        stream_share=0.3,
        app="code-review",
        long_cache_share=0.7,
        limits=KeyLimits(spend_limit_usd=Decimal(5), spend_period="daily"),
    ),
    DemoKey(
        "research-agent",
        "carol@example.com",
        share=0.16,
        models=(("openai/gpt-5-mini", 0.45), ("openai/gpt-4o", 0.25), ("anthropic/claude-sonnet-4-5", 0.3)),
        hours="office",
        session=(3, 12),
        gap_s=20,
        context=3000,
        answer=450,
        stream_share=0.2,
        app="research-agent",
        tools=True,
        long_cache_share=0.3,
    ),
    DemoKey(
        "nightly-evals",
        None,
        share=0.14,
        models=(("openai/gpt-4o-mini", 0.6), ("openai/gpt-4.1-mini", 0.4)),
        hours="night",
        session=(20, 40),
        gap_s=3,
        context=900,
        answer=60,
        stream_share=0.0,
        app="evals",
        limits=KeyLimits(requests_per_minute=120),
    ),
    DemoKey(
        "playground",
        "dev@localhost",
        share=0.08,
        models=(("openai/gpt-4o", 0.35), ("anthropic/claude-haiku-4-5", 0.35), ("openai/o4-mini", 0.3)),
        hours="office",
        session=(1, 4),
        gap_s=60,
        context=400,
        answer=250,
        stream_share=0.6,
    ),
)

# The models with a second route, as a providers file's ``routes`` gives them: Claude Sonnet on
# Anthropic's own API, then on Bedrock.
FALLBACK_ROUTES = {"anthropic/claude-sonnet-4-5": "bedrock/us.anthropic.claude-sonnet-4-5-20250929-v1:0"}
# One request of such a model in this many (2.5%) finds its first route overloaded or rate-limited.
FALLBACK_EVERY = 40
# Anthropic's refusals: its status and how long it takes (median ms); mostly overloaded, some
# rate limits (answered at once).
REFUSALS = ((529, 900), (429, 250))
REFUSAL_WEIGHTS = (0.8, 0.2)

# Time to first token (median ms) and answer speed (tokens per second) of each model.
SPEED: dict[str, tuple[int, int]] = {
    "openai/gpt-4o-mini": (350, 90),
    "openai/gpt-4o": (500, 60),
    "openai/gpt-4.1-mini": (380, 85),
    "openai/gpt-5-mini": (700, 110),
    "openai/o4-mini": (800, 100),
    "anthropic/claude-sonnet-4-5": (900, 55),
    "anthropic/claude-haiku-4-5": (450, 120),
}


def planned_key(demo: DemoKey) -> ApiKey:
    """The stand-in a planned record names until the real key exists (see `for_key`)."""
    return ApiKey(key_id=f"planned:{demo.name}", account_id="", name=demo.name, member=demo.member, created_at="")


def plan_requests(
    now: datetime, *, requests: int = REQUESTS, days: int = DAYS, keys: tuple[DemoKey, ...] = KEYS
) -> list[UsageRecord]:
    """Exactly ``requests`` ledger records in [now − days, now), oldest first, each naming its
    key's stand-in and not yet priced; the same for the same ``now``."""
    rng = random.Random(SEED)  # noqa: S311 (made-up data, reproducible on purpose)
    start = now - timedelta(days=days)
    # Some days are busier than others, and use grows over the month.
    noise = {start.date() + timedelta(days=day): rng.lognormvariate(0, 0.2) for day in range(days + 1)}
    weights = [key.share / ((key.session[0] + key.session[1]) / 2) for key in keys]
    planned: list[UsageRecord] = []
    while len(planned) < requests:
        key = rng.choices(keys, weights)[0]
        begin = _session_start(rng, key.hours, start, now, noise)
        planned += [record for record in _session(rng, key, begin) if record.created_at < now]
    # Sessions are drawn in random order, so the surplus of the last one is a fair cut.
    return sorted(planned[:requests], key=lambda record: (record.created_at, record.request_id))


@dataclass(frozen=True, slots=True)
class Served:
    """A planned request as the gateway served it: its record and, when it fell back, a record of
    each attempt that failed before (``<request id>.<n>``)."""

    record: UsageRecord
    attempts: tuple[UsageRecord, ...] = ()

    def for_key(self, key: ApiKey) -> Served:
        return Served(for_key(self.record, key), tuple(for_key(attempt, key) for attempt in self.attempts))


def plan_fallbacks(planned: list[UsageRecord]) -> list[Served]:
    """``planned`` as served: about one request in ``FALLBACK_EVERY`` of a model with a second
    route (and not failed anyway) was turned away by its first and served by the second.

    The fallbacks are spaced, not drawn request by request, so that a small plan has some too;
    they come from a generator of their own, so the requests are the same with or without them.
    """
    rng = random.Random(SEED + 1)  # noqa: S311 (made-up data, reproducible on purpose)
    until_next = rng.randrange(FALLBACK_EVERY)
    served: list[Served] = []
    for record in planned:
        route = FALLBACK_ROUTES.get(record.model)
        if route is None or record.status == "error":
            served.append(Served(record))
        elif until_next:
            until_next -= 1
            served.append(Served(record))
        else:
            until_next = rng.randint(FALLBACK_EVERY // 2, FALLBACK_EVERY * 3 // 2) - 1
            served.append(_fell_back(rng, record, route))
    return served


def _fell_back(rng: random.Random, record: UsageRecord, route: str) -> Served:
    """``record`` served by ``route`` after its first attempt was refused, recorded as the proxy
    records it (``meterway.proxy.logic.proxy_call``): the request names the route and its
    provider, counts both attempts, and took the refused one's time too; the refused attempt is a
    record of its own at the request's time, of its own provider, billing nothing."""
    status, median_ms = rng.choices(REFUSALS, REFUSAL_WEIGHTS)[0]
    refused_ms = _tokens(rng, median_ms, 0.4)
    attempt = attempt_record(record, 1, CATALOG[record.model], status_error(status, None, None), refused_ms)
    served = replace(
        record,
        provider=CATALOG[route].provider,
        route=route,
        attempts=2,
        latency_ms=record.latency_ms + refused_ms,
        ttft_ms=None if record.ttft_ms is None else record.ttft_ms + refused_ms,
    )
    return Served(served, (attempt,))


def for_key(planned: UsageRecord, key: ApiKey) -> UsageRecord:
    """A planned record as the proxy would have written it for ``key``: priced by genai-prices at
    the rates of the route that served it, except a failed request, which bills nothing."""
    record = replace(planned, key=key)
    if record.status != "error":
        price = price_usage(CATALOG[record.route or record.model], record.tokens)
        record.cost_usd, record.prices = price.cost_usd, price.rates
    return record


def _session_start(
    rng: random.Random, hours: Hours, start: datetime, end: datetime, noise: dict[date, float]
) -> datetime:
    by_hour, by_day = (OFFICE_HOURS, OFFICE_DAYS) if hours == "office" else (NIGHT_HOURS, NIGHT_DAYS)
    ceiling = max(by_hour) * max(by_day) * max(noise.values())
    span = (end - start).total_seconds()
    while True:
        moment = start + timedelta(seconds=rng.uniform(0, span))
        growth = 0.7 + 0.3 * (moment - start).total_seconds() / span
        weight = by_hour[moment.hour] * by_day[moment.weekday()] * noise[moment.date()] * growth
        if rng.random() * ceiling < weight:
            return moment


def _session(rng: random.Random, key: DemoKey, begin: datetime) -> list[UsageRecord]:
    """One sitting: the same model mostly, a context that grows with every turn."""
    models, weights = zip(*key.models, strict=True)
    model = rng.choices(models, weights)[0]
    turns = rng.randint(*key.session)
    streamed = rng.random() < key.stream_share
    user = f"cust_{rng.randrange(key.users):04d}" if key.users else None
    context = _tokens(rng, key.context, 0.5)
    cached, cached_by = 0, model
    moment = begin
    records: list[UsageRecord] = []
    for turn in range(turns):
        if rng.random() < 0.15:
            model = rng.choices(models, weights)[0]
        if model != cached_by:
            # Another model has none of this context cached yet.
            cached, cached_by = 0, model
        prompt = context + _tokens(rng, 120, 0.8)
        usage = _usage(rng, key, model, prompt=prompt, cached=cached, fresh=0 if cached else context)
        record = _outcome(rng, key, model, moment, usage, streamed=streamed, last=turn == turns - 1, user=user)
        records.append(record)
        if record.status == "ok":
            cached = prompt
            context = prompt + usage.output_tokens - usage.reasoning_tokens
        moment += timedelta(seconds=record.latency_ms / 1000 + _tokens(rng, int(key.gap_s), 0.6))
    return records


def _usage(rng: random.Random, key: DemoKey, model: str, *, prompt: int, cached: int, fresh: int) -> TokenUsage:
    """Token classes as the ledger keeps them (never overlapping) for one answer."""
    output = min(_tokens(rng, key.answer, 0.7), MAX_OUTPUT_TOKENS)
    reasoning = 0
    if CATALOG[model].reasoning:
        reasoning = min(_tokens(rng, 700, 0.7), MAX_REASONING_TOKENS)
        output += reasoning
    if model.startswith("anthropic/"):
        # Anthropic caches what the request marks: the context on the first turn (the stable
        # part for an hour), then each new turn for 5 minutes; later turns read all of it back.
        read = cached
        long_write = int(fresh * key.long_cache_share)
        short_write = fresh - long_write if fresh else max(prompt - cached - _tokens(rng, 60, 0.5), 0)
        uncached = prompt - read - long_write - short_write
        return TokenUsage(
            input_tokens=uncached,
            output_tokens=output,
            cache_creation_5m_tokens=short_write,
            cache_creation_1h_tokens=long_write,
            cache_read_tokens=read,
        )
    read = cached // OPENAI_CACHE_STEP * OPENAI_CACHE_STEP if cached >= OPENAI_CACHE_MIN else 0
    return TokenUsage(
        input_tokens=prompt - read, output_tokens=output, reasoning_tokens=reasoning, cache_read_tokens=read
    )


def _outcome(
    rng: random.Random,
    key: DemoKey,
    model: str,
    moment: datetime,
    usage: TokenUsage,
    *,
    streamed: bool,
    last: bool,
    user: str | None,
) -> UsageRecord:
    """How the request ended, recorded as the proxy records it: answered, refused or failed
    upstream (nothing billed), or cut off mid-stream."""
    request_id = new_request_id(moment, f"{rng.getrandbits(64):016x}")
    first_token, speed = SPEED[model]
    ttft = int(_tokens(rng, first_token, 0.3) + usage.reasoning_tokens * 1000 / speed)
    latency = ttft + int((usage.output_tokens - usage.reasoning_tokens) * 1000 / speed)
    route = CATALOG[model]
    record = UsageRecord(
        request_id,
        moment,
        planned_key(key),
        route.id,
        route.provider,
        _endpoint(key, model),
        streamed,
        user=user,
        app=key.app,
    )
    roll = rng.random()
    if roll < 0.012:
        status = rng.choice((429, 500, 529)) if model.startswith("anthropic/") else rng.choice((429, 500))
        code = status_error(status, None, None).code  # as the proxy records it
        return replace(record, status="error", latency_ms=ttft // 3, error_code=code, upstream_status=status)
    if streamed and roll < 0.03:
        # The client hung up. Its output so far is estimated and billed, and so is the prompt,
        # whose cache reads OpenAI reports only at the end (see meterway/proxy/logic/relay.py).
        estimate = max(1, int(usage.output_tokens * rng.uniform(0.1, 0.7)))
        known = usage if model.startswith("anthropic/") else TokenUsage(usage.input_tokens + usage.cache_read_tokens)
        kept = known.with_output(estimate, 0)
        cut = ttft + int(estimate * 1000 / speed)
        return replace(
            record,
            status="partial",
            tokens=kept,
            usage_estimated=True,
            latency_ms=cut,
            ttft_ms=ttft,
            error_code="client_disconnected",
        )
    if usage.output_tokens - usage.reasoning_tokens >= MAX_OUTPUT_TOKENS:
        finish = "length"
    elif key.tools and not last and rng.random() < 0.6:
        finish = "tool_calls"
    else:
        finish = "stop"
    # A non-streamed answer's first token is the whole answer (as the proxy records it).
    return replace(
        record, tokens=usage, latency_ms=latency, ttft_ms=ttft if streamed else latency, finish_reason=finish
    )


def _endpoint(key: DemoKey, model: str) -> str:
    """The door a request came in by: Anthropic's SDK speaks Messages, the research agent OpenAI's
    Responses, the rest Chat Completions."""
    if model.startswith("anthropic/"):
        return "messages"
    return "responses" if key.app == "research-agent" else "chat.completions"


def _tokens(rng: random.Random, median: int, spread: float) -> int:
    """A log-normal count: most near ``median``, a long tail of big ones."""
    return max(1, int(rng.lognormvariate(math.log(median), spread)))
