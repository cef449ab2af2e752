"""Settings, one pydantic model per function, read once from the environment (prefix ``MW_``)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class StorageSettings(BaseSettings):
    """Where the tables live; shared by every function."""

    model_config = SettingsConfigDict(env_prefix="MW_", extra="ignore")

    keys_table: str = "meterway-keys"
    ledger_table: str = "meterway-ledger"
    rollups_table: str = "meterway-rollups"
    export_jobs_table: str = "meterway-export-jobs"
    export_bucket: str = "meterway-exports"
    export_queue_url: str | None = None
    export_url_ttl_seconds: int = Field(default=900, ge=60, le=604_800)
    # Local S3 endpoints need path-style URLs; AWS takes either.
    s3_addressing_style: str = Field(default="auto", pattern="^(auto|path|virtual)$")
    spill_queue_url: str | None = None
    ledger_retention_days: int = Field(default=0, ge=0)
    key_cache_ttl_seconds: float = Field(default=30.0, ge=0)


class ProxySettings(StorageSettings):
    """The inference proxy: upstreams, limits and timeouts."""

    openai_base_url: str = "https://api.openai.com/v1"
    openai_api_key: SecretStr | None = None
    anthropic_base_url: str = "https://api.anthropic.com"
    anthropic_api_key: SecretStr | None = None
    anthropic_version: str = "2023-06-01"
    # In AWS the provider keys live in Secrets Manager, not in the function's environment.
    upstream_secret_arn: str | None = None
    max_body_bytes: int = Field(default=6 * 1024 * 1024, gt=0)
    upstream_connect_timeout_s: float = Field(default=10.0, gt=0)
    # Read timeout is per chunk: a reasoning model may think for minutes before its first token.
    upstream_read_timeout_s: float = Field(default=600.0, gt=0)
    upstream_max_connections: int = Field(default=100, gt=0)


class ApiSettings(StorageSettings):
    """The management API."""

    # The one browser origin CORS lets call the API (the web console's); empty: no CORS at all.
    console_origin: str = ""


@lru_cache(maxsize=1)
def get_proxy_settings() -> ProxySettings:
    return ProxySettings()


@lru_cache(maxsize=1)
def get_api_settings() -> ApiSettings:
    return ApiSettings()
