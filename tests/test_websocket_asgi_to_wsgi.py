"""An ASGI app's WebSockets under ``ASGIToWSGI``, in process, on a real socket pair.

The stand-in server (``tests/websocket_a2w.py``) hands one end of the pair to the
adapter as gunicorn would; the test drives the other end frame by frame with
wsproto, or with raw bytes where a client breaks the protocol.
"""

from __future__ import annotations

import logging
import os
import select
import socket
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from wsproto.events import (
    BytesMessage,
    CloseConnection,
    Ping,
    Pong,
    RejectConnection,
    Request,
    TextMessage,
)

import bridge._websocket_asgi_to_wsgi as dispatch
from bridge import ASGIProtocolError
from bridge._websocket_a2w_limits import Limits
from bridge._websocket_asgi_to_wsgi import ConnectionHandedBack
from bridge.types import Message, Receive, Scope, Send

from .conftest import AdapterFactory
from .websocket_a2w import (
    TIMEOUT,
    Echo,
    RawClient,
    StandIn,
    accepted,
    lifespan_or,
    messages,
    reject_body,
)

SECRET = "websocket-secret-4e1f"


def frame(opcode: int, payload: bytes, *, fin: bool = True, masked: bool = True) -> bytes:
    """One frame as a client writes it, or breaks it (``masked=False``)."""
    head = bytes([(0x80 if fin else 0) | opcode])
    length = len(payload)
    bit = 0x80 if masked else 0
    if length < 126:
        head += bytes([bit | length])
    elif length < 65536:
        head += bytes([bit | 126]) + struct.pack("!H", length)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", length)
    if not masked:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(byte ^ key[index % 4] for index, byte in enumerate(payload))


def wait_until(condition: Any, describe: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"Gave up after {timeout} s: {describe}"
        time.sleep(0.01)


_LOOPS = {
    "uvloop": ("asyncio", None),  # the adapter's default where uvloop is installed
    "asyncio": ("asyncio", {"use_uvloop": False}),
    "trio": ("trio", None),
}


@pytest.fixture(params=list(_LOOPS))
def adapt(make_adapter: AdapterFactory, request: pytest.FixtureRequest) -> AdapterFactory:
    """``make_adapter``, without lifespan unless asked: the apps here speak websocket only.

    Each test runs on every kind of loop: the relay waits on the loop's own reader
    and writer callbacks under asyncio and uvloop, on anyio's waits under trio
    (``bridge._websocket_a2w_poll``).
    """
    backend, backend_options = _LOOPS[request.param]

    def make(app: Any, **options: Any) -> Any:
        options.setdefault("lifespan", "off")
        if "backend" not in options:
            options.update(backend=backend, backend_options=backend_options)
        return make_adapter(app, **options)

    return make


@pytest.fixture
def bridge_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG, logger="bridge")
    yield caplog


def errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.levelno >= logging.WARNING]


# Messages both ways.


def test_text_and_binary_round_trip_then_client_close(
    adapt: AdapterFactory, bridge_log: pytest.LogCaptureFixture
) -> None:
    app = Echo()
    with StandIn(adapt(app)) as server:
        client = RawClient(server.client_sock)
        accepted(client.open())
        client.send(TextMessage("héllo"))
        assert client.message() == "héllo"
        client.send(BytesMessage(b"\x00\xff" * 1000))
        assert client.message() == b"\x00\xff" * 1000
        client.send(CloseConnection(4001, "bye"))
        answer = client.closed()
        assert (answer.code, answer.reason) == (4001, "bye")
        assert client.read_to_end() == b"", "bytes after the close frame"
        served = server.finished()

    assert isinstance(served.exception, StopIteration), served
    assert served.status is None, "the server was asked to write a response"
    assert app.disconnect == {"type": "websocket.disconnect", "code": 4001, "reason": "bye"}
    assert errors(bridge_log) == []


