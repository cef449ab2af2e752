"""boto3 clients, one per service and process, kept in the container; DynamoDB's JSON both ways.

boto3 is imported on first use, not at import time: it costs a quarter of a second that the
proxy's cold start does not pay until it needs DynamoDB.
"""

from __future__ import annotations

import os
from decimal import Decimal
from functools import cache
from typing import TYPE_CHECKING, Any

from meterway.core.container import container

if TYPE_CHECKING:
    from meterway.core.dynamo_http import DynamoHttp


def _config(service: str, addressing_style: str | None) -> Any:
    from botocore.config import Config

    # Standard retries back off on throttling; a settled usage record must survive a throttle.
    config = Config(retries={"mode": "standard", "max_attempts": 6}, connect_timeout=3, read_timeout=10)
    if service == "dynamodb":
        # The proxy makes two DynamoDB calls per request, and checking each call's parameters
        # against the model is a fifth to a quarter of botocore's CPU for a ledger record. The stores build
        # their calls from typed code, and DynamoDB checks them again: a bad one is a
        # ValidationException, which ``storage_errors`` maps like the client's own error.
        # botocore also builds its User-Agent twice per call, from some twenty parts, each one
        # sanitised character by character: another sixth of the call. A fixed one names the same
        # SDK and runtime, without the per-call feature codes.
        config = config.merge(Config(parameter_validation=False, user_agent=_user_agent()))
    if addressing_style:
        s3_options: Any = {"addressing_style": addressing_style}
        config = config.merge(Config(signature_version="s3v4", s3=s3_options))
    return config


@cache
def _user_agent() -> str:
    """What botocore's own User-Agent starts with (SDK, system, language, Lambda's runtime), then
    the app; without its per-call feature codes."""
    import platform

    import boto3
    import botocore

    parts = [f"Boto3/{boto3.__version__}", f"md/Botocore#{botocore.__version__}", "ua/2.1"]
    parts.append(f"os/{platform.system().lower()}#{platform.release()}")
    parts.append(f"md/arch#{platform.machine().lower()}")
    parts.append(f"lang/python#{platform.python_version()}")
    if os.environ.get("AWS_EXECUTION_ENV"):
        parts.append(f"exec-env/{os.environ['AWS_EXECUTION_ENV']}")
    return " ".join([*parts, "app/meterway"])


def client(service: str, addressing_style: str | None = None) -> Any:
    """The process's client for ``service`` (S3 also by addressing style), made on first use."""
    return container.provide(("boto3", service, addressing_style), lambda: _new_client(service, addressing_style))


# Where a raw client's answer keeps the response's body (see ``raw_client``).
RAW_BODY = "RawBody"


def raw_client(service: str) -> Any:
    """The process's client for ``service`` whose successful answers are left unparsed: the
    response's bytes are under ``RAW_BODY``. For readers that go from a large answer straight to
    what they need (an export's ledger pages): botocore's parser walks every attribute of every
    item through the service's shapes, about 100 µs a ledger record. Requests are still built,
    signed and retried as usual (throttling; DynamoDB's CRC32 check reads the raw response), and an
    error answer is parsed into the usual ``ClientError``."""

    return container.provide(("boto3-raw", service), lambda: keep_raw_bodies(_new_client(service, None)))


def keep_raw_bodies(made: Any) -> Any:
    """``made``, a client, with its successful answers left unparsed (see ``raw_client``)."""
    service_id = made.meta.service_model.service_id.hyphenize()
    made.meta.events.register_first(f"before-parse.{service_id}", _keep_body)
    return made


def _new_client(service: str, addressing_style: str | None) -> Any:
    made: Any = _session().client(service, config=_config(service, addressing_style))
    return made


def _session() -> Any:
    """The boto3 session the process's clients are made from. botocore loads a service's model and
    the endpoint rules once per session (10 MiB for DynamoDB's), so the clients share one. A session
    is not safe to use from two threads at once: clients are made under the container's lock."""

    def build() -> Any:
        import boto3

        return boto3.session.Session()

    return container.provide(("boto3", "session"), build)


def _keep_body(response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **_: Any) -> None:
    """botocore's ``before-parse`` hook: hand the parser an empty document and the caller the body."""
    if response_dict["status_code"] < 300:
        customized_response_dict[RAW_BODY] = response_dict["body"]
        response_dict["body"] = b"{}"


def region(configured: str | None = None) -> str:
    """``configured``, else the process's region as boto3 finds it in the environment (Lambda sets
    ``AWS_REGION``)."""
    return configured or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def credentials() -> Any | None:
    """The process's AWS credentials as they are now (in Lambda, the function's role), to sign a
    request that does not go through a boto3 client; botocore refreshes them before they expire."""

    import botocore.session

    # The session keeps the credentials once found (and looks again while there are none).
    found = container.provide(("botocore", "session"), botocore.session.get_session).get_credentials()
    return found.get_frozen_credentials() if found is not None else None


