"""Run the real command-line clients, unchanged, against a gateway (or the recorder).

* ``install_clients()`` installs Claude Code and the Codex CLI at the pinned versions from the npm
  registry into ``.meterway/clients/`` (git-ignored; ``MW_CLIENTS_DIR`` overrides), only when they
  are not there already at those versions.
* ``run_claude()`` runs ``claude -p`` and ``run_codex()`` runs ``codex exec``, each in a fresh
  temporary HOME (and CODEX_HOME) with telemetry, update checks and every other nonessential
  network call turned off, permission prompts skipped, and a timeout.

Both run functions take the gateway's base URL with or without a trailing ``/v1``: Claude Code is
given it without (it appends ``/v1/messages``), Codex with (it appends ``/responses``). What each
setting does, and how that was checked, is in ``FINDINGS.md`` beside this file.

From a shell: ``.venv/bin/python -m tests.e2e.clients.harness`` installs and prints the binaries.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CLAUDE_CODE_PACKAGE = "@anthropic-ai/claude-code"
CLAUDE_CODE_VERSION = "2.1.332"
CODEX_PACKAGE = "@openai/codex"
CODEX_VERSION = "0.171.0"

ROOT = Path(__file__).resolve().parents[3]
CLIENTS_DIR = Path(os.environ.get("MW_CLIENTS_DIR") or ROOT / ".meterway" / "clients")

CODEX_PROVIDER = "meterway"
CODEX_ENV_KEY = "METERWAY_API_KEY"

# Claude Code: CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC alone was enough, in 2.1.332, to stop every
# connection but the one to ANTHROPIC_BASE_URL (bootstrap, fast-mode status, MCP registry, event
# logging, auto-update); the other three say the same thing for their own parts.
CLAUDE_QUIET_ENV = {
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_TELEMETRY": "1",
    "DISABLE_AUTOUPDATER": "1",
    "DISABLE_ERROR_REPORTING": "1",
}

# Variables never passed on from the calling environment: credentials and endpoints of either
# client, and proxies (a proxy meant for the package registries must not carry loopback traffic).
_DROPPED_PREFIXES = ("ANTHROPIC_", "CLAUDE_", "CODEX_", "OPENAI_", "OTEL_")
_DROPPED = {"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy", "NODE_OPTIONS"}


class ClientsUnavailable(RuntimeError):
    """The clients could not be installed (no npm, no registry, an unsupported platform)."""


@dataclass(frozen=True)
class InstalledClients:
    prefix: Path
    claude: Path  # the native Claude Code binary (what bin/claude.exe becomes after its postinstall)
    codex: Path  # the npm entry point bin/codex.js, run with node as `codex` is
    node: str

    def claude_command(self) -> list[str]:
        return [str(self.claude)]

    def codex_command(self) -> list[str]:
        return [self.node, str(self.codex)]


@dataclass
class ClientResult:
    command: list[str]
    returncode: int
    stdout: str
    stderr: str
    duration_s: float
    timed_out: bool = False
    home: Path | None = None  # kept only with keep_home=True
    json: dict[str, Any] | None = None  # Claude Code: the parsed --output-format json result
    last_message: str | None = None  # Codex: the final agent message (-o)
    events: list[dict[str, Any]] = field(default_factory=list)  # Codex with json_events=True

    @property
    def result_text(self) -> str | None:
        """The final answer: Claude Code's ``result``, Codex's last message."""
        if self.json is not None:
            result = self.json.get("result")
            return result if isinstance(result, str) else None
        return self.last_message

    def describe(self) -> str:
        return (
            f"{' '.join(self.command[:3])} ... exited {self.returncode}"
            f"{' (timed out)' if self.timed_out else ''} in {self.duration_s:.1f}s\n"
            f"--- stdout:\n{self.stdout[-4000:]}\n--- stderr:\n{self.stderr[-4000:]}"
        )


# ---------------------------------------------------------------------------------------------------------------
# Installing


def _platform_names() -> tuple[str, str]:
    """(npm arch, Rust target arch) for this machine."""
    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64"):
        return "x64", "x86_64"
    if machine in ("aarch64", "arm64"):
        return "arm64", "aarch64"
    raise ClientsUnavailable(f"no Claude Code / Codex build for {machine}")


def _package_version(package_dir: Path) -> str | None:
    try:
        return str(json.loads((package_dir / "package.json").read_text())["version"])
    except (OSError, ValueError, KeyError):
        return None


def _claude_binary(prefix: Path) -> Path | None:
    if platform.system() != "Linux":
        raise ClientsUnavailable("the harness runs the Linux builds of the clients only")
    arch, _ = _platform_names()
    for suffix in ("", "-musl"):  # npm installs the one whose `libc` matches
        package = prefix / "node_modules" / f"{CLAUDE_CODE_PACKAGE}-linux-{arch}{suffix}"
        if _package_version(package) == CLAUDE_CODE_VERSION and (package / "claude").is_file():
            return package / "claude"
    return None


def _codex_ready(prefix: Path) -> bool:
    arch, target = _platform_names()
    package = prefix / "node_modules" / "@openai" / f"codex-linux-{arch}"
    binary = package / "vendor" / f"{target}-unknown-linux-musl" / "bin" / "codex"
    return (
        _package_version(prefix / "node_modules" / CODEX_PACKAGE) == CODEX_VERSION
        and _package_version(package) == f"{CODEX_VERSION}-linux-{arch}"
        and binary.is_file()
    )


def _installed(prefix: Path) -> InstalledClients | None:
    claude = _claude_binary(prefix)
    node = shutil.which("node")
    if claude is None or not _codex_ready(prefix) or node is None:
        return None
    if _package_version(prefix / "node_modules" / CLAUDE_CODE_PACKAGE) != CLAUDE_CODE_VERSION:
        return None
    return InstalledClients(prefix, claude, prefix / "node_modules" / CODEX_PACKAGE / "bin" / "codex.js", node)


def install_clients(prefix: Path | None = None, *, timeout_s: float = 900) -> InstalledClients:
    """Claude Code and Codex at the pinned versions under ``prefix`` (default ``.meterway/clients``),
    installed from the npm registry only when missing or at another version. Safe to call from
    several processes at once (a file lock serialises the install)."""
    prefix = (prefix or CLIENTS_DIR).resolve()
    found = _installed(prefix)
    if found:
        return found
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise ClientsUnavailable(
            "npm (and node) are needed to install the clients under test "
            f"({CLAUDE_CODE_PACKAGE}@{CLAUDE_CODE_VERSION}, {CODEX_PACKAGE}@{CODEX_VERSION}); "
            "install Node.js 20+ with npm (Debian: apt-get install nodejs npm)"
        )
    prefix.mkdir(parents=True, exist_ok=True)
    with (prefix / ".install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = _installed(prefix)  # another process may have installed them meanwhile
        if found:
            return found
        # --ignore-scripts: Claude Code's postinstall only copies the platform package's binary
        # over its bin/claude.exe stub, and the harness runs that binary from the platform package.
        command = [
            npm,
            "install",
            "--no-audit",
            "--no-fund",
            "--ignore-scripts",
            "--no-progress",
            "--prefix",
            str(prefix),
            f"{CLAUDE_CODE_PACKAGE}@{CLAUDE_CODE_VERSION}",
            f"{CODEX_PACKAGE}@{CODEX_VERSION}",
        ]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired as exc:
            raise ClientsUnavailable(f"`{' '.join(command)}` did not finish in {timeout_s} s") from exc
        found = _installed(prefix)
        if done.returncode != 0 or found is None:
            raise ClientsUnavailable(
                f"`{' '.join(command)}` exited {done.returncode} without installing both clients\n"
                f"--- stdout:\n{done.stdout[-3000:]}\n--- stderr:\n{done.stderr[-3000:]}"
            )
        return found


# ---------------------------------------------------------------------------------------------------------------
# Running


def _root_url(base_url: str) -> str:
    return base_url.rstrip("/").removesuffix("/v1")


def _base_env(home: Path) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in _DROPPED and not name.startswith(_DROPPED_PREFIXES)
    }
    env.update(
        {
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "XDG_DATA_HOME": str(home / ".local" / "share"),
            "XDG_STATE_HOME": str(home / ".local" / "state"),
            "NO_PROXY": "127.0.0.1,localhost,::1",
            "no_proxy": "127.0.0.1,localhost,::1",
            "TERM": "dumb",
            "NO_COLOR": "1",
        }
    )
    return env


def _run(command: list[str], env: Mapping[str, str], cwd: Path, timeout_s: float) -> tuple[int, str, str, float, bool]:
    """The command in its own process group, stdin closed; on timeout the whole group is killed."""
    started = time.monotonic()
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    timed_out = False
    try:
        stdout, stderr = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
    return process.returncode, stdout, stderr, time.monotonic() - started, timed_out


def claude_env(
    base_url: str,
    api_key: str,
    model: str,
    home: Path,
    *,
    auth: str = "x-api-key",
    small_model: str | None = None,
    max_retries: int | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment for ``claude -p``: gateway, key, model, quiet. ``auth="bearer"`` sends the
    key as ``Authorization: Bearer`` (ANTHROPIC_AUTH_TOKEN) instead of ``x-api-key``."""
    if auth not in ("x-api-key", "bearer"):
        raise ValueError(f"auth must be 'x-api-key' or 'bearer', not {auth!r}")
    env = _base_env(home)
    env.update(CLAUDE_QUIET_ENV)
    env.update(
        {
            "CLAUDE_CONFIG_DIR": str(home / ".claude"),
            "ANTHROPIC_BASE_URL": _root_url(base_url),
            "ANTHROPIC_API_KEY" if auth == "x-api-key" else "ANTHROPIC_AUTH_TOKEN": api_key,
            "ANTHROPIC_MODEL": model,
            # Claude Code sent no other model id in print mode, but these are where any
            # background ("haiku" class) request would take its id from.
            "ANTHROPIC_DEFAULT_HAIKU_MODEL": small_model or model,
            "ANTHROPIC_SMALL_FAST_MODEL": small_model or model,
        }
    )
    if max_retries is not None:
        env["CLAUDE_CODE_MAX_RETRIES"] = str(max_retries)
    if os.geteuid() == 0:
        # As root, --dangerously-skip-permissions is refused unless the process says it is
        # sandboxed; these runs are (a throwaway HOME and working directory).
        env["IS_SANDBOX"] = "1"
    env.update(extra_env or {})
    return env