def test_large_messages_both_ways_through_small_socket_buffers(adapt: AdapterFactory) -> None:
    # Written in many partial writes: the header and the payload go out as separate
    # buffers above 16 KiB.
    app = Echo()
    big = os.urandom(1 << 20)
    text = "ünïcode " * 25000
    with StandIn(adapt(app)) as server:
        client = RawClient(server.client_sock)
        accepted(client.open())
        for payload in (big, text, big[:16385], b""):
            client.send(
                BytesMessage(payload) if isinstance(payload, bytes) else TextMessage(payload)
            )
            assert client.message() == payload
    assert list(messages(app.received))[:4] == [big, text, big[:16385], b""]


def test_fragments_are_joined_and_pings_between_them_answered(adapt: AdapterFactory) -> None:
    app = Echo()
    text = "héllo wörld".encode()
    split = text.index(b"\xc3") + 1  # inside the two bytes of "é"
    with StandIn(adapt(app)) as server:
        client = RawClient(server.client_sock)
        accepted(client.open())
        client.send_raw(frame(0x1, text[:split], fin=False))
        client.send_raw(frame(0x9, b"are you there"))
        client.send_raw(frame(0x0, text[split:-3], fin=False))
        client.send_raw(frame(0x0, text[-3:]))
        pong = client.next_event()
        assert isinstance(pong, Pong) and pong.payload == b"are you there"
        assert client.message() == "héllo wörld"
        client.send_raw(frame(0x2, b"ab", fin=False) + frame(0x0, b"cd", fin=False))
        client.send_raw(frame(0x0, b"ef"))
        assert client.message() == b"abcdef"
        client.send(CloseConnection(1000))
        client.closed()
        server.finished()

    assert list(messages(app.received)) == ["héllo wörld", b"abcdef"]


def test_ping_answered_with_its_payload(adapt: AdapterFactory) -> None:
    with StandIn(adapt(Echo())) as server:
        client = RawClient(server.client_sock)
        accepted(client.open())
        client.send(Ping(b"\x01\x02\x03"))
        event = client.next_event()
        assert isinstance(event, Pong) and event.payload == b"\x01\x02\x03"


def test_close_without_a_code_reaches_the_app_as_1005(adapt: AdapterFactory) -> None:
    app = Echo()
    with StandIn(adapt(app)) as server:
        client = RawClient(server.client_sock)
        accepted(client.open())
        client.send_raw(frame(0x8, b""))
        assert client.closed().code == 1005  # an empty close frame back
        server.finished()
    assert app.disconnect["code"] == 1005


class Closer:
    """Accepts, closes with a code and a reason, then records what receive() says."""

    def __init__(self, code: int = 4000, reason: str = "done") -> None:
        self.code = code
        self.reason = reason
        self.after: Message | None = None
        self.done = threading.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": self.code, "reason": self.reason})
        self.after = await receive()
        self.done.set()


def test_app_close_with_code_and_reason(adapt: AdapterFactory) -> None:
    app = Closer(4000, "done here")
    with StandIn(adapt(app)) as server:
        client = RawClient(server.client_sock)
        accepted(client.open())
        close = client.closed()
        assert (close.code, close.reason) == (4000, "done here")
        client.send(close.response())
        assert client.read_to_end() == b""
        served = server.finished()
    assert isinstance(served.exception, StopIteration)
    assert app.done.wait(TIMEOUT)
    assert app.after == {"type": "websocket.disconnect", "code": 4000, "reason": "done here"}


def test_app_close_unanswered_ends_after_the_close_timeout(
    adapt: AdapterFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dispatch, "DEFAULT_LIMITS", Limits(close_timeout=0.2))
    app = Closer()
    with StandIn(adapt(app)) as server:
        client = RawClient(server.client_sock)
        accepted(client.open())
        client.closed()  # and no answer
        assert client.read_to_end() == b""
        server.finished()
    assert app.done.wait(TIMEOUT)
    assert app.after is not None and app.after["code"] == 1006


