"""What the proxy imports before it can serve (DESIGN: importing the app ≤ 250 ms): each front
door's formats and translations come with that door's first request, not with the app; and no
pydantic at all on a request's path (only genai-prices' load, in its own thread, brings it)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from meterway.proxy.providers.base import BRIDGES, load_bridge

ROOT = Path(__file__).resolve().parents[2]
# What stays off the cold start: every door's model, encoder and translations.
DOOR_PACKAGES = ("meterway.proxy.formats", "meterway.proxy.translate.")
# The one shared module of the translations: every request's path needs its Answer.
SHARED = {"meterway.proxy.translate.base"}


def modules_after(code: str) -> list[str]:
    """The modules a fresh interpreter holds after running ``code``, with the project's paths only."""
    listing = f"{code}; import json, sys; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", listing],
        cwd=ROOT,
        env={"PYTHONPATH": f"{ROOT / 'functions'}:{ROOT}", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.splitlines()[-1])


def test_importing_the_app_loads_no_front_doors_format_or_translation():
    loaded = modules_after("import meterway.proxy.handlers.app")

    assert "meterway.proxy.handlers.inference" in loaded
    assert [name for name in loaded if name.startswith(DOOR_PACKAGES) and name not in SHARED] == []
    assert "pydantic" not in loaded


def test_reading_every_doors_request_and_the_providers_file_needs_no_pydantic():
    loaded = modules_after(
        "from meterway.proxy.handlers import inference, count_tokens; "
        "from meterway.proxy.logic.providers_config import parse_providers; "
        "[door.load() for door in (inference.CHAT, inference.MESSAGES, inference.RESPONSES, inference.EMBEDDINGS)]; "
        "from meterway.proxy.formats.messages import CountTokensRequest; "
        "parse_providers('{\"routes\": {}}')"
    )

    assert "meterway.proxy.formats.embeddings" in loaded
    assert "pydantic" not in loaded


def test_a_doors_first_use_loads_its_own_format_and_not_the_others():
    loaded = modules_after(
        "from meterway.proxy.handlers.inference import CHAT; from meterway.proxy.providers.base import load_bridge; "
        "CHAT.load(); load_bridge('chat', 'chat')"
    )

    assert "meterway.proxy.formats.chat" in loaded
    assert not {"meterway.proxy.formats.messages", "meterway.proxy.formats.responses"} & set(loaded)
    assert not [name for name in loaded if name.startswith("meterway.proxy.translate.") and name not in SHARED]


def test_each_bridge_loaded_on_first_use_speaks_the_upstream_format_it_is_registered_for():
    for (client, upstream), _ in BRIDGES.items():
        bridge = load_bridge(client, upstream)

        assert bridge is not None
        assert bridge.upstream == upstream
        assert load_bridge(client, upstream) is bridge

    assert load_bridge("embeddings", "chat") is None
