"""LiteLLM's proxy, for comparison on the same fake upstream in the same run.

It lives in a venv of its own, `.bench/litellm-venv` (gitignored), never in the project's: it is
created from `bench/litellm-requirements.txt` (one pinned version) the first time a bench needs
it, so `.venv/bin/python bench/proxy_overhead.py` alone reproduces the comparison.

The proxy is started as `litellm --config <yaml>` on loopback with one uvicorn worker, its
models pointed at the fake upstream: no database, no master key, no spend logs, no telemetry,
no callbacks, and its model cost map read from the package (it fetches it from GitHub
otherwise, which this machine cannot reach). Its access log is off, as the Meterway proxy's is.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

from bench.harness import ROOT, spawn, wait_for
from devstack.stack import free_port

VENV = ROOT / ".bench" / "litellm-venv"
REQUIREMENTS = ROOT / "bench" / "litellm-requirements.txt"
# Published with a credential stealer in March 2026 and pulled from PyPI: never install these.
COMPROMISED = {"1.82.7", "1.82.8"}

# The client-facing model ids of bench/proxy_overhead.py's cases, as LiteLLM routes them.
MODELS = {
    "openai/gpt-4o-mini": ("openai/gpt-4o-mini", "{fake}/v1"),
    "anthropic/claude-haiku-4-5": ("anthropic/claude-haiku-4-5", "{fake}"),
}
# Uvicorn's loggers at warning: no access log line per request.
LOG_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "loggers": {name: {"level": "WARNING"} for name in ("uvicorn", "uvicorn.error", "uvicorn.access")},
}


def pinned_version() -> str:
    match = re.search(r"^litellm\[proxy\]==(\S+)$", REQUIREMENTS.read_text(), re.MULTILINE)
    if match is None:
        raise RuntimeError(f"{REQUIREMENTS} pins no litellm[proxy] version")
    if match.group(1) in COMPROMISED:
        raise RuntimeError(f"litellm {match.group(1)} is a compromised release")
    return match.group(1)


def installed_version() -> str | None:
    python = VENV / "bin" / "python"
    if not python.exists():
        return None
    code = "import importlib.metadata as m; print(m.version('litellm'))"
    result = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=False)
    return result.stdout.strip() or None


def ensure_venv() -> str:
    """The pinned LiteLLM in `.bench/litellm-venv`, installed (or reinstalled) when it is not there."""
    version = pinned_version()
    if installed_version() != version:
        print(f"installing litellm[proxy]=={version} into {VENV.relative_to(ROOT)} ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
        pip = [str(VENV / "bin" / "python"), "-m", "pip", "install", "--quiet", "-r", str(REQUIREMENTS)]
        subprocess.run(pip, check=True)
    if installed_version() != version:
        raise RuntimeError(f"{VENV} does not hold litellm {version}")
    return version


def config_yaml(fake_url: str) -> str:
    """The proxy's configuration: one entry per model, pointed at the fake upstream (JSON is YAML)."""
    models = [
        {
            "model_name": name,
            "litellm_params": {"model": model, "api_base": base.format(fake=fake_url), "api_key": "bench"},
        }
        for name, (model, base) in MODELS.items()
    ]
    settings = {"telemetry": False, "callbacks": [], "success_callback": [], "failure_callback": []}
    general = {"disable_spend_logs": True, "disable_error_logs": True}
    return json.dumps({"model_list": models, "litellm_settings": settings, "general_settings": general}, indent=2)


def start(stack: ExitStack, fake_url: str, workdir: Path) -> tuple[str, int]:
    """Start the proxy (installing it first if need be); its base URL and pid."""
    ensure_venv()
    workdir.mkdir(parents=True, exist_ok=True)
    config, log_config = workdir / "litellm.yaml", workdir / "litellm-logging.json"
    config.write_text(config_yaml(fake_url))
    log_config.write_text(json.dumps(LOG_CONFIG))
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "DATABASE_", "LITELLM_"))} | {
        "LITELLM_TELEMETRY": "False",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_LOG": "ERROR",
        "PYTHONPATH": "",
    }
    command = [
        str(VENV / "bin" / "litellm"),
        *("--config", str(config), "--host", "127.0.0.1", "--port", str(port)),
        *("--num_workers", "1", "--log_config", str(log_config)),
    ]
    pid = spawn(stack, command, env)
    url = f"http://127.0.0.1:{port}"
    wait_for(f"{url}/health/liveliness", timeout=120)
    return url, pid
