"""A WSGI app's WebSockets behind real ASGI servers, through ``bridge.WSGIToASGI``.

flask-sock routes (``apps/flask_sock_app.py``) under uvicorn (its default WebSocket
implementation and wsproto), hypercorn's asyncio worker, hypercorn's trio worker and
granian's ASGI interface, with the ``websockets`` library as the client; Flask-SocketIO in
``threading`` mode with python-socketio's client on the websocket transport; many
sockets at once beside plain HTTP; a server shutting down; and a ``Mount``. Every
wait is bounded.
"""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import socket
import struct
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import socketio
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Subprotocol

from ._protocols import RunningServer, ServeFn
from ._wire import SOCKET_TIMEOUT, wait_for

pytestmark = pytest.mark.server

SERVERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "uvicorn": ("uvicorn", ("--loop", "asyncio")),
    "uvicorn-wsproto": ("uvicorn", ("--loop", "asyncio", "--ws", "wsproto")),
    "hypercorn-asyncio": ("hypercorn", ("--worker-class", "asyncio")),
    "hypercorn-trio": ("hypercorn", ("--worker-class", "trio")),
    "granian": ("granian", ("--interface", "asgi")),
}
FLASK_SOCK = "tests.integration.apps.flask_sock_app"
OPEN_AT_ONCE = 80


@pytest.fixture(scope="module", params=list(SERVERS), ids=list(SERVERS))
def server(request: pytest.FixtureRequest, serve: ServeFn) -> Iterator[RunningServer]:
    name, extra_args = SERVERS[request.param]
    with serve(name, f"{FLASK_SOCK}:app", extra_args=extra_args) as running:
        yield running
        assert running.is_running(), f"The server died during the tests. {running.describe()}"
    # Sessions that end, even abruptly, are no errors: nothing to log.
    log = running.log_path.read_text("utf-8", errors="replace")
    assert "Traceback" not in log and "ERROR" not in log, running.describe(200)


def ws_url(server: RunningServer, path: str) -> str:
    return f"ws://{server.host}:{server.port}{path}"


def open_socket(
    server: RunningServer, path: str, subprotocols: list[str] | None = None
) -> ClientConnection:
    return connect(
        ws_url(server, path),
        open_timeout=SOCKET_TIMEOUT,
        subprotocols=None if subprotocols is None else [Subprotocol(s) for s in subprotocols],
    )


def stats(server: RunningServer) -> dict[str, Any]:
    response = httpx.get(f"{server.url}/stats", timeout=SOCKET_TIMEOUT)
    assert response.status_code == 200, server.describe()
    result: dict[str, Any] = response.json()
    return result


def test_echo_text_binary_and_a_large_message(server: RunningServer) -> None:
    large = os.urandom(300 * 1024)
    with open_socket(server, "/echo") as ws:
        ws.send("héllo")
        assert ws.recv(timeout=SOCKET_TIMEOUT) == "héllo"
        ws.send(b"\x00\x01\xfe\xff")
        assert ws.recv(timeout=SOCKET_TIMEOUT) == b"\x00\x01\xfe\xff"
        ws.send(large)
        assert ws.recv(timeout=SOCKET_TIMEOUT) == large


def test_subprotocol_negotiation(server: RunningServer) -> None:
    with open_socket(server, "/echo", subprotocols=["unknown", "chat.v1"]) as ws:
        assert ws.subprotocol == "chat.v1"
    with open_socket(server, "/echo") as ws:
        assert ws.subprotocol is None


def test_server_side_close_with_code_and_reason(server: RunningServer) -> None:
    with open_socket(server, "/echo") as ws:
        ws.send("close 4001 see you")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=SOCKET_TIMEOUT)
    assert closed.value.rcvd is not None, server.describe()
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4001, "see you")


def test_client_close_with_code_and_reason_reaches_the_handler(server: RunningServer) -> None:
    token = uuid.uuid4().hex
    with open_socket(server, f"/hold/{token}") as ws:
        ws.close(4002, "client says bye")
    wait_for(
        lambda: token in stats(server)["endings"],
        timeout=10.0,
        describe=lambda: f"The handler never saw the close. {server.describe()}",
    )
    if server.name == "hypercorn":
        # Hypercorn reports every close by the client as 1006 (pgjones/hypercorn#127),
        # which the bridge passes on as a connection that ended without a close frame.
        assert stats(server)["endings"][token] == [1005, None]
    elif server.name == "granian":
        # Granian's websocket.disconnect has the client's code but no reason (the
        # key came with ASGI 2.5): the bridge passes on what it gets.
        assert stats(server)["endings"][token] == [4002, ""]
    else:
        assert stats(server)["endings"][token] == [4002, "client says bye"]


