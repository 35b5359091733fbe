"""``bridge.ASGIToWSGI`` behind real WSGI servers, each in its own subprocess.

Every test in the first part runs against each (server configuration, app) pair:
gunicorn's ``sync`` worker, gunicorn ``gthread`` with 8 threads, gunicorn
``--preload`` with two ``gthread`` workers, waitress with 8 threads, and the servers
legacy deployments keep: uWSGI (app loaded in the master, workers forked from it),
Apache with mod_wsgi in daemon mode (``mod_wsgi-express``) and granian's WSGI
interface, each with two worker processes. Each serves a Starlette app and a FastAPI
app (``tests/integration/apps``). One server runs per pair for the whole module. A
Quart app gets a smoke test per configuration; worker recycling, graceful reloads
and lifespan shutdown start servers of their own.

The test process and the apps talk through files in a temporary directory (see
``apps/_asgi_shared.py``), so a signal reaches the app whichever worker serves it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import signal
import sys
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h11
import httpx
import pytest

from tests.conftest import open_directory

from ._protocols import RunningServer, ServeFn
from ._wire import RawHTTP, wait_for
from .apps import _asgi_shared as shared

pytestmark = [
    pytest.mark.server,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the apps read /proc"),
]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
HTTP_TIMEOUT = 10.0
"""Seconds any HTTP request made with httpx may take."""
FIRST_EVENT_TIMEOUT = 5.0
"""Seconds to wait for the first server-sent event; the app holds the second for 10 s."""
MIB = 1024 * 1024


@dataclass(frozen=True)
class Config:
    """A WSGI server, its command-line arguments, and what it offers."""

    server: str
    args: tuple[str, ...]
    workers: int
    threads: int
    file_wrapper: bool = True
    """Whether the server puts a ``wsgi.file_wrapper`` in the environ."""
    chunked_input: str = "streamed"
    """How a chunked request body reaches the app: ``streamed`` (no CONTENT_LENGTH,
    read to the end), ``buffered`` (read whole first, then given a CONTENT_LENGTH) or
    ``dropped`` (no CONTENT_LENGTH and nothing to read: uWSGI's HTTP router)."""
    answers_errors: bool = True
    """Whether the server answers 500 when the app raises before the response starts
    (uWSGI logs the error and sends nothing)."""
    keepalive: bool = True
    """Whether the server keeps connections open (uWSGI's router, by default, not)."""

    @property
    def one_threaded_process(self) -> bool:
        """One process serving requests concurrently: a second request reaches it."""
        return self.workers == 1 and self.threads > 1


_GTHREAD = ("--worker-class", "gthread", "--threads", "8")
_TWO_BY_FOUR = ("--processes", "2", "--threads", "4")

CONFIGS: dict[str, Config] = {
    "gunicorn-sync": Config("gunicorn", ("--worker-class", "sync"), 1, 1),
    "gunicorn-gthread": Config("gunicorn", _GTHREAD, 1, 8),
    "gunicorn-preload": Config(
        "gunicorn",
        ("--preload", "--workers", "2", "--worker-class", "gthread"),
        2,
        1,
    ),
    "waitress": Config("waitress", ("--threads=8",), 1, 8, chunked_input="buffered"),
    "uwsgi": Config(
        "uwsgi",
        _TWO_BY_FOUR,
        2,
        4,
        chunked_input="dropped",
        answers_errors=False,
        keepalive=False,
    ),
    # mod_wsgi-express refuses bodies over 10 MiB by default.
    "mod_wsgi": Config(
        "mod_wsgi", (*_TWO_BY_FOUR, "--chunked-request", "--limit-request-body", "134217728"), 2, 4
    ),
    "granian-wsgi": Config(
        "granian", ("--workers", "2", "--blocking-threads", "4"), 2, 4, file_wrapper=False
    ),
}
"""Test id to server configuration."""

STOP_AND_RELOAD: dict[str, tuple[str, signal.Signals, tuple[str, ...]]] = {
    "gunicorn": ("gunicorn-preload", signal.SIGHUP, ("--max-requests", "20")),
    "uwsgi": ("uwsgi", signal.SIGHUP, ("--max-requests", "20", "--min-worker-lifetime", "0")),
    "mod_wsgi": ("mod_wsgi", signal.SIGUSR1, ("--maximum-requests", "20")),
    "granian": ("granian-wsgi", signal.SIGHUP, ()),
}
"""Server to (its configuration, the signal of a graceful reload, the options that
recycle a worker after 20 requests; granian has none)."""

APPS = {
    "starlette": "tests.integration.apps.starlette_app:wsgi_app",
    "fastapi": "tests.integration.apps.fastapi_app:wsgi_app",
}
QUART_APP = "tests.integration.apps.quart_app:wsgi_app"


# Fixtures.


@dataclass(frozen=True)
class Target:
    config: Config
    app: str
    server: RunningServer
    marker_dir: Path

    def raw(self, timeout: float = HTTP_TIMEOUT) -> RawHTTP:
        return RawHTTP(self.server.host, self.server.port, timeout=timeout)

    def marker(self, token: str, suffix: str) -> Path:
        return self.marker_dir / f"{token}.{suffix}"


@pytest.fixture(scope="module")
def marker_dir() -> Iterator[Path]:
    # Writable by mod_wsgi's daemon processes, which run as another user under root.
    with open_directory("asgi-markers-") as path:
        yield path


@pytest.fixture
def own_marker_dir() -> Iterator[Path]:
    """A marker directory for one test's own server."""
    with open_directory("asgi-markers-") as path:
        yield path


def _serve_target(
    serve: ServeFn, config_id: str, app: str, app_import: str, marker_dir: Path
) -> Iterator[Target]:
    config = CONFIGS[config_id]
    env = {shared.DIR_ENV: str(marker_dir)}
    with serve(config.server, app_import, extra_args=config.args, env=env) as running:
        yield Target(config, app, running, marker_dir)
        assert running.is_running(), f"The server died during the tests. {running.describe()}"


@pytest.fixture(
    scope="module",
    params=[(config, app) for config in CONFIGS for app in APPS],
    ids=[f"{config}-{app}" for config in CONFIGS for app in APPS],
)
def target(request: pytest.FixtureRequest, serve: ServeFn, marker_dir: Path) -> Iterator[Target]:
    config_id, app = request.param
    yield from _serve_target(serve, config_id, app, APPS[app], marker_dir)


@pytest.fixture(scope="module", params=list(CONFIGS))
def quart_target(
    request: pytest.FixtureRequest, serve: ServeFn, marker_dir: Path
) -> Iterator[Target]:
    yield from _serve_target(serve, request.param, "quart", QUART_APP, marker_dir)


@pytest.fixture
def client(target: Target) -> Iterator[httpx.Client]:
    if not target.config.keepalive:
        with _fresh_connections(target.server.url) as client:
            yield client
        return
    with httpx.Client(base_url=target.server.url, timeout=HTTP_TIMEOUT) as client:
        yield client


def _fresh_connections(base_url: str) -> httpx.Client:
    """A client that opens a new connection for every request."""
    limits = httpx.Limits(max_keepalive_connections=0)
    return httpx.Client(base_url=base_url, timeout=HTTP_TIMEOUT, limits=limits)


def _payload(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def _assert_own_state(document: Mapping[str, Any], app: str) -> None:
    """The lifespan state is in the response, set by startup in the serving process."""
    assert document["state"] == {
        "app": app,
        "value": shared.STATE_VALUE,
        "startup_pid": document["pid"],
    }, document


# Requests and responses.


def test_get_json(target: Target, client: httpx.Client) -> None:
    response = client.get("/json", params={"q": "a b", "n": "1"})

    assert response.status_code == 200, target.server.describe()
    assert response.headers["content-type"] == "application/json"
    document = response.json()
    assert document["app"] == target.app
    assert (document["method"], document["path"], document["query"]) == (
        "GET",
        "/json",
        "q=a+b&n=1",
    )
    _assert_own_state(document, target.app)


def test_form_post_with_file(target: Target, client: httpx.Client) -> None:
    upload = _payload(3 * MIB // 2, seed=1)  # many 64 KiB body messages

    response = client.post(
        "/form",
        data={"title": "héllo wörld", "count": "3"},
        files={"file": ("report 1.bin", upload, "application/octet-stream")},
    )

    assert response.status_code == 200, target.server.describe()
    assert response.json() == {
        "fields": {"title": "héllo wörld", "count": "3"},
        "files": {
            "file": {
                "filename": "report 1.bin",
                "content_type": "application/octet-stream",
                "size": len(upload),
                "sha256": hashlib.sha256(upload).hexdigest(),
            }
        },
    }


def test_upload_with_content_length(target: Target, client: httpx.Client) -> None:
    body = _payload(5 * MIB, seed=2)

    response = client.post("/upload", content=body)

    assert response.status_code == 200, target.server.describe()
    report = response.json()
    assert (report["size"], report["sha256"]) == (len(body), hashlib.sha256(body).hexdigest())
    assert report["content_length"] == str(len(body))
    assert report["chunks"] > 1, "The body did not stream into the app in pieces."


def test_upload_chunked(target: Target) -> None:
    body = _payload(5 * MIB, seed=3)
    piece = 256 * 1024
    if target.config.chunked_input == "dropped":
        # uWSGI answers before a body it drops is sent: the head and the end of an
        # empty chunked body go in one write.
        body = b""
    with target.raw() as http:
        http.request(
            "POST",
            "/upload",
            [("Transfer-Encoding", "chunked"), ("Content-Type", "application/octet-stream")],
            end=not body,
        )
        for start in range(0, len(body), piece):
            http.send(h11.Data(data=body[start : start + piece]))
        if body:
            http.send(h11.EndOfMessage())
        response = http.read_response()
        answer = http.read_body()

    assert response.status_code == 200, target.server.describe()
    report = json.loads(answer)
    if target.config.chunked_input == "dropped":
        # uWSGI's HTTP router passes the head on without the body (its chunked_read()
        # API is the only way to the body): the app sees an empty request.
        assert (report["size"], report["content_length"]) == (0, None), report
        return
    assert (report["size"], report["sha256"]) == (len(body), hashlib.sha256(body).hexdigest())
    assert report["input_terminated"] is True
    if target.config.chunked_input == "buffered":
        # waitress reads the whole chunked body first, then presents it as a plain one.
        assert report["content_length"] == str(len(body)), report
        assert report["transfer_encoding"] is None, report
    else:
        # The others stream it: no CONTENT_LENGTH, wsgi.input reads to the end.
        assert report["content_length"] is None, report
        assert report["transfer_encoding"] == "chunked", report


def _release(target: Target, token: str) -> None:
    """Let the app send its second event: by a second request when it reaches the same
    process while the stream is running, else by a file."""
    if target.config.one_threaded_process:
        with httpx.Client(base_url=target.server.url, timeout=HTTP_TIMEOUT) as other:
            assert other.post(f"/release/{token}").status_code == 200, target.server.describe()
    else:
        target.marker(token, "release").touch()


def test_server_sent_events_are_not_buffered(target: Target) -> None:
    # The app sends the first event, then holds the second until the test releases
    # it (for 10 s at most, then it sends "released=no"). The test only releases it
    # after reading the first event, so a buffered stream cannot pass.
    token = uuid.uuid4().hex
    with target.raw(timeout=FIRST_EVENT_TIMEOUT) as http:
        http.request("GET", f"/sse?token={token}", [("Accept", "text/event-stream")])
        http.send(h11.EndOfMessage())
        response = http.read_response()
        assert response.status_code == 200, target.server.describe()
        assert dict(response.headers)[b"content-type"].startswith(b"text/event-stream")
        first = http.read_body(until=b"\n\n")
        assert first.startswith(b"event: first\ndata: pid="), first
        _release(target, token)
        rest = http.read_body()

    assert rest == b"event: second\ndata: released=yes\n\n"


def test_background_task_runs_after_the_response(target: Target, client: httpx.Client) -> None:
    # The task waits until the test creates <token>.go: had the response waited for
    # the task, the POST would time out first. The server's thread waits for the task
    # in the iterable's close(), after the response went out, so the test reads the
    # markers directly: a one-thread server answers nothing else meanwhile.
    token = uuid.uuid4().hex

    response = client.post("/background", params={"token": token}, timeout=5.0)

    assert response.status_code == 200, target.server.describe()
    assert response.json() == {"queued": token}
    done = target.marker(token, "done")
    assert not done.exists()
    target.marker(token, "go").touch()
    wait_for(
        lambda: done.exists() and done.read_text("ascii").endswith("\n"),
        timeout=10.0,
        describe=lambda: f"No background task. {target.server.describe()}",
    )
    detail = done.read_text("ascii")
    assert detail.endswith(" go=yes\n"), detail
    # And the server goes on serving.
    assert client.get(f"/background/{token}", timeout=HTTP_TIMEOUT).json()["done"] is True


def test_lifespan_state_in_every_worker(target: Target) -> None:
    workers = target.config.workers
    pids = _workers_seen(target.server, workers, target.marker_dir, target.app)
    if workers > 1:
        assert target.server.pid not in pids, "The master process served a request."


@pytest.mark.parametrize("how", ["close", "reset"])
def test_client_disconnect_reaches_the_app(target: Target, client: httpx.Client, how: str) -> None:
    # /forever sends an event every 50 ms until it learns the client is gone, and
    # writes <token>.disconnect with how it learnt it. The server only notices when
    # one of its writes fails, which the next events make happen.
    token = uuid.uuid4().hex
    disconnect = target.marker(token, "disconnect")
    with target.raw() as http:
        http.request("GET", f"/forever?token={token}")
        http.send(h11.EndOfMessage())
        assert http.read_response().status_code == 200, target.server.describe()
        assert http.read_body(until=b"\n\n") == b"event: tick\ndata: 0\n\n"
        assert not disconnect.exists()
        if how == "reset":
            http.reset()

    wait_for(
        lambda: disconnect.exists() and disconnect.read_text("ascii").endswith("\n"),
        timeout=10.0,
        describe=lambda: f"The app did not see the disconnect. {target.server.describe()}",
    )
    first = disconnect.read_text("ascii").splitlines()[0]
    assert first in ("receive:http.disconnect", "send:ClientDisconnect"), first
    assert client.get("/json").status_code == 200
    assert target.server.is_running()


@pytest.mark.parametrize("path", ["/error", "/crash"], ids=["in-route", "before-start"])
def test_exception_is_a_bare_500(target: Target, client: httpx.Client, path: str) -> None:
    # /error raises in a route: Starlette's error middleware answers 500, then re-raises,
    # and the bridge raises it to the WSGI server from the iterable's close(), which logs
    # it (and may close the connection, as uvicorn does after such an error). /crash
    # raises before any response message, so the WSGI server answers.
    if target.config.answers_errors or path == "/error":
        response = client.get(path)
        assert response.status_code == 500, target.server.describe()
        for leak in ("Traceback", "RuntimeError", shared.SECRET):
            assert leak not in response.text
    else:
        # uWSGI logs "500" and closes the connection without a response.
        with pytest.raises(httpx.RemoteProtocolError):
            client.get(path)
    wait_for(
        lambda: shared.SECRET in target.server.log_tail(400),
        timeout=10.0,
        describe=lambda: f"The error was not logged. {target.server.describe()}",
    )
    with httpx.Client(base_url=target.server.url, timeout=HTTP_TIMEOUT) as fresh:
        assert fresh.get("/json").status_code == 200
    assert target.server.is_running()


# Large bodies in bounded memory, and files.

LARGE = 96 * MIB
BOUND_KIB = 48 * 1024
"""The most a 96 MiB transfer may add to the serving process's peak memory: what a
server buffers on its own (waitress up to 16 MiB of output) fits, while a process
holding the body (no back-pressure) would add close to 96 MiB."""


def _peak_kib(pid: int) -> int:
    """``VmHWM`` of process ``pid``: its peak resident memory since the app reset it."""
    for line in Path(f"/proc/{pid}/status").read_text("ascii").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError(f"No VmHWM for process {pid}.")


def test_a_refused_upload_behind_100_continue_is_never_waited_for(target: Target) -> None:
    # The client sends its head and waits. gunicorn, uWSGI and granian answer "100
    # Continue" and call the app; the app refuses without reading, so the bridge must
    # not read ahead of it (it would wait for a body the client never sends): the 401
    # comes with the body never sent.
    if target.config.server in ("waitress", "mod_wsgi"):
        pytest.skip(f"{target.config.server} reads the whole body before it calls the app")
    with target.raw(timeout=5.0) as http:
        head = [("Content-Length", "10"), ("Expect", "100-continue")]
        http.request("POST", "/refuse", head)
        event = http.next_event()
        while isinstance(event, h11.InformationalResponse):  # "100 Continue", or not
            event = http.next_event()
        assert isinstance(event, h11.Response), event
        assert event.status_code == 401, target.server.describe()


def test_large_upload_in_bounded_memory(target: Target, client: httpx.Client) -> None:
    def body() -> Iterator[bytes]:
        chunk = bytes(MIB)
        for _ in range(LARGE // MIB):
            yield chunk

    response = client.post("/upload", content=body(), headers={"Content-Length": str(LARGE)})

    assert response.status_code == 200, target.server.describe()
    report = response.json()
    assert report["size"] == LARGE, report
    growth = report["peak_kib"] - report["rss_before_kib"]
    assert growth < BOUND_KIB, f"The upload raised the peak by {growth} KiB. {report}"


STALL_SECONDS = 3.0
"""How long a client that reads nothing watches the app not finish its download."""


def _sent(path: Path) -> int:
    try:
        return int(path.read_text("ascii") or 0)
    except (OSError, ValueError):
        return 0


def test_large_download_in_bounded_memory(target: Target, client: httpx.Client) -> None:
    # The app produces 96 MiB as fast as send() takes it; only back-pressure from the
    # client's reads, through the server and the bridge, holds it back.
    token = uuid.uuid4().hex
    sent = target.marker(token, "sent")
    received = 0
    with client.stream("GET", "/download", params={"size": LARGE, "token": token}) as response:
        assert response.status_code == 200, target.server.describe()
        pid = int(response.headers["x-pid"])
        rss_before = int(response.headers["x-rss-before-kib"])
        # Nothing read yet: the app must stall short of the end (buffers fill up).
        with pytest.raises(AssertionError, match="Gave up"):
            wait_for(lambda: _sent(sent) >= LARGE, timeout=STALL_SECONDS, describe=str)
        assert _sent(sent) < LARGE
        for chunk in response.iter_bytes():
            received += len(chunk)
        growth = _peak_kib(pid) - rss_before

    assert received == LARGE
    assert growth < BOUND_KIB, f"The download raised worker {pid}'s peak by {growth} KiB."


def test_pathsend_uses_the_servers_file_wrapper(target: Target, client: httpx.Client) -> None:
    token = uuid.uuid4().hex
    content = _payload(2 * MIB + 17, seed=5)
    target.marker(token, "file").write_bytes(content)

    response = client.get("/file", params={"token": token})

    assert response.status_code == 200, target.server.describe()
    assert response.content == content
    used = target.marker(token, "file_wrapper").read_text("ascii").strip()
    if target.config.file_wrapper:
        assert used not in ("absent", "bridge._asgi_to_wsgi._FileIterator"), used
    else:
        assert used == "absent", f"{target.config.server} has a wsgi.file_wrapper now: {used}"


# Quart.


def test_quart_smoke(quart_target: Target) -> None:
    upload = _payload(300 * 1024, seed=4)
    token = uuid.uuid4().hex
    with _fresh_connections(quart_target.server.url) as client:
        document = client.get("/json").json()
        form = client.post(
            "/form",
            data={"title": "héllo"},
            files={"file": ("q.bin", upload, "application/octet-stream")},
        )
    with quart_target.raw(timeout=FIRST_EVENT_TIMEOUT) as http:
        http.request("GET", f"/sse?token={token}")
        http.send(h11.EndOfMessage())
        assert http.read_response().status_code == 200, quart_target.server.describe()
        assert http.read_body(until=b"\n\n").startswith(b"event: first\n")
        quart_target.marker(token, "release").touch()
        rest = http.read_body()

    assert document["path"] == "/json"
    _assert_own_state(document, "quart")
    assert form.status_code == 200, quart_target.server.describe()
    assert form.json() == {
        "fields": {"title": "héllo"},
        "files": {
            "file": {
                "filename": "q.bin",
                "size": len(upload),
                "sha256": hashlib.sha256(upload).hexdigest(),
            }
        },
    }
    assert rest == b"event: second\ndata: released=yes\n\n"


# Servers of their own: worker recycling, graceful reloads and shutdown.


def _lifespan_records(directory: Path, phase: str) -> dict[int, str]:
    """What lifespan ``phase`` (startup or shutdown) wrote, by process."""
    return {
        int(path.name.partition("-")[2]): path.read_text("ascii")
        for path in directory.glob(f"{phase}-*")
    }


def _workers_seen(
    server: RunningServer, count: int, directory: Path, app: str = "starlette"
) -> set[int]:
    """The pids of ``count`` workers, asked with fresh connections (200 requests at most).

    Each ``/json`` answer carries the serving worker's own lifespan state. A server may
    keep handing sequential requests to one worker (mod_wsgi's daemons take turns by
    who waits first; a uWSGI worker that wins the accept lock wins it again): then
    streams held open at once, one more than ``count - 1`` workers' threads can take,
    must reach the others (not under gunicorn's gthread worker, which takes
    connections while its threads are busy: there the requests alone must do).
    """
    pids: set[int] = set()
    with _fresh_connections(server.url) as client:
        for _ in range(200):
            response = client.get("/json")
            assert response.status_code == 200, server.describe()
            document = response.json()
            _assert_own_state(document, app)
            pids.add(document["pid"])
            if len(pids) == count:
                return pids
    threads = max(config.threads for config in CONFIGS.values() if config.server == server.name)
    tokens = [uuid.uuid4().hex for _ in range((count - 1) * threads + 1)]
    with contextlib.ExitStack() as streams:
        for token in tokens:
            http = streams.enter_context(RawHTTP(server.host, server.port))
            http.request("GET", f"/sse?token={token}")
            http.send(h11.EndOfMessage())
            assert http.read_response().status_code == 200, server.describe()
            first = http.read_body(until=b"\n\n").decode("ascii")
            pids.add(int(first.rpartition("pid=")[2]))
        for token in tokens:
            (directory / f"{token}.release").touch()
    assert len(pids) == count, f"Saw workers {sorted(pids)}. {server.describe()}"
    return pids


def _try_json(server: RunningServer) -> dict[str, Any] | None:
    """``GET /json`` on a fresh connection; None while the server cannot answer it."""
    try:
        with _fresh_connections(server.url) as client:
            response = client.get("/json")
            document: dict[str, Any] | None = (
                response.json() if response.status_code == 200 else None
            )
    except (httpx.HTTPError, ValueError):
        return None
    return document


def _graceful_stop_args(server: str, directory: Path) -> list[str]:
    # uWSGI's SIGTERM (--die-on-term), SIGINT and SIGQUIT stop it brutally: a worker
    # still finishing a request at that moment runs no exit hook at all. Its graceful
    # stop is the master FIFO's "q".
    return ["--master-fifo", str(directory / "uwsgi.fifo")] if server == "uwsgi" else []


def _stop_gracefully(server: RunningServer, directory: Path) -> None:
    """Stop ``server`` the graceful way (SIGTERM, or uWSGI's FIFO) and wait until it exits."""
    fifo = directory / "uwsgi.fifo"
    if server.name == "uwsgi":
        with fifo.open("wb") as control:
            control.write(b"q")
    else:
        os.kill(server.pid, signal.SIGTERM)
    wait_for(lambda: not server.is_running(), timeout=30.0, describe=server.describe)


def _assert_once_each(directory: Path, pids: set[int], phase: str) -> None:
    records = _lifespan_records(directory, phase)
    missing = sorted(pid for pid in pids if records.get(pid) != "starlette\n")
    assert not missing, f"Lifespan {phase} did not run exactly once in {missing}: {records}"


@pytest.mark.parametrize("server", ["gunicorn", "uwsgi", "mod_wsgi"])
def test_max_requests_recycles_workers(serve: ServeFn, own_marker_dir: Path, server: str) -> None:
    # Each worker serves 20 requests and exits; each new one starts its own event
    # loop and runs lifespan startup before its first request.
    config_id, _, recycle = STOP_AND_RELOAD[server]
    config = CONFIGS[config_id]
    env = {shared.DIR_ENV: str(own_marker_dir)}
    args = [*config.args, *recycle, *_graceful_stop_args(server, own_marker_dir)]
    with serve(server, APPS["starlette"], extra_args=args, env=env) as running:
        with _fresh_connections(running.url) as client:
            responses = [client.get("/json") for _ in range(60)]
        statuses = [response.status_code for response in responses]
        assert statuses == [200] * 60, running.describe()
        documents = [response.json() for response in responses]
        for document in documents:
            _assert_own_state(document, "starlette")
        pids = {document["pid"] for document in documents}
        assert len(pids) >= 3, (
            f"60 requests were served by {len(pids)} workers. {running.describe()}"
        )
        _assert_once_each(own_marker_dir, pids, "startup")
        _stop_gracefully(running, own_marker_dir)

    # Every recycled worker ran lifespan shutdown on its way out, once.
    _assert_once_each(own_marker_dir, pids, "shutdown")


@pytest.mark.parametrize("server", list(STOP_AND_RELOAD))
def test_graceful_reload_runs_shutdown_then_startup(
    serve: ServeFn, own_marker_dir: Path, server: str
) -> None:
    # gunicorn and uWSGI: SIGHUP; granian: SIGHUP (respawn); Apache: SIGUSR1, which
    # is what apachectl graceful sends.
    config_id, reload, _ = STOP_AND_RELOAD[server]
    config = CONFIGS[config_id]
    env = {shared.DIR_ENV: str(own_marker_dir)}
    args = [*config.args, *_graceful_stop_args(server, own_marker_dir)]
    with serve(server, APPS["starlette"], extra_args=args, env=env) as running:
        old = _workers_seen(running, config.workers, own_marker_dir)
        os.kill(running.pid, reload)
        wait_for(
            lambda: set(_lifespan_records(own_marker_dir, "shutdown")) >= old,
            timeout=30.0,
            describe=lambda: (
                f"Old workers' shutdown: {_lifespan_records(own_marker_dir, 'shutdown')}. "
                f"{running.describe()}"
            ),
        )
        _assert_once_each(own_marker_dir, old, "shutdown")
        new: set[int] = set()

        def new_workers_answer() -> bool:
            document = _try_json(running)
            if document is not None and document["pid"] not in old:
                _assert_own_state(document, "starlette")
                new.add(document["pid"])
            return len(new) == config.workers

        wait_for(new_workers_answer, timeout=30.0, describe=running.describe)
        _assert_once_each(own_marker_dir, new, "startup")
        assert running.is_running(), running.describe()
        _stop_gracefully(running, own_marker_dir)

    _assert_once_each(own_marker_dir, old | new, "shutdown")


@pytest.mark.parametrize(
    ("config_id", "extra"),
    [
        *(
            (config_id, ())
            for config_id in ("gunicorn-sync", "gunicorn-gthread", "gunicorn-preload")
        ),
        ("uwsgi", ()),
        # No Python finalization in the worker: only uwsgi.atexit is left.
        ("uwsgi", ("--skip-atexit-teardown",)),
        ("mod_wsgi", ()),
        ("granian-wsgi", ()),
    ],
    ids=[
        "gunicorn-sync",
        "gunicorn-gthread",
        "gunicorn-preload",
        "uwsgi",
        "uwsgi-skip-atexit-teardown",
        "mod_wsgi",
        "granian-wsgi",
    ],
)
def test_lifespan_shutdown_runs_on_a_graceful_stop(
    serve: ServeFn, own_marker_dir: Path, config_id: str, extra: tuple[str, ...]
) -> None:
    config = CONFIGS[config_id]
    env = {shared.DIR_ENV: str(own_marker_dir)}
    args = [*config.args, *extra, *_graceful_stop_args(config.server, own_marker_dir)]
    with serve(config.server, APPS["starlette"], extra_args=args, env=env) as server:
        pids = _workers_seen(server, config.workers, own_marker_dir)
        _assert_once_each(own_marker_dir, pids, "startup")
        assert not _lifespan_records(own_marker_dir, "shutdown")
        master = server.pid
        _stop_gracefully(server, own_marker_dir)

    _assert_once_each(own_marker_dir, pids, "shutdown")
    assert master not in _lifespan_records(own_marker_dir, "startup"), "The master ran lifespan."


def test_uwsgi_harakiri_does_not_hang_the_successor(serve: ServeFn, own_marker_dir: Path) -> None:
    # --harakiri 2: uWSGI kills a worker whose request runs longer than 2 s (SIGKILL:
    # no shutdown can run). The worker it forks in its place starts its own loop.
    env = {shared.DIR_ENV: str(own_marker_dir)}
    args = ["--processes", "1", "--threads", "2", "--harakiri", "2"]
    with serve("uwsgi", APPS["starlette"], extra_args=args, env=env) as running:
        (first,) = _workers_seen(running, 1, own_marker_dir)
        token = uuid.uuid4().hex
        with RawHTTP(running.host, running.port) as http:
            http.request("GET", f"/forever?token={token}")
            http.send(h11.EndOfMessage())
            assert http.read_response().status_code == 200, running.describe()
            with contextlib.suppress(h11.RemoteProtocolError, OSError):
                http.read_body()  # the stream runs until harakiri kills its worker
        assert "HARAKIRI" in running.log_tail(400), running.describe()

        second: list[int] = []

        def successor_answers() -> bool:
            document = _try_json(running)
            if document is not None and document["pid"] != first:
                _assert_own_state(document, "starlette")
                second.append(document["pid"])
            return bool(second)

        wait_for(successor_answers, timeout=30.0, describe=running.describe)
        _assert_once_each(own_marker_dir, {first, second[0]}, "startup")

    _assert_once_each(own_marker_dir, {second[0]}, "shutdown")
