"""Settings: one msgspec struct per function, read from ``MW_`` environment variables.

Table, queue and bucket names have no defaults: a function whose template wiring is missing a
variable refuses to start and names it, instead of silently calling a table that does not exist.
Each struct lists only what its function uses.

``load_settings`` reads the variables (names matched without regard to case, dict fields given as
JSON) and converts them, numbers and flags from their text, with the bounds each field declares.
The structs are msgspec's, not pydantic's: the proxy's start-up imports no pydantic (about 90 ms of
its cold start), and msgspec is imported anyway to write the ledger.
"""

from __future__ import annotations

import json
import os
import re
from typing import Annotated, Any, TypeVar

import msgspec

from meterway.core.container import container
from meterway.core.validation import problem

PREFIX = "MW_"

NonNegative = Annotated[float, msgspec.Meta(ge=0)]
Positive = Annotated[float, msgspec.Meta(gt=0)]
NonNegativeInt = Annotated[int, msgspec.Meta(ge=0)]
PositiveInt = Annotated[int, msgspec.Meta(gt=0)]


class SecretText:
    """A secret read from the environment: its repr and str never show it."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretText) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return "SecretText('**********')" if self._value else "SecretText('')"

    __str__ = __repr__


class _Settings(msgspec.Struct, kw_only=True, frozen=True):
    """What every function's settings share: unknown ``MW_`` variables are ignored."""


class _Served(_Settings, kw_only=True, frozen=True):
    """What the two functions that serve keys (the proxy and the API) share."""

    # How long a warm function trusts a cached key lookup (limits, names); revocation is checked
    # in DynamoDB on every request regardless.
    key_cache_ttl_seconds: NonNegative = 30.0
    # 0 keeps ledger records for ever; otherwise each record carries a TTL this many days out.
    ledger_retention_days: NonNegativeInt = 0
    # The providers file (JSON, the template's ProvidersConfig): OpenAI-compatible providers and
    # the models they add to the catalog (meterway.proxy.logic.providers_config).
    providers: str = ""


# Local S3 endpoints need path-style URLs; AWS takes either (MW_S3_ADDRESSING_STYLE).
AddressingStyle = Annotated[str, msgspec.Meta(pattern="^(auto|path|virtual)$")]


class ProxySettings(_Served, kw_only=True, frozen=True):
    """ProxyFunction: keys and counters, the ledger, the spill queue, and the upstreams."""

    keys_table: str
    ledger_table: str
    spill_queue_url: str
    openai_base_url: str = "https://api.openai.com/v1"
    openai_api_key: SecretText | None = None
    anthropic_base_url: str = "https://api.anthropic.com"
    anthropic_api_key: SecretText | None = None
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
    provider_api_keys: dict[str, SecretText] = {}
    max_body_bytes: PositiveInt = 6 * 1024 * 1024
    upstream_connect_timeout_s: Positive = 10.0
    # Until the answer starts (a non-streamed answer: until it is whole). A reasoning model may
    # think for minutes before its first token.
    upstream_first_byte_timeout_s: Positive = 300.0
    # Between two events of a stream: Codex CLI gives up on a silent stream after 300 s as well.
    upstream_idle_timeout_s: Positive = 300.0
    # The function's Timeout in template.yaml: no request outlives it, whatever the invocation says.
    function_timeout_s: Positive = 900.0
    # What settling needs before the function is stopped: a stream still running then is ended.
    settle_margin_s: NonNegative = 10.0
    upstream_max_connections: PositiveInt = 100
    # Tries of the same route again after a 408/429/5xx/529 or no connection, before the next
    # route (meterway.proxy.logic.fallbacks). 0: the clients' SDKs retry, with the retry-after
    # the gateway passes on; fallbacks along a model's routes happen either way.
    upstream_retries: Annotated[int, msgspec.Meta(ge=0, le=5)] = 0
    upstream_retry_backoff_s: NonNegative = 0.5
    upstream_retry_max_wait_s: NonNegative = 10.0


