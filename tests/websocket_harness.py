"""In-process harness for a WSGI app's WebSockets through ``WSGIToASGI``.

:class:`FakeServer` plays the ASGI server (a scripted ``receive()``, a recorded
``send()``); :func:`serving` runs one ASGI call beside the test and collects its
outcome; :class:`RawPeer` is the app's side of the handed-over socket, written from
scratch on wsproto's server connection, so a test controls every byte the app sends.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest
from anyio.abc import TaskGroup
from wsproto.connection import Connection, ConnectionType
from wsproto.events import Event

from bridge.types import Environ, Message, Scope

from .wsgi_apps import wait_until

TIMEOUT = 5.0
"""Seconds any single wait in these tests may take."""


def websocket_scope(
    path: str = "/ws",
    *,
    root_path: str = "",
    subprotocols: tuple[str, ...] = (),
    headers: tuple[tuple[bytes, bytes], ...] = (),
    denial: bool = False,
    scheme: str = "ws",
) -> Scope:
    """A websocket scope as uvicorn builds it; ``denial`` offers ``websocket.http.response``."""
    base_headers = [
        (b"host", b"testserver"),
        (b"upgrade", b"websocket"),
        (b"connection", b"Upgrade"),
        (b"sec-websocket-key", base64.b64encode(os.urandom(16))),
        (b"sec-websocket-version", b"13"),
        (b"sec-websocket-extensions", b"permessage-deflate; client_max_window_bits"),
    ]
    if subprotocols:
        base_headers.append((b"sec-websocket-protocol", ", ".join(subprotocols).encode()))
    return {
        "type": "websocket",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "scheme": scheme,
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "root_path": root_path,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"a=1",
        "headers": [*base_headers, *headers],
        "subprotocols": list(subprotocols),
        "extensions": {"websocket.http.response": {}} if denial else {},
    }


class FakeServer:
    """The ASGI server's side of one websocket scope.

    The test pushes messages for ``receive()`` and awaits the adapter's with
    :meth:`next`; ``gate``, when set, is awaited before each ``websocket.send``
    returns (a slow client).
    """

    def __init__(self, scope: Scope | None = None, **scope_options: Any) -> None:
        self.scope = scope if scope is not None else websocket_scope(**scope_options)
        self._inbox: list[Message] = []
        self._pushed = anyio.Event()  # set when the test adds a message for receive()
        self._sent = anyio.Event()  # set when the adapter sends one
        self.sent: list[Message] = []
        self._taken = 0  # how many of ``sent`` :meth:`next` returned
        self.receive_calls = 0
        self.gate: anyio.Event | None = None

    def push(self, *messages: Message) -> None:
        self._inbox.extend(messages)
        self._pushed.set()

    def connect(self) -> None:
        self.push({"type": "websocket.connect"})

    def disconnect(self, code: int = 1000, reason: str = "") -> None:
        self.push({"type": "websocket.disconnect", "code": code, "reason": reason})

    async def receive(self) -> Message:
        self.receive_calls += 1
        while not self._inbox:
            self._pushed = anyio.Event()
            await self._pushed.wait()
        return self._inbox.pop(0)

    async def send(self, message: Message) -> None:
        self.sent.append(message)
        self._sent.set()
        if self.gate is not None and message["type"] == "websocket.send":
            await self.gate.wait()

    async def next(self, kind: str | None = None) -> Message:
        """The adapter's next message, waited for at most :data:`TIMEOUT` seconds."""
        with anyio.fail_after(TIMEOUT):
            while self._taken == len(self.sent):
                self._sent = anyio.Event()
                await self._sent.wait()
        message = self.sent[self._taken]
        self._taken += 1
        if kind is not None:
            assert message["type"] == kind, f"Expected {kind}, but got {message!r}."
        return message

    async def accepted(self) -> Message:
        self.connect()
        return await self.next("websocket.accept")


@dataclass
class Outcome:
    """How one ASGI call ended: ``error`` is what it raised, if anything."""

    done: anyio.Event = field(default_factory=anyio.Event)
    error: BaseException | None = None


@contextlib.asynccontextmanager
async def serving(
    app: Callable[..., Awaitable[None]], server: FakeServer
) -> AsyncIterator[Outcome]:
    """Run ``app(scope, receive, send)`` beside the block; wait for its end on exit."""
    outcome = Outcome()

    async def call() -> None:
        try:
            await app(server.scope, server.receive, server.send)
        except Exception as exc:
            outcome.error = exc
        finally:
            outcome.done.set()

    async with anyio.create_task_group() as task_group:
        task_group.start_soon(call)
        yield outcome
        with anyio.fail_after(TIMEOUT):
            await outcome.done.wait()


