"""``python -m devstack``: run the local stack (what ``make dev`` calls)."""

from __future__ import annotations

import argparse
import os
import socket
import sys
from contextlib import ExitStack
from pathlib import Path

from devstack.stack import (
    CONSOLE_DIST,
    ROOT,
    StackOptions,
    bootstrap_keys,
    check_settings,
    configure_environment,
    start_aggregator,
    start_export_worker,
    start_fake_upstream,
    start_moto,
    start_spill_replayer,
    write_local_json,
)


def parse_args(argv: list[str] | None) -> StackOptions:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("MW_PORT", "3000")), help="0 picks a free one")
    parser.add_argument("--state-dir", type=Path, default=Path(os.environ.get("MW_STATE_DIR", ROOT / ".meterway")))
    parser.add_argument("--token-latency-ms", type=float, default=float(os.environ.get("MW_FAKE_TOKEN_LATENCY_MS", 15)))
    parser.add_argument(
        "--first-token-latency-ms", type=float, default=float(os.environ.get("MW_FAKE_FIRST_TOKEN_LATENCY_MS", 150))
    )
    args = parser.parse_args(argv)
    demo_requests = 0
    if _flag("MW_DEMO_DATA"):
        from devstack.demo_data import REQUESTS

        demo_requests = int(os.environ.get("MW_DEMO_REQUESTS", REQUESTS))
    return StackOptions(
        host=args.host,
        port=args.port,
        state_dir=args.state_dir,
        token_latency_ms=args.token_latency_ms,
        first_token_latency_ms=args.first_token_latency_ms,
        openai_api_key=os.environ.get("OPENAI_API_KEY") or None,
        anthropic_api_key=os.environ.get("ANTHROPIC_API_KEY") or None,
        demo_requests=demo_requests,
        aws_faults=_flag("MW_LOCAL_AWS_FAULTS"),
        redeliver_streams=_flag("MW_LOCAL_REDELIVER_STREAMS"),
        spill_retry_s=int(os.environ.get("MW_LOCAL_SPILL_RETRY_S", 2)),
        openai_base_url=os.environ.get("OPENAI_BASE_URL") or None,
        anthropic_base_url=os.environ.get("ANTHROPIC_BASE_URL") or None,
        # The local providers file: two OpenAI-compatible providers, both served by the fake upstream.
        providers_file=Path(os.environ.get("MW_PROVIDERS_FILE") or ROOT / "devstack" / "providers.json"),
    )


def _flag(name: str) -> bool:
    return os.environ.get(name, "").lower() in ("1", "true", "yes")


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    import uvicorn

    with ExitStack() as stack:
        moto_url = start_moto(stack, options.host)
        if options.aws_faults:
            from devstack.aws_faults import AwsFaultGate

            gate = AwsFaultGate(moto_url, options.host)
            stack.callback(gate.stop)
            moto_url = gate.start()
        # Always: with both providers' real keys the fake still serves Bedrock, which has no key.
        fake_url = start_fake_upstream(stack, options)
        env = configure_environment(moto_url, fake_url, options)
        check_settings()
        secrets = bootstrap_keys()
        demo = None
        if options.demo_requests:
            from devstack import demo_seed

            # Before the aggregator starts: it then reads the seeded records in full batches,
            # whose requests share rollup items, instead of a few at a time.
            demo = demo_seed.seed_before_start(options.demo_requests)
        start_spill_replayer(stack, env.get("MW_SPILL_QUEUE_URL"), options.spill_retry_s)
        aggregator = start_aggregator(stack, env["MW_LEDGER_TABLE"], redeliver=options.redeliver_streams)
        start_export_worker(stack, env.get("MW_EXPORT_QUEUE_URL"))
        if demo is not None:
            demo_seed.report_when_rolled_up(aggregator, *demo)

        from devstack.gateway import LocalGateway
        from meterway.management_api import handler as api
        from meterway.proxy.handlers.app import create_app

        gateway = LocalGateway(create_app(), api.handler, CONSOLE_DIST)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((options.host, options.port))
        port = sock.getsockname()[1]
        path = write_local_json(options, port, secrets, env)
        print(f"Meterway local stack on http://{options.host}:{port}", file=sys.stderr)
        print(f"  OpenAI base URL: http://{options.host}:{port}/v1", file=sys.stderr)
        console = (
            f"http://{options.host}:{port}/ (sign in with admin_key from {path.name})"
            if CONSOLE_DIST.is_dir()
            else "not built: run `make console`"
        )
        print(f"  console: {console}", file=sys.stderr)
        print(f"  keys and endpoints: {path}", file=sys.stderr)
        config = uvicorn.Config(gateway, log_level="warning", lifespan="on", timeout_graceful_shutdown=2)
        uvicorn.Server(config).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
