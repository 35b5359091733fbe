"""In-process helpers for the tests of an ASGI app's WebSockets under ``ASGIToWSGI``.

* :class:`StandIn` plays a WSGI server that hands over its socket, as gunicorn
  does: one end of a real socket pair is the connection, a thread reads the
  request head from it (h11), builds the environ with ``gunicorn.socket`` (or
  ``werkzeug.socket``) and calls the adapter, and records how the call ended.
* :class:`RawClient` is a WebSocket client on the other end, built on wsproto, so a
  test controls every frame: fragments, pings, malformed frames, half-closes.

Every socket operation and every wait is bounded by :data:`TIMEOUT`.
"""

from __future__ import annotations

import io
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import unquote

import h11
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    RejectData,
    Request,
    TextMessage,
)

from bridge import ASGIToWSGI
from bridge.types import Environ, Message, Receive, Scope, Send

TIMEOUT = 5.0
"""Seconds any socket operation or wait may take before the test fails."""
BUFFER = 32768
"""Socket buffer sizes of the pair, so that back-pressure shows after little data."""


@dataclass
class Served:
    """How the adapter's call ended in the stand-in server's thread."""

    exception: BaseException | None = None
    status: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


class StandIn:
    """A one-connection WSGI server that hands its socket to the app (see module doc)."""

    def __init__(
        self,
        adapter: ASGIToWSGI,
        socket_key: str = "gunicorn.socket",
        offer: Callable[[socket.socket], socket.socket] | None = None,
    ) -> None:
        self.adapter = adapter
        self.socket_key = socket_key
        self.offer = offer
        """What the environ offers for the server's socket (the socket itself if None)."""
        self.client_sock, self.server_sock = socket.socketpair()
        for sock in (self.client_sock, self.server_sock):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, BUFFER)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, BUFFER)
        self.client_sock.settimeout(TIMEOUT)
        self.server_sock.settimeout(TIMEOUT)
        self.served = Served()
        self.environ: Environ = {}
        self._thread = threading.Thread(target=self._serve, name="stand-in", daemon=True)

    def __enter__(self) -> StandIn:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.client_sock.close()
        self._thread.join(TIMEOUT)
        self.server_sock.close()

    def finished(self, timeout: float = TIMEOUT) -> Served:
        """Wait for the adapter's call to end; fails the test after ``timeout`` s."""
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "The WSGI thread is still in the adapter."
        return self.served

    def is_serving(self) -> bool:
        return self._thread.is_alive()

    def _serve(self) -> None:
        sock = self.server_sock
        try:
            request = _read_request(sock)
        except OSError:
            return
        offered = sock if self.offer is None else self.offer(sock)
        self.environ = environ = _environ(request, offered, self.socket_key)

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            self.served.status = status
            self.served.headers = headers
            return None

        try:
            result = self.adapter(environ, start_response)
            try:
                self.served.body = b"".join(result)
            finally:
                getattr(result, "close", lambda: None)()
        except BaseException as exc:  # recorded for the test, as a server logs it
            self.served.exception = exc
            if not isinstance(exc, (StopIteration, ConnectionError)):
                _answer(sock, "500 Internal Server Error", [], b"")
            return
        _answer(sock, self.served.status or "", self.served.headers, self.served.body)


def _read_request(sock: socket.socket) -> h11.Request:
    conn = h11.Connection(h11.SERVER)
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(sock.recv(65536))
            continue
        assert isinstance(event, h11.Request), event
        return event


def _environ(request: h11.Request, sock: socket.socket, socket_key: str) -> Environ:
    target = request.target.decode("latin-1")
    path, _, query = target.partition("?")
    environ: Environ = {
        "REQUEST_METHOD": request.method.decode("ascii"),
        "SCRIPT_NAME": "",
        "PATH_INFO": unquote(path, encoding="latin-1"),
        "QUERY_STRING": query,
        "RAW_URI": target,
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/" + request.http_version.decode("ascii"),
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "40000",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": None,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        socket_key: sock,
    }
    for name, value in request.headers:
        key = "HTTP_" + name.decode("latin-1").upper().replace("-", "_")
        text = value.decode("latin-1")
        environ[key] = f"{environ[key]},{text}" if key in environ else text
    return environ


