"""Prices and the arithmetic of bench/gateway_cost.py: dollars per request on Lambda and on Fargate.

Prices are AWS's published on-demand prices for us-east-1, first tier, as read on 2026-12-02 from
stored copies of AWS's pricing pages and of pages quoting them (this machine reaches no AWS page).
Where a price was not found, the assumption is said beside it.
"""

from __future__ import annotations

import math
from typing import Any

# AWS Lambda pricing (aws.amazon.com/lambda/pricing), Arm, first 7.5 billion GB-s a month.
LAMBDA_ARM_GB_SECOND = 0.0000133334
LAMBDA_REQUEST = 0.20 / 1e6
# Lambda's own charge for streamed responses applies only to bytes beyond the first 6 MB of a
# response (docs: "Response streaming for Lambda functions"); an LLM answer stays far below it.

# Amazon API Gateway pricing (aws.amazon.com/api-gateway/pricing), REST APIs, first 333 million
# requests a month. Data out is charged at the EC2 data-transfer-out rate, first 10 TB a month.
# Assumed, not found in a stored page: a streamed REST response under 10 MB is billed as one request.
API_GATEWAY_REST_REQUEST = 3.50 / 1e6
DATA_TRANSFER_OUT_GB = 0.09

# Amazon DynamoDB pricing (aws.amazon.com/dynamodb/pricing/on-demand), Standard table class, since
# the November 2024 price cut.
DYNAMODB_WRU = 0.625 / 1e6
DYNAMODB_RRU = 0.125 / 1e6

# Amazon CloudWatch pricing (aws.amazon.com/cloudwatch/pricing), logs ingested, standard class.
CLOUDWATCH_LOGS_GB = 0.50
# What Lambda itself writes per invoke (START, END and REPORT lines, with the X-Ray trace id):
# an estimate from their published format, not a measurement.
LAMBDA_PLATFORM_LOG_BYTES = 400

# AWS X-Ray pricing (aws.amazon.com/xray/pricing): traces recorded. API Gateway decides which
# inference requests are traced, by the template's InferenceSamplingRule: no reservoir and a fixed
# share (the InferenceTraceRate parameter, read from template.yaml). Under the default rule (the
# first request each second and 5% of the rest), every request of an API serving under one a
# second would be a trace.
XRAY_TRACE = 5.00 / 1e6

# AWS Fargate pricing (aws.amazon.com/fargate/pricing), Linux/ARM.
FARGATE_ARM_VCPU_HOUR = 0.03238
FARGATE_ARM_GB_HOUR = 0.00356
# Elastic Load Balancing pricing (aws.amazon.com/elasticloadbalancing/pricing), Application Load
# Balancer: per hour and per LCU-hour. One LCU: 25 new connections a second, 3,000 active
# connections a minute, 1 GB processed an hour (EC2/ECS targets), 1,000 rule evaluations a second.
ALB_HOUR = 0.0225
ALB_LCU_HOUR = 0.008
# Amazon VPC pricing: a public IPv4 address, per hour (each task, each ALB node in two AZs).
PUBLIC_IPV4_HOUR = 0.005

HOURS_A_MONTH = 730
SECONDS_A_MONTH = HOURS_A_MONTH * 3600
GB = 1024**3

# The Fargate task on paper, and how busy it may get.
TASK_VCPU, TASK_MEMORY_GB = 0.25, 0.5
MIN_TASKS = 2  # one per Availability Zone
PEAK_TO_AVERAGE = 3  # the busiest hour's concurrent streams over the month's average (assumed)
CPU_TARGET = 0.5  # the share of the task's vCPU the streams may use, leaving room for bursts
MEMORY_TARGET = 0.8
VOLUMES = (1_000_000, 10_000_000)  # requests a month

HEADROOM = 1.5
# Every other peak (start-up, the largest request Lambda takes) must stay this far inside the size.
FIT = 0.9
STEP_MB = 64
LAMBDA_MIN_MB, LAMBDA_MAX_MB = 128, 10_240


