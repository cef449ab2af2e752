"""The gateway's own AWS cost per request, from measured figures (docs/architecture.md §4: ≤ 1% of
that request's LLM cost).

What it measures, on the local stack of bench/harness.py (moto behind the counting relay, the fake
upstream, the proxy under uvicorn as run.sh starts it, logging at INFO as deployed):
- peak RSS (VmHWM of the proxy process): since start-up (imports, then one stream at every door),
  during one stream, during --streams concurrent streams, each lasting about --stream-seconds
  (the fake upstream paces its tokens; every door in turn), and during one request of 5 MiB; the
  peak is reset between them by writing 5 to /proc/<pid>/clear_refs;
- the proxy's CPU time, its log bytes, the bytes of each answer, and the DynamoDB calls each
  request makes, with their request units (bench/dynamodb_units.py);
- then the AggregatorFunction's share: the ledger records those requests wrote, fed from the
  table's stream to its real handler, its DynamoDB calls and units per record and its time
  (`measure_aggregator`).

What it works out from them:
- `MemorySize`: 1.5 × the peak under --streams concurrent streams, rounded up to a multiple of
  64 MB, at least 128 MB (Lambda takes 128–10,240 MB in 1-MB steps), then 64 MB more while the
  start-up's or the large request's peak would pass 90% of it. Lambda gives an environment one
  request at a time, so one environment holds one stream; the concurrent peak and the 1.5 are the
  headroom (the Lambda Web Adapter extension, which runs beside the app, is not measured here);
- the dollars per request on Lambda arm64 in us-east-1: GB-seconds for a stream of
  --stream-seconds at that size, Lambda's and API Gateway's per-request prices, data out,
  DynamoDB on-demand request units (the proxy's and the rollups'), the aggregator's invocations,
  CloudWatch Logs and X-Ray at the template's InferenceTraceRate (bench/cost_model.py), for the
  aggregator's records 1, 10 and 100 a batch; and the same gateway on Fargate worked out on
  paper;
- against the LLM cost of the median request of the demo data (devstack/demo_data.py's
  `plan_requests`, priced by its `for_key`).

    .venv/bin/python bench/gateway_cost.py [--streams 20] [--stream-seconds 10]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "functions")]

from bench import cost_model  # noqa: E402
from bench.dynamodb_units import Units, call_units, item_size  # noqa: E402
from bench.harness import GatewayStack, cpu_seconds, status_kib  # noqa: E402
from devstack.aws_resources import env_for, load_template  # noqa: E402
from devstack.demo_data import for_key, plan_requests  # noqa: E402
from devstack.gateway import LocalLambdaContext  # noqa: E402
from meterway.analytics.handlers import aggregator  # noqa: E402
from meterway.core.container import container  # noqa: E402

TOKENS = 16  # per answer: every door's body caps its output at this (the least Responses takes)
FIRST_TOKEN_S = 1.0
# A prompt whose answer, at every door, runs to the cap: every stream lasts the same.
QUESTION = "Tell me a story."
PROMPT = [{"role": "user", "content": QUESTION}]
DOORS = [
    ("/v1/chat/completions", {"model": "openai/gpt-4o-mini", "messages": PROMPT, "max_tokens": TOKENS, "stream": True}),
    ("/v1/messages", {"model": "anthropic/claude-haiku-4-5", "max_tokens": TOKENS, "messages": PROMPT, "stream": True}),
    (
        "/v1/responses",
        {
            "model": "openai/gpt-4o-mini",
            "input": QUESTION,
            "max_output_tokens": TOKENS,
            "stream": True,
            "store": False,
        },
    ),
    (
        "/v1/chat/completions",
        {
            "model": "openai/gpt-4o-mini",
            "messages": PROMPT,
            "max_tokens": TOKENS,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    ),
]
KIB = 1024
MIB = 1024 * 1024
# Near the 6-MB payload Lambda takes with an invoke, which bounds a request to the ProxyFunction.
LARGE_REQUEST_MIB = 5
# Records a batch of the AggregatorFunction, as traffic of about that many requests a second brings
# them within the event source mapping's 1-s batching window (its BatchSize is 100).
BATCHES = (1, 10, 100)
# The stream records' sequence numbers, as DynamoDB's: digits, rising.
_SEQUENCE = itertools.count(10**20)


@dataclass(frozen=True)
class Stream:
    seconds: float
    bytes: int


def stream_once(client: httpx.Client, stack: GatewayStack, door: int) -> Stream:
    path, body = DOORS[door % len(DOORS)]
    started, size = time.perf_counter(), 0
    with client.stream("POST", f"{stack.gateway_url}{path}", json=body, headers=stack.gateway_headers) as response:
        for chunk in response.iter_raw():
            size += len(chunk)
        response.raise_for_status()
    return Stream(time.perf_counter() - started, size)


def streams_at_once(stack: GatewayStack, count: int) -> list[Stream]:
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    with httpx.Client(timeout=120, limits=limits) as client, ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda door: stream_once(client, stack, door), range(count)))


def large_request(stack: GatewayStack) -> None:
    """A request of LARGE_REQUEST_MIB: the fake refuses it (over its context length) once the
    proxy has read, parsed and forwarded it, which is what takes the proxy's memory."""
    text = "lorem ipsum dolor sit amet " * (LARGE_REQUEST_MIB * MIB // 27)
    body = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": text}]}
    response = httpx.post(
        f"{stack.gateway_url}/v1/chat/completions", json=body, headers=stack.gateway_headers, timeout=300
    )
    if response.status_code != 400:
        raise RuntimeError(f"expected the upstream to refuse the large request, got {response.status_code}")


def reset_peak(pid: int) -> None:
    """VmHWM starts again from the current RSS (Linux: "5" in clear_refs)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def stored_sizes(stack: GatewayStack) -> Any:
    client = boto3.client("dynamodb", endpoint_url=stack.moto_url, region_name="us-east-1")

    def size(table: str, key: dict[str, Any]) -> int:
        item = client.get_item(TableName=table, Key=key).get("Item")
        return item_size(item) if item else item_size(key)

    return size


def measure(streams: int, stream_s: float) -> dict[str, Any]:
    per_token_ms = (stream_s - FIRST_TOKEN_S) / (TOKENS - 1) * 1000
    fake_args = ["--first-token-latency-ms", str(FIRST_TOKEN_S * 1000), "--per-token-latency-ms", f"{per_token_ms:.0f}"]
    with ExitStack() as stack, tempfile.TemporaryFile() as log:
        gateway = GatewayStack(fake_args, gateway_log=log, gateway_env={"POWERTOOLS_LOG_LEVEL": "INFO"}).start(stack)
        pid = gateway.gateway_pid
        streams_at_once(gateway, len(DOORS))  # warm: every door, the key cache, prices, pools
        idle_kib, start_kib = status_kib(pid, "VmRSS"), status_kib(pid, "VmHWM")
        reset_peak(pid)
        streams_at_once(gateway, 1)
        one_kib = status_kib(pid, "VmHWM")
        reset_peak(pid)
        gateway.relay.reset()
        gateway.relay.keep_bodies = True
        cpu_before, log_before = cpu_seconds(pid), log.tell()
        answers = streams_at_once(gateway, streams)
        peak_kib = status_kib(pid, "VmHWM")
        time.sleep(0.5)  # the last log lines
        cpu, log_bytes = cpu_seconds(pid) - cpu_before, log.seek(0, 2) - log_before
        units = request_units(gateway)
        calls = {name.rpartition(".")[2]: count / streams for name, count in gateway.relay.counts.items()}
        aggregator = measure_aggregator(gateway, len(DOORS) + 1 + streams)
        reset_peak(pid)
        large_request(gateway)
        large_kib = status_kib(pid, "VmHWM")
    return {
        "streams": streams,
        "stream_s_median": round(statistics.median(answer.seconds for answer in answers), 2),
        "answer_bytes_median": statistics.median(answer.bytes for answer in answers),
        "idle_rss_mib": round(idle_kib / KIB, 1),
        "start_peak_mib": round(start_kib / KIB, 1),
        "one_stream_peak_mib": round(one_kib / KIB, 1),
        "concurrent_peak_mib": round(peak_kib / KIB, 1),
        "large_request_peak_mib": round(large_kib / KIB, 1),
        "cpu_ms_per_request": round(cpu * 1000 / streams, 2),
        "log_bytes_per_request": round(log_bytes / streams),
        "dynamodb_calls_per_request": calls,
        "wru_per_request": units.wru / streams,
        "rru_per_request": units.rru / streams,
        "aggregator": aggregator,
    }


def request_units(gateway: GatewayStack) -> Units:
    """The request units of the DynamoDB calls the relay kept since its last reset."""
    units, size = Units(), stored_sizes(gateway)
    for operation, body in gateway.relay.bodies:
        units.add(call_units(operation, body, size))
    return units


def measure_aggregator(gateway: GatewayStack, written: int) -> dict[int, dict[str, Any]]:
    """What the AggregatorFunction spends per ledger record, by how many records a batch holds:
    its DynamoDB calls and request units, and its handler's time, with the latency model on.

    The real handler gets the records the measured requests wrote, shaped as the ledger's stream
    mapping delivers them (events/ledger_stream_insert.json). First one a batch: what traffic
    under one request a second gets with the mapping's 1-s batching window, the most per record.
    Then, for each larger size in BATCHES, that many copies of those records under new request
    ids, in one batch: one key's traffic at that many requests a second (up to the mapping's
    BatchSize of 100), spread over the same doors, models and minute as the measured requests.
    """
    os.environ.update(env_for(gateway.resources) | {"AWS_ENDPOINT_URL": gateway.relay_url})
    container.reset()  # the bench's own clients went straight to moto
    client = boto3.client("dynamodb", endpoint_url=gateway.moto_url, region_name="us-east-1")
    pages = client.get_paginator("scan").paginate(TableName=gateway.resources["LedgerTable"])
    records = sorted((item for page in pages for item in page["Items"]), key=lambda item: item["created_at"]["S"])
    if len(records) != written:
        raise RuntimeError(f"expected {written} ledger records, found {len(records)}")
    by_batch = {1: _feed_aggregator(gateway, [[record] for record in records])}
    for size in BATCHES[1:]:
        copies = [
            records[index % len(records)] | {"request_id": {"S": f"bench-copy-{size}-{index}"}} for index in range(size)
        ]
        by_batch[size] = _feed_aggregator(gateway, [copies])
    return by_batch


def _stream_records(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ledger items (DynamoDB JSON) as the stream mapping hands them to the function."""
    template = json.loads((ROOT / "events" / "ledger_stream_insert.json").read_text())["Records"][0]
    records = []
    for item in items:
        record = json.loads(json.dumps(template))
        record["eventID"] = item["request_id"]["S"]
        record["dynamodb"] |= {"Keys": {"request_id": item["request_id"]}, "NewImage": item}
        record["dynamodb"]["SequenceNumber"] = str(next(_SEQUENCE))
        records.append(record)
    return records