async def start_cancellable(
    task_group: TaskGroup, app: Callable[..., Awaitable[None]], server: FakeServer
) -> anyio.CancelScope:
    """Start the ASGI call in ``task_group``; cancel the returned scope to cancel it."""
    scope = anyio.CancelScope()

    async def call() -> None:
        with scope:
            await app(server.scope, server.receive, server.send)

    task_group.start_soon(call)
    return scope


def accept_token(key: str) -> bytes:
    """RFC 6455's Sec-WebSocket-Accept, computed here independently of the bridge."""
    digest = hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
    return base64.b64encode(digest)


class RawPeer:
    """The app's end of the socket, byte by byte: a 101 by hand, then wsproto frames."""

    def __init__(self, environ: Environ) -> None:
        self.environ = environ
        self.sock: socket.socket = environ["gunicorn.socket"]
        self.sock.settimeout(TIMEOUT)
        self.conn = Connection(ConnectionType.SERVER)
        self._pending: list[Event] = []

    def handshake(self, *, subprotocol: str | None = None, extra: bytes = b"") -> None:
        token = accept_token(self.environ["HTTP_SEC_WEBSOCKET_KEY"])
        head = (
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + token + b"\r\n"
        )
        if subprotocol is not None:
            head += b"Sec-WebSocket-Protocol: " + subprotocol.encode() + b"\r\n"
        self.sock.sendall(head + extra + b"\r\n")

    def send(self, *events: Event) -> None:
        self.sock.sendall(b"".join(self.conn.send(event) for event in events))

    def next_event(self) -> Event:
        """The next event from the bridge; raises EOFError when the socket ends first."""
        while not self._pending:
            self._pending.extend(self.conn.events())
            if self._pending:
                break
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("the bridge's end of the socket closed")
            self.conn.receive_data(data)
        return self._pending.pop(0)

    def read_until_eof(self) -> bytes:
        """Every byte the bridge sends until its end closes."""
        chunks = []
        while data := self.sock.recv(65536):
            chunks.append(data)
        return b"".join(chunks)


def raw_app(body: Callable[[RawPeer], object]) -> Callable[[Environ, Any], list[bytes]]:
    """A WSGI app that runs ``body`` on its socket, then tells the server it took over."""

    def app(environ: Environ, start_response: Any) -> list[bytes]:
        body(RawPeer(environ))
        raise StopIteration  # as under gunicorn

    return app


async def wait_for(event: threading.Event, what: str) -> None:
    """Wait on the loop, without a thread, until a thread sets ``event``."""
    await wait_until(event.is_set, what)


def wait_in_thread(event: threading.Event, what: str) -> None:
    if not event.wait(TIMEOUT):
        raise AssertionError(f"Gave up after {TIMEOUT} s waiting for {what}.")


_LOOP_THREAD_CACHES = ("Trio thread", "AnyIO worker thread")
"""Idle threads the async libraries keep for themselves, whoever started them."""


def open_fds() -> set[int]:
    """This process's descriptors, but for /dev/null (uvloop opens one and keeps it)."""
    found = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}") != os.devnull:
                found.add(int(name))
        except OSError:
            pass  # closed meanwhile, such as the listing's own descriptor
    return found


@contextlib.asynccontextmanager
async def no_leaks() -> AsyncIterator[None]:
    """Fail unless every thread and file descriptor made inside the block is gone after it.

    Threads end shortly after the ASGI call returns (the app's library notices the
    end of its socket), and uvloop closes a transport's descriptor a loop iteration
    after the transport, so the check polls, for :data:`TIMEOUT` seconds, with the
    loop running.
    """
    threads = set(threading.enumerate())
    fds = open_fds()
    yield

    def extra() -> tuple[set[threading.Thread], set[int]]:
        new_threads = {
            thread
            for thread in set(threading.enumerate()) - threads
            if not thread.name.startswith(_LOOP_THREAD_CACHES)
        }
        return new_threads, open_fds() - fds

    try:
        await wait_until(lambda: extra() == (set(), set()), "threads and fds to go")
    except AssertionError:
        left_threads, left_fds = extra()
        raise AssertionError(
            f"Left behind: threads {sorted(t.name for t in left_threads)}, fds {left_fds}"
        ) from None


try:
    import uvloop  # noqa: F401

    HAVE_UVLOOP = True
except ImportError:  # pragma: no cover - uvloop is not built for every platform
    HAVE_UVLOOP = False


@pytest.fixture(
    params=[
        pytest.param("asyncio", id="asyncio"),
        pytest.param(
            ("asyncio", {"use_uvloop": True}),
            id="uvloop",
            marks=pytest.mark.skipif(not HAVE_UVLOOP, reason="uvloop is not installed"),
        ),
        pytest.param("trio", id="trio"),
    ],
    scope="module",
)
def anyio_backend(request: pytest.FixtureRequest) -> object:
    """Every test of a relay runs on asyncio, uvloop and trio."""
    return request.param