def memory_size(concurrent_peak_mib: float, other_peaks_mib: tuple[float, ...] = ()) -> int:
    """`MemorySize` for measured peak RSS: 1.5 × the peak under concurrent streams, rounded up to
    64 MB, within Lambda's range; then 64 MB more while another peak would pass 90% of it."""
    wanted = max(math.ceil(concurrent_peak_mib * HEADROOM / STEP_MB) * STEP_MB, LAMBDA_MIN_MB)
    while any(peak > FIT * wanted for peak in other_peaks_mib) and wanted < LAMBDA_MAX_MB:
        wanted += STEP_MB
    return min(wanted, LAMBDA_MAX_MB)


def _shared(measured: dict[str, Any], platform_log_bytes: int, aggregator_mb: int, batch: int) -> dict[str, float]:
    """The components that do not depend on where the proxy runs; the AggregatorFunction stays on
    Lambda either way, its records ``batch`` a batch (see gateway_cost.measure_aggregator)."""
    log_bytes = measured["log_bytes_per_request"] + platform_log_bytes
    rollups = measured["aggregator"][batch]
    return {
        "DynamoDB on-demand (proxy)": measured["wru_per_request"] * DYNAMODB_WRU
        + measured["rru_per_request"] * DYNAMODB_RRU,
        "data out": measured["answer_bytes_median"] / GB * DATA_TRANSFER_OUT_GB,
        "CloudWatch Logs": log_bytes / GB * CLOUDWATCH_LOGS_GB,
        "DynamoDB on-demand (rollups)": rollups["wru_per_record"] * DYNAMODB_WRU
        + rollups["rru_per_record"] * DYNAMODB_RRU,
        f"AggregatorFunction ({aggregator_mb} MB)": aggregator_mb
        / 1024
        * rollups["handler_ms_per_record"]
        / 1000
        * LAMBDA_ARM_GB_SECOND
        + LAMBDA_REQUEST * rollups["invocations"] / rollups["records"],
    }


def lambda_costs(
    measured: dict[str, Any], memory_mb: int, duration_s: float, aggregator_mb: int, batch: int, trace_rate: float
) -> dict[str, float]:
    """Dollars per request on Lambda arm64 behind API Gateway REST, for a stream of ``duration_s``,
    the aggregator's records ``batch`` a batch and ``trace_rate`` of requests traced."""
    costs = {
        f"Lambda duration ({memory_mb} MB × {duration_s:.1f} s)": memory_mb / 1024 * duration_s * LAMBDA_ARM_GB_SECOND,
        "Lambda requests": LAMBDA_REQUEST,
        "API Gateway REST requests": API_GATEWAY_REST_REQUEST,
        **_shared(measured, LAMBDA_PLATFORM_LOG_BYTES, aggregator_mb, batch),
        f"X-Ray ({trace_rate:.0%} of requests traced)": XRAY_TRACE * trace_rate,
    }
    return costs | {"total": sum(costs.values())}


def batch_at(measured: dict[str, Any], requests_a_second: float) -> int:
    """The largest measured batch that traffic of ``requests_a_second`` fills in the 1-s window."""
    return max(size for size in measured["aggregator"] if size <= max(1.0, requests_a_second))


def streams_per_task(measured: dict[str, Any], stream_s: float) -> int:
    """How many concurrent streams one task holds: the lower of its memory's and its CPU's bound."""
    per_stream_mib = max(
        (measured["concurrent_peak_mib"] - measured["one_stream_peak_mib"]) / (measured["streams"] - 1), 0.1
    )
    by_memory = (TASK_MEMORY_GB * 1024 * MEMORY_TARGET - measured["one_stream_peak_mib"]) / per_stream_mib
    cpu_share_per_stream = measured["cpu_ms_per_request"] / 1000 / stream_s
    by_cpu = TASK_VCPU * CPU_TARGET / cpu_share_per_stream
    return max(1, math.floor(min(by_memory, by_cpu)))


