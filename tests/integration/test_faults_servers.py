"""Faults against real servers: pool exhaustion, graceful stop, clients that vanish.

Each test starts real servers in subprocesses on 127.0.0.1 (``serve`` fixture) and
talks to them over sockets:

* **Thread-pool exhaustion** (uvicorn): a ``Mount`` puts a native ASGI route beside
  ``WSGIToASGI(max_threads=4)``. 40 concurrent 200 ms WSGI requests all complete,
  at most 4 run at once, and the native route answers quickly meanwhile, while
  the pool is saturated.
* **Graceful stop** (uvicorn with ``WSGIToASGI``, gunicorn with ``ASGIToWSGI``):
  SIGTERM to the server's own PID while requests are in flight; they complete
  with 200, the server exits 0, and under gunicorn lifespan shutdown runs once.
* **A client that vanishes** before the body, mid-upload, before the headers and
  mid-stream: the WSGI app's ``close()`` runs (or the ASGI app sees the
  disconnect), and the server process's thread count (``/proc/PID/status``) and
  the adapter's task count return to their baseline.
* **Content-Length mismatches** from the app never corrupt a keep-alive stream, and
  **request smuggling** attempts are refused by the server or the adapter.

The apps the servers run are defined here, so that one file holds both sides;
the servers import this module as ``tests.integration.test_faults_servers``. They
talk to the test through marker files in ``$BRIDGE_FAULTS_DIR`` (tokens are hex).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import h11
import httpx
import pytest

from bridge import ASGIToWSGI, ClientDisconnected, Mount, WSGIToASGI
from bridge._threads import pool
from bridge.types import Environ, Receive, Scope, Send, StartResponse

from ._protocols import RunningServer, ServeFn
from ._wire import RawHTTP, wait_for

pytestmark = pytest.mark.server

DIR_ENV = "BRIDGE_FAULTS_DIR"
FAST_IDLE_ENV = "BRIDGE_FAULTS_FAST_IDLE"
WAIT_SECONDS = 10.0
"""How long an app waits for a signal from the test before giving up."""
SETTLE_SECONDS = 15.0
"""How long the test waits for threads and tasks to return to their baseline."""
TICK_SECONDS = 0.05
MAX_TICKS = 1200
"""An "endless" stream still ends after a minute, so a missed disconnect cannot spin."""
HTTP_TIMEOUT = 20.0

if os.environ.get(FAST_IDLE_ENV):
    # In the server process only: pool threads idle for 0.2 s exit (instead of
    # 10 s), so the thread count settles quickly. A thread still inside the app
    # never exits, which is what the tests look for.
    import bridge._threads

    bridge._threads._IDLE_SECONDS = 0.2


# The apps, run by the servers.

_TOKEN = re.compile(r"[0-9a-f]{32}")


def _marker(token: str, suffix: str) -> Path:
    if not _TOKEN.fullmatch(token):
        raise ValueError(f"Expected a hex token, but got {token!r}.")
    return Path(os.environ[DIR_ENV]) / f"{token}.{suffix}"


def _note(token: str, suffix: str, text: str = "") -> None:
    with _marker(token, suffix).open("a", encoding="ascii") as file:
        file.write(f"{text}\n")


def _await_file(path: Path) -> bool:
    """Block (bounded) until ``path`` exists; False if it never came."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not path.exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _query(query: str, name: str) -> str:
    for part in query.split("&"):
        key, _, value = part.partition("=")
        if key == name:
            return value
    return ""


class _Ticks:
    """A WSGI response body that ticks until the client goes; ``close()`` leaves a marker.

    ``mode="read"`` reads the request body before the first tick (recording a
    ``ClientDisconnected``), ``mode="hold"`` waits for ``<token>.go`` first.
    """

    def __init__(self, environ: Environ, token: str, mode: str) -> None:
        self._environ = environ
        self._token = token
        self._mode = mode
        self._count = 0

    def __iter__(self) -> _Ticks:
        return self

    def __next__(self) -> bytes:
        if self._count == 0:
            if self._mode == "read":
                _note(self._token, "reading")
                try:
                    self._environ["wsgi.input"].read()
                except ClientDisconnected as exc:
                    _note(self._token, "read-error", type(exc).__name__)
                    raise
            elif self._mode == "hold":
                _note(self._token, "holding")
                _await_file(_marker(self._token, "go"))
        elif self._count >= MAX_TICKS:
            raise StopIteration
        else:
            time.sleep(TICK_SECONDS)
        self._count += 1
        return b"tick %d\n" % self._count

    def close(self) -> None:
        _note(self._token, "closed", str(self._count))


