"""``bridge.ASGIToWSGI`` behind real WSGI servers, each in its own subprocess.

Every test in the first part runs against each (server configuration, app) pair:
gunicorn's ``sync`` worker, gunicorn ``gthread`` with 8 threads, gunicorn
``--preload`` with two ``gthread`` workers, and waitress with 8 threads, each
serving a Starlette app and a FastAPI app (``tests/integration/apps``). One server
runs per pair for the whole module. A Quart app gets a smoke test per configuration;
worker recycling and lifespan shutdown start servers of their own.

The test process and the apps talk through files in a temporary directory (see
``apps/_asgi_shared.py``), so a signal reaches the app whichever worker serves it.
"""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h11
import httpx
import pytest

from ._protocols import RunningServer, ServeFn
from ._wire import RawHTTP, wait_for
from .apps import _asgi_shared as shared

pytestmark = pytest.mark.server

PROJECT_ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
HTTP_TIMEOUT = 10.0
"""Seconds any HTTP request made with httpx may take."""
FIRST_EVENT_TIMEOUT = 5.0
"""Seconds to wait for the first server-sent event; the app holds the second for 10 s."""
MIB = 1024 * 1024


@dataclass(frozen=True)
class Config:
    """A WSGI server and its command-line arguments."""

    server: str
    args: tuple[str, ...]
    workers: int
    threads: int

    @property
    def one_threaded_process(self) -> bool:
        """One process serving requests concurrently: a second request reaches it."""
        return self.workers == 1 and self.threads > 1


_GTHREAD = ("--worker-class", "gthread", "--threads", "8")

CONFIGS: dict[str, Config] = {
    "gunicorn-sync": Config("gunicorn", ("--worker-class", "sync"), 1, 1),
    "gunicorn-gthread": Config("gunicorn", _GTHREAD, 1, 8),
    "gunicorn-preload": Config(
        "gunicorn",
        ("--preload", "--workers", "2", "--worker-class", "gthread"),
        2,
        1,
    ),
    "waitress": Config("waitress", ("--threads=8",), 1, 8),
}
"""Test id to server configuration."""

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
def marker_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("asgi-markers")


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
    with target.raw() as http:
        http.request(
            "POST",
            "/upload",
            [("Transfer-Encoding", "chunked"), ("Content-Type", "application/octet-stream")],
        )
        for start in range(0, len(body), piece):
            http.send(h11.Data(data=body[start : start + piece]))
        http.send(h11.EndOfMessage())
        response = http.read_response()
        answer = http.read_body()

    assert response.status_code == 200, target.server.describe()
    report = json.loads(answer)
    assert (report["size"], report["sha256"]) == (len(body), hashlib.sha256(body).hexdigest())
    assert report["input_terminated"] is True
    if target.config.server == "waitress":
        # waitress reads the whole chunked body first, then presents it as a plain one.
        assert report["content_length"] == str(len(body)), report
        assert report["transfer_encoding"] is None, report
    else:
        # gunicorn streams it: no CONTENT_LENGTH, wsgi.input reads to the end.
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
    # New connections until every worker has answered (at most 200 requests).
    documents: dict[int, dict[str, Any]] = {}
    with _fresh_connections(target.server.url) as client:
        for _ in range(200):
            response = client.get("/json")
            assert response.status_code == 200, target.server.describe()
            document = response.json()
            _assert_own_state(document, target.app)
            documents[document["pid"]] = document
            if len(documents) == target.config.workers:
                break

    assert len(documents) == target.config.workers, sorted(documents)
    if target.config.server == "gunicorn":
        assert target.server.pid not in documents, "The gunicorn master served a request."


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
    response = client.get(path)

    assert response.status_code == 500, target.server.describe()
    for leak in ("Traceback", "RuntimeError", shared.SECRET):
        assert leak not in response.text
    wait_for(
        lambda: shared.SECRET in target.server.log_tail(400),
        timeout=10.0,
        describe=lambda: f"The error was not logged. {target.server.describe()}",
    )
    with httpx.Client(base_url=target.server.url, timeout=HTTP_TIMEOUT) as fresh:
        assert fresh.get("/json").status_code == 200
    assert target.server.is_running()


# Quart.


def test_quart_smoke(quart_target: Target) -> None:
    upload = _payload(300 * 1024, seed=4)
    token = uuid.uuid4().hex
    with httpx.Client(base_url=quart_target.server.url, timeout=HTTP_TIMEOUT) as client:
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


# Servers of their own: worker recycling and shutdown.


def test_max_requests_recycles_workers(serve: ServeFn, tmp_path: Path) -> None:
    # Each worker serves 20 requests and exits; each new one starts its own event
    # loop and runs lifespan startup before its first request.
    env = {shared.DIR_ENV: str(tmp_path)}
    args = [*_GTHREAD, "--max-requests", "20"]
    with serve("gunicorn", APPS["starlette"], extra_args=args, env=env) as server:
        with _fresh_connections(server.url) as client:
            responses = [client.get("/json") for _ in range(60)]
        statuses = [response.status_code for response in responses]
        assert statuses == [200] * 60, server.describe()
        documents = [response.json() for response in responses]
        for document in documents:
            _assert_own_state(document, "starlette")
        pids = {document["pid"] for document in documents}
        assert len(pids) >= 3, (
            f"60 requests were served by {len(pids)} workers. {server.describe()}"
        )

    # Every recycled worker ran lifespan shutdown on its way out.
    shutdowns = {path.name for path in tmp_path.glob("shutdown-*")}
    assert {f"shutdown-{pid}" for pid in pids} <= shutdowns, sorted(shutdowns)


@pytest.mark.parametrize("config_id", ["gunicorn-sync", "gunicorn-gthread", "gunicorn-preload"])
def test_lifespan_shutdown_runs_on_sigterm(serve: ServeFn, tmp_path: Path, config_id: str) -> None:
    config = CONFIGS[config_id]
    env = {shared.DIR_ENV: str(tmp_path)}
    pids: set[int] = set()
    with serve("gunicorn", APPS["starlette"], extra_args=config.args, env=env) as server:
        with _fresh_connections(server.url) as client:
            for _ in range(200):
                pids.add(client.get("/json").json()["pid"])
                if len(pids) == config.workers:
                    break
        assert len(pids) == config.workers, server.describe()
        assert not list(tmp_path.glob("shutdown-*"))
        master = server.pid

    # The ``with`` block sent SIGTERM and waited for gunicorn to exit.
    for pid in pids:
        marker = tmp_path / f"shutdown-{pid}"
        assert marker.exists(), f"No lifespan shutdown in worker {pid}."
        assert marker.read_text("ascii") == "starlette\n"
    assert not (tmp_path / f"shutdown-{master}").exists(), "The master ran lifespan."