def dynamodb_endpoint() -> str:
    """Where boto3 sends DynamoDB's calls: ``AWS_ENDPOINT_URL_DYNAMODB``, else ``AWS_ENDPOINT_URL``
    (the local stack and the bench set it), unless ``AWS_IGNORE_CONFIGURED_ENDPOINT_URLS`` is set;
    else the region's own endpoint."""
    if os.environ.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "").lower() != "true":
        for name in ("AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL"):
            if os.environ.get(name):
                return os.environ[name]
    where = region()
    return f"https://dynamodb.{where}.amazonaws.com{'.cn' if where.startswith('cn-') else ''}"


def dynamo_http() -> DynamoHttp:
    """A new DynamoDB client for the event loop (``meterway.core.dynamo_http``): the process's
    endpoint, region and credentials. Its pooled connections belong to the loop that opens them,
    so it is made and closed with the app, not kept in the container."""
    from meterway.core.dynamo_http import DynamoHttp

    return DynamoHttp(dynamodb_endpoint(), region(), credentials, user_agent=_user_agent())


class AwsResource:
    """Base of the stores: holds a boto3 client, the process's one unless a test hands one in; for
    stores that read large answers themselves, the process's raw client (``raw_client``); and for
    the proxy's calls on the event loop, a ``DynamoHttp`` (one made on first use unless handed in)."""

    service = "dynamodb"

    def __init__(self, client: Any | None = None, *, wire_client: Any | None = None, dynamo: DynamoHttp | None = None):
        self._client = client
        self._wire_client = wire_client
        self._dynamo = dynamo

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = client(self.service)
        return self._client

    @property
    def dynamo(self) -> DynamoHttp:
        if self._dynamo is None:
            self._dynamo = dynamo_http()
        return self._dynamo

    @property
    def wire_client(self) -> Any:
        if self._wire_client is None:
            self._wire_client = raw_client(self.service)
        return self._wire_client


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


@cache
def _deserializer() -> Any:
    from boto3.dynamodb.types import TypeDeserializer

    return TypeDeserializer()


# An int of fewer digits than DynamoDB's 38 is written as boto3 writes it: its digits.
_EXACT_INT = 10**38


def serialize(item: dict[str, Any]) -> dict[str, Any]:
    """Python → DynamoDB JSON, attribute by attribute."""
    serializer = _serializer()
    return {name: _to_dynamo(value, serializer) for name, value in item.items()}


def _to_dynamo(value: Any, serializer: Any) -> dict[str, Any]:
    """What boto3's serializer makes of ``value``, without its type dispatch for the types the items
    are made of (exactly these types: a subclass, a set, bytes or a float go through boto3's)."""
    kind = type(value)
    if kind is str:
        return {"S": value}
    if kind is bool:
        return {"BOOL": value}
    if kind is int and -_EXACT_INT < value < _EXACT_INT:
        return {"N": str(value)}
    if kind is Decimal:
        return {"N": serializer._serialize_n(value)}
    if kind is dict:
        return {"M": {name: _to_dynamo(inner, serializer) for name, inner in value.items()}}
    if kind is list:
        return {"L": [_to_dynamo(inner, serializer) for inner in value]}
    if value is None:
        return {"NULL": True}
    serialized: dict[str, Any] = serializer.serialize(value)
    return serialized


def deserialize(image: dict[str, Any]) -> dict[str, Any]:
    """DynamoDB JSON → Python, with whole numbers as ``int`` and the rest as ``Decimal``."""
    deserializer = _deserializer()
    return {name: _from_dynamo(value, deserializer) for name, value in image.items()}


def _from_dynamo(attribute: dict[str, Any], deserializer: Any) -> Any:
    """``_plain`` of what boto3's deserializer makes of ``attribute``, without its dispatch for the
    common types (sets and binary go through boto3's)."""
    if len(attribute) == 1:
        ((kind, value),) = attribute.items()
        if kind == "S" or kind == "BOOL":
            return value
        if kind == "N":
            return _plain(deserializer._deserialize_n(value))
        if kind == "M":
            return {name: _from_dynamo(inner, deserializer) for name, inner in value.items()}
        if kind == "L":
            return [_from_dynamo(inner, deserializer) for inner in value]
        if kind == "NULL":
            return None
    return _plain(deserializer.deserialize(attribute))


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        return int(value)
    if isinstance(value, dict):
        return {name: _plain(inner) for name, inner in value.items()}
    if isinstance(value, list):
        return [_plain(inner) for inner in value]
    return value