def test_app_that_returns_after_accept_closes_normally(adapt: AdapterFactory) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": "bye"})

    with StandIn(adapt(app)) as server:
        client = RawClient(server.client_sock)
        accepted(client.open())
        assert client.message() == "bye"
        assert client.closed().code == 1000


# Bounds and protocol errors from the client.


@pytest.mark.parametrize("fragments", [1, 3], ids=["one-frame", "fragmented"])
def test_a_message_over_the_size_limit_closes_1009(adapt: AdapterFactory, fragments: int) -> None:
    app = Echo()
    with StandIn(adapt(app, websocket_max_size=1000)) as server:
        client = RawClient(server.client_sock)
        accepted(client.open())
        client.send(BytesMessage(b"x" * 1000))  # at the limit: fine
        assert client.message() == b"x" * 1000
        piece = 1001 // fragments + 1
        for index in range(fragments):
            last = index == fragments - 1
            client.send_raw(frame(0x2 if index == 0 else 0x0, b"y" * piece, fin=last))
        assert client.closed().code == 1009
        assert client.read_to_end() == b""
        server.finished()
    assert app.disconnect["code"] == 1009
    assert list(messages(app.received)) == [b"x" * 1000]


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        pytest.param(frame(0x1, b"hi", masked=False), 1002, id="unmasked"),
        pytest.param(frame(0x3, b"hi"), 1002, id="reserved-opcode"),
        pytest.param(frame(0x0, b"hi"), 1002, id="continuation-first"),
        pytest.param(frame(0x9, b"p", fin=False), 1002, id="fragmented-ping"),
        pytest.param(frame(0x1, b"\xc3\x28"), 1007, id="invalid-utf8"),
    ],
)
def test_a_protocol_error_fails_the_connection(
    adapt: AdapterFactory, raw: bytes, code: int
) -> None:
    app = Echo()
    with StandIn(adapt(app)) as server:
        client = RawClient(server.client_sock)
        accepted(client.open())
        client.send_raw(raw)
        assert client.closed().code == code
        assert client.read_to_end() == b""
        served = server.finished()
    assert isinstance(served.exception, StopIteration)
    assert app.disconnect["code"] == code


def test_a_client_that_goes_away_is_a_1006(adapt: AdapterFactory) -> None:
    app = Echo()
    with StandIn(adapt(app)) as server:
        client = RawClient(server.client_sock)
        accepted(client.open())
        client.send(TextMessage("one"))
        assert client.message() == "one"
        server.client_sock.shutdown(socket.SHUT_WR)
        served = server.finished()
    assert isinstance(served.exception, StopIteration)
    assert app.disconnect["code"] == 1006


def test_what_the_app_raises_once_told_the_client_vanished_is_one_debug_line(
    adapt: AdapterFactory, bridge_log: pytest.LogCaptureFixture
) -> None:
    # As for HTTP: a client that leaves is not a server error, nor what the app raises
    # because of it (Starlette raises WebSocketDisconnect from receive_text()).
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        message = await receive()
        raise LookupError(f"the client left: {message['code']}")

    with StandIn(adapt(app)) as server:
        client = RawClient(server.client_sock)
        accepted(client.open())
        server.client_sock.shutdown(socket.SHUT_WR)
        served = server.finished()
    assert isinstance(served.exception, StopIteration)

    def said() -> bool:  # by the relay, or by the app's task when it ends after the relay
        debug = [r.getMessage() for r in bridge_log.records if r.levelno == logging.DEBUG]
        return any("the client left: 1006" in line for line in debug)

    wait_until(said, "the debug line")
    assert errors(bridge_log) == []