def _feed_aggregator(gateway: GatewayStack, batches: list[list[dict[str, Any]]]) -> dict[str, Any]:
    gateway.relay.reset()
    gateway.relay.keep_bodies = gateway.relay.model_latency = True
    seconds: list[float] = []
    for batch in batches:
        started = time.perf_counter()
        answer = aggregator.handler({"Records": _stream_records(batch)}, LocalLambdaContext("AggregatorFunction"))
        seconds.append(time.perf_counter() - started)
        if answer.get("batchItemFailures"):
            raise RuntimeError(f"the aggregator failed records: {answer}")
    gateway.relay.model_latency = False
    records = sum(len(batch) for batch in batches)
    units = request_units(gateway)
    dynamodb = {
        name.rpartition(".")[2]: count / records
        for name, count in gateway.relay.counts.items()
        if name.startswith("DynamoDB_")
    }
    return {
        "records": records,
        "invocations": len(seconds),
        "handler_ms_per_record": round(sum(seconds) * 1000 / records, 1),
        "dynamodb_calls_per_record": dynamodb,
        "transaction_items_per_record": sum(
            len(body["TransactItems"]) for operation, body in gateway.relay.bodies if operation == "TransactWriteItems"
        )
        / records,
        "wru_per_record": units.wru / records,
        "rru_per_record": units.rru / records,
    }


