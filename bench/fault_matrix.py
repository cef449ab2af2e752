"""The fault matrix at volume (README: "Reliability: the fault matrix").

    .venv/bin/python bench/fault_matrix.py [--requests 1000] [--workers 8] [--exports 5]

Starts a local stack of its own (``python -m devstack``, as `make dev` does) with AWS behind the
fault gate and every stream batch delivered twice to the aggregator, runs every kind of
``devstack.fault_matrix.KINDS`` with --requests requests from --workers clients at once, then
--exports exports whose first worker invocation dies mid-upload, and checks the books: each key's
spend counter and the account's balance against the ledger, nothing in flight, the rollups
against the ledger. Prints the Markdown table for the README and exits 1 if anything was lost,
doubled, answered wrongly or left unbalanced.

The DynamoDB outage kinds are slow by nature: each request waits out botocore's six attempts
(standard mode, exponential backoff) before the gateway answers 503 or spills the record.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "functions")]

from devstack.fault_matrix import KINDS, STACK_ENV, FaultMatrix, KindResult, table  # noqa: E402
from devstack.launch import launched  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1000, help="requests per kind")
    parser.add_argument("--workers", type=int, default=8, help="clients at once, each with its own key")
    parser.add_argument("--exports", type=int, default=5, help="exports whose worker dies mid-upload")
    parser.add_argument("--kinds", nargs="*", help="run only the kinds whose name holds one of these words")
    args = parser.parse_args()

    chosen = [k for k in KINDS if not args.kinds or any(word in k.name for word in args.kinds)]
    # The short waits on the provider (STACK_ENV) only when a kind tests them: a run of the
    # DynamoDB kinds alone keeps the defaults, so that many clients at once cannot time out.
    waits_tested = any((kind.upstream or {}).get("kind") in ("timeout", "stall") for kind in chosen)
    env = STACK_ENV if waits_tested else {name: value for name, value in STACK_ENV.items() if "TIMEOUT" not in name}
    results: list[KindResult] = []
    problems: list[str] = []
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory() as state,
        launched(Path(state), token_latency_ms=2, first_token_latency_ms=5, env=env, startup_s=120) as stack,
    ):
        matrix = FaultMatrix(stack.info, workers=args.workers)
        try:
            for kind in chosen:
                kind_started = time.monotonic()
                result = matrix.run(kind, args.requests)
                results.append(result)
                print(
                    f"{kind.name}: {result.requests} requests, {result.records} records, "
                    f"{len(result.wrong_answers)} wrong answers, {time.monotonic() - kind_started:.0f} s",
                    file=sys.stderr,
                )
                problems += [f"{kind.name}: {answer}" for answer in result.wrong_answers[:3]]
            for n in range(args.exports):
                problems += [f"export {n + 1}: {problem}" for problem in matrix.export_after_a_failed_upload()]
            problems += matrix.books()
        finally:
            matrix.close()
    total = sum(result.requests for result in results)
    lost = sum(result.lost for result in results)
    doubled = sum(result.doubled for result in results)
    print(table(results))
    print()
    print(
        f"{len(results)} kinds, {total} requests, {lost} lost, {doubled} doubled; {args.exports} exports with a "
        f"worker killed mid-upload; books {'balanced' if not problems else 'NOT balanced'}; "
        f"{time.monotonic() - started:.0f} s"
    )
    for problem in problems:
        print(f"- {problem}")
    return 1 if problems or lost or doubled else 0


if __name__ == "__main__":
    sys.exit(main())
