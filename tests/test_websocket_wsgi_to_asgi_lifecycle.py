"""A WSGI app's WebSockets through ``WSGIToASGI``, in process: the handshake, the end
of the app's call, limits and back-pressure, on a real socketpair.

The ASGI server is :class:`FakeServer`; the app is a plain WSGI app, or a
:class:`RawPeer` that writes every byte on its socket itself. Each test also checks
that no thread or file descriptor outlives the session. Every wait is bounded.
"""

from __future__ import annotations

import functools
import logging
import socket
import threading
import time
from typing import Any

import anyio
import pytest
from wsproto.events import (
    BytesMessage,
    CloseConnection,
    Message,
)

from bridge import WSGIProtocolError, WSGIToASGI
from bridge._websocket_wsgi_to_asgi import serve_websocket
from bridge.types import Environ, StartResponse, WSGIApp

from .websocket_harness import (
    TIMEOUT,
    FakeServer,
    RawPeer,
    no_leaks,
    open_fds,
    raw_app,
    serving,
    start_cancellable,
    wait_for,
    wait_in_thread,
)
from .wsgi_apps import wait_until

pytestmark = pytest.mark.anyio


# The handshake: accept, denials, errors.


async def test_accept_carries_the_subprotocol_and_extra_headers() -> None:
    def body(peer: RawPeer) -> None:
        peer.handshake(subprotocol="chat", extra=b"X-Extra: 1\r\nSet-Cookie: a=b\r\n")
        peer.send(CloseConnection(code=1000))
        peer.next_event()

    server = FakeServer(subprotocols=("chat",))
    async with no_leaks():
        async with serving(WSGIToASGI(raw_app(body)), server):
            accept = await server.accepted()
            assert accept["subprotocol"] == "chat"
            assert accept["headers"] == [(b"x-extra", b"1"), (b"set-cookie", b"a=b")]


def not_found_app(environ: Environ, start_response: StartResponse) -> list[bytes]:
    start_response("404 Not Found", [("Content-Type", "text/plain"), ("X-Why", "no route")])
    return [b"no ", b"such ", b"socket"]


async def test_a_plain_response_is_the_denial_with_the_extension() -> None:
    server = FakeServer(denial=True)
    async with no_leaks():
        async with serving(WSGIToASGI(not_found_app), server) as outcome:
            server.connect()
            start = await server.next("websocket.http.response.start")
            assert start["status"] == 404
            assert (b"x-why", b"no route") in start["headers"]
            body = b""
            while True:
                message = await server.next("websocket.http.response.body")
                body += message["body"]
                if not message.get("more_body", False):
                    break
    assert outcome.error is None
    assert body == b"no such socket"


async def test_a_large_denial_body_streams_whole() -> None:
    chunk = bytes(range(256)) * 256

    def app(environ: Environ, start_response: StartResponse) -> Any:
        start_response("401 Unauthorized", [("Content-Type", "application/octet-stream")])
        return iter([chunk] * 64)  # 4 MiB

    server = FakeServer(denial=True)
    async with no_leaks():
        async with serving(WSGIToASGI(app), server):
            server.connect()
            assert (await server.next("websocket.http.response.start"))["status"] == 401
            size = 0
            while (message := await server.next())["more_body"]:
                size += len(message["body"])
            size += len(message["body"])
    assert size == len(chunk) * 64


async def test_a_plain_response_is_a_close_before_accept_without_the_extension() -> None:
    server = FakeServer()
    async with no_leaks():
        async with serving(WSGIToASGI(not_found_app), server) as outcome:
            server.connect()
            await server.next("websocket.close")
    assert outcome.error is None
    assert [message["type"] for message in server.sent] == ["websocket.close"]


@pytest.mark.parametrize("denial", [True, False], ids=["extension", "no-extension"])
async def test_an_exception_before_accept_is_a_500_and_is_raised(denial: bool) -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        raise RuntimeError("the app broke")

    server = FakeServer(denial=denial)
    async with no_leaks():
        async with serving(WSGIToASGI(app), server) as outcome:
            server.connect()
            if denial:
                assert (await server.next("websocket.http.response.start"))["status"] == 500
            else:
                await server.next("websocket.close")
    assert isinstance(outcome.error, RuntimeError)
    assert str(outcome.error) == "the app broke"


def handshake_writer(data: bytes) -> WSGIApp:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        environ["gunicorn.socket"].sendall(data)
        raise StopIteration

    return app


@pytest.mark.parametrize(
    ("app", "message"),
    [
        pytest.param(lambda environ, start_response: [], "without answering", id="no-answer"),
        pytest.param(handshake_writer(b"SSH-2.0-OpenSSH\r\n\r\n"), "not valid", id="garbage"),
        pytest.param(
            handshake_writer(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: d3Jvbmc=\r\n\r\n"
            ),
            "Sec-WebSocket-Accept",
            id="wrong-accept",
        ),
    ],
)
async def test_a_broken_handshake_is_a_500_and_a_protocol_error(app: WSGIApp, message: str) -> None:
    server = FakeServer(denial=True)
    async with no_leaks():
        async with serving(WSGIToASGI(app), server) as outcome:
            server.connect()
            assert (await server.next("websocket.http.response.start"))["status"] == 500
    assert isinstance(outcome.error, WSGIProtocolError)
    assert message in str(outcome.error)


