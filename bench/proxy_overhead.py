"""Gateway overhead, measured in one run against the same fake upstream (the budgets in docs/architecture.md §4).

Processes: moto server (AWS), the fake upstream, the proxy app under uvicorn and LiteLLM's proxy,
each on its own so that each gateway's CPU time can be read from /proc (bench/harness.py,
bench/litellm_proxy.py). A counting relay in front of moto tells how many DynamoDB calls each
request makes and, in the passes with the latency model, holds each call for a latency drawn
from DynamoDB's published figures (bench/aws_relay.py).

For each front door, N rounds; each round sends, in turn, a request straight to the upstream
followed by the same request through one gateway: Meterway without the latency model, Meterway
with it (the two in alternating order from round to round), then LiteLLM. Machine noise hits all
of them alike, and each gateway request is compared with the direct request just before it: the
figures are the differences. CPU per request is each gateway's process (and children) CPU time
over the rounds, divided by the requests it served.

    .venv/bin/python bench/proxy_overhead.py [--requests 300] [--aws-latency | --no-aws-latency] [--no-litellm]
                                             [--stack-alone] [--upstream-first-token-ms 0]

By default both Meterway passes run (without and with the latency model); --aws-latency runs
only the pass with it, --no-aws-latency only the one without. --upstream-first-token-ms gives the
fake upstream a provider's wait before its first token (by default it answers at once, so the
key's check, sent beside the upstream call, can outlast it). The first run installs LiteLLM into
.bench/litellm-venv (bench/litellm-requirements.txt). --stack-alone adds, after Meterway's passes,
the proxy's own stack doing nothing but relay (bench/stack_alone.py): the floor its CPU stands on.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "functions")]

from bench import litellm_proxy  # noqa: E402
from bench.harness import BASE_ENV, DIRECT_HEADERS, GatewayStack, cpu_seconds, percentile, serve_as_run_sh, timed  # noqa: E402

PROMPT = [{"role": "user", "content": "Say something short."}]
WARM_UP = 30
MS = 1000
BUDGET_FIRST_BYTE_MS = 10  # with the latency model, p50
BUDGET_CPU_MS = 3


@dataclass(frozen=True)
class Case:
    """One front door, timed against the same request sent straight to the fake upstream."""

    label: str
    path: str  # the gateway's, and the fake's (the fake serves every format under /v1)
    direct: dict[str, Any]  # the body sent to the fake, with the upstream's model id
    model: str  # the client-facing id the gateways are sent

    @property
    def gateway(self) -> dict[str, Any]:
        return self.direct | {"model": self.model}


CASES = [
    Case("chat", "/v1/chat/completions", {"model": "gpt-4o-mini", "messages": PROMPT}, "openai/gpt-4o-mini"),
    Case(
        "chat stream",
        "/v1/chat/completions",
        {"model": "gpt-4o-mini", "messages": PROMPT, "stream": True, "stream_options": {"include_usage": True}},
        "openai/gpt-4o-mini",
    ),
    Case(
        "messages stream",
        "/v1/messages",
        {"model": "claude-haiku-4-5", "max_tokens": 200, "messages": PROMPT, "stream": True},
        "anthropic/claude-haiku-4-5",
    ),
    Case(
        "responses stream",
        "/v1/responses",
        {"model": "gpt-4o-mini", "input": "Say something short.", "stream": True, "store": False},
        "openai/gpt-4o-mini",
    ),
]


@dataclass(frozen=True)
class Arm:
    """A way through to the upstream: a gateway (or none), and whether DynamoDB latencies are modelled."""

    name: str
    base_url: str
    headers: dict[str, str]
    pid: int | None = None
    aws_latency: bool = False
    # Sent the body as the upstream takes it (the stack alone maps no model ids).
    direct_body: bool = False


class Rounds:
    """Each arm's (first byte, total) pairs for one door, with the direct request before each."""

    def __init__(self, arms: list[Arm]):
        self.samples: dict[str, list[tuple[float, float, float, float]]] = {arm.name: [] for arm in arms}

    def add(self, arm: Arm, direct: tuple[float, float], through: tuple[float, float]) -> None:
        self.samples[arm.name].append((*direct, *through))

    def summary(self, name: str) -> dict[str, float]:
        rows = self.samples[name]
        added_first = [gateway_first - first for first, _, gateway_first, _ in rows]
        added_total = [gateway_total - total for _, total, _, gateway_total in rows]
        return {
            "direct_p50_ms": round(statistics.median(total for _, total, _, _ in rows) * MS, 2),
            "added_first_byte_p50_ms": round(statistics.median(added_first) * MS, 2),
            "added_p50_ms": round(statistics.median(added_total) * MS, 2),
            "added_p99_ms": round(percentile(added_total, 0.99) * MS, 2),
        }