class ApiSettings(_Served, kw_only=True, frozen=True):
    """ApiFunction: every table, the export queue and bucket, and the console's origin."""

    export_bucket: str
    s3_addressing_style: AddressingStyle = "auto"
    keys_table: str
    ledger_table: str
    rollups_table: str
    export_jobs_table: str
    export_queue_url: str
    export_url_ttl_seconds: Annotated[int, msgspec.Meta(ge=60, le=604_800)] = 900
    # The one browser origin CORS lets call the API (the web console's); empty: no CORS at all.
    console_origin: str = ""


class LedgerReplaySettings(_Settings, kw_only=True, frozen=True):
    """LedgerReplayFunction: the ledger (a replayed record carries its counters to the aggregator)."""

    ledger_table: str


class AggregatorSettings(_Settings, kw_only=True, frozen=True):
    """AggregatorFunction: the rollups it writes, and the keys table whose counters it adds to."""

    rollups_table: str
    keys_table: str


class ExportSettings(_Settings, kw_only=True, frozen=True):
    """ExportFunction: jobs, the ledger and rollups it reads, key names, the bucket it writes, and
    the job queue it puts the slices of a large request export on."""

    export_bucket: str
    s3_addressing_style: AddressingStyle = "auto"
    keys_table: str
    ledger_table: str
    rollups_table: str
    export_jobs_table: str
    export_queue_url: str
    # Records a slice of a request export should hold at least: 30,000 rows of ~250 bytes are ~7 MiB,
    # over S3's 5 MiB part minimum that a slice must reach alone (or be covered by the slice before
    # it). A window of fewer than twice this many is written by one worker; 0: always one worker.
    export_slice_rows: NonNegativeInt = 30_000
    # Child processes that turn a request export's ledger pages into CSV rows while the worker's
    # own process reads the next pages and uploads (0: the worker's process does it all). Worth it
    # from two vCPUs (Lambda gives 2 at 3,538 MB), which two children and the lighter worker keep busy.
    export_row_processes: NonNegativeInt = 0


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


def fields_of(kind: type[_Settings]) -> dict[str, msgspec.structs.FieldInfo]:
    """The settings ``kind`` reads, by field name (``MW_`` and the name in capitals)."""
    return {field.name: field for field in msgspec.structs.fields(kind)}


def _read(kind: type[S]) -> S:
    values = _environment(kind)
    missing = [name for name, field in fields_of(kind).items() if field.required and name not in values]
    if missing:
        raise ConfigurationError(
            f"{kind.__name__} cannot start: " + "; ".join(f"{PREFIX}{name.upper()}: missing" for name in missing)
        )
    try:
        return msgspec.convert(values, kind, strict=False, dec_hook=_secret)
    except msgspec.ValidationError as exc:
        message, place = problem(exc)
        field = re.split(r"[.\[]", place, maxsplit=1)[0]
        raise ConfigurationError(f"{kind.__name__} cannot start: {PREFIX}{field.upper()}: {message}") from None


def _secret(kind: type, value: Any) -> Any:
    if kind is SecretText and isinstance(value, str):
        return SecretText(value)
    raise ValueError(f"Expected text, got `{type(value).__name__}`")


def _environment(kind: type[_Settings]) -> dict[str, Any]:
    """The ``MW_`` variables of ``kind``'s fields, by field name; a dict field's value is JSON."""
    given = {name.upper(): value for name, value in os.environ.items()}
    values: dict[str, Any] = {}
    for field in msgspec.structs.fields(kind):
        variable = f"{PREFIX}{field.name.upper()}"
        if variable not in given:
            continue
        try:
            values[field.name] = json.loads(given[variable]) if _is_dict(field.type) else given[variable]
        except json.JSONDecodeError as exc:
            raise ConfigurationError(f"{kind.__name__} cannot start: {variable}: not JSON ({exc})") from None
    return values


def _is_dict(annotation: Any) -> bool:
    return getattr(annotation, "__origin__", None) is dict