async def test_a_subprotocol_the_client_did_not_offer_is_refused() -> None:
    def body(peer: RawPeer) -> None:
        peer.handshake(subprotocol="other")

    server = FakeServer(subprotocols=("chat",), denial=True)
    async with no_leaks():
        async with serving(WSGIToASGI(raw_app(body)), server) as outcome:
            server.connect()
            assert (await server.next("websocket.http.response.start"))["status"] == 500
    assert isinstance(outcome.error, WSGIProtocolError)


# How the app's call ends.


@pytest.mark.parametrize(
    "ending",
    [StopIteration(), ConnectionError(), BrokenPipeError(), None],
    ids=["StopIteration", "ConnectionError", "BrokenPipeError", "return"],
)
async def test_a_takeover_signal_after_the_handshake_ends_cleanly(
    ending: BaseException | None, caplog: pytest.LogCaptureFixture
) -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        peer = RawPeer(environ)
        peer.handshake()
        peer.send(CloseConnection(code=1000))
        peer.next_event()
        if ending is not None:
            raise ending
        return []

    server = FakeServer()
    async with no_leaks():
        with caplog.at_level(logging.DEBUG):
            async with serving(WSGIToASGI(app), server) as outcome:
                await server.accepted()
                await server.next("websocket.close")
    assert outcome.error is None
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


async def test_an_exception_after_accept_closes_1011_and_is_raised() -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        RawPeer(environ).handshake()
        raise LookupError("lost it")

    server = FakeServer()
    async with no_leaks():
        async with serving(WSGIToASGI(app), server) as outcome:
            await server.accepted()
            assert (await server.next("websocket.close"))["code"] == 1011
    assert isinstance(outcome.error, LookupError)


async def test_a_cancelled_call_ends_the_app_and_releases_its_token() -> None:
    ended = threading.Event()

    def body(peer: RawPeer) -> None:
        peer.handshake()
        try:
            peer.next_event()
        except (EOFError, OSError):
            ended.set()

    adapter = WSGIToASGI(raw_app(body))
    server = FakeServer()
    async with no_leaks():
        async with anyio.create_task_group() as task_group:
            scope = await start_cancellable(task_group, adapter, server)
            await server.accepted()
            scope.cancel()
        await wait_for(ended, "the app to see its socket end")
        await wait_until(
            lambda: adapter.websocket_limiter.borrowed_tokens == 0, "the token to come back"
        )


async def test_an_exception_the_app_raises_as_it_is_cancelled_is_raised_in_its_place() -> None:
    # A test client leaves its block at once: the app's error is on its way across the
    # socket then. It is raised, as natively, where the app raised before the cancel.
    def body(peer: RawPeer) -> None:
        peer.handshake()
        try:
            peer.next_event()
        except (EOFError, OSError):
            pass
        raise LookupError("as it was cancelled")

    adapter = WSGIToASGI(raw_app(body))
    server = FakeServer()
    async with no_leaks():
        with pytest.raises(Exception) as raised:  # the task group's group of one
            async with anyio.create_task_group() as task_group:
                scope = await start_cancellable(task_group, adapter, server)
                await server.accepted()
                scope.cancel()
        assert raised.group_contains(LookupError, match="as it was cancelled")
        await wait_until(
            lambda: adapter.websocket_limiter.borrowed_tokens == 0, "the token to come back"
        )


