"""Settings: one pydantic model per function, read from ``MW_`` environment variables.

Table, queue and bucket names have no defaults: a function whose template wiring is missing a
variable refuses to start and names it, instead of silently calling a table that does not exist.
Each model lists only what its function uses.

The models are plain pydantic models fed from the environment by ``load_settings`` (names matched
without regard to case, dict fields given as JSON, as pydantic-settings reads them): importing
pydantic-settings, with the sources it loads for files, clouds and command lines, cost the proxy's
cold start 7-54 ms with bytecode and about 130 ms without, for ten lines of reading variables.
"""

from __future__ import annotations

import json
import os
from typing import Any, TypeVar, get_origin

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from meterway.core.container import container

PREFIX = "MW_"


class _Settings(BaseModel):
    model_config = ConfigDict(extra="ignore", defer_build=True)


class _KeyLookups(_Settings):
    # How long a warm function trusts a cached key lookup (limits, names); revocation is checked
    # in DynamoDB on every request regardless.
    key_cache_ttl_seconds: float = Field(default=30.0, ge=0)


class _Retention(_Settings):
    # 0 keeps ledger records for ever; otherwise each record carries a TTL this many days out.
    ledger_retention_days: int = Field(default=0, ge=0)


class _Catalog(_Settings):
    # The providers file (JSON, the template's ProvidersConfig): OpenAI-compatible providers and
    # the models they add to the catalog (meterway.proxy.logic.providers_config).
    providers: str = ""


class _S3Access(_Settings):
    export_bucket: str
    # Local S3 endpoints need path-style URLs; AWS takes either.
    s3_addressing_style: str = Field(default="auto", pattern="^(auto|path|virtual)$")


class ProxySettings(_KeyLookups, _Retention, _Catalog):
    """ProxyFunction: keys and counters, the ledger, the spill queue, and the upstreams."""

    keys_table: str
    ledger_table: str
    spill_queue_url: str
    openai_base_url: str = "https://api.openai.com/v1"
    openai_api_key: SecretStr | None = None
    anthropic_base_url: str = "https://api.anthropic.com"
    anthropic_api_key: SecretStr | None = None
    anthropic_version: str = "2023-06-01"
    # Bedrock: the region whose runtime is called (the function's own when unset), and another
    # endpoint for it (the local stack's fake; a VPC endpoint's name).
    bedrock_region: str | None = None
    bedrock_endpoint_url: str | None = None
    # The ARNs of the Bedrock models and inference profiles the function's role may invoke,
    # comma-separated (the template's BedrockModelArns): the catalog's Bedrock models among them
    # are served. Unset (the local stack): every one of the catalog's.
    bedrock_model_arns: str | None = None
    # In AWS the provider keys live in Secrets Manager, not in the function's environment.
    upstream_secret_arn: str | None = None
    # Locally, the keys of the providers file's providers, by their secret entry's name (JSON).
    provider_api_keys: dict[str, SecretStr] = Field(default_factory=dict)
    max_body_bytes: int = Field(default=6 * 1024 * 1024, gt=0)
    upstream_connect_timeout_s: float = Field(default=10.0, gt=0)
    # Until the answer starts (a non-streamed answer: until it is whole). A reasoning model may
    # think for minutes before its first token.
    upstream_first_byte_timeout_s: float = Field(default=300.0, gt=0)
    # Between two events of a stream: Codex CLI gives up on a silent stream after 300 s as well.
    upstream_idle_timeout_s: float = Field(default=300.0, gt=0)
    # The function's Timeout in template.yaml: no request outlives it, whatever the invocation says.
    function_timeout_s: float = Field(default=900.0, gt=0)
    # What settling needs before the function is stopped: a stream still running then is ended.
    settle_margin_s: float = Field(default=10.0, ge=0)
    upstream_max_connections: int = Field(default=100, gt=0)
    # Tries of the same route again after a 408/429/5xx/529 or no connection, before the next
    # route (meterway.proxy.logic.fallbacks). 0: the clients' SDKs retry, with the retry-after
    # the gateway passes on; fallbacks along a model's routes happen either way.
    upstream_retries: int = Field(default=0, ge=0, le=5)
    upstream_retry_backoff_s: float = Field(default=0.5, ge=0)
    upstream_retry_max_wait_s: float = Field(default=10.0, ge=0)


class ApiSettings(_KeyLookups, _Retention, _S3Access, _Catalog):
    """ApiFunction: every table, the export queue and bucket, and the console's origin."""

    keys_table: str
    ledger_table: str
    rollups_table: str
    export_jobs_table: str
    export_queue_url: str
    export_url_ttl_seconds: int = Field(default=900, ge=60, le=604_800)
    # The one browser origin CORS lets call the API (the web console's); empty: no CORS at all.
    console_origin: str = ""


class LedgerReplaySettings(_Settings):
    """LedgerReplayFunction: the ledger (a replayed record carries its counters to the aggregator)."""

    ledger_table: str


class AggregatorSettings(_Settings):
    """AggregatorFunction: the rollups it writes, and the keys table whose counters it adds to."""

    rollups_table: str
    keys_table: str


class ExportSettings(_S3Access):
    """ExportFunction: jobs, the ledger and rollups it reads, key names, the bucket it writes, and
    the job queue it puts the slices of a large request export on."""

    keys_table: str
    ledger_table: str
    rollups_table: str
    export_jobs_table: str
    export_queue_url: str
    # Records a slice of a request export should hold at least: 30,000 rows of ~250 bytes are ~7 MiB,
    # over S3's 5 MiB part minimum that a slice must reach alone (or be covered by the slice before
    # it). A window of fewer than twice this many is written by one worker; 0: always one worker.
    export_slice_rows: int = Field(default=30_000, ge=0)


# Each function of template.yaml and the settings it reads.
FUNCTION_SETTINGS: dict[str, type[_Settings]] = {
    "ProxyFunction": ProxySettings,
    "ApiFunction": ApiSettings,
    "LedgerReplayFunction": LedgerReplaySettings,
    "AggregatorFunction": AggregatorSettings,
    "ExportFunction": ExportSettings,
}


class ConfigurationError(RuntimeError):
    """A function's environment lacks a variable it needs, or holds a bad value."""


S = TypeVar("S", bound=_Settings)


def load_settings(kind: type[S]) -> S:
    """The function's settings, read once per process (``container.reset()`` reads them again)."""
    return container.provide(("settings", kind), lambda: _read(kind))


def _read(kind: type[S]) -> S:
    try:
        return kind.model_validate(_environment(kind))
    except ValidationError as exc:
        problems = [
            f"{PREFIX}{str(error['loc'][0]).upper()}: {'missing' if error['type'] == 'missing' else error['msg']}"
            for error in exc.errors()
        ]
        raise ConfigurationError(f"{kind.__name__} cannot start: " + "; ".join(problems)) from None


def _environment(kind: type[_Settings]) -> dict[str, Any]:
    """The ``MW_`` variables of ``kind``'s fields, by field name; a dict field's value is JSON."""
    given = {name.upper(): value for name, value in os.environ.items()}
    values: dict[str, Any] = {}
    for field, info in kind.model_fields.items():
        variable = f"{PREFIX}{field.upper()}"
        if variable not in given:
            continue
        try:
            values[field] = json.loads(given[variable]) if get_origin(info.annotation) is dict else given[variable]
        except json.JSONDecodeError as exc:
            raise ConfigurationError(f"{kind.__name__} cannot start: {variable}: not JSON ({exc})") from None
    return values
