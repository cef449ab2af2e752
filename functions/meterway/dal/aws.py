"""boto3 clients, created lazily and once per process (importing boto3 and building a client
costs ≈0.6 s, so nothing here runs at import time)."""

from __future__ import annotations

import threading
from decimal import Decimal
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

_lock = threading.Lock()


def _config(addressing_style: str | None = None) -> Any:
    from botocore.config import Config

    # Standard retries back off on throttling; a settled usage record must survive a throttle.
    config = Config(retries={"mode": "standard", "max_attempts": 6}, connect_timeout=3, read_timeout=10)
    if addressing_style:
        s3_options: Any = {"addressing_style": addressing_style}
        config = config.merge(Config(signature_version="s3v4", s3=s3_options))
    return config


@cache
def _client(service: str, addressing_style: str | None = None) -> Any:
    import boto3

    with _lock:
        session = boto3.session.Session()
        return session.client(service, config=_config(addressing_style))  # type: ignore[call-overload]


def s3(addressing_style: str) -> Any:
    return _client("s3", addressing_style)


def secretsmanager() -> SecretsManagerClient:
    return _client("secretsmanager")


class AwsResource:
    """Base of the stores: holds a boto3 client, the shared one unless a test hands one in."""

    service = "dynamodb"

    def __init__(self, client: Any | None = None):
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = _client(self.service)
        return self._client


def reset_clients() -> None:
    """Forget cached clients (tests switch between moto backends)."""
    _client.cache_clear()


@cache
def _serializer() -> Any:
    from boto3.dynamodb.types import TypeSerializer

    class FixedPointSerializer(TypeSerializer):
        """Numbers in plain notation: boto3 writes a Decimal under 1e-6 as ``1E-7``, which DynamoDB
        takes but moto's ADD cannot parse; ``0.0000001`` means the same to both."""

        def _serialize_n(self, value: Any) -> str:
            number: str = super()._serialize_n(value)  # type: ignore[misc]  # absent from the stubs
            return format(Decimal(number), "f") if "E" in number.upper() else number

    return FixedPointSerializer()


def serialize(item: dict[str, Any]) -> dict[str, Any]:
    serializer = _serializer()
    return {name: serializer.serialize(value) for name, value in item.items()}


def deserialize(image: dict[str, Any]) -> dict[str, Any]:
    """DynamoDB JSON → Python, with whole numbers as ``int`` and the rest as ``Decimal``."""
    from boto3.dynamodb.types import TypeDeserializer

    deserializer = TypeDeserializer()
    return {name: _plain(deserializer.deserialize(value)) for name, value in image.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        return int(value)
    if isinstance(value, dict):
        return {name: _plain(inner) for name, inner in value.items()}
    if isinstance(value, list):
        return [_plain(inner) for inner in value]
    return value
