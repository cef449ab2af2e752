"""Who a request is for and which app sent it, as the ledger keeps them."""

from __future__ import annotations

import json

import pytest

from meterway.ledger.attribution import app_name, end_user, rollup_value, user_value

DEVICE = "bfb4420c2dcbea47f7cb414fde98cb1ba70ab29e9276bcb9fc390587f1f76b88"
ACCOUNT = "5f0c9c9e-2b1d-4d7e-9a43-1c2d3e4f5a6b"
SESSION = "0d6a1b2c-3d4e-4f50-8a9b-0c1d2e3f4a5b"


@pytest.mark.parametrize(
    ("body", "user"),
    [
        ({"user": "alice@example.com"}, "alice@example.com"),
        ({"safety_identifier": "hash-7"}, "hash-7"),
        ({"metadata": {"user_id": "u-42"}}, "u-42"),
        # Claude Code: a JSON text naming its session; the record keeps the account, else the device.
        (
            {"metadata": {"user_id": json.dumps({"device_id": DEVICE, "account_uuid": "", "session_id": SESSION})}},
            DEVICE,
        ),
        (
            {
                "metadata": {
                    "user_id": json.dumps({"device_id": DEVICE, "account_uuid": ACCOUNT, "session_id": SESSION})
                }
            },
            ACCOUNT,
        ),
        # Its versions before: user_<device>_account_<uuid or nothing>_session_<uuid>.
        ({"metadata": {"user_id": f"user_{DEVICE}_account__session_{SESSION}"}}, DEVICE),
        ({"metadata": {"user_id": f"user_{DEVICE}_account_{ACCOUNT}_session_{SESSION}"}}, ACCOUNT),
        # Anything else is kept as it came: JSON that names no device, text that only looks like it.
        ({"user": '{"team": 7}'}, '{"team": 7}'),
        ({"user": "{not json"}, "{not json"),
        ({"user": f"user_{DEVICE}_account_"}, f"user_{DEVICE}_account_"),
        ({"user": 12345}, "12345"),
        ({"user": "x" * 300}, "x" * 256),
        ({"metadata": "u-42"}, None),
        ({"user": ""}, None),
        ({}, None),
    ],
)
def test_the_end_user_is_whom_the_client_names(body, user):
    assert end_user(body) == user


@pytest.mark.parametrize(
    ("headers", "app"),
    [
        ({"x-title": "support-bot", "x-meterway-app": "other"}, "support-bot"),
        ({"x-meterway-app": "evals"}, "evals"),
        ({"x-title": "  "}, None),
        ({"x-title": "a" * 300}, "a" * 256),
        ({}, None),
    ],
)
def test_the_app_is_what_its_headers_name(headers, app):
    assert app_name(headers) == app


def test_a_rollup_cell_keeps_a_name_whole_to_256_bytes_and_names_none_as_none():
    assert rollup_value(None) == rollup_value("") == "(none)"
    assert rollup_value("team#7") == "team#7"
    assert rollup_value("é" * 300) == "é" * 128
    assert rollup_value("a" + "€" * 100).encode() == ("a" + "€" * 85).encode()  # 256 bytes, no half character


def test_a_session_json_an_older_version_kept_counts_under_its_device():
    kept = json.dumps({"device_id": DEVICE, "account_uuid": "", "session_id": SESSION})
    assert user_value(kept) == user_value(DEVICE) == DEVICE
    assert user_value(None) == "(none)"
