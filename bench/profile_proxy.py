"""Where the proxy's CPU goes, per request and per front door: a profile of the proxy app.

    .venv/bin/python bench/profile_proxy.py [--requests 200] [--door chat] [--top 25]

moto server and the fake upstream run as `bench/proxy_overhead.py` runs them (bench/harness.py).
The proxy app runs here, under uvicorn in a thread, with a `cProfile` profiler in each of its
threads (the event loop's and anyio's workers, where boto3 runs), timed by each thread's CPU
clock: a thread waiting on a socket costs nothing. The client runs in the main thread, which is
not profiled, nor is the counting relay in front of moto (started before the profilers).

For each door: warm-up requests, then ``--requests`` profiled ones. It prints the CPU per request
the profile saw (the profiler itself makes every call dearer, so read the shares, and
`bench/proxy_overhead.py` for the true figure), that CPU by package (C built-ins counted in the
package that called them), and the top functions by cumulative CPU per request.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import threading
import time
from collections import defaultdict
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import uvicorn

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "functions")]

from bench.harness import GatewayStack, free_port, timed, wait_for  # noqa: E402
from bench.proxy_overhead import CASES, Case  # noqa: E402

WARM_UP = 20
MS = 1000
# The package a function belongs to, by the first of these found in its file's path.
PACKAGES = [
    ("botocore", "boto3/botocore"),
    ("boto3", "boto3/botocore"),
    ("/dateutil/", "boto3/botocore"),
    ("/urllib3/", "boto3/botocore (urllib3)"),
    ("/http/client.py", "boto3/botocore (urllib3)"),
    ("pydantic", "pydantic"),
    ("aws_lambda_powertools", "logging (Powertools)"),
    ("/logging/", "logging (Powertools)"),
    ("genai_prices", "genai-prices"),
    ("httptools", "uvicorn"),
    ("httpx", "httpx"),
    ("httpcore", "httpx"),
    ("/h11/", "h11 (HTTP/1.1 of httpx and the DynamoDB client)"),
    ("uvicorn", "uvicorn"),
    ("starlette", "starlette"),
    ("anyio", "asyncio / anyio / threads"),
    ("asyncio", "asyncio / anyio / threads"),
    ("/threading.py", "asyncio / anyio / threads"),
    ("/concurrent/", "asyncio / anyio / threads"),
    ("/queue.py", "asyncio / anyio / threads"),
    ("/selectors.py", "asyncio / anyio / threads"),
    ("/json/", "json"),
    ("/meterway/core/http1.py", "meterway: DynamoDB client (dynamo_http, http1)"),
    ("/meterway/core/dynamo_http.py", "meterway: DynamoDB client (dynamo_http, http1)"),
    ("/meterway/", "meterway"),
]


class Threads:
    """A CPU-clock profiler in every thread started after ``install``."""

    def __init__(self) -> None:
        self.profiles: list[cProfile.Profile] = []

    def install(self) -> None:
        threading.setprofile(self._start)

    def _start(self, *_: Any) -> None:
        # Called once, at the thread's first event: the profiler's own hook then replaces this one.
        profile = cProfile.Profile(time.thread_time)
        self.profiles.append(profile)
        profile.enable()

    def clear(self) -> None:
        for profile in self.profiles:
            profile.clear()

    def stats(self) -> pstats.Stats:
        snapshots = []
        for profile in self.profiles:
            profile.snapshot_stats()  # without disabling it: that could only be done in its thread
            if profile.stats:  # type: ignore[attr-defined]  # not a thread that did nothing since
                snapshots.append(_Snapshot(profile.stats))  # type: ignore[attr-defined]
        return pstats.Stats(*snapshots)


class _Snapshot:
    def __init__(self, stats: dict[Any, Any]):
        self.stats = stats

    def create_stats(self) -> None:
        pass


def package_of(filename: str) -> str | None:
    # Only the path below site-packages or the checkout counts: a checkout's own folder name
    # (``wt-cpu-httpx``) would otherwise put everything in it under one package.
    where = filename.rpartition("site-packages")[2] or filename
    where = where.removeprefix(str(ROOT))
    for marker, name in PACKAGES:
        if marker in where:
            return name
    return None


def by_package(stats: dict[Any, Any]) -> dict[str, float]:
    """Own CPU by package; a C built-in's goes to its callers' packages, pro rata."""
    totals: dict[str, float] = defaultdict(float)
    for (filename, _, _), (_, _, own, _, callers) in stats.items():
        package = package_of(filename)
        if package is not None or filename != "~" or not callers:
            totals[package or "other Python"] += own
            continue
        spent = sum(caller[2] for caller in callers.values()) or 1
        for caller, figures in callers.items():
            totals[package_of(caller[0]) or "other Python"] += own * figures[2] / spent
    return dict(totals)


def label(function: tuple[str, int, str]) -> str:
    filename, line, name = function
    if filename == "~":
        return name
    for root in (str(ROOT / "functions") + "/", "site-packages/", "/lib/python"):
        if root in filename:
            filename = filename.split(root, 1)[1]
            break
    return f"{filename}:{line} {name}"


def report(case: Case, stats: pstats.Stats, requests: int, top: int) -> None:
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(own for _, _, own, _, _ in raw.values())
    print(f"\n## {case.label}: {total * MS / requests:.2f} ms CPU per request under the profiler")
    print("\n| package | ms per request | share |\n| --- | --- | --- |")
    for package, own in sorted(by_package(raw).items(), key=lambda item: -item[1]):
        print(f"| {package} | {own * MS / requests:.2f} | {own / total:.0%} |")
    for column, heading in ((3, "cumulative"), (2, "own")):
        print(f"\n| function (top {top} by {heading} CPU) | cumulative ms | own ms | calls |")
        print("| --- | --- | --- | --- |")
        ranked = sorted(raw.items(), key=lambda item, column=column: -item[1][column])
        for function, (_, calls, own, cumulative, _) in ranked[:top]:
            print(
                f"| {label(function)} | {cumulative * MS / requests:.2f} | {own * MS / requests:.2f} "
                f"| {calls / requests:.1f} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200, help="profiled requests per door (default 200)")
    parser.add_argument("--door", choices=[case.label for case in CASES], action="append", help="only this door")
    parser.add_argument("--top", type=int, default=30, help="functions listed per door (default 30)")
    args = parser.parse_args()
    cases = [case for case in CASES if not args.door or case.label in args.door]
    with ExitStack() as stack:
        gateway = GatewayStack()
        env = gateway.start_backends(stack)
        os.environ.update(env)
        from meterway.proxy.handlers.app import app

        threads = Threads()
        threads.install()
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, http="httptools", log_level="warning", access_log=False)
        )
        threading.Thread(target=server.run, daemon=True).start()
        url = f"http://127.0.0.1:{port}"
        wait_for(f"{url}/healthz")
        with httpx.Client(timeout=60) as client:
            for case in cases:
                for index in range(WARM_UP + args.requests):
                    if index == WARM_UP:
                        threads.clear()
                    timed(client, f"{url}{case.path}", case.gateway, gateway.gateway_headers)
                report(case, threads.stats(), args.requests, args.top)
        server.should_exit = True


if __name__ == "__main__":
    main()
