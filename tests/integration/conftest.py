"""Integration fixtures: moto's in-process AWS with the template's own tables and queues."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from devstack.aws_resources import create_resources, env_for
from meterway.config import get_api_settings, get_proxy_settings
from meterway.dal import aws
from meterway.handlers import deps

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Fake credentials, moto, the template's resources, and the app's settings pointing at them."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        resources = create_resources(ROOT / "template.yaml", prefix="it")
        for name, value in env_for(resources).items():
            monkeypatch.setenv(name, value)
        _reset_caches()
        yield resources
        _reset_caches()


def _reset_caches() -> None:
    aws.reset_clients()
    get_api_settings.cache_clear()
    get_proxy_settings.cache_clear()
    deps.reset()


def load_event(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((ROOT / "events" / name).read_text())
    return event