def run_case(client: httpx.Client, stack: GatewayStack, case: Case, arms: list[Arm], n: int) -> dict[str, Any]:
    direct_url = f"{stack.fake_url}{case.path}"

    def one(arm: Arm, rounds: Rounds | None) -> None:
        stack.relay.model_latency = arm.aws_latency
        direct = timed(client, direct_url, case.direct, DIRECT_HEADERS)
        through = timed(
            client, f"{arm.base_url}{case.path}", case.direct if arm.direct_body else case.gateway, arm.headers
        )
        if rounds is not None:
            rounds.add(arm, direct, through)

    for _ in range(WARM_UP):  # key cache, connection pools, prices
        for arm in arms:
            one(arm, None)
    meterway = [arm for arm in arms if arm.name.startswith("meterway")]
    others = [arm for arm in arms if arm not in meterway]
    pids = {arm.pid for arm in arms if arm.pid is not None}
    stack.relay.reset()
    cpu_before = {pid: cpu_seconds(pid) for pid in pids}
    rounds = Rounds(arms)
    for index in range(n):
        for arm in (meterway if index % 2 == 0 else meterway[::-1]) + others:
            one(arm, rounds)
    cpu = {pid: cpu_seconds(pid) - before for pid, before in cpu_before.items()}
    served = {pid: sum(n for arm in arms if arm.pid == pid) for pid in pids}
    result: dict[str, Any] = {}
    for arm in arms:
        result[arm.name] = rounds.summary(arm.name)
        if arm.pid is not None:
            result[arm.name]["cpu_ms_per_request"] = round(cpu[arm.pid] * MS / served[arm.pid], 2)
    calls = dict(stack.relay.counts)
    result["dynamodb_calls_per_request"] = round(sum(calls.values()) / (n * len(meterway)), 2) if meterway else 0
    result["dynamodb_calls"] = calls
    return result


def start_stack_alone(stack: ExitStack, fake_url: str) -> tuple[str, int]:
    """bench/stack_alone.py, as run.sh starts the proxy; its URL and pid."""
    return serve_as_run_sh(stack, "bench.stack_alone:app", {**os.environ, **BASE_ENV, "UPSTREAM": fake_url})


