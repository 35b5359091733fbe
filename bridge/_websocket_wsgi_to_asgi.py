"""A WSGI app's WebSockets on an ASGI server, through ``WSGIToASGI``.

Theory of operation
-------------------
WSGI servers with WebSocket support (gunicorn, Werkzeug's) hand the app the
connection's socket in the environ; flask-sock and Flask-SocketIO (through
simple-websocket and wsproto) then answer the upgrade and speak RFC 6455 on it
themselves. An ASGI server has done the HTTP part of the handshake already and
speaks in messages, so the bridge gives the app a socket of its own and plays the
client on the other end of it:

1. On ``websocket.connect`` the session takes a token of the adapter's own
   limiter (``max_websockets``, apart from ``max_threads``: a WebSocket holds its
   thread for its whole life) without waiting; over the limit it denies the
   handshake (503).
2. It builds the upgrade request's environ (:func:`build_websocket_environ`) and a
   ``socket.socketpair()``. The app's end, a real blocking socket, is the environ's
   ``gunicorn.socket``, so the libraries behave as under gunicorn: they run the
   connection in the app's call, then raise ``StopIteration`` to say they took it
   over. The bridge's end is non-blocking and driven by the event loop, which
   never blocks (:mod:`bridge._websocket_w2a_io`: the loop's transport on asyncio and
   uvloop, ``anyio.wait_readable``/``wait_writable`` on trio). The app runs in a
   thread of its own (:class:`AppCall`).
3. ``HANDSHAKE``: h11 reads the app's answer from the socket. A valid 101 becomes
   ``websocket.accept`` with its subprotocol and extra headers; any other response
   is a denial, relayed as ``websocket.http.response.start``/``body`` when the
   server offers that extension, else as ``websocket.close``, which servers answer
   with 403. A response the app gives through ``start_response`` is written on the
   socket by its thread, so both arrive the same way. An app that ends without
   either, or with an exception, is denied with 500.
4. ``OPEN`` (:mod:`bridge._websocket_w2a_relay`): the app's frames become
   ``websocket.send`` (whole messages read directly, every other frame by wsproto as
   the client, :mod:`bridge._websocket_frames`; a fragmented message is joined, up to
   ``max_message_size``, else the connection closes with 1009), each
   ``websocket.receive`` becomes a masked frame for the app, and the app's pings
   are answered. One task per direction, and
   each waits for its destination before it reads more from its source, so memory
   stays bounded both ways: the app's ``send()`` blocks while the client is slow,
   and ``receive()`` waits while the app does not read.
5. Closing: the app's close frame becomes ``websocket.close`` with its code and
   reason, and is answered (``APP_CLOSING``); ``websocket.disconnect`` becomes a
   close frame with the client's code and reason, or a shut socket when the
   client vanished (1006), as the app would see natively (``CLIENT_CLOSING``).
   Either way the app's end gets ``close_timeout`` seconds to finish before its
   socket is shut. Bytes from the app that are no WebSocket frames fail the
   connection: 1002 (or 1007 for bad UTF-8) to the app, 1011 to the client.
6. ``DONE``: the ASGI call shuts the app's socket, waits up to ``close_timeout``
   for the app's call to return, closes both ends, releases the token, and raises
   the app's exception unless it is how a library says it took the connection over
   (``StopIteration`` or ``ConnectionError`` after the app wrote on its socket).
   Cancelled, it does the same and raises what the app raised (an error from before
   it saw its socket end) in place of the cancellation. A thread still running
   after ``close_timeout`` releases the rest itself when it ends, and logs its error.
"""

from __future__ import annotations

import logging
import socket
from typing import Protocol

import anyio

from ._loop import current_loop, post
from ._websocket_environ import build_websocket_environ
from ._websocket_w2a_app import AppCall, no_body
from ._websocket_w2a_io import LoopEnd, open_end
from ._websocket_w2a_relay import CLOSE_TIMEOUT, MAX_MESSAGE_SIZE, TRANSITIONS, Phase, Relay
from ._websocket_w2a_wire import Denied, HandshakeReader
from ._wsgi_input import WSGIInput
from .exceptions import BadRequest, ClientDisconnected, WSGIProtocolError
from .types import Message as ASGIMessage
from .types import Receive, Scope, Send, WSGIApp

logger = logging.getLogger("bridge")

