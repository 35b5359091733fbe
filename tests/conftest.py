"""Shared fixtures, and the real-server harness used by ``tests/integration``.

``serve(server, "module:attr")`` starts a real server in a subprocess on
``127.0.0.1`` and a free port, waits (bounded) until it answers a GET, yields a
:class:`Server`, and stops it by its own PID on exit. The ``serve`` fixture is the
same function with its logs kept in pytest's temporary directory.

The subprocess runs with the project root as its working directory and at the
front of ``PYTHONPATH``, so ``tests.integration.apps.<module>:app`` imports there.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pytest

if TYPE_CHECKING:
    from bridge import ASGIToWSGI
    from bridge.types import ASGIApp

PROJECT_ROOT = Path(__file__).resolve().parent.parent
"""The directory holding ``pyproject.toml``; servers run from here."""

HOST = "127.0.0.1"
STARTUP_TIMEOUT = 15.0
"""Seconds a server gets to answer its first GET."""
STOP_TIMEOUT = 10.0
"""Seconds a server gets to exit after SIGTERM before it is sent SIGKILL."""
_PORT_ATTEMPTS = 3
"""Fresh ports to try when another process took the chosen one first."""


def _uvicorn(app: str, port: int, extra: Sequence[str]) -> list[str]:
    # h11, whatever else is installed: which party refuses a malformed request (the
    # server or the bridge) depends on the parser, and the tests say which.
    return [
        app,
        *("--host", HOST, "--port", str(port), "--http", "h11"),
        *("--timeout-graceful-shutdown", "5", *extra),
    ]


def _hypercorn(app: str, port: int, extra: Sequence[str]) -> list[str]:
    return [app, "--bind", f"{HOST}:{port}", "--graceful-timeout", "5", *extra]


def _gunicorn(app: str, port: int, extra: Sequence[str]) -> list[str]:
    # gunicorn 27 opens a control socket at a fixed path by default; servers
    # running side by side would share it.
    return [
        app,
        "--bind",
        f"{HOST}:{port}",
        "--workers",
        "1",
        "--graceful-timeout",
        "5",
        "--no-control-socket",
        *extra,
    ]


def _waitress(app: str, port: int, extra: Sequence[str]) -> list[str]:
    # waitress-serve stops reading options at the app: options go first.
    return [f"--listen={HOST}:{port}", *extra, app]


def _werkzeug(app: str, port: int, extra: Sequence[str]) -> list[str]:
    return [app, "--port", str(port), *extra]


SERVER_COMMANDS: Mapping[str, Callable[[str, int, Sequence[str]], list[str]]] = {
    "uvicorn": _uvicorn,
    "hypercorn": _hypercorn,
    "gunicorn": _gunicorn,
    "waitress": _waitress,
    "tests.integration.werkzeug_server": _werkzeug,
}
"""Server name (the module run with ``python -m``) to its arguments for an app, a port
and extra options."""


@dataclass(frozen=True)
class Server:
    """A running server subprocess."""

    name: str
    host: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        """The base URL, without a trailing slash."""
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def is_running(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the server's combined stdout and stderr."""
        return log_tail(self.log_path, lines)

    def describe(self, lines: int = 40) -> str:
        """A header plus the log tail, for assertion messages."""
        state = "running" if self.is_running() else f"exited with {self.process.returncode}"
        return (
            f"{self.name} (pid {self.pid}, {state}) at {self.url}; "
            f"log {self.log_path}, last {lines} lines:\n{self.log_tail(lines)}"
        )


class Serve(Protocol):
    """The ``serve`` fixture: :func:`serve` with the log directory filled in."""

    def __call__(
        self,
        server: str,
        app_import: str,
        *,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        ready_path: str = "/",
    ) -> contextlib.AbstractContextManager[Server]: ...


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text("utf-8", errors="replace")
    except OSError as exc:
        return f"<log unreadable: {exc}>"
    return "\n".join(text.splitlines()[-lines:]) or "<log empty>"


