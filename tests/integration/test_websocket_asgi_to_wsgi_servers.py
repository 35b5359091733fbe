"""A FastAPI app's WebSocket routes under real WSGI servers, through ``ASGIToWSGI``.

Each server configuration runs once for the module: gunicorn's sync worker,
gunicorn gthread with 8 threads, and werkzeug's threaded development server, all
serving ``tests/integration/apps/fastapi_websocket_app.py``; waitress and granian's
WSGI interface, which hand over no socket, answer an upgrade as plain HTTP. The client is the
``websockets`` library, or a raw wsproto client where a test needs the bytes on the
wire. Tests that need a one-thread server start their own.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Subprotocol
from wsproto.events import AcceptConnection, CloseConnection, TextMessage

from tests.websocket_a2w import RawClient

from ._protocols import RunningServer, ServeFn
from ._wire import wait_for
from .apps import _asgi_shared as shared
from .apps.fastapi_websocket_app import DENIAL_BODY

pytestmark = pytest.mark.server

APP = "tests.integration.apps.fastapi_websocket_app:wsgi_app"
WERKZEUG = "tests.integration.werkzeug_server"
TIMEOUT = 10.0
"""Seconds any connection, message or wait may take."""


@dataclass(frozen=True)
class Config:
    server: str
    args: tuple[str, ...]
    concurrent: bool
    """Whether one process serves several connections at once."""


CONFIGS = {
    "gunicorn-sync": Config("gunicorn", ("--worker-class", "sync"), False),
    "gunicorn-gthread": Config("gunicorn", ("--worker-class", "gthread", "--threads", "8"), True),
    "werkzeug": Config(WERKZEUG, ("--threaded",), True),
}
ONE_THREAD = {
    "gunicorn-sync": CONFIGS["gunicorn-sync"],
    "gunicorn-gthread": Config("gunicorn", ("--worker-class", "gthread", "--threads", "1"), False),
    "werkzeug": Config(WERKZEUG, (), False),
}
"""Servers that serve one connection at a time: a stuck WSGI thread would show."""
NO_SOCKET = {
    "waitress": Config("waitress", (), True),
    "granian-wsgi": Config("granian", (), True),
}
"""Servers that hand the app no socket: an upgrade request is plain HTTP there."""

ERROR_MARKS = ("Traceback", "[ERROR]", "Error handling request", "Error on request", "Exception")


@dataclass(frozen=True)
class Target:
    config: Config
    server: RunningServer
    marker_dir: Path

    def url(self, path: str) -> str:
        return f"ws://{self.server.host}:{self.server.port}{path}"

    def connect(self, path: str = "/ws/echo", subprotocols: Sequence[str] = ()) -> ClientConnection:
        return connect(
            self.url(path),
            subprotocols=[Subprotocol(name) for name in subprotocols] or None,
            proxy=None,
            open_timeout=TIMEOUT,
            close_timeout=TIMEOUT,
        )

    def marker(self, token: str) -> Path:
        return self.marker_dir / f"{token}.disconnect"

    def log_size(self) -> int:
        return self.server.log_path.stat().st_size

    def log_since(self, offset: int) -> str:
        with self.server.log_path.open("rb") as log:
            log.seek(offset)
            return log.read().decode("utf-8", "replace")


@pytest.fixture(scope="module")
def marker_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ws-markers")


def _serve(serve: ServeFn, config: Config, marker_dir: Path) -> Iterator[Target]:
    env = {shared.DIR_ENV: str(marker_dir)}
    with serve(config.server, APP, extra_args=config.args, env=env) as running:
        yield Target(config, running, marker_dir)
        assert running.is_running(), f"The server died during the tests. {running.describe()}"


@pytest.fixture(scope="module", params=list(CONFIGS))
def target(request: pytest.FixtureRequest, serve: ServeFn, marker_dir: Path) -> Iterator[Target]:
    yield from _serve(serve, CONFIGS[request.param], marker_dir)


def recorded_disconnect(target: Target, token: str) -> str:
    marker = target.marker(token)
    wait_for(
        lambda: marker.exists() and marker.read_text("utf-8").endswith("\n"),
        timeout=TIMEOUT,
        describe=lambda: f"The app saw no disconnect. {target.server.describe()}",
    )
    return marker.read_text("utf-8").strip()


# Messages.


def test_text_binary_and_a_300_kb_message(target: Target) -> None:
    big = bytes(range(256)) * 1200  # 300 KiB
    with target.connect() as ws:
        ws.send("héllo")
        assert ws.recv(TIMEOUT) == "héllo"
        ws.send(b"\x00\x01\xff")
        assert ws.recv(TIMEOUT) == b"\x00\x01\xff"
        ws.send(big)
        assert ws.recv(TIMEOUT) == big
        ws.send("x" * 300_000)
        assert ws.recv(TIMEOUT) == "x" * 300_000
    assert ws.close_code == 1000


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [(["chat.v1", "chat.v2"], "chat.v2"), (["chat.v1"], "chat.v1"), (["other"], None)],
)
def test_subprotocol_negotiation(target: Target, offered: list[str], chosen: str | None) -> None:
    with target.connect(subprotocols=offered) as ws:
        assert ws.subprotocol == chosen


def test_lifespan_state_in_the_websocket_scope(target: Target) -> None:
    with target.connect() as ws:
        ws.send("state")
        state = json.loads(ws.recv(TIMEOUT))
    assert state["value"] == shared.STATE_VALUE


# Closing.


def test_a_server_side_close_with_code_and_reason(target: Target) -> None:
    with target.connect() as ws:
        ws.send("close:4000:bye from the app")
        with pytest.raises(ConnectionClosed):
            ws.recv(TIMEOUT)
    assert (ws.close_code, ws.close_reason) == (4000, "bye from the app")


def test_a_client_close_reaches_the_app_with_its_code(target: Target) -> None:
    token = uuid.uuid4().hex
    with target.connect(f"/ws/echo?token={token}") as ws:
        ws.send("hi")
        assert ws.recv(TIMEOUT) == "hi"
        ws.close(4001, "client leaves")
    assert recorded_disconnect(target, token) == "4001 client leaves"


# Refusals and errors.


def test_a_close_before_accept_is_a_403(target: Target) -> None:
    with pytest.raises(InvalidStatus) as refused:
        target.connect("/ws/reject")
    assert refused.value.response.status_code == 403


def test_a_denial_response_reaches_the_client(target: Target) -> None:
    with pytest.raises(InvalidStatus) as refused:
        target.connect("/ws/deny")
    response = refused.value.response
    assert response.status_code == 401
    assert response.headers["x-denied"] == "yes"
    assert response.body == DENIAL_BODY.encode()


def test_an_exception_before_accept_is_a_500(target: Target) -> None:
    with pytest.raises(InvalidStatus) as refused:
        target.connect("/ws/crash")
    assert refused.value.response.status_code == 500
    assert shared.SECRET.encode() not in (refused.value.response.body or b"")
    wait_for(
        lambda: shared.SECRET in target.server.log_tail(400),
        timeout=TIMEOUT,
        describe=lambda: f"The error was not logged. {target.server.describe()}",
    )


def test_an_exception_after_accept_closes_1011_and_is_logged(target: Target) -> None:
    offset = target.log_size()
    with target.connect() as ws:
        ws.send("crash")
        with pytest.raises(ConnectionClosed):
            ws.recv(TIMEOUT)
    assert ws.close_code == 1011
    wait_for(
        lambda: shared.SECRET in target.log_since(offset),
        timeout=TIMEOUT,
        describe=lambda: f"The error was not logged. {target.server.describe()}",
    )
    with target.connect() as ws:  # and the server goes on
        ws.send("after")
        assert ws.recv(TIMEOUT) == "after"


# Concurrency and the WSGI thread.


def test_six_concurrent_websockets(target: Target) -> None:
    if not target.config.concurrent:
        pytest.skip("gunicorn's sync worker serves one connection at a time")
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(target.connect()) for _ in range(6)]
        for round_number in range(3):
            for index, ws in enumerate(sockets):
                ws.send(f"{index}:{round_number}")
            for index, ws in enumerate(sockets):
                assert ws.recv(TIMEOUT) == f"{index}:{round_number}"


@pytest.fixture(scope="module", params=list(ONE_THREAD))
def single(request: pytest.FixtureRequest, serve: ServeFn, marker_dir: Path) -> Iterator[Target]:
    """A server with one WSGI thread: the next request waits for the previous to end."""
    yield from _serve(serve, ONE_THREAD[request.param], marker_dir)


def assert_thread_free_and_no_error(target: Target, offset: int) -> None:
    """A plain request is answered (so the WSGI thread is free, and whatever the server
    did with the previous connection is done, logs included), and nothing was logged
    as an error since ``offset``."""
    answer = httpx.get(f"http://{target.server.host}:{target.server.port}/", timeout=TIMEOUT)
    assert answer.text == "ok\n", target.server.describe()
    log = target.log_since(offset)
    assert not [mark for mark in ERROR_MARKS if mark in log], log


def close_and_read_to_end(target: Target, closer: str) -> None:
    """A WebSocket session closed by ``closer``; then the server must write nothing
    more (no status line of its own) and close the connection instead of waiting for
    another request on it."""
    with socket.create_connection((target.server.host, target.server.port), TIMEOUT) as sock:
        client = RawClient(sock)
        assert isinstance(client.open("/ws/echo"), AcceptConnection)
        client.send(TextMessage("echo me"))
        assert client.message() == "echo me"
        if closer == "client":
            client.send(CloseConnection(1000))
            assert client.closed().code == 1000
        else:
            client.send(TextMessage("close:4000:app leaves"))
            close = client.closed()
            assert (close.code, close.reason) == (4000, "app leaves")
            client.send(close.response())
        assert client.read_to_end() == b"", "the server wrote after the WebSocket"


def test_the_server_ends_the_connection_after_the_websocket(target: Target) -> None:
    close_and_read_to_end(target, "client")


@pytest.mark.parametrize("closer", ["client", "app"])
def test_a_closed_websocket_is_handed_back_cleanly(single: Target, closer: str) -> None:
    offset = single.log_size()
    close_and_read_to_end(single, closer)
    assert_thread_free_and_no_error(single, offset)


def test_an_abrupt_client_frees_the_wsgi_thread(single: Target) -> None:
    offset = single.log_size()
    token = uuid.uuid4().hex
    with socket.create_connection((single.server.host, single.server.port), TIMEOUT) as sock:
        client = RawClient(sock)
        assert isinstance(client.open(f"/ws/echo?token={token}"), AcceptConnection)
        client.send(TextMessage("still here"))
        assert client.message() == "still here"
        # A reset on close, and no close frame.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    assert recorded_disconnect(single, token) == "1006"
    assert_thread_free_and_no_error(single, offset)


def test_a_client_that_half_closes_without_a_close_frame(single: Target) -> None:
    offset = single.log_size()
    token = uuid.uuid4().hex
    with socket.create_connection((single.server.host, single.server.port), TIMEOUT) as sock:
        client = RawClient(sock)
        assert isinstance(client.open(f"/ws/echo?token={token}"), AcceptConnection)
        sock.shutdown(socket.SHUT_WR)  # FIN, no close frame
        assert client.read_to_end() == b""
    assert recorded_disconnect(single, token) == "1006"
    assert_thread_free_and_no_error(single, offset)


def test_an_exception_after_accept_is_logged_once_by_the_server(single: Target) -> None:
    offset = single.log_size()
    with single.connect() as ws:
        ws.send("crash")
        with pytest.raises(ConnectionClosed):
            ws.recv(TIMEOUT)
    assert ws.close_code == 1011
    httpx.get(f"http://{single.server.host}:{single.server.port}/", timeout=TIMEOUT)
    log = single.log_since(offset)
    # Raised to the server once the client has its close: the server logs it, once.
    assert log.count(f"RuntimeError: {shared.SECRET}") == 1, log


@pytest.mark.parametrize("name", list(NO_SOCKET))
def test_without_a_socket_an_upgrade_is_answered_as_plain_http(
    serve: ServeFn, marker_dir: Path, name: str
) -> None:
    with contextlib.contextmanager(_serve)(serve, NO_SOCKET[name], marker_dir) as target:
        # The app gets an http scope: FastAPI has no http route at /ws/echo.
        with pytest.raises(InvalidStatus) as refused:
            target.connect("/ws/echo").close()
        assert refused.value.response.status_code == 404
        answer = httpx.get(target.server.url, timeout=TIMEOUT)
        assert answer.status_code == 200, target.server.describe()
        log = target.log_since(0)
        assert not any(mark in log for mark in ERROR_MARKS), target.server.describe(200)