def median_llm_request() -> dict[str, float]:
    """The median cost and duration of the demo data's requests that billed something."""
    now = datetime(2026, 11, 1, tzinfo=UTC)  # any day: the plan is the same for the same day
    records = [for_key(record, record.key) for record in plan_requests(now)]
    billed = [record for record in records if record.status != "error"]
    return {
        "requests": len(records),
        "cost_usd": statistics.median(float(record.cost_usd) for record in billed),
        "latency_s": statistics.median(record.latency_ms for record in billed) / 1000,
    }


def memory_sizes() -> dict[str, int]:
    """Each function's `MemorySize` in template.yaml (its own, else the global one)."""
    template = load_template(ROOT / "template.yaml")
    default = template["Globals"]["Function"]["MemorySize"]
    functions = {name: r for name, r in template["Resources"].items() if r["Type"] == "AWS::Serverless::Function"}
    return {name: resource["Properties"].get("MemorySize", default) for name, resource in functions.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--stream-seconds", type=float, default=10.0)
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args()
    measured = measure(args.streams, args.stream_seconds)
    llm = median_llm_request()
    others = (measured["start_peak_mib"], measured["large_request_peak_mib"])
    memory_mb = cost_model.memory_size(measured["concurrent_peak_mib"], others)
    sizes = memory_sizes()
    aggregator_mb = sizes["AggregatorFunction"]
    trace_rate = float(load_template(ROOT / "template.yaml")["Parameters"]["InferenceTraceRate"]["Default"])

    def on_lambda(duration_s: float) -> dict[int, dict[str, float]]:
        return {
            size: cost_model.lambda_costs(measured, memory_mb, duration_s, aggregator_mb, size, trace_rate)
            for size in measured["aggregator"]
        }

    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "measured": measured,
        "llm_median": llm,
        "memory_size_mb": memory_mb,
        "template_memory_size_mb": sizes["ProxyFunction"],
        "trace_rate": trace_rate,
        "lambda": on_lambda(args.stream_seconds),
        "lambda_at_median_duration": on_lambda(llm["latency_s"]),
        "fargate": {
            volume: cost_model.fargate_costs(measured, volume, args.stream_seconds, aggregator_mb)
            for volume in cost_model.VOLUMES
        },
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    cost_model.print_tables(result, args.stream_seconds)


if __name__ == "__main__":
    main()