def _handshake_raw(server: RunningServer, path: str) -> socket.socket:
    sock = socket.create_connection((server.host, server.port), timeout=SOCKET_TIMEOUT)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: {server.host}:{server.port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        data = sock.recv(4096)
        assert data, "the server closed during the handshake"
        head += data
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def _quiet(server: RunningServer) -> dict[str, Any]:
    """Stats once no handler runs and no WebSocket thread is left."""
    wait_for(
        lambda: not (now := stats(server))["handlers"] and not now["websocket_threads"],
        timeout=10.0,
        describe=lambda: f"WebSockets still run: {stats(server)}. {server.describe()}",
    )
    return stats(server)


def test_a_client_going_away_abruptly_ends_the_handler_and_its_threads(
    server: RunningServer,
) -> None:
    baseline = _quiet(server)["threads"]
    token = uuid.uuid4().hex
    sock = _handshake_raw(server, f"/hold/{token}")
    wait_for(
        lambda: stats(server)["handlers"] == 1,
        timeout=10.0,
        describe=lambda: f"The handler never started. {server.describe()}",
    )
    # No close frame: the TCP connection is reset.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
    wait_for(
        lambda: token in stats(server)["endings"],
        timeout=10.0,
        describe=lambda: f"The handler's receive() never raised. {server.describe()}",
    )
    after = _quiet(server)
    deadline = time.monotonic() + 10.0
    while after["threads"] > baseline and time.monotonic() < deadline:
        time.sleep(0.05)
        after = stats(server)
    assert after["threads"] <= baseline, (after, baseline)


def test_many_open_websockets_leave_http_free(server: RunningServer) -> None:
    # The app runs with max_threads=2: HTTP requests would wait behind the sockets
    # if these held tokens of the HTTP limiter.
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(open_socket(server, "/echo")) for _ in range(OPEN_AT_ONCE)]
        assert stats(server)["handlers"] == OPEN_AT_ONCE
        started = time.monotonic()
        response = httpx.get(f"{server.url}/", timeout=SOCKET_TIMEOUT)
        elapsed = time.monotonic() - started
        assert response.status_code == 200 and response.text == "ok", server.describe()
        assert elapsed < 1.0, f"GET / took {elapsed:.2f} s beside {OPEN_AT_ONCE} WebSockets"
        for number, ws in enumerate(sockets):
            ws.send(f"socket {number}")
        for number, ws in enumerate(sockets):
            assert ws.recv(timeout=SOCKET_TIMEOUT) == f"socket {number}"
    _quiet(server)


def test_a_server_shutting_down_closes_open_sockets(serve: ServeFn) -> None:
    with serve("uvicorn", f"{FLASK_SOCK}:app", extra_args=["--loop", "asyncio"]) as running:
        with open_socket(running, "/echo") as ws:
            ws.send("still here")
            assert ws.recv(timeout=SOCKET_TIMEOUT) == "still here"
            os.kill(running.pid, signal.SIGTERM)  # the server this test started
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=SOCKET_TIMEOUT)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
        wait_for(
            lambda: not running.is_running(),
            timeout=SOCKET_TIMEOUT,
            describe=lambda: f"The server did not stop. {running.describe()}",
        )
        log = running.log_path.read_text("utf-8", errors="replace")
        assert "Traceback" not in log and "ERROR" not in log, running.describe(200)


def test_flask_sock_through_a_mount(serve: ServeFn) -> None:
    with serve("uvicorn", f"{FLASK_SOCK}:mounted", extra_args=["--loop", "asyncio"]) as running:
        with open_socket(running, "/ws-app/echo") as ws:
            ws.send("mounted")
            assert ws.recv(timeout=SOCKET_TIMEOUT) == "mounted"


def test_flask_socketio_threading_mode_on_the_websocket_transport(serve: ServeFn) -> None:
    app = "tests.integration.apps.flask_socketio_app:app"
    with serve("uvicorn", app, extra_args=["--loop", "asyncio"]) as running:
        client = socketio.Client(reconnection=False)
        replies: list[Any] = []
        replied = threading.Event()

        def on_echo(data: Any) -> None:
            replies.append(data)
            replied.set()

        client.on("echo", on_echo)
        client.connect(running.url, transports=["websocket"], wait_timeout=SOCKET_TIMEOUT)
        try:
            assert client.transport() == "websocket"
            sid = client.get_sid()
            client.emit("echo", {"n": 1})
            assert replied.wait(SOCKET_TIMEOUT), f"No echo came back. {running.describe()}"
            assert replies == [{"echoed": {"n": 1}, "transport": "websocket"}]
        finally:
            client.disconnect()

        def seen() -> dict[str, Any]:
            response = httpx.get(f"{running.url}/stats", timeout=SOCKET_TIMEOUT)
            result: dict[str, Any] = response.json()
            return result

        wait_for(
            lambda: len(seen()["disconnected"]) == 1,
            timeout=10.0,
            describe=lambda: f"The server never saw the disconnect. {running.describe()}",
        )
        assert len(seen()["connected"]) == 1
        assert sid is not None