_slow_lock = threading.Lock()
_slow_now = 0
_slow_peak = 0


def _slow(query: str) -> bytes:
    """Sleep ``ms`` milliseconds (the app's work); answer ``<id> <peak in flight>``."""
    global _slow_now, _slow_peak
    with _slow_lock:
        _slow_now += 1
        _slow_peak = max(_slow_peak, _slow_now)
    try:
        time.sleep(int(_query(query, "ms") or "200") / 1000)
    finally:
        with _slow_lock:
            _slow_now -= 1
    return f"{_query(query, 'id')} {_slow_peak}".encode("ascii")


def _plain(start_response: StartResponse, body: bytes, status: str = "200 OK") -> list[bytes]:
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def _wsgi_faults(environ: Environ, start_response: StartResponse) -> Any:
    path: str = environ["PATH_INFO"]
    query: str = environ.get("QUERY_STRING", "")
    token = _query(query, "token")
    if path == "/slow":
        return _plain(start_response, _slow(query))
    if path in ("/read", "/hold", "/forever"):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return _Ticks(environ, token, path[1:])
    if path == "/wait":
        _note(token, "started")
        released = _await_file(_marker(token, "release"))
        return _plain(start_response, f"done {token} released={released}".encode("ascii"))
    if path == "/short":  # declares 10 bytes, sends 5
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "10")])
        return iter([b"12345"])
    if path == "/long":  # declares 5 bytes, sends 10
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
        return iter([b"123", b"4567890"])  # the second chunk crosses the length
    if path == "/smuggled":
        _note(token, "smuggled")
    return _plain(start_response, b"hello\n")


faults_w2a = WSGIToASGI(_wsgi_faults, max_threads=4)


async def _serve_lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if DIR_ENV in os.environ:
                with (Path(os.environ[DIR_ENV]) / "lifespan.log").open("a") as file:
                    file.write(f"shutdown {os.getpid()}\n")
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _respond(send: Send, body: bytes, status: int = 200) -> None:
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _native(scope: Scope, receive: Receive, send: Send) -> None:
    """``/native/stats``: the WSGI side's limiter and pool, seen from the event loop."""
    if scope["type"] == "lifespan":
        await _serve_lifespan(receive, send)
        return
    with pool._lock:
        threads, idle = pool._threads, pool._idle
    limiter = faults_w2a.limiter
    stats = {
        "pid": os.getpid(),
        "borrowed": limiter.borrowed_tokens,
        "waiting": limiter.statistics().tasks_waiting,
        "pool_threads": threads,
        "busy_threads": threads - idle,
        "tasks": len(anyio.get_running_tasks()),
        "at": time.time(),
    }
    await _respond(send, json.dumps(stats).encode())


wsgi_mix = Mount({"/native": _native}, default=faults_w2a)
"""uvicorn's app: the native stats route beside the WSGI app with 4 threads."""


async def _await_marker(path: Path) -> bool:
    deadline = time.monotonic() + WAIT_SECONDS
    while not await anyio.Path(path).exists():
        if time.monotonic() > deadline:
            return False
        await anyio.sleep(0.01)
    return True


async def _ticks(token: str, send: Send) -> None:
    """Send ticks until ``send()`` raises (the WSGI server closed the response)."""
    start = {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"t")]}
    try:
        await send(start)
        for tick in range(MAX_TICKS):
            body = b"tick %d\n" % (tick + 1)
            await send({"type": "http.response.body", "body": body, "more_body": True})
            await anyio.sleep(TICK_SECONDS)
    except ClientDisconnected as exc:
        _note(token, "disconnect", f"send:{type(exc).__name__}")