def run_claude(
    prompt: str,
    *,
    base_url: str,
    api_key: str,
    model: str,
    cwd: Path | None = None,
    timeout_s: float = 180,
    auth: str = "x-api-key",
    small_model: str | None = None,
    max_retries: int | None = None,
    output_format: str = "json",
    extra_args: Sequence[str] = (),
    extra_env: Mapping[str, str] | None = None,
    keep_home: bool = False,
    clients: InstalledClients | None = None,
) -> ClientResult:
    """``claude -p PROMPT --output-format json --dangerously-skip-permissions`` against the gateway
    at ``base_url``, in a fresh HOME and (unless ``cwd``) a fresh working directory."""
    clients = clients or install_clients()
    home = Path(tempfile.mkdtemp(prefix="mw-claude-home-"))
    workdir = cwd or Path(tempfile.mkdtemp(prefix="mw-claude-work-"))
    try:
        env = claude_env(
            base_url,
            api_key,
            model,
            home,
            auth=auth,
            small_model=small_model,
            max_retries=max_retries,
            extra_env=extra_env,
        )
        command = [
            *clients.claude_command(),
            "-p",
            prompt,
            "--output-format",
            output_format,
            "--dangerously-skip-permissions",
            *extra_args,
        ]
        returncode, stdout, stderr, duration, timed_out = _run(command, env, workdir, timeout_s)
        parsed = None
        if output_format == "json":
            try:
                value = json.loads(stdout)
                parsed = value if isinstance(value, dict) else None
            except ValueError:
                parsed = None
        return ClientResult(
            command, returncode, stdout, stderr, duration, timed_out, home if keep_home else None, json=parsed
        )
    finally:
        if not keep_home:
            shutil.rmtree(home, ignore_errors=True)
        if cwd is None:
            shutil.rmtree(workdir, ignore_errors=True)


