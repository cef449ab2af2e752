"""The providers' keys in AWS: one Secrets Manager secret, a JSON object of ``<provider>_api_key``
entries. Locally (no secret configured) the keys come from the environment instead."""

from __future__ import annotations

import json
from typing import Any

from meterway.core import aws
from meterway.core.settings import ProxySettings


def load_upstream_secret(settings: ProxySettings) -> dict[str, str]:
    """The secret's entries; empty when no secret is configured."""
    if not settings.upstream_secret_arn:
        return {}
    secret: dict[str, Any] = json.loads(
        aws.client("secretsmanager").get_secret_value(SecretId=settings.upstream_secret_arn)["SecretString"]
    )
    return {name: value for name, value in secret.items() if isinstance(value, str)}
