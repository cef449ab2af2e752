"""Run the fake upstream with uvicorn in a background thread, for tests and the dev stack."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Any

import httpx
import uvicorn

from .app import create_app
from .config import FakeUpstreamConfig
from .state import FakeState


class FakeUpstreamServer:
    """A real HTTP fake upstream on ``host`` (loopback by default) and ``port`` (0 picks a free one).

    Use as a context manager or call ``start()`` / ``stop()``. ``base_url`` is the Anthropic base
    URL and ``openai_base_url`` (``base_url + "/v1"``) the OpenAI one.
    """

    def __init__(
        self,
        config: FakeUpstreamConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        startup_timeout_s: float = 10.0,
        log_level: str = "warning",
    ) -> None:
        self.config = config or FakeUpstreamConfig()
        self.app = create_app(self.config)
        self.host = host
        self._requested_port = port
        self._startup_timeout_s = startup_timeout_s
        self._log_level = log_level
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self.port: int | None = None

    @property
    def state(self) -> FakeState:
        """In-process view of caches, faults and the request log (read-only use from tests)."""
        state: FakeState = self.app.state.fake
        return state

    @property
    def base_url(self) -> str:
        """``http://host:port`` of the running server."""
        if self.port is None:
            raise RuntimeError("FakeUpstreamServer is not started")
        return f"http://{self.host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """Base URL for the OpenAI SDK (``.../v1``)."""
        return f"{self.base_url}/v1"

    def start(self) -> FakeUpstreamServer:
        """Bind, start serving in a daemon thread and return once connections are accepted."""
        if self._thread is not None:
            return self
        # Binding here, before uvicorn runs, makes the port known synchronously even when it is 0.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._requested_port))
        self._socket = sock
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_level=self._log_level,
            log_config=None,  # leave the host process's logging configuration alone
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="fake-upstream", daemon=True
        )
        self._thread.start()
        self._wait_until_serving()
        return self

    def _wait_until_serving(self) -> None:
        assert self._server is not None and self._thread is not None
        deadline = time.monotonic() + self._startup_timeout_s
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("fake upstream failed to start (see the uvicorn log)")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"fake upstream did not start within {self._startup_timeout_s}s")
            time.sleep(0.01)
        with socket.create_connection((self.host, self.port or 0), timeout=self._startup_timeout_s):
            pass

    def stop(self) -> None:
        """Stop serving and wait for the thread; open streams are given a short grace period."""
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=5)
            if self._thread.is_alive():
                self._server.force_exit = True
                self._thread.join(timeout=5)
        if self._socket is not None:
            self._socket.close()
        self._server, self._thread, self._socket = None, None, None

    def __enter__(self) -> FakeUpstreamServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # Conveniences over the HTTP control endpoints, which are safe to call from any thread.

    def add_faults(self, *faults: dict[str, Any], match: dict[str, str] | None = None) -> None:
        """Queue faults (see ``POST /_fake/faults``) for the next matching requests."""
        payload: dict[str, Any] = {"faults": list(faults)}
        if match is not None:
            payload["match"] = match
        httpx.post(f"{self.base_url}/_fake/faults", json=payload).raise_for_status()

    def requests(self, path: str | None = None) -> list[dict[str, Any]]:
        """The request log (see ``GET /_fake/requests``)."""
        params = {"path": path} if path else None
        response = httpx.get(f"{self.base_url}/_fake/requests", params=params)
        response.raise_for_status()
        records: list[dict[str, Any]] = response.json()
        return records

    def reset(self) -> None:
        """Clear faults, prompt caches and the request log."""
        httpx.post(f"{self.base_url}/_fake/reset").raise_for_status()