def cancel_then_leave(adapter: WSGIToASGI, backend: str, close_timeout: float) -> None:
    """Run a session on a loop of its own, cancel it once accepted, and end the loop."""

    async def main() -> None:
        server = FakeServer()
        call = functools.partial(serve_websocket, adapter, close_timeout=close_timeout)
        async with anyio.create_task_group() as task_group:
            scope = await start_cancellable(task_group, call, server)
            await server.accepted()
            scope.cancel()

    anyio.run(main, backend=backend)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_an_exception_after_the_close_timeout_is_logged(
    backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    # No one awaits the call any more: the app's thread says it.
    release = threading.Event()

    def body(peer: RawPeer) -> None:
        peer.handshake()
        wait_in_thread(release, "the test to let the app go")
        raise LookupError("after the cancel")

    finished = threading.Event()
    adapter = WSGIToASGI(raw_app(body))
    cancel_then_leave(adapter, backend, close_timeout=0.05)
    handler = _Flag(finished, LookupError)
    logging.getLogger("bridge").addHandler(handler)
    try:
        release.set()
        assert finished.wait(TIMEOUT)
    finally:
        logging.getLogger("bridge").removeHandler(handler)
    assert handler.levels == [logging.ERROR]


class _Flag(logging.Handler):
    """Records the levels of the records that carry ``kind``; sets ``event`` on one."""

    def __init__(self, event: threading.Event, kind: type[BaseException]) -> None:
        super().__init__()
        self.event = event
        self.kind = kind
        self.levels: list[int] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and isinstance(record.exc_info[1], self.kind):
            self.levels.append(record.levelno)
            self.event.set()


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_loop_that_ends_before_the_app_leaves_no_socket_open(backend: str) -> None:
    # A test client's portal: it cancels the session and its loop ends at once, while
    # the app's thread still runs. That thread closes both ends when it is done.
    release = threading.Event()

    def body(peer: RawPeer) -> None:
        peer.handshake()
        wait_in_thread(release, "the test to let the app go")

    adapter = WSGIToASGI(raw_app(body))
    fds = open_fds()
    cancel_then_leave(adapter, backend, close_timeout=0.05)
    release.set()
    deadline = time.monotonic() + TIMEOUT
    while open_fds() - fds and time.monotonic() < deadline:
        time.sleep(0.01)  # polls the app's thread finishing, bounded
    assert open_fds() - fds == set()


# Limits and back-pressure.


async def test_max_websockets_denies_the_handshake_over_the_limit() -> None:
    release = threading.Event()

    def body(peer: RawPeer) -> None:
        peer.handshake()
        wait_in_thread(release, "the test to let the sockets go")
        peer.send(CloseConnection(code=1000))
        peer.next_event()

    # One thread for HTTP requests, two WebSockets: the limits are apart.
    adapter = WSGIToASGI(raw_app(body), max_websockets=2, max_threads=1)
    first, second, third, fourth = (FakeServer(denial=True) for _ in range(4))
    async with no_leaks():
        async with serving(adapter, first), serving(adapter, second):
            await first.accepted()
            await second.accepted()
            async with serving(adapter, third):
                third.connect()
                assert (await third.next("websocket.http.response.start"))["status"] == 503
            release.set()
            await first.next("websocket.close")
            await second.next("websocket.close")
        release.clear()
        async with serving(adapter, fourth):
            await fourth.accepted()
            release.set()
            await fourth.next("websocket.close")


async def test_a_slow_client_blocks_the_app_not_memory() -> None:
    sent = 0
    blocked = threading.Event()
    message = b"m" * 65536

    def body(peer: RawPeer) -> None:
        nonlocal sent
        peer.handshake()
        peer.sock.settimeout(0.5)
        try:
            for _ in range(256):  # 16 MiB, if nothing pushed back
                peer.send(BytesMessage(data=message))
                sent += len(message)
        except TimeoutError:
            blocked.set()
        peer.sock.settimeout(TIMEOUT)
        peer.send(CloseConnection(code=1000))

    server = FakeServer()
    server.gate = anyio.Event()  # the client takes no message until the test says so
    async with no_leaks():
        async with serving(WSGIToASGI(raw_app(body)), server):
            await server.accepted()
            await wait_for(blocked, "the app's send to block")
            # One message with the client, one in the relay, the rest in socket buffers.
            assert sent < 4 * 1024 * 1024, sent
            server.gate.set()
            while (await server.next())["type"] != "websocket.close":
                pass


async def test_an_app_that_does_not_read_stops_receive() -> None:
    read = threading.Event()
    chunk = b"c" * 1048576

    def body(peer: RawPeer) -> None:
        peer.handshake()
        wait_in_thread(read, "the test to let the app read")
        for _ in range(8):
            finished = False
            while not finished:
                event = peer.next_event()
                assert isinstance(event, Message) and len(event.data) > 0
                finished = event.message_finished
        peer.send(CloseConnection(code=1000))
        peer.next_event()

    server = FakeServer()
    async with no_leaks():
        async with serving(WSGIToASGI(raw_app(body)), server):
            await server.accepted()
            server.push(*({"type": "websocket.receive", "bytes": chunk} for _ in range(8)))
            await wait_until(lambda: server.receive_calls >= 2, "the first message taken")
            assert server.receive_calls <= 3
            # The first 1 MiB frame does not fit in the socket's buffers: at most one more
            # message is taken, held until there is room (asyncio's transport takes the
            # first frame whole, and the second waits).
            await anyio.sleep(0.2)
            assert server.receive_calls <= 3
            read.set()
            await server.next("websocket.close")
            server.disconnect(1000)
    assert server.receive_calls >= 9


async def test_the_socket_is_a_real_blocking_socket() -> None:
    seen: dict[str, Any] = {}

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        sock = environ["gunicorn.socket"]
        seen.update(
            socket=isinstance(sock, socket.socket),
            blocking=sock.getblocking(),
            fileno=sock.fileno() >= 0,
            extensions="HTTP_SEC_WEBSOCKET_EXTENSIONS" in environ,
            method=environ["REQUEST_METHOD"],
        )
        start_response("403 Forbidden", [])
        return []

    server = FakeServer()
    async with no_leaks():
        async with serving(WSGIToASGI(app), server):
            server.connect()
            await server.next("websocket.close")
    assert seen == {
        "socket": True,
        "blocking": True,
        "fileno": True,
        "extensions": False,
        "method": "GET",
    }


def test_max_websockets_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_websockets"):
        WSGIToASGI(not_found_app, max_websockets=0)
    limiter = anyio.CapacityLimiter(3)
    assert WSGIToASGI(not_found_app, max_websockets=limiter).websocket_limiter is limiter