def test_a_client_that_stops_answering_pings_is_dropped(
    adapt: AdapterFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dispatch, "DEFAULT_LIMITS", Limits(ping_interval=0.05, ping_timeout=0.2))
    app = Echo()
    with StandIn(adapt(app)) as server:
        client = RawClient(server.client_sock)
        accepted(client.open())
        for _ in range(3):  # answered pings keep it open
            ping = client.next_event()
            assert isinstance(ping, Ping)
            client.send(ping.response())
        assert not app.done.is_set()
        assert isinstance(client.next_event(), Ping)  # this one goes unanswered
        served = server.finished()
    assert isinstance(served.exception, StopIteration)
    assert app.disconnect["code"] == 1006


# The handshake.


def test_subprotocol_and_headers_in_the_101(adapt: AdapterFactory) -> None:
    app = Echo(subprotocol="chat.v2", headers=[(b"x-hello", b"world")])
    with StandIn(adapt(app)) as server:
        client = RawClient(server.client_sock)
        answer = accepted(client.open(subprotocols=["chat.v1", "chat.v2"]))
        assert answer.subprotocol == "chat.v2"
        assert (b"x-hello", b"world") in answer.extra_headers
        assert app.scope is not None
        assert app.scope["subprotocols"] == ["chat.v1", "chat.v2"]


def test_the_websocket_scope(adapt: AdapterFactory) -> None:
    app = Echo()
    with StandIn(adapt(lifespan_or(app), lifespan="on")) as server:
        client = RawClient(server.client_sock)
        accepted(client.open("/chat/room%201?x=1", headers=[(b"cookie", b"a=1")]))
        client.send(CloseConnection(1000))
        client.closed()
        server.finished()
    scope = app.scope
    assert scope is not None
    assert scope["type"] == "websocket"
    assert "method" not in scope
    assert (scope["scheme"], scope["path"], scope["raw_path"], scope["query_string"]) == (
        "ws",
        "/chat/room 1",
        b"/chat/room%201",
        b"x=1",
    )
    assert (b"cookie", b"a=1") in scope["headers"]
    assert scope["subprotocols"] == []
    assert scope["extensions"] == {"websocket.http.response": {}}
    assert scope["state"] == {"greeting": "from lifespan"}
    assert scope["asgi"]["version"] == "3.0"


def test_close_before_accept_is_a_403(adapt: AdapterFactory) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.close", "code": 1008})

    with StandIn(adapt(app)) as server:
        client = RawClient(server.client_sock)
        answer = client.open()
        assert isinstance(answer, RejectConnection)
        assert answer.status_code == 403
        assert (b"content-length", b"0") in answer.headers
        assert reject_body(client) == b""
        served = server.finished()
    assert isinstance(served.exception, StopIteration)
    assert served.status is None


def test_a_denial_response_through_the_extension(adapt: AdapterFactory) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert "websocket.http.response" in scope["extensions"]
        await receive()
        headers = [(b"content-type", b"text/plain"), (b"x-denied", b"yes")]
        await send({"type": "websocket.http.response.start", "status": 401, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": b"no ", "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b"entry"})

    with StandIn(adapt(app)) as server:
        client = RawClient(server.client_sock)
        answer = client.open()
        assert isinstance(answer, RejectConnection)
        assert answer.status_code == 401
        assert (b"x-denied", b"yes") in answer.headers
        assert reject_body(client) == b"no entry"
        served = server.finished()
    assert isinstance(served.exception, StopIteration)


def test_an_app_that_answers_nothing_is_a_500(adapt: AdapterFactory) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()

    with StandIn(adapt(app)) as server:
        client = RawClient(server.client_sock)
        answer = client.open()
        assert isinstance(answer, RejectConnection) and answer.status_code == 500
        served = server.finished()
    assert isinstance(served.exception, ASGIProtocolError)


def test_an_app_that_never_accepts_is_freed_when_the_client_goes(
    adapt: AdapterFactory,
) -> None:
    seen: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        seen.append(await receive())  # no answer to the handshake: wait for the client

    with StandIn(adapt(app)) as server:
        client = RawClient(server.client_sock)
        client.send(Request(host="testserver", target="/ws"))
        server.client_sock.shutdown(socket.SHUT_WR)
        served = server.finished()
    assert isinstance(served.exception, StopIteration)
    wait_until(lambda: bool(seen), "the app never saw the disconnect")
    assert seen == [{"type": "websocket.disconnect", "code": 1006, "reason": ""}]


