"""``python -m devstack.fake_upstream``: serve the fake upstream with uvicorn."""

from __future__ import annotations

import argparse

import uvicorn

from .app import create_app
from .config import FakeUpstreamConfig


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, FakeUpstreamConfig]:
    """Command line options and the configuration they describe."""
    defaults = FakeUpstreamConfig()
    parser = argparse.ArgumentParser(prog="python -m devstack.fake_upstream", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8787)
    parser.add_argument("--per-token-latency-ms", type=float, default=defaults.per_token_latency_s * 1000)
    parser.add_argument("--first-token-latency-ms", type=float, default=defaults.first_token_latency_s * 1000)
    parser.add_argument("--openai-cache-min-tokens", type=int, default=defaults.openai_cache_min_tokens)
    parser.add_argument("--anthropic-cache-min-tokens", type=int, default=defaults.anthropic_cache_min_tokens)
    parser.add_argument("--default-max-tokens", type=int, default=defaults.default_max_tokens)
    parser.add_argument("--api-key", default=None, help="accept only this key (default: any non-empty key)")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    config = FakeUpstreamConfig(
        first_token_latency_s=args.first_token_latency_ms / 1000,
        per_token_latency_s=args.per_token_latency_ms / 1000,
        openai_cache_min_tokens=args.openai_cache_min_tokens,
        default_max_tokens=args.default_max_tokens,
        api_key=args.api_key,
        anthropic_cache_min_tokens=args.anthropic_cache_min_tokens,
    )
    return args, config


def main(argv: list[str] | None = None) -> None:
    """Entry point."""
    args, config = parse_args(argv)
    uvicorn.run(create_app(config), host=args.host, port=args.port, log_level=args.log_level)


if __name__ == "__main__":
    main()