def fargate_costs(measured: dict[str, Any], volume: int, stream_s: float, aggregator_mb: int) -> dict[str, float]:
    """Dollars per request on always-on Fargate arm64 tasks behind an ALB, at ``volume`` requests a month."""
    per_task = streams_per_task(measured, stream_s)
    peak_streams = volume * stream_s / SECONDS_A_MONTH * PEAK_TO_AVERAGE
    tasks = max(MIN_TASKS, math.ceil(peak_streams / per_task))
    task_hour = TASK_VCPU * FARGATE_ARM_VCPU_HOUR + TASK_MEMORY_GB * FARGATE_ARM_GB_HOUR
    rate = volume / SECONDS_A_MONTH
    gb_an_hour = measured["answer_bytes_median"] * rate * 3600 / GB
    lcus = max(rate / 25, peak_streams / 3000, gb_an_hour)
    costs = {
        f"Fargate tasks ({tasks} × {TASK_VCPU} vCPU / {TASK_MEMORY_GB} GB, {per_task} streams each)": tasks
        * task_hour
        * HOURS_A_MONTH
        / volume,
        "ALB (hours and LCUs)": (ALB_HOUR + lcus * ALB_LCU_HOUR) * HOURS_A_MONTH / volume,
        "public IPv4 (tasks and 2 ALB nodes)": (tasks + 2) * PUBLIC_IPV4_HOUR * HOURS_A_MONTH / volume,
        **_shared(measured, 0, aggregator_mb, batch_at(measured, rate)),
    }
    return costs | {"total": sum(costs.values())}


def _table(title: str, columns: dict[str, dict[str, float]], llm_usd: float) -> None:
    """One row a component, one column pair ($, share of the median LLM cost) a case."""
    print(f"\n{title}")
    print("| component | " + " | ".join(f"{case}: $ per request | share" for case in columns) + " |")
    print("| --- " * (1 + 2 * len(columns)) + "|")
    names = list(next(iter(columns.values())))
    for index, name in enumerate(names):
        label = f"**{name}**" if name == "total" else name
        cells = []
        for costs in columns.values():
            usd = list(costs.values())[index]  # the same component, named after its case's figures
            cells += [f"{usd:.3g}", f"{usd / llm_usd:.3%}"]
        print(f"| {label} | " + " | ".join(cells) + " |")


def print_tables(result: dict[str, Any], stream_s: float) -> None:
    measured, llm = result["measured"], result["llm_median"]
    print(
        f"\nMeasured: peak RSS {measured['start_peak_mib']} MiB from start-up, "
        f"{measured['one_stream_peak_mib']} MiB with one stream, "
        f"{measured['concurrent_peak_mib']} MiB with {measured['streams']} at once, "
        f"{measured['large_request_peak_mib']} MiB for a 5-MiB request (idle {measured['idle_rss_mib']}); "
        f"MemorySize {result['memory_size_mb']} MB. Median LLM cost ${llm['cost_usd']:.5f} over "
        f"{llm['requests']} demo requests (median duration {llm['latency_s']:.1f} s)."
    )
    rollups = ", ".join(
        f"{figures['wru_per_record']:.1f} WRU + {figures['rru_per_record']:.2f} RRU and "
        f"{figures['handler_ms_per_record']} ms {size} a batch"
        for size, figures in measured["aggregator"].items()
    )
    print(
        f"Per request: {measured['cpu_ms_per_request']} ms of CPU, {measured['log_bytes_per_request']} log bytes, "
        f"{measured['wru_per_request']:g} WRU + {measured['rru_per_request']:g} RRU. Rollups per record: {rollups}."
    )
    _table(
        f"Lambda arm64, a {stream_s:.0f}-s stream, by records a batch of the aggregator",
        {f"{size} a batch": costs for size, costs in result["lambda"].items()},
        llm["cost_usd"],
    )
    _table(
        f"Lambda arm64, the median demo request's {llm['latency_s']:.1f} s",
        {f"{size} a batch": costs for size, costs in result["lambda_at_median_duration"].items()},
        llm["cost_usd"],
    )
    _table(
        "Fargate arm64 + ALB, always on",
        {f"{volume:,} requests a month": costs for volume, costs in result["fargate"].items()},
        llm["cost_usd"],
    )
