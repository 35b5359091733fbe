"""Shared fixtures, and the real-server harness used by ``tests/integration``.

``serve(server, "module:attr")`` starts a real server in a subprocess on
``127.0.0.1`` and a free port, waits (bounded) until it answers a GET, yields a
:class:`Server`, and stops it by its own PID on exit. The ``serve`` fixture is the
same function with its logs kept in pytest's temporary directory.

The subprocess runs with the project root as its working directory and at the
front of ``PYTHONPATH``, so ``tests.integration.apps.<module>:app`` imports there.

uWSGI and mod_wsgi are not in the ``test`` extra (they build against a C toolchain
and Apache): ``.ci/run`` installs them. Where one is missing, a test that serves
with it skips, saying why; under CI (``CI=true``) it fails instead, so that a
missing server can never pass for a green run. As root, mod_wsgi's daemon
processes run as :data:`APACHE_USER`, which must be able to read the interpreter
and the project.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import ssl
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


APACHE_USER = os.environ.get("BRIDGE_TEST_APACHE_USER", "www-data")
"""The user mod_wsgi's daemon processes run as when the tests run as root."""

_SCRIPTS = Path(sys.executable).parent
"""The directory of the running interpreter's console scripts (the venv's ``bin``)."""


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


def _granian(app: str, port: int, extra: Sequence[str]) -> list[str]:
    # The WSGI interface unless the extra options choose one.
    interface = [] if "--interface" in extra else ["--interface", "wsgi"]
    return [*interface, "--host", HOST, "--port", str(port), "--workers", "1", *extra, app]


def _uwsgi(app: str, port: int, extra: Sequence[str]) -> list[str]:
    # --die-on-term: uWSGI 2.0 reloads on SIGTERM otherwise. --need-app: a broken
    # import fails the start instead of answering every request with an error.
    return [
        *("--http", f"{HOST}:{port}", "--master", "--die-on-term", "--need-app"),
        *("--home", sys.prefix, "--pythonpath", str(PROJECT_ROOT), "--module", app),
        *extra,
    ]


def _mod_wsgi(app: str, port: int, extra: Sequence[str]) -> list[str]:
    module, _, attribute = app.partition(":")
    user = ["--user", APACHE_USER, "--group", APACHE_USER] if os.geteuid() == 0 else []
    return [
        "start-server",
        *("--application-type", "module", "--entry-point", module),
        *("--callable-object", attribute, "--python-path", str(PROJECT_ROOT)),
        *("--host", HOST, "--port", str(port), "--log-to-terminal", "--locale", "C.UTF-8"),
        *user,
        *extra,
    ]


def _werkzeug(app: str, port: int, extra: Sequence[str]) -> list[str]:
    return [app, "--port", str(port), *extra]


SERVER_COMMANDS: Mapping[str, Callable[[str, int, Sequence[str]], list[str]]] = {
    "uvicorn": _uvicorn,
    "hypercorn": _hypercorn,
    "gunicorn": _gunicorn,
    "waitress": _waitress,
    "granian": _granian,
    "uwsgi": _uwsgi,
    "mod_wsgi": _mod_wsgi,
    "tests.integration.werkzeug_server": _werkzeug,
}
"""Server name to its arguments for an app, a port and extra options; the program is
``python -m <name>`` unless :data:`SERVER_PROGRAMS` names another."""

SERVER_PROGRAMS: Mapping[str, list[str]] = {
    "uwsgi": [str(_SCRIPTS / "uwsgi")],
    "mod_wsgi": [sys.executable, "-m", "mod_wsgi.express.cli"],
}
"""The program of the servers not run as ``python -m <name>``."""

SERVER_DIRECTORY_OPTIONS: Mapping[str, str] = {"mod_wsgi": "--server-root"}
"""The option naming a directory of the server's own, which :func:`serve` makes."""


def _apache_user_cannot_import(app_import: str) -> str | None:
    """Why :data:`APACHE_USER` cannot import ``app_import`` here, or None when it can."""
    if os.geteuid() != 0:
        return None  # Apache runs its daemon processes as the current user
    runuser = shutil.which("runuser")
    if runuser is None:
        return "runuser is missing, so the Apache user's access cannot be checked"
    module = app_import.partition(":")[0]
    probe = subprocess.run(
        [runuser, "-u", APACHE_USER, "--", sys.executable, "-c", f"import {module}"],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        capture_output=True,
        timeout=60,
        check=False,
    )
    if probe.returncode == 0:
        return None
    last = (probe.stderr.decode(errors="replace").strip().splitlines() or ["?"])[-1]
    return (
        f"mod_wsgi's daemon user {APACHE_USER!r} cannot import {module} with "
        f"{sys.executable} ({last}); it needs to read the interpreter and the project "
        "(.ci/run grants it)"
    )