async def _asgi_faults(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await _serve_lifespan(receive, send)
        return
    path: str = scope["path"]
    token = _query(scope["query_string"].decode("ascii"), "token")
    if path == "/pid":
        await _respond(send, str(os.getpid()).encode())
    elif path == "/tasks":
        await _respond(send, str(len(anyio.get_running_tasks())).encode())
    elif path == "/read":
        _note(token, "reading")
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                _note(token, "disconnect", "receive:http.disconnect")
                return
            if not message.get("more_body", False):
                break
        await _respond(send, b"read\n")
    elif path == "/hold":
        _note(token, "holding")
        await _await_marker(_marker(token, "go"))
        await _ticks(token, send)
    elif path == "/forever":
        await _ticks(token, send)
    elif path == "/wait":
        _note(token, "started")
        released = await _await_marker(_marker(token, "release"))
        await _respond(send, f"done {token} released={released}".encode("ascii"))
    else:
        if path == "/smuggled":
            _note(token, "smuggled")
        await _respond(send, b"hello\n")


asgi_app = ASGIToWSGI(_asgi_faults)
"""gunicorn's app."""


# Test-side helpers.

UVICORN_APP = "tests.integration.test_faults_servers:wsgi_mix"
GUNICORN_APP = "tests.integration.test_faults_servers:asgi_app"
GTHREAD = ("--worker-class", "gthread", "--threads", "4")
GTHREADS = 4


def proc_threads(pid: int) -> int:
    """The ``Threads:`` line of ``/proc/PID/status``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError(f"No Threads line for pid {pid}.")


def parent_pid(pid: int) -> int:
    """The parent of ``pid``, from ``/proc/PID/stat`` (after the command's closing paren)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rpartition(")")[2].split()[1])


def new_token() -> str:
    return uuid.uuid4().hex


def client(server: RunningServer) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=HTTP_TIMEOUT)


@dataclass
class Target:
    server: RunningServer
    markers: Path

    def marker(self, token: str, suffix: str) -> Path:
        return self.markers / f"{token}.{suffix}"

    def wait_marker(self, token: str, suffix: str, timeout: float = WAIT_SECONDS) -> str:
        path = self.marker(token, suffix)
        wait_for(
            lambda: path.exists() and path.read_text("ascii").endswith("\n"),
            timeout=timeout,
            describe=lambda: f"no {path.name}. {self.server.describe()}",
        )
        return path.read_text("ascii")

    def raw(self) -> RawHTTP:
        return RawHTTP(self.server.host, self.server.port)

    def get(self, path: str) -> httpx.Response:
        with client(self.server) as http:
            return http.get(path)


@pytest.fixture(scope="module")
def markers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fault-markers")


@pytest.fixture(scope="module")
def uvicorn_target(serve: ServeFn, markers: Path) -> Iterator[Target]:
    env = {DIR_ENV: str(markers), FAST_IDLE_ENV: "1"}
    with serve("uvicorn", UVICORN_APP, env=env) as server:
        yield Target(server, markers)
        assert server.is_running(), server.describe()


@pytest.fixture(scope="module")
def gunicorn_target(serve: ServeFn, markers: Path) -> Iterator[Target]:
    with serve("gunicorn", GUNICORN_APP, extra_args=GTHREAD, env={DIR_ENV: str(markers)}) as server:
        yield Target(server, markers)
        assert server.is_running(), server.describe()


def native_stats(target: Target) -> dict[str, Any]:
    document: dict[str, Any] = target.get("/native/stats").json()
    return document


def hold_every_thread(target: Target, count: int) -> None:
    """``count`` requests held in the app at once, then released: all threads are free."""
    tokens = [new_token() for _ in range(count)]
    with ThreadPoolExecutor(count) as executor, client(target.server) as http:
        futures = [executor.submit(http.get, f"/wait?token={token}") for token in tokens]
        for token in tokens:
            target.wait_marker(token, "started")
        for token in tokens:
            target.marker(token, "release").touch()
        responses = [future.result(timeout=HTTP_TIMEOUT) for future in futures]
    assert [r.status_code for r in responses] == [200] * count, target.server.describe()


# Thread-pool exhaustion.

SLOW_REQUESTS = 40
SLOW_MS = 200
NATIVE_BOUND = 1.0
"""Seconds a native request may take while the pool is exhausted (a sanity bound:
it answers in milliseconds; a blocked loop would take the whole batch, > 2 s)."""


def test_pool_exhaustion_leaves_the_loop_free(uvicorn_target: Target) -> None:
    server = uvicorn_target.server
    limits = httpx.Limits(max_connections=SLOW_REQUESTS + 5)
    slow_done: list[float] = []

    def slow(index: int) -> httpx.Response:
        response = http.get(f"/slow?ms={SLOW_MS}&id={index}")
        slow_done.append(time.monotonic())
        return response

    samples: list[tuple[float, float, dict[str, Any]]] = []
    with (
        httpx.Client(base_url=server.url, timeout=HTTP_TIMEOUT, limits=limits) as http,
        httpx.Client(base_url=server.url, timeout=HTTP_TIMEOUT) as native,
        ThreadPoolExecutor(SLOW_REQUESTS) as executor,
    ):
        futures = [executor.submit(slow, index) for index in range(SLOW_REQUESTS)]
        deadline = time.monotonic() + HTTP_TIMEOUT
        while not all(future.done() for future in futures) and time.monotonic() < deadline:
            sent = time.monotonic()
            stats = native.get("/native/stats").json()
            samples.append((sent, time.monotonic(), stats))
        responses = [future.result(timeout=HTTP_TIMEOUT) for future in futures]

    # None lost: every request answered, with its own id.
    assert [r.status_code for r in responses] == [200] * SLOW_REQUESTS, server.describe()
    ids = sorted(int(r.text.split()[0]) for r in responses)
    assert ids == list(range(SLOW_REQUESTS))
    assert max(int(r.text.split()[1]) for r in responses) <= 4  # max_threads held
    # The loop answered while the pool was exhausted, and answered fast.
    exhausted = [(sent, got) for sent, got, s in samples if s["borrowed"] == 4 and s["waiting"]]
    assert exhausted, f"No native answer saw the pool exhausted: {samples[:3]}"
    assert exhausted[0][1] < max(slow_done), "The native route only answered after the batch."
    latencies = [got - sent for sent, got, _ in samples]
    assert max(latencies) < NATIVE_BOUND, f"Native latencies while exhausted: {latencies}"


# Graceful stop with requests in flight.

IN_FLIGHT = 3


def _stopping(http: RawHTTP) -> bool:
    """Send a request on a kept-alive connection: True once the server shows it is
    stopping (it closes the connection, or answers with ``Connection: close``)."""
    try:
        http.next_cycle()
        http.request("GET", "/text")
        http.send(h11.EndOfMessage())
        event = http.next_event()
        if not isinstance(event, h11.Response):
            return True
        http.read_body()
    except (h11.ProtocolError, OSError):
        return True
    return any(name == b"connection" and b"close" in value.lower() for name, value in event.headers)


@pytest.mark.parametrize("server_name", ["uvicorn", "gunicorn"])
def test_graceful_stop_lets_requests_in_flight_finish(
    serve: ServeFn, tmp_path: Path, server_name: str
) -> None:
    app, args = (UVICORN_APP, ()) if server_name == "uvicorn" else (GUNICORN_APP, GTHREAD)
    target_dir = tmp_path
    tokens = [new_token() for _ in range(IN_FLIGHT)]
    with serve(server_name, app, extra_args=args, env={DIR_ENV: str(target_dir)}) as server:
        target = Target(server, target_dir)
        worker = int(target.get("/pid").text) if server_name == "gunicorn" else server.pid
        with ThreadPoolExecutor(IN_FLIGHT) as executor, client(server) as http:
            futures = [executor.submit(http.get, f"/wait?token={token}") for token in tokens]
            for token in tokens:
                target.wait_marker(token, "started")
            with target.raw() as probe:
                probe.request("GET", "/text")  # a kept-alive connection, open before the stop
                probe.send(h11.EndOfMessage())
                assert probe.read_response().status_code == 200
                probe.read_body()
                os.kill(server.pid, signal.SIGTERM)  # the server's own PID
                wait_for(
                    lambda: _stopping(probe),
                    timeout=WAIT_SECONDS,
                    describe=lambda: f"The server did not start stopping. {server.describe()}",
                )
            for token in tokens:
                target.marker(token, "release").touch()
            responses = [future.result(timeout=HTTP_TIMEOUT) for future in futures]
        assert [r.status_code for r in responses] == [200] * IN_FLIGHT, server.describe()
        assert sorted(r.text for r in responses) == sorted(
            f"done {token} released=True" for token in tokens
        )
        wait_for(
            lambda: not server.is_running(),
            timeout=WAIT_SECONDS,
            describe=lambda: f"The server did not exit. {server.describe()}",
        )
        # uvicorn re-raises the SIGTERM it handled once it is done: -15 is its clean exit.
        assert re.search(r"exited with (0|-15)\)", server.describe(1)), server.describe()
    if server_name == "gunicorn":
        assert worker != server.pid
        log = (target_dir / "lifespan.log").read_text().splitlines()
        assert log == [f"shutdown {worker}"]  # once, in the worker


# A client that vanishes at each point.

POINTS = ["before-body", "mid-upload", "before-headers", "mid-stream"]


def _vanish(target: Target, token: str, point: str) -> None:
    """Play a client that goes away (TCP reset) at ``point``."""
    with target.raw() as http:
        if point in ("before-body", "mid-upload"):
            http.request("POST", f"/read?token={token}", [("Content-Length", "100000")])
            if point == "mid-upload":
                http.send(h11.Data(data=b"x" * 1000))
            target.wait_marker(token, "reading")
        elif point == "before-headers":
            http.request("GET", f"/hold?token={token}")
            http.send(h11.EndOfMessage())
            target.wait_marker(token, "holding")
        else:
            http.request("GET", f"/forever?token={token}")
            http.send(h11.EndOfMessage())
            assert http.read_response().status_code == 200, target.server.describe()
            http.read_body(until=b"tick 2\n")
        http.reset()
    if point == "before-headers":
        target.marker(token, "go").touch()  # the app answers only now, to nobody


@pytest.mark.parametrize("point", POINTS)
def test_vanishing_client_under_uvicorn_closes_and_frees_the_thread(
    uvicorn_target: Target, point: str
) -> None:
    target = uvicorn_target
    pid = target.server.pid
    wait_for(
        lambda: native_stats(target)["pool_threads"] == 0,
        timeout=SETTLE_SECONDS,
        describe=lambda: f"Pool threads never went away: {native_stats(target)}",
    )
    baseline = proc_threads(pid)
    tasks = native_stats(target)["tasks"]
    token = new_token()

    _vanish(target, token, point)

    target.wait_marker(token, "closed")  # close() on the app's iterable ran
    if point in ("before-body", "mid-upload"):
        assert target.marker(token, "read-error").read_text() == "ClientDisconnected\n"

    def settled() -> bool:
        stats = native_stats(target)
        return (
            stats["pool_threads"] == 0
            and stats["borrowed"] == 0
            and stats["tasks"] <= tasks
            and proc_threads(pid) <= baseline
        )

    wait_for(
        settled,
        timeout=SETTLE_SECONDS,
        describe=lambda: (
            f"threads {proc_threads(pid)} (baseline {baseline}), {native_stats(target)} "
            f"(tasks before {tasks}). {target.server.describe()}"
        ),
    )


@pytest.fixture(scope="module")
def gunicorn_worker(gunicorn_target: Target) -> int:
    """The worker's PID (it answers ``/pid``), a child of the master; every pool thread
    started once, so that only a leak can raise the thread count."""
    worker = int(gunicorn_target.get("/pid").text)
    assert parent_pid(worker) == gunicorn_target.server.pid
    hold_every_thread(gunicorn_target, GTHREADS)
    return worker


@pytest.mark.parametrize("point", POINTS)
def test_vanishing_client_under_gunicorn_ends_the_app_task(
    gunicorn_target: Target, gunicorn_worker: int, point: str
) -> None:
    target = gunicorn_target
    baseline = proc_threads(gunicorn_worker)
    tasks = int(target.get("/tasks").text)
    token = new_token()

    _vanish(target, token, point)

    how = target.wait_marker(token, "disconnect").splitlines()[0]
    expected = "receive:http.disconnect" if point in ("before-body", "mid-upload") else None
    assert how == expected or (expected is None and how == "send:ClientDisconnected"), how
    wait_for(
        lambda: int(target.get("/tasks").text) == tasks,
        timeout=SETTLE_SECONDS,
        describe=lambda: f"tasks {target.get('/tasks').text}, before {tasks}",
    )
    assert proc_threads(gunicorn_worker) <= baseline
    hold_every_thread(target, GTHREADS)  # no WSGI thread is stuck in the bridge


# Content-Length mismatches from the app.


def test_longer_body_than_declared_is_cut_and_keep_alive_survives(uvicorn_target: Target) -> None:
    with uvicorn_target.raw() as http:
        http.request("GET", "/long")
        http.send(h11.EndOfMessage())
        assert http.read_response().status_code == 200
        assert http.read_body() == b"12345"
        http.next_cycle()  # the same connection: the excess must not be read as a response
        http.request("GET", "/text")
        http.send(h11.EndOfMessage())
        assert http.read_response().status_code == 200
        assert http.read_body() == b"hello\n"


def test_shorter_body_than_declared_aborts_the_connection(uvicorn_target: Target) -> None:
    with uvicorn_target.raw() as http:
        http.request("GET", "/short")
        http.send(h11.EndOfMessage())
        assert http.read_response().status_code == 200
        # The client must not wait for 5 bytes that never come: the server drops
        # the connection, which h11 reports as an incomplete body.
        with pytest.raises(h11.RemoteProtocolError, match=r"incomplete|without sending"):
            http.read_body()
    wait_for(
        lambda: "bytes short" in uvicorn_target.server.log_tail(200),
        timeout=WAIT_SECONDS,
        describe=lambda: f"Not logged. {uvicorn_target.server.describe()}",
    )


# Request smuggling.

SMUGGLING = {
    "content-length-and-chunked": (
        b"POST /text HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    ),
    "conflicting-content-length": (
        b"POST /text HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nabcd"
    ),
    "two-hosts": b"GET /text HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
}
REFUSED_BY = {
    ("uvicorn", "content-length-and-chunked"): "adapter",
    ("uvicorn", "conflicting-content-length"): "server",
    ("uvicorn", "two-hosts"): "server",
    ("gunicorn", "content-length-and-chunked"): "server",
    ("gunicorn", "conflicting-content-length"): "server",
    ("gunicorn", "two-hosts"): "server",
}
"""Which layer answers 400. h11 (uvicorn, hypercorn) passes Content-Length with
Transfer-Encoding on, so there the adapter is the one to refuse it."""


@pytest.mark.parametrize("attack", list(SMUGGLING))
@pytest.mark.parametrize("server_name", ["uvicorn", "gunicorn"])
def test_smuggling_is_refused_and_the_hidden_request_never_runs(
    request: pytest.FixtureRequest, server_name: str, attack: str
) -> None:
    target: Target = request.getfixturevalue(f"{server_name}_target")
    token = new_token()
    hidden = f"GET /smuggled?token={token} HTTP/1.1\r\nHost: x\r\n\r\n".encode("ascii")
    with socket.create_connection((target.server.host, target.server.port), timeout=5) as sock:
        sock.sendall(SMUGGLING[attack] + hidden)
        answer = b""
        while chunk := sock.recv(65536):  # the server closes after refusing
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400"), answer
    assert answer.count(b"HTTP/1.1 ") == 1, answer  # one answer, then the connection closed
    by_adapter = b"The request has" in answer
    assert by_adapter == (REFUSED_BY[server_name, attack] == "adapter"), answer
    # The hidden request reached no app (an answer to it would have come first).
    assert not target.marker(token, "smuggled").exists()