_CLOSE_WAIT = 1.0
"""Seconds the session waits for its descriptor to be closed (a loop iteration or two)."""


class WebSocketAdapter(Protocol):
    """What the session needs of ``WSGIToASGI``."""

    app: WSGIApp
    keep_underscore_headers: bool
    max_duplicate_headers: int | None
    websocket_limiter: anyio.CapacityLimiter


async def serve_websocket(
    adapter: WebSocketAdapter,
    scope: Scope,
    receive: Receive,
    send: Send,
    *,
    max_message_size: int = MAX_MESSAGE_SIZE,
    close_timeout: float = CLOSE_TIMEOUT,
) -> None:
    """Serve one ``websocket`` scope with the adapter's WSGI app (see the module's doc)."""
    session = _Session(adapter, scope, receive, send)
    session.max_message_size = max_message_size
    session.close_timeout = close_timeout
    await session.run()


class _Session:
    """One WebSocket: its phase, the handshake, and the end of the app's call."""

    def __init__(self, adapter: WebSocketAdapter, scope: Scope, receive: Receive, send: Send):
        self.adapter = adapter
        self.scope = scope
        self.receive = receive
        self._send = send
        self.phase = Phase.HANDSHAKE
        self.max_message_size = MAX_MESSAGE_SIZE
        self.close_timeout = CLOSE_TIMEOUT
        self.end: LoopEnd  # the bridge's end of the socket pair, once the token is taken
        self.error: WSGIProtocolError | None = None  # the app broke a protocol: raised last
        self._answered = False  # the app wrote on its socket (only for the end's verdict)

    def move(self, phase: Phase) -> None:
        if phase not in TRANSITIONS[self.phase]:
            raise AssertionError(f"A WebSocket session cannot go from {self.phase} to {phase}.")
        self.phase = phase

    async def send(self, message: ASGIMessage) -> bool:
        """``send()``; False when the server says the client is gone (ASGI 2.4)."""
        try:
            await self._send(message)
        except OSError:
            return False
        return True

    async def run(self) -> None:
        if (await self.receive())["type"] != "websocket.connect":
            return  # the client left before the handshake
        limiter = self.adapter.websocket_limiter
        try:
            limiter.acquire_on_behalf_of_nowait(self)
        except anyio.WouldBlock:
            logger.warning(
                "Denied a WebSocket to %r: %d are open, the limit (max_websockets).",
                self.scope.get("path"),
                limiter.total_tokens,
            )
            await _deny(self, 503, "Too many open WebSockets; try again later.")
            return
        try:
            environ = build_websocket_environ(
                self.scope,
                keep_underscore_headers=self.adapter.keep_underscore_headers,
                max_duplicate_headers=self.adapter.max_duplicate_headers,
            )
        except BadRequest as exc:
            limiter.release_on_behalf_of(self)
            logger.info("Refused a WebSocket to %r: %s", self.scope.get("path"), exc)
            await _deny(self, exc.status_hint, str(exc))
            return
        ours, theirs = socket.socketpair()
        ours.setblocking(False)
        call_soon, loop = current_loop()
        try:
            self.end = await open_end(ours, loop)
        except BaseException:
            ours.close()
            theirs.close()
            limiter.release_on_behalf_of(self)
            raise
        environ["gunicorn.socket"] = theirs
        environ["wsgi.input"] = WSGIInput(no_body, more=False)
        key: str = environ["HTTP_SEC_WEBSOCKET_KEY"]

        def release_from_thread() -> None:  # the loop left before the app returned
            theirs.close()
            if not post(call_soon, self.end.close):
                ours.close()  # the loop has ended (a test client's portal): no one else will
            post(call_soon, limiter.release_on_behalf_of, self)

        call = AppCall(self.adapter.app, environ, theirs, call_soon, release_from_thread)
        del environ
        call.start()
        try:
            trailing = await self._handshake(call, key)
            if trailing is not None:
                await Relay(self, trailing).run()
        except anyio.get_cancelled_exc_class():
            # The server ends the call (or a test client leaves its block): what the
            # app raised meanwhile, before it saw its socket end, is still raised.
            await self._end_call(call, theirs)
            self._conclude(call.error, cancelled=True)
            raise
        except BaseException:
            await self._end_call(call, theirs)
            raise
        await self._end_call(call, theirs)
        self._conclude(call.error)

    async def _end_call(self, call: AppCall, theirs: socket.socket) -> None:
        """Shut the app's socket, give its thread ``close_timeout`` s, release the rest.

        A thread still running then is left to release them itself when it ends.
        """
        self.end.shut()  # whatever the app still does with its end fails at once
        with anyio.move_on_after(self.close_timeout, shield=True):
            await call.done.wait()
        if call.done.is_set() or call.abandon():
            self.end.close()
            theirs.close()
            self.adapter.websocket_limiter.release_on_behalf_of(self)
            with anyio.move_on_after(_CLOSE_WAIT, shield=True):
                await self.end.wait_closed()

    async def _handshake(self, call: AppCall, key: str) -> bytes | None:
        """Relay the app's answer; the bytes after a 101, or None when it denied."""
        reader = HandshakeReader(key, self.scope.get("subprotocols") or ())
        while True:
            data = await self.end.receive()
            if not data and not self._answered:
                await call.done.wait()  # the app ended without a byte on its socket
                if call.error is None:
                    self.error = WSGIProtocolError(
                        "The app returned without answering the WebSocket upgrade: no "
                        "handshake on its socket, and no response through start_response()."
                    )
                break
            self._answered = True
            try:
                answer = reader.feed(data)
            except WSGIProtocolError as exc:
                self.error = exc
                break
            if answer is None:
                continue
            if isinstance(answer, Denied):
                await self._relay_denial(reader, answer)
                self.move(Phase.DONE)
                return None
            message: ASGIMessage = {
                "type": "websocket.accept",
                "subprotocol": answer.subprotocol,
                "headers": answer.headers,  # [] as well: what Starlette's accept() sends
            }
            if not await self.send(message):
                self.move(Phase.DONE)  # the client left during the handshake
                return None
            self.move(Phase.OPEN)
            return answer.trailing
        await _deny(self, 500, "Internal Server Error")
        self.move(Phase.DONE)
        return None

    async def _relay_denial(self, reader: HandshakeReader, denied: Denied) -> None:
        path = self.scope.get("path")
        if "websocket.http.response" not in (self.scope.get("extensions") or {}):
            logger.info(
                "The app denied a WebSocket to %r with status %d; the server answers 403 "
                "(it offers no websocket.http.response extension).",
                path,
                denied.status,
            )
            await self.send({"type": "websocket.close", "code": 1000})
            return
        start = {"type": "websocket.http.response.start", "status": denied.status}
        if not await self.send({**start, "headers": denied.headers}):
            return
        chunks, ended = reader.body(None)  # what came with the head
        while True:
            body = b"".join(chunks)
            if ended or body:
                more = not ended
                if not await self.send(
                    {"type": "websocket.http.response.body", "body": body, "more_body": more}
                ):
                    return
            if ended:
                return
            try:
                chunks, ended = reader.body(await self.end.receive())
            except WSGIProtocolError as exc:
                self.error = exc
                chunks, ended = [], True

    def _conclude(self, error: BaseException | None, cancelled: bool = False) -> None:
        """Raise what the server must hear of, after the session is over.

        ``StopIteration`` or ``ConnectionError`` from an app that wrote on its socket
        is how libraries tell a WSGI server they took the connection over (gunicorn
        and Werkzeug's server each expect one of them): no error.
        """
        path = self.scope.get("path")
        if error is None or isinstance(error, ClientDisconnected):
            pass  # the client went away while the app answered: nothing to report
        elif self._answered and isinstance(error, (StopIteration, ConnectionError)):
            logger.debug("The app's WebSocket to %r ended (%r).", path, error)
        elif isinstance(error, StopIteration):  # a coroutine cannot raise it
            raise WSGIProtocolError(
                "The app raised StopIteration without a word on its socket."
            ) from error
        else:
            raise error
        if self.error is not None and not cancelled:
            raise self.error


async def _deny(session: _Session, status: int, text: str) -> None:
    """Deny the handshake with a response of the bridge's own."""
    if "websocket.http.response" not in (session.scope.get("extensions") or {}):
        await session.send({"type": "websocket.close", "code": 1000})
        return
    body = text.encode("utf-8")
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode("ascii")),
    ]
    if await session.send(
        {"type": "websocket.http.response.start", "status": status, "headers": headers}
    ):
        await session.send({"type": "websocket.http.response.body", "body": body})