def server_missing(server: str, app_import: str = "") -> str | None:
    """Why ``server`` cannot run here, or None when it can."""
    if server == "uwsgi" and not (_SCRIPTS / "uwsgi").exists():
        return f"uWSGI is not installed next to {sys.executable} (pip install uwsgi)"
    if server == "mod_wsgi":
        if importlib.util.find_spec("mod_wsgi") is None:
            return "mod_wsgi is not installed (apt-get install apache2-dev; pip install mod_wsgi)"
        if app_import:
            return _apache_user_cannot_import(app_import)
    return None


def require_server(server: str, app_import: str = "") -> None:
    """Skip the test when ``server`` cannot run here; under CI (``CI=true``), fail it."""
    reason = server_missing(server, app_import)
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI must install it (.ci/run)", pytrace=False)
    pytest.skip(reason)


@contextlib.contextmanager
def open_directory(prefix: str) -> Iterator[Path]:
    """A new directory any user can write in (a server's other user), removed on exit."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        path.chmod(0o777)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


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
        tls: ssl.SSLContext | None = None,
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


def _answers_http(port: int, path: str, tls: ssl.SSLContext | None = None) -> bool:
    """True once a TCP connect and a GET to ``path`` get an HTTP status line back
    (over TLS with the client context ``tls``)."""
    request = f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nConnection: close\r\n\r\n"
    try:
        with contextlib.ExitStack() as stack:
            sock = stack.enter_context(socket.create_connection((HOST, port), timeout=1.0))
            if tls is not None:
                sock = stack.enter_context(tls.wrap_socket(sock, server_hostname=HOST))
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


def stop(
    process: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT, *, group: bool = False
) -> None:
    """SIGTERM ``process`` by its PID, wait, then SIGKILL that PID if it is still alive.

    With ``group`` (a process started in a session of its own, which :func:`serve`
    does), the SIGKILL goes to its whole process group, and once the process has
    exited any member of the group it left behind (a stuck worker) is killed too.
    """
    try:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
                return
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGKILL)
        process.wait(timeout=timeout)
    finally:
        if group:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)


def _wait_until_ready(
    server: Server, path: str, deadline: float, tls: ssl.SSLContext | None
) -> bool:
    """Poll until ``server`` answers; False when it exited or the deadline passed."""
    while time.monotonic() < deadline:
        if _answers_http(server.port, path, tls):
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
    tls: ssl.SSLContext | None = None,
) -> Iterator[Server]:
    """Run ``python -m <server> ... <app_import>`` on 127.0.0.1 until the block exits.

    * ``server``: a key of :data:`SERVER_COMMANDS`.
    * ``app_import``: ``"module:attr"``, importable from the project root.
    * ``extra_args``: appended to the server's command line (``--worker-class trio``).
    * ``env``: added to the subprocess's environment.
    * ``ready_path``: the path the readiness probe GETs; any HTTP answer counts.
    * ``log_dir``: where the combined stdout/stderr log goes (default: a temporary
      directory removed on exit).
    * ``tls``: a client context, for a server started to serve TLS: the probe uses it.

    Fails the test, with the log's tail, when the server does not answer within
    ``startup_timeout`` seconds.
    """
    try:
        arguments = SERVER_COMMANDS[server]
    except KeyError:
        raise ValueError(
            f"Expected a server in {sorted(SERVER_COMMANDS)}, but got {server!r}."
        ) from None
    require_server(server, app_import)
    program = SERVER_PROGRAMS.get(server, [sys.executable, "-m", server])
    child_env = dict(os.environ)
    child_env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(PROJECT_ROOT), child_env.get("PYTHONPATH")])
    )
    child_env["PYTHONUNBUFFERED"] = "1"
    child_env.update(env or {})

    with contextlib.ExitStack() as stack:
        if log_dir is None:
            log_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="serve-")))
        own_directory: list[str] = []
        if server in SERVER_DIRECTORY_OPTIONS:
            directory = stack.enter_context(open_directory(f"serve-{server}-"))
            own_directory = [SERVER_DIRECTORY_OPTIONS[server], str(directory)]
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            port = free_port()
            log_path = log_dir / f"{server}-{port}.log"
            command = [*program, *arguments(app_import, port, [*own_directory, *extra_args])]
            with log_path.open("ab") as log:  # appended: Apache reopens its stderr
                process = subprocess.Popen(
                    command,
                    cwd=PROJECT_ROOT,
                    env=child_env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            running = Server(server, HOST, port, process, log_path)
            try:
                deadline = time.monotonic() + startup_timeout
                ready = _wait_until_ready(running, ready_path, deadline, tls)
            except BaseException:
                stop(process, group=True)
                raise
            if ready:
                break
            stop(process, group=True)
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
            stop(running.process, group=True)


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
        tls: ssl.SSLContext | None = None,
    ) -> contextlib.AbstractContextManager[Server]:
        return serve(
            server,
            app_import,
            extra_args=extra_args,
            env=env,
            ready_path=ready_path,
            log_dir=log_dir,
            tls=tls,
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