def test_an_exception_before_accept_reaches_the_server(adapt: AdapterFactory) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        raise RuntimeError(SECRET)

    with StandIn(adapt(app)) as server:
        client = RawClient(server.client_sock)
        answer = client.open()
        assert isinstance(answer, RejectConnection) and answer.status_code == 500
        served = server.finished()
    assert isinstance(served.exception, RuntimeError)
    assert str(served.exception) == SECRET


def test_an_exception_after_accept_closes_1011_and_is_raised_to_the_server(
    adapt: AdapterFactory, bridge_log: pytest.LogCaptureFixture
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await receive()
        raise RuntimeError(SECRET)

    with StandIn(adapt(app)) as server:
        client = RawClient(server.client_sock)
        accepted(client.open())
        client.send(TextMessage("go"))
        close = client.closed()
        assert close.code == 1011
        assert SECRET not in (close.reason or "")
        client.send(close.response())
        served = server.finished()
    # Raised as itself, once the client has its close: the server logs it (not the bridge).
    assert isinstance(served.exception, RuntimeError)
    assert str(served.exception) == SECRET
    assert errors(bridge_log) == []


def test_accepting_a_subprotocol_not_offered_is_the_apps_error(
    adapt: AdapterFactory,
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept", "subprotocol": "nobody-asked"})

    with StandIn(adapt(app)) as server:
        answer = RawClient(server.client_sock).open(subprotocols=["chat.v1"])
        assert isinstance(answer, RejectConnection) and answer.status_code == 500
        served = server.finished()
    assert isinstance(served.exception, ASGIProtocolError)
    assert "nobody-asked" in str(served.exception)


def raw_handshake(sock: socket.socket, headers: dict[str, str]) -> bytes:
    request = "GET /ws HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    sock.sendall(request.encode("latin-1") + b"\r\n")
    return sock.recv(65536)


HANDSHAKE = {
    "Host": "testserver",
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version": "13",
}


@pytest.mark.parametrize(
    ("change", "status"),
    [
        pytest.param({"Sec-WebSocket-Version": "8"}, b"426", id="version"),
        pytest.param({"Sec-WebSocket-Key": "short"}, b"400", id="key"),
    ],
)
def test_an_invalid_handshake_is_answered_without_the_app(
    adapt: AdapterFactory, change: dict[str, str], status: bytes
) -> None:
    called: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        called.append(scope)

    with StandIn(adapt(app)) as server:
        answer = raw_handshake(server.client_sock, {**HANDSHAKE, **change})
        server.finished()
    assert answer.startswith(b"HTTP/1.1 " + status), answer
    if status == b"426":
        assert b"Sec-WebSocket-Version: 13\r\n" in answer
    assert [scope["type"] for scope in called] == []


def test_the_101_follows_rfc_6455(adapt: AdapterFactory) -> None:
    with StandIn(adapt(Echo())) as server:
        answer = raw_handshake(server.client_sock, HANDSHAKE)
    head = answer.split(b"\r\n\r\n")[0].lower()
    assert head.startswith(b"http/1.1 101 ")
    assert b"upgrade: websocket" in head
    assert b"connection: upgrade" in head
    # RFC 6455 section 1.3's example key and its accept value.
    assert b"sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo=" in head


# Which server: werkzeug, or none offering a socket.


def test_werkzeug_is_told_with_a_connection_error(adapt: AdapterFactory) -> None:
    with StandIn(adapt(Echo()), socket_key="werkzeug.socket") as server:
        client = RawClient(server.client_sock)
        accepted(client.open())
        client.send(CloseConnection(1000))
        client.closed()
        served = server.finished()
    assert isinstance(served.exception, ConnectionHandedBack)
    assert isinstance(served.exception, ConnectionError)


def test_without_a_socket_the_upgrade_is_plain_http_and_said_once(
    adapt: AdapterFactory,
    bridge_log: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(dispatch, "_told_no_socket", False)
    scopes: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        scopes.append(scope["type"])
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b"not here"})

    for _ in range(2):
        with StandIn(adapt(app), socket_key="nothing.offered") as server:
            answer = raw_handshake(server.client_sock, HANDSHAKE)
            assert answer.startswith(b"HTTP/1.1 404"), answer
    assert scopes == ["http", "http"]
    said = [r for r in bridge_log.records if "offers no socket" in r.getMessage()]
    assert [r.levelno for r in said] == [logging.INFO]


# Back-pressure.


class Flood:
    """Accepts and sends ``count`` numbered messages of ``size`` bytes."""

    def __init__(self, count: int, size: int) -> None:
        self.count = count
        self.size = size
        self.sent = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        for number in range(self.count):
            payload = number.to_bytes(4, "big") + bytes(self.size - 4)
            await send({"type": "websocket.send", "bytes": payload})
            self.sent += 1
        await receive()


def test_a_client_that_reads_slowly_slows_the_app(adapt: AdapterFactory) -> None:
    high_water = 65536
    app = Flood(count=1000, size=16384)  # 16 MiB in all
    # Queued in the mailbox, held by the relay, in socket buffers: well under 1 MiB.
    bound = high_water + 262144 + 4 * 65536 + app.size
    with StandIn(adapt(app, high_water=high_water)) as server:
        client = RawClient(server.client_sock)
        accepted(client.open())
        # The window lets a bridge without back-pressure run ahead; one with it passes
        # whatever the timing.
        time.sleep(0.3)
        for number in range(app.count):
            ahead = (app.sent - number) * app.size
            assert ahead <= bound, f"the app ran {ahead} bytes ahead of the client"
            data = client.message()
            assert isinstance(data, bytes) and int.from_bytes(data[:4], "big") == number
    # The app counts a message once its send() returned, which can be after the client
    # has it.
    wait_until(lambda: app.sent == app.count, "the app to count its last send")


class Sink:
    """Accepts, then receives only once released; records every message."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.received: list[Message] = []
        self.done = threading.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        from .asgi_apps import wait_event

        await receive()
        await send({"type": "websocket.accept"})
        await wait_event(self.release)
        while True:
            message = await receive()
            self.received.append(message)
            if message["type"] == "websocket.disconnect":
                self.done.set()
                return


def test_an_app_that_receives_slowly_slows_the_client(adapt: AdapterFactory) -> None:
    high_water = 65536
    app = Sink()
    payloads = [number.to_bytes(4, "big") + bytes(16380) for number in range(1000)]
    stream = b"".join(frame(0x2, payload) for payload in payloads)
    bound = high_water + 262144 + 4 * 65536 + 16384
    with StandIn(adapt(app, high_water=high_water)) as server:
        client = RawClient(server.client_sock)
        accepted(client.open())
        sock = server.client_sock
        sock.setblocking(False)
        accepted_bytes = 0
        while accepted_bytes < len(stream):  # until the bridge stops taking bytes
            if not select.select([], [sock], [], 0.3)[1]:
                break
            accepted_bytes += sock.send(stream[accepted_bytes : accepted_bytes + 65536])
        assert accepted_bytes <= bound, f"the bridge took {accepted_bytes} bytes unreceived"
        app.release.set()
        sock.settimeout(TIMEOUT)
        sock.sendall(stream[accepted_bytes:])
        client.send(CloseConnection(1000))
        assert app.done.wait(TIMEOUT)
    received = [m["bytes"] for m in app.received if m["type"] == "websocket.receive"]
    assert received == payloads


# The loop's life.


@pytest.mark.parametrize("answer", [True, False], ids=["client-answers", "client-silent"])
def test_closing_the_adapter_closes_open_websockets_1001(
    adapt: AdapterFactory, answer: bool
) -> None:
    # Silent: the client never answers the 1001 and the loop is gone; the WSGI thread,
    # which no loop will wake any more, sees it, shuts the socket down and returns.
    adapter = adapt(Echo())
    with StandIn(adapter) as server:
        client = RawClient(server.client_sock)
        accepted(client.open())
        adapter.close()
        assert client.closed().code == 1001
        if answer:
            try:
                client.send(CloseConnection(1001))
            except BrokenPipeError:
                pass  # trio cancels the connection with the loop, once the 1001 is out
        served = server.finished()
        assert server.client_sock.recv(1) == b"", "the socket is shut down"
    assert isinstance(served.exception, StopIteration)


def test_the_connection_is_served_on_the_loop_and_the_servers_thread_only_waits(
    adapt: AdapterFactory,
) -> None:
    readers: set[str] = set()

    class Watched(socket.socket):
        def recv(self, *args: Any) -> bytes:
            readers.add(threading.current_thread().name)
            return super().recv(*args)

    offered: list[socket.socket] = []

    def offer(sock: socket.socket) -> socket.socket:
        offered.append(Watched(fileno=os.dup(sock.fileno())))
        return offered[0]

    with StandIn(adapt(Echo()), offer=offer) as server:
        client = RawClient(server.client_sock)
        accepted(client.open())
        for text in ("one", "two"):
            client.send(TextMessage(text))
            assert client.message() == text
        client.send(CloseConnection(1000))
        client.closed()
        server.finished()
    offered[0].close()
    assert readers == {"bridge-asgi-loop"}


def test_an_app_cancelled_after_its_websocket_ended_is_no_error(
    adapt: AdapterFactory, bridge_log: pytest.LogCaptureFixture
) -> None:
    # The relay is over, the app still runs; closing the adapter cancels it: the
    # bridge's own doing at shutdown, said at info level.
    ended = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await receive()  # the client's close
        ended.set()
        await anyio.sleep_forever()

    adapter = adapt(app)
    with StandIn(adapter) as server:
        client = RawClient(server.client_sock)
        accepted(client.open())
        client.send(CloseConnection(1000))
        assert isinstance(server.finished().exception, StopIteration)
    assert ended.wait(TIMEOUT)
    adapter.close()
    assert errors(bridge_log) == []
    infos = [r.getMessage() for r in bridge_log.records if r.levelno == logging.INFO]
    assert any("Closing a WebSocket" in line for line in infos)


def test_on_trio(adapt: AdapterFactory) -> None:
    app = Echo()
    with StandIn(adapt(app, backend="trio")) as server:
        client = RawClient(server.client_sock)
        accepted(client.open())
        client.send(TextMessage("on trio"))
        assert client.message() == "on trio"
        client.send(CloseConnection(1000))
        client.closed()
        server.finished()
    assert app.disconnect["code"] == 1000


@pytest.mark.parametrize("broken", ["receive", "command"])
def test_a_bug_in_the_relay_ends_the_connection_instead_of_hanging(
    adapt: AdapterFactory,
    monkeypatch: pytest.MonkeyPatch,
    bridge_log: pytest.LogCaptureFixture,
    broken: str,
) -> None:
    # A step that raises, called by the loop (the client's bytes) or by the app's
    # send() (its echo), is logged and ends the connection: the server's thread goes.
    from bridge._websocket_a2w_session import Session

    def bug(*args: Any) -> None:
        raise RuntimeError("a bug of the bridge's own")

    with StandIn(adapt(Echo())) as server:
        client = RawClient(server.client_sock)
        accepted(client.open())
        monkeypatch.setattr(Session, broken, bug)
        client.send(TextMessage("hello"))
        served = server.finished()
    assert isinstance(served.exception, StopIteration)
    logged = [r for r in errors(bridge_log) if "relay failed" in r.getMessage()]
    assert logged and "a bug of the bridge's own" in str(logged[0].exc_info)