def import_time() -> float:
    code = "import time; t=time.perf_counter(); import meterway.proxy.handlers.app; print(time.perf_counter()-t)"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "functions")}
    runs = [float(subprocess.check_output([sys.executable, "-c", code], env=env)) for _ in range(5)]
    return statistics.median(runs)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300, help="rounds per front door (default 300)")
    model = parser.add_mutually_exclusive_group()
    model.add_argument("--aws-latency", action="store_const", dest="passes", const=("on",), help="only with the model")
    model.add_argument(
        "--no-aws-latency", action="store_const", dest="passes", const=("off",), help="only without the model"
    )
    parser.add_argument("--no-litellm", action="store_true", help="leave LiteLLM out")
    parser.add_argument(
        "--stack-alone",
        action="store_true",
        help="also run the proxy's stack doing nothing but relay (bench/stack_alone.py): the floor",
    )
    parser.add_argument(
        "--upstream-first-token-ms",
        type=float,
        default=0.0,
        help="the fake upstream's time to its first token (default 0: it answers at once)",
    )
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.set_defaults(passes=("off", "on"))
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="mw-bench-") as workdir:
        gateway = GatewayStack(["--first-token-latency-ms", str(args.upstream_first_token_ms)]).start(stack)
        arms = [
            Arm(name, gateway.gateway_url, gateway.gateway_headers, gateway.gateway_pid, aws_latency=mode == "on")
            for mode, name in (("off", "meterway"), ("on", "meterway +model"))
            if mode in args.passes
        ]
        summary: dict[str, Any] = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "cpus": os.cpu_count(),
            "requests_each": args.requests,
            "upstream_first_token_ms": args.upstream_first_token_ms,
            "proxy_import_s": round(import_time(), 3),
        }
        if args.stack_alone:
            url, pid = start_stack_alone(stack, gateway.fake_url)
            arms.append(Arm("stack alone", url, DIRECT_HEADERS, pid, direct_body=True))
        if not args.no_litellm:
            url, pid = litellm_proxy.start(stack, gateway.fake_url, Path(workdir))
            arms.append(Arm("litellm", url, {"authorization": "Bearer bench"}, pid))
            summary["litellm"] = litellm_proxy.pinned_version()
        with httpx.Client(timeout=60) as client:
            summary["doors"] = {case.label: run_case(client, gateway, case, arms, args.requests) for case in CASES}
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    print_tables(summary)


def _ratio(ours: float, theirs: float) -> str:
    return f"{ours / theirs:.2f}" if theirs > 0 else "—"


def print_tables(summary: dict[str, Any]) -> None:
    doors: dict[str, dict[str, Any]] = summary["doors"]
    print(
        f"\nMeterway, DynamoDB latency model off / on (budget: added first byte ≤ {BUDGET_FIRST_BYTE_MS} ms p50 with it)"
    )
    print("| door | added first byte p50 | added total p50 | added total p99 | DynamoDB calls per request |")
    print("| --- | --- | --- | --- | --- |")
    for door, data in doors.items():
        off, on = data.get("meterway", {}), data.get("meterway +model", {})

        def both(field: str, off: dict[str, Any] = off, on: dict[str, Any] = on) -> str:
            return " / ".join(f"{arm[field]:.1f}" if field in arm else "—" for arm in (off, on)) + " ms"

        calls = ", ".join(f"{count} {name.rpartition('.')[2]}" for name, count in data["dynamodb_calls"].items())
        print(
            f"| {door} | {both('added_first_byte_p50_ms')} | {both('added_p50_ms')} | {both('added_p99_ms')} | "
            f"{data['dynamodb_calls_per_request']} ({calls}) |"
        )
    if "stack alone" in next(iter(doors.values())):
        print(
            "\nCPU per request: Meterway (model off) against its stack doing nothing but relay (bench/stack_alone.py)"
        )
        print("| door | Meterway | the stack alone | Meterway's own work |")
        print("| --- | --- | --- | --- |")
        for door, data in doors.items():
            ours = data.get("meterway", data.get("meterway +model", {}))["cpu_ms_per_request"]
            floor = data["stack alone"]["cpu_ms_per_request"]
            print(f"| {door} | {ours:.2f} ms | {floor:.2f} ms | {ours - floor:.2f} ms |")
    if "litellm" not in summary:
        return
    arm = "meterway" if "meterway" in next(iter(doors.values())) else "meterway +model"
    model = "off" if arm == "meterway" else "on"
    print(f"\nMeterway (latency model {model}) vs LiteLLM {summary['litellm']}, ratio Meterway / LiteLLM")
    print("| door | CPU per request | added first byte p50 | added total p50 |")
    print("| --- | --- | --- | --- |")
    for door, data in doors.items():
        ours, theirs = data[arm], data["litellm"]
        cells = [
            f"{ours[field]:.1f} / {theirs[field]:.1f} ms ({_ratio(ours[field], theirs[field])})"
            for field in ("cpu_ms_per_request", "added_first_byte_p50_ms", "added_p50_ms")
        ]
        print(f"| {door} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