def _toml_string(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def codex_config_toml(
    base_url: str,
    model: str,
    *,
    reasoning_effort: str = "low",
    sandbox: str = "workspace-write",
    provider: str = CODEX_PROVIDER,
    env_key: str = CODEX_ENV_KEY,
    request_max_retries: int | None = None,
    stream_max_retries: int | None = None,
    stream_idle_timeout_ms: int | None = None,
    http_headers: Mapping[str, str] | None = None,
) -> str:
    """Codex's ``config.toml`` for a non-interactive run against the gateway: a custom provider
    speaking the Responses API at ``<gateway>/v1``, no approvals, the given sandbox, and nothing
    sent anywhere else (no analytics, feedback, update check, or curated-plugin sync)."""
    provider_lines = [
        f"[model_providers.{provider}]",
        'name = "Meterway"',
        f"base_url = {_toml_string(_root_url(base_url) + '/v1')}",
        f"env_key = {_toml_string(env_key)}",
        'wire_api = "responses"',
    ]
    for key, value in (
        ("request_max_retries", request_max_retries),
        ("stream_max_retries", stream_max_retries),
        ("stream_idle_timeout_ms", stream_idle_timeout_ms),
    ):
        if value is not None:
            provider_lines.append(f"{key} = {int(value)}")
    if http_headers:
        pairs = ", ".join(f"{_toml_string(name)} = {_toml_string(value)}" for name, value in http_headers.items())
        provider_lines.append(f"http_headers = {{ {pairs} }}")
    lines = [
        f"model = {_toml_string(model)}",
        f"model_provider = {_toml_string(provider)}",
        f"model_reasoning_effort = {_toml_string(reasoning_effort)}",
        'approval_policy = "never"',
        f"sandbox_mode = {_toml_string(sandbox)}",
        "check_for_update_on_startup = false",
        "",
        "[features]",
        "# The curated-plugin sync reaches github.com, api.github.com and chatgpt.com at startup.",
        "plugins = false",
        "",
        "[analytics]",
        "enabled = false",
        "",
        "[feedback]",
        "enabled = false",
        "",
        "[history]",
        'persistence = "none"',
        "",
        *provider_lines,
        "",
    ]
    return "\n".join(lines)


def run_codex(
    prompt: str,
    *,
    base_url: str,
    api_key: str,
    model: str,
    cwd: Path | None = None,
    timeout_s: float = 180,
    reasoning_effort: str = "low",
    sandbox: str = "workspace-write",
    request_max_retries: int | None = None,
    stream_max_retries: int | None = None,
    stream_idle_timeout_ms: int | None = None,
    json_events: bool = False,
    extra_args: Sequence[str] = (),
    extra_env: Mapping[str, str] | None = None,
    keep_home: bool = False,
    clients: InstalledClients | None = None,
    http_headers: Mapping[str, str] | None = None,
) -> ClientResult:
    """``codex exec --skip-git-repo-check --strict-config -o LAST PROMPT`` with a ``config.toml``
    written for this run (``codex_config_toml``; ``http_headers``: its provider's extra headers),
    in a fresh HOME/CODEX_HOME and (unless ``cwd``) a fresh working directory. ``json_events``
    adds ``--json`` and parses its JSONL events."""
    clients = clients or install_clients()
    home = Path(tempfile.mkdtemp(prefix="mw-codex-home-"))
    workdir = cwd or Path(tempfile.mkdtemp(prefix="mw-codex-work-"))
    try:
        codex_home = home / ".codex"
        codex_home.mkdir()
        (codex_home / "config.toml").write_text(
            codex_config_toml(
                base_url,
                model,
                reasoning_effort=reasoning_effort,
                sandbox=sandbox,
                request_max_retries=request_max_retries,
                stream_max_retries=stream_max_retries,
                stream_idle_timeout_ms=stream_idle_timeout_ms,
                http_headers=http_headers,
            )
        )
        env = _base_env(home)
        env.update({"CODEX_HOME": str(codex_home), CODEX_ENV_KEY: api_key})
        env.update(extra_env or {})
        last = home / "last-message.txt"
        command = [
            *clients.codex_command(),
            "exec",
            "--skip-git-repo-check",
            "--strict-config",
            "--color",
            "never",
            "-C",
            str(workdir),
            "-o",
            str(last),
            *(["--json"] if json_events else []),
            *extra_args,
            prompt,
        ]
        returncode, stdout, stderr, duration, timed_out = _run(command, env, workdir, timeout_s)
        events: list[dict[str, Any]] = []
        if json_events:
            for line in stdout.splitlines():
                try:
                    events.append(json.loads(line))
                except ValueError:
                    continue
        last_message = last.read_text() if last.exists() else None
        return ClientResult(
            command,
            returncode,
            stdout,
            stderr,
            duration,
            timed_out,
            home if keep_home else None,
            last_message=last_message,
            events=events,
        )
    finally:
        if not keep_home:
            shutil.rmtree(home, ignore_errors=True)
        if cwd is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    started = time.monotonic()
    installed = install_clients()
    print(f"claude: {installed.claude}\ncodex:  {installed.codex}\n({time.monotonic() - started:.1f} s)")
