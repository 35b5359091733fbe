"""A WSGI app's WebSockets through ``WSGIToASGI``, in process, on a real socketpair.

The ASGI server is :class:`FakeServer`; the app is either flask-sock (the library
the feature is for) or a :class:`RawPeer` that writes every byte itself, for the
framing edge cases. Each test also checks that no thread or file descriptor
outlives the session. Every wait is bounded.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any, cast

import pytest
from flask import Flask
from flask_sock import Sock
from wsproto.events import (
    BytesMessage,
    CloseConnection,
    Message,
    Ping,
    Pong,
    TextMessage,
)

from bridge import WSGIProtocolError, WSGIToASGI
from bridge._websocket_wsgi_to_asgi import serve_websocket
from bridge.types import WSGIApp

from .websocket_harness import (
    FakeServer,
    RawPeer,
    no_leaks,
    raw_app,
    serving,
    wait_for,
)

pytestmark = pytest.mark.anyio


def flask_sock_app(handler: Any, **options: Any) -> WSGIApp:
    """A Flask app whose ``/ws`` is ``handler`` through flask-sock."""
    app = Flask(__name__)
    app.config["SOCK_SERVER_OPTIONS"] = options
    Sock(app).route("/ws")(handler)
    return cast(WSGIApp, app)


# The session with flask-sock: what an app sees, both ways.


async def test_flask_sock_echo_ends_cleanly(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[object] = []

    def echo(ws: Any) -> None:
        while True:
            data = ws.receive()
            seen.append(data)
            ws.send(data)

    server = FakeServer()
    async with no_leaks():
        with caplog.at_level(logging.DEBUG):
            async with serving(WSGIToASGI(flask_sock_app(echo)), server) as outcome:
                accept = await server.accepted()
                assert accept.get("subprotocol") is None
                assert accept["headers"] == []  # as Starlette's accept() sends it
                server.push({"type": "websocket.receive", "text": "héllo"})
                sent = await server.next("websocket.send")
                assert sent == {"type": "websocket.send", "text": "héllo"}
                server.push({"type": "websocket.receive", "bytes": b"\x00\xff" * 10})
                sent = await server.next("websocket.send")
                assert sent == {"type": "websocket.send", "bytes": b"\x00\xff" * 10}
                server.disconnect(1000)
    assert outcome.error is None
    assert seen == ["héllo", b"\x00\xff" * 10]
    # flask-sock's StopIteration is how it tells the server: not an error.
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


async def test_subprotocol_is_negotiated_by_the_app() -> None:
    app = flask_sock_app(lambda ws: ws.receive(), subprotocols=["chat.v2", "chat.v1"])
    server = FakeServer(subprotocols=("unknown", "chat.v1"))
    async with no_leaks():
        async with serving(WSGIToASGI(app), server):
            assert (await server.accepted())["subprotocol"] == "chat.v1"
            server.disconnect(1000)


async def test_client_close_code_and_reason_reach_the_handler() -> None:
    closed: list[tuple[int, str]] = []

    def handler(ws: Any) -> None:
        try:
            ws.receive()
        finally:
            closed.append((ws.close_reason, ws.close_message))

    server = FakeServer()
    async with no_leaks():
        async with serving(WSGIToASGI(flask_sock_app(handler)), server) as outcome:
            await server.accepted()
            server.disconnect(4004, "gone fishing")
    assert outcome.error is None
    assert closed == [(4004, "gone fishing")]


async def test_server_side_close_reaches_the_client() -> None:
    app = flask_sock_app(lambda ws: ws.close(4003, "not allowed"))
    server = FakeServer()
    async with no_leaks():
        async with serving(WSGIToASGI(app), server) as outcome:
            await server.accepted()
            close = await server.next("websocket.close")
            assert (close["code"], close["reason"]) == (4003, "not allowed")
            server.disconnect(4003, "not allowed")
    assert outcome.error is None


async def test_client_vanishing_ends_the_handler() -> None:
    ended = threading.Event()

    def handler(ws: Any) -> None:
        try:
            ws.receive()
        finally:
            ended.set()

    server = FakeServer()
    async with no_leaks():
        async with serving(WSGIToASGI(flask_sock_app(handler)), server) as outcome:
            await server.accepted()
            server.disconnect(1006)
            await wait_for(ended, "the handler to end")
    assert outcome.error is None


# Frames from the app, byte by byte.


async def test_fragmented_messages_are_joined_with_a_ping_between() -> None:
    pong = threading.Event()

    def body(peer: RawPeer) -> None:
        peer.handshake()
        peer.send(
            TextMessage(data="frag", message_finished=False),
            Ping(payload=b"are you there"),
            TextMessage(data="mé", message_finished=False),
            TextMessage(data="nted", message_finished=True),
            BytesMessage(data=b"\x01\x02", message_finished=False),
            BytesMessage(data=b"\x03", message_finished=True),
        )
        event = peer.next_event()
        assert isinstance(event, Pong) and event.payload == b"are you there", event
        pong.set()
        assert isinstance(peer.next_event(), CloseConnection)

    server = FakeServer()
    async with no_leaks():
        async with serving(WSGIToASGI(raw_app(body)), server) as outcome:
            await server.accepted()
            assert (await server.next())["text"] == "fragménted"
            assert (await server.next())["bytes"] == b"\x01\x02\x03"
            await wait_for(pong, "the pong")
            server.disconnect(1000)
    assert outcome.error is None


async def test_client_messages_reach_the_app_as_masked_frames() -> None:
    # wsproto's server side refuses unmasked frames: these parse only if masked.
    received: list[object] = []

    def body(peer: RawPeer) -> None:
        peer.handshake()
        parts: list[Any] = []
        while not isinstance(event := peer.next_event(), CloseConnection):
            assert isinstance(event, Message)
            parts.append(event.data)
            if event.message_finished:
                received.append(parts[0] if len(parts) == 1 else b"".join(parts))
                parts.clear()
        peer.send(event.response())

    big = bytes(range(256)) * 4096  # 1 MiB: several writes to the socket
    server = FakeServer()
    async with no_leaks():
        async with serving(WSGIToASGI(raw_app(body)), server) as outcome:
            await server.accepted()
            server.push(
                {"type": "websocket.receive", "text": "one"},
                {"type": "websocket.receive", "bytes": big},
                {"type": "websocket.receive", "bytes": None, "text": "three"},
            )
            server.disconnect(1000)
    assert outcome.error is None
    assert received[0] == "one" and bytes(cast(bytes, received[1])) == big
    assert received[2] == "three"


async def test_app_close_code_and_reason_cross_and_are_answered() -> None:
    answer: list[object] = []

    def body(peer: RawPeer) -> None:
        peer.handshake()
        peer.send(CloseConnection(code=4003, reason="nope"))
        answer.append(peer.next_event())

    server = FakeServer()
    async with no_leaks():
        async with serving(WSGIToASGI(raw_app(body)), server) as outcome:
            await server.accepted()
            close = await server.next("websocket.close")
            assert (close["code"], close["reason"]) == (4003, "nope")
    assert outcome.error is None
    assert isinstance(answer[0], CloseConnection) and answer[0].code == 4003


async def test_a_vanished_client_is_a_closed_socket_to_the_app() -> None:
    got: list[object] = []

    def body(peer: RawPeer) -> None:
        peer.handshake()
        got.append(peer.read_until_eof())  # no close frame before the end

    server = FakeServer()
    async with no_leaks():
        async with serving(WSGIToASGI(raw_app(body)), server) as outcome:
            await server.accepted()
            server.disconnect(1006)
    assert outcome.error is None
    assert got == [b""]
    assert [m["type"] for m in server.sent] == ["websocket.accept"]


async def test_an_app_that_does_not_answer_a_close_is_cut_off() -> None:
    got: list[object] = []

    def body(peer: RawPeer) -> None:
        peer.handshake()
        got.append(peer.next_event())  # the close frame, left unanswered
        got.append(peer.read_until_eof())

    server = FakeServer()
    adapter = WSGIToASGI(raw_app(body))
    async with no_leaks():
        async with serving(
            lambda *args: serve_websocket(adapter, *args, close_timeout=0.2), server
        ) as outcome:
            await server.accepted()
            server.disconnect(1001, "going away")
    assert outcome.error is None
    assert isinstance(got[0], CloseConnection) and (got[0].code, got[0].reason) == (
        1001,
        "going away",
    )
    assert got[1] == b""


@pytest.mark.parametrize("fragmented", [False, True], ids=["one-frame", "fragments"])
async def test_an_oversized_message_closes_with_1009(fragmented: bool) -> None:
    answer: list[object] = []

    def body(peer: RawPeer) -> None:
        peer.handshake()
        if fragmented:
            peer.send(*(BytesMessage(data=b"x" * 400, message_finished=False) for _ in range(3)))
        else:
            peer.send(BytesMessage(data=b"x" * 1200))
        answer.append(peer.next_event())

    server = FakeServer()
    adapter = WSGIToASGI(raw_app(body))
    async with no_leaks():
        async with serving(
            lambda *args: serve_websocket(adapter, *args, max_message_size=1000), server
        ) as outcome:
            await server.accepted()
            assert (await server.next("websocket.close"))["code"] == 1009
    assert outcome.error is None
    assert isinstance(answer[0], CloseConnection) and answer[0].code == 1009
    assert not [m for m in server.sent if m["type"] == "websocket.send"]


@pytest.mark.parametrize(
    ("garbage", "app_code"),
    [
        pytest.param(b"\xff\x00\x00\x00not a frame", 1002, id="no-frame"),
        pytest.param(b"\x81\x02\xc3\x28", 1007, id="bad-utf8"),
        pytest.param(b"\x82\x81abcdx", 1002, id="masked-by-the-server"),
    ],
)
async def test_garbage_from_the_app_fails_the_connection(garbage: bytes, app_code: int) -> None:
    answer: list[object] = []

    def body(peer: RawPeer) -> None:
        peer.handshake()
        peer.sock.sendall(garbage)
        answer.append(peer.next_event())

    server = FakeServer()
    async with no_leaks():
        async with serving(WSGIToASGI(raw_app(body)), server) as outcome:
            await server.accepted()
            assert (await server.next("websocket.close"))["code"] == 1011
    assert isinstance(outcome.error, WSGIProtocolError), outcome.error
    assert isinstance(answer[0], CloseConnection) and answer[0].code == app_code


@pytest.mark.parametrize(
    "message",
    [
        "",
        "é" * 70000,
        b"",
        b"x" * 125,
        b"y" * 126,
        b"j" * 16384,
        b"k" * 16385,
        b"z" * 65535,
        bytes(range(256)) * 256,
    ],
    ids=[
        "empty-text",
        "long-text",
        "empty-bytes",
        "125",
        "126",
        "16384",
        "16385",
        "65535",
        "65536",
    ],
)
def test_a_data_frame_is_one_whole_masked_message(message: str | bytes) -> None:
    from wsproto.connection import Connection, ConnectionType

    from bridge._websocket_w2a_wire import data_frame

    parts = data_frame(message)
    frame = b"".join(parts)
    size = len(message.encode() if isinstance(message, str) else message)
    assert len(parts) == (2 if size > 16384 else 1), "a large payload is a part of its own"
    assert frame[1] & 0x80, "the client's frames are masked"
    server = Connection(ConnectionType.SERVER)  # refuses unmasked frames
    server.receive_data(frame)
    events = list(server.events())
    assert len(events) == 1 and isinstance(events[0], Message)
    assert events[0].message_finished and events[0].data == message
    assert b"".join(data_frame(message)) != frame, "each frame has a fresh masking key"


def test_masking_keys_are_fresh_across_pool_refills() -> None:
    """Keys come from ``os.urandom`` in blocks: none repeats over several refills."""
    from bridge._websocket_w2a_wire import masking_key

    keys = [masking_key() for _ in range(5000)]
    assert all(len(key) == 4 for key in keys)
    assert len(set(keys)) > 4990  # 5,000 random 32-bit keys: a repeat or two at most


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork here")
def test_a_forked_process_draws_masking_keys_of_its_own() -> None:
    from bridge._websocket_w2a_wire import masking_key

    masking_key()  # the pool is full
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next keys, to the parent
        try:
            os.write(write, b"".join(masking_key() for _ in range(8)))
        finally:
            os._exit(0)
    os.close(write)
    try:
        with os.fdopen(read, "rb") as pipe:
            child = pipe.read()
    finally:
        os.waitpid(pid, 0)
    parent = b"".join(masking_key() for _ in range(8))
    assert len(child) == 32 and child != parent