def _answer(sock: socket.socket, status: str, headers: list[tuple[str, str]], body: bytes) -> None:
    head = f"HTTP/1.1 {status}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
    try:
        sock.sendall(head.encode("latin-1") + b"\r\n" + body)
    except OSError:
        pass


class RawClient:
    """A WebSocket client on a socket, one wsproto event at a time."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.ws = WSConnection(ConnectionType.CLIENT)
        self._events: list[Event] = []

    def open(
        self,
        target: str = "/ws",
        subprotocols: Sequence[str] = (),
        headers: Sequence[tuple[bytes, bytes]] = (),
    ) -> Event:
        """Send the handshake; return the answer (``AcceptConnection`` or ``RejectConnection``)."""
        self.send(
            Request(
                host="testserver",
                target=target,
                subprotocols=list(subprotocols),
                extra_headers=list(headers),
            )
        )
        return self.next_event()

    def send(self, event: Event) -> None:
        self.sock.sendall(self.ws.send(event))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def next_event(self) -> Event:
        """The next event from the server, reading the socket as needed."""
        while not self._events:
            self._events.extend(self.ws.events())
            if self._events:
                break
            data = self.sock.recv(65536)
            self.ws.receive_data(data or None)
        return self._events.pop(0)

    def message(self) -> str | bytes:
        """The next whole message, fragments joined."""
        parts: list[Any] = []
        while True:
            event = self.next_event()
            assert isinstance(event, (TextMessage, BytesMessage)), event
            parts.append(event.data)
            if event.message_finished:
                return "".join(parts) if isinstance(event, TextMessage) else b"".join(parts)

    def closed(self) -> CloseConnection:
        """Wait for the server's close frame, skipping messages before it."""
        while True:
            event = self.next_event()
            if isinstance(event, CloseConnection):
                return event

    def read_to_end(self) -> bytes:
        """The raw bytes the server still sends until it closes its side."""
        data = bytearray()
        while chunk := self.sock.recv(65536):
            data += chunk
        return bytes(data)


def reject_body(client: RawClient) -> bytes:
    """The denial response's body, read after ``open()`` returned ``RejectConnection``."""
    body = bytearray()
    while True:
        event = client.next_event()
        assert isinstance(event, RejectData), event
        body += event.data
        if event.body_finished:
            return bytes(body)


def accepted(event: Event) -> AcceptConnection:
    assert isinstance(event, AcceptConnection), event
    return event


# Raw ASGI WebSocket apps.

App = Callable[[Scope, Receive, Send], Any]


def lifespan_or(app: App) -> App:
    """``app`` for websocket scopes, with a minimal lifespan."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    scope["state"]["greeting"] = "from lifespan"
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        await app(scope, receive, send)

    return wrapped


@dataclass
class Echo:
    """Accepts, echoes every message, and records what it received and how it ended."""

    subprotocol: str | None = None
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    received: list[Message] = field(default_factory=list)
    scope: Scope | None = None
    done: threading.Event = field(default_factory=threading.Event)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scope = scope
        try:
            assert (await receive())["type"] == "websocket.connect"
            accept: Message = {"type": "websocket.accept", "subprotocol": self.subprotocol}
            if self.headers:
                accept["headers"] = self.headers
            await send(accept)
            while True:
                message = await receive()
                self.received.append(message)
                if message["type"] == "websocket.disconnect":
                    return
                reply = {key: message.get(key) for key in ("text", "bytes")}
                await send({"type": "websocket.send", **reply})
        finally:
            self.done.set()

    @property
    def disconnect(self) -> Message:
        assert self.done.wait(TIMEOUT), "the app never ended"
        last = self.received[-1]
        assert last["type"] == "websocket.disconnect", self.received
        return last


def messages(received: Sequence[Message]) -> Iterator[str | bytes]:
    """The payloads of the ``websocket.receive`` messages among ``received``."""
    for message in received:
        if message["type"] == "websocket.receive":
            text: str | None = message.get("text")
            yield message["bytes"] if text is None else text