def free_port() -> int:
    """A port that was free a moment ago (the OS picks it for a socket bound to 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _answers_http(port: int, path: str) -> bool:
    """True once a TCP connect and a GET to ``path`` get an HTTP status line back."""
    request = f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nConnection: close\r\n\r\n"
    try:
        with socket.create_connection((HOST, port), timeout=1.0) as sock:
            sock.sendall(request.encode("ascii"))
            received = b""
            while len(received) < 12:
                data = sock.recv(1024)
                if not data:
                    break
                received += data
    except OSError:
        return False
    return received.startswith(b"HTTP/1.")


def stop(process: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM ``process`` by its PID, wait, then SIGKILL that PID if it is still alive."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
            return
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
    process.wait(timeout=timeout)


def _wait_until_ready(server: Server, path: str, deadline: float) -> bool:
    """Poll until ``server`` answers; False when it exited or the deadline passed."""
    while time.monotonic() < deadline:
        if _answers_http(server.port, path):
            return True
        try:
            # Doubles as the pause between polls and the check for an early exit.
            server.process.wait(timeout=0.05)
        except subprocess.TimeoutExpired:
            continue
        return False
    return False


def _port_taken(log_path: Path) -> bool:
    text = log_tail(log_path, 20).lower()
    return "address already in use" in text or "errno 98" in text


@contextlib.contextmanager
def serve(
    server: str,
    app_import: str,
    *,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    ready_path: str = "/",
    log_dir: Path | None = None,
    startup_timeout: float = STARTUP_TIMEOUT,
) -> Iterator[Server]:
    """Run ``python -m <server> ... <app_import>`` on 127.0.0.1 until the block exits.

    * ``server``: a key of :data:`SERVER_COMMANDS`.
    * ``app_import``: ``"module:attr"``, importable from the project root.
    * ``extra_args``: appended to the server's command line (``--worker-class trio``).
    * ``env``: added to the subprocess's environment.
    * ``ready_path``: the path the readiness probe GETs; any HTTP answer counts.
    * ``log_dir``: where the combined stdout/stderr log goes (default: a temporary
      directory removed on exit).

    Fails the test, with the log's tail, when the server does not answer within
    ``startup_timeout`` seconds.
    """
    try:
        arguments = SERVER_COMMANDS[server]
    except KeyError:
        raise ValueError(
            f"Expected a server in {sorted(SERVER_COMMANDS)}, but got {server!r}."
        ) from None
    child_env = dict(os.environ)
    child_env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(PROJECT_ROOT), child_env.get("PYTHONPATH")])
    )
    child_env["PYTHONUNBUFFERED"] = "1"
    child_env.update(env or {})

    with contextlib.ExitStack() as stack:
        if log_dir is None:
            log_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="serve-")))
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            port = free_port()
            log_path = log_dir / f"{server}-{port}.log"
            with log_path.open("wb") as log:
                process = subprocess.Popen(
                    [sys.executable, "-m", server, *arguments(app_import, port, extra_args)],
                    cwd=PROJECT_ROOT,
                    env=child_env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            running = Server(server, HOST, port, process, log_path)
            try:
                ready = _wait_until_ready(running, ready_path, time.monotonic() + startup_timeout)
            except BaseException:
                stop(process)
                raise
            if ready:
                break
            stop(process)
            if attempt < _PORT_ATTEMPTS and _port_taken(log_path):
                continue
            pytest.fail(
                f"Expected {server} to answer GET {ready_path} within {startup_timeout} s, "
                f"but it did not. {running.describe()}",
                pytrace=False,
            )
        try:
            yield running
        finally:
            stop(running.process)


@pytest.fixture(name="serve", scope="session")
def serve_fixture(tmp_path_factory: pytest.TempPathFactory) -> Serve:
    """:func:`serve`, with logs kept in pytest's temporary directory for inspection."""
    log_dir = tmp_path_factory.mktemp("server-logs")

    def bound(
        server: str,
        app_import: str,
        *,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        ready_path: str = "/",
    ) -> contextlib.AbstractContextManager[Server]:
        return serve(
            server,
            app_import,
            extra_args=extra_args,
            env=env,
            ready_path=ready_path,
            log_dir=log_dir,
        )

    return bound


class AdapterFactory(Protocol):
    def __call__(self, app: ASGIApp, **options: Any) -> ASGIToWSGI: ...


@pytest.fixture
def make_adapter() -> Iterator[AdapterFactory]:
    """``make_adapter(app, **options)``: an ``ASGIToWSGI`` closed when the test ends."""
    from bridge import ASGIToWSGI
    from tests.asgi_apps import TIMEOUT

    adapters: list[ASGIToWSGI] = []

    def make(app: ASGIApp, **options: Any) -> ASGIToWSGI:
        options.setdefault("lifespan_timeout", TIMEOUT)
        adapter = ASGIToWSGI(app, **options)
        adapters.append(adapter)
        return adapter

    yield make
    for adapter in adapters:
        adapter.close()
