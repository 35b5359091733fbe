"""One request under ``WSGIToASGI``, on the ASGI server's loop: the pump.

Theory of operation
-------------------
The pump is the ASGI call the server made; the worker
(:mod:`bridge._wsgi_to_asgi_worker`) runs the WSGI app in a pool thread. They share
one :class:`~bridge._streams.ToLoop` channel (response items, worker to pump) and,
when the request has a body, one :class:`~bridge._streams.ToThread` (body chunks,
pump to worker).

1. The pump builds the environ, takes a token from the adapter's capacity limiter
   (so at most ``max_threads`` apps run at once; the rest wait on the loop, which
   stays free) and submits the worker.
2. It takes every pending item at once, joins small chunks up to ``chunk_size`` and
   awaits ``send()``. Servers flush before ``send()`` returns and the channel holds at
   most ``high_water`` bytes, so a slow client blocks the worker in ``put()``:
   back-pressure, with bounded memory.
3. The pump is the one caller of ``receive()`` until the *receiver* task starts. A
   small declared body (Content-Length up to 64 KiB, no ``Expect: 100-continue``) is
   received before the worker starts, so it costs no hop at all. Otherwise the
   worker's first read of ``wsgi.input`` puts ``NEED_BODY``, and the pump receives the
   first message itself: a body in one message costs one hop and no task. If more
   follows, the receiver starts and reads the body ahead of the app, at most
   ``high_water`` bytes ahead. A disconnect before the body's end makes the read
   raise ``ClientDisconnected``, never a silent short body.
4. Once a response streams, the receiver runs too: after the body it waits for
   ``http.disconnect`` (some servers make ``send()`` a silent no-op after a
   disconnect). A disconnect aborts the channel: the worker's next ``put()`` raises
   ``ClientDisconnected``, iteration stops and the iterable's ``close()`` runs.
5. The worker's last item carries the exception that ended the request, raised here
   once the response is out, so the ASGI server sees it; after a disconnect, the one
   the disconnect caused is logged at debug in one line instead. The limiter token
   is released by whichever of the pump and the worker ends second.

The receiver, and the choice of a bare task or a task group for it, is
:mod:`bridge._wsgi_to_asgi_receiver`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Final

import anyio

from ._environ import build_environ
from ._file_wrapper import FileWrapper
from ._loop import CallSoon, current_loop
from ._streams import ToLoop, ToThread
from ._threads import pool
from ._wsgi_input import WSGIInput
from ._wsgi_to_asgi_receiver import Receiver
from ._wsgi_to_asgi_worker import (
    Chunk,
    Complete,
    Done,
    End,
    Item,
    NeedBody,
    PathSend,
    RequestBody,
    Start,
    Worker,
)
from .exceptions import BadRequest, BodyTooLarge, ClientDisconnected
from .types import Environ, Receive, Scope, Send

if TYPE_CHECKING:
    from ._wsgi_to_asgi import WSGIToASGI

logger = logging.getLogger("bridge")

_HTTP_1: Final = ("1.1", "1.0")
SMALL_BODY: Final = 65536
"""A declared body up to this size is received before the app starts."""


class Pump:
    """The ASGI side of one request under ``WSGIToASGI``, on the server's loop."""

    __slots__ = (
        "_body",
        "_channel",
        "_receive",
        "_receiver",
        "_scope",
        "_send",
        "_started",
        "_wsgi",
    )

    def __init__(self, wsgi: WSGIToASGI, scope: Scope, receive: Receive, send: Send) -> None:
        self._wsgi = wsgi
        self._scope = scope
        self._receive = receive
        self._send = send
        self._started = False  # http.response.start has gone out
        self._body: RequestBody | None = None  # None: framing says there is no body
        self._receiver: Receiver | None = None  # made when needed: a GET may need none

    async def run(self) -> None:
        wsgi = self._wsgi
        call_soon, loop = current_loop()
        channel: ToLoop[Item] = ToLoop(call_soon, loop, wsgi.high_water)
        self._channel = channel
        try:
            environ, self._body, read_now = request_environ(
                wsgi, self._scope, channel, call_soon, loop
            )
        except BadRequest as exc:
            logger.info("Refused a request to %r: %s", self._scope.get("path"), exc)
            await send_plain(self._send, exc.status_hint, str(exc))
            return
        in_pieces = False
        if read_now:
            assert self._body is not None
            self._body.asked = True
            in_pieces = await self._receiving().first()
        worker = Worker(wsgi.app, environ, self._scope, channel, call_soon, wsgi.limiter)
        limiter = wsgi.limiter
        try:
            limiter.acquire_on_behalf_of_nowait(worker)
        except anyio.WouldBlock:
            await limiter.acquire_on_behalf_of(worker)
        pool.submit(worker)
        try:
            if loop is None:
                await self._receiving().around(lambda: self._relay(in_pieces))
            else:
                try:
                    await self._relay(in_pieces)
                finally:
                    receiver = self._receiver
                    if receiver is not None and receiver.running:
                        await receiver.stop()
        except BaseException:
            self._receiving().abort()
            raise
        finally:
            if channel.leave():
                limiter.release_on_behalf_of(worker)

    def _receiving(self) -> Receiver:
        """The request's receiver, made on first use."""
        receiver = self._receiver
        if receiver is None:
            wsgi = self._wsgi
            receiver = Receiver(self._receive, self._channel, self._body, wsgi.max_body_size)
            self._receiver = receiver
        return receiver

    def _gone(self) -> bool:
        """The client has gone: nothing more is sent."""
        return self._receiver is not None and self._receiver.gone

    async def _relay(self, read_ahead: bool) -> None:
        """Relay the worker's items to ``send()`` until its last."""
        channel = self._channel
        if read_ahead:
            self._receiving().start()  # the small body came in pieces: read the rest ahead
        while True:
            taken = channel.take()
            while not isinstance(taken, list):
                await taken
                taken = channel.take()
            chunks: list[bytes] = []
            for item in taken:
                kind = type(item)
                if kind is Chunk:
                    chunks.append(item.data)  # type: ignore[union-attr]
                elif kind is Complete or kind is Start or kind is PathSend:
                    await self._send_head(item)  # type: ignore[arg-type]
                elif kind is Done:
                    if chunks:
                        await self._send_chunks(chunks, final=False)
                    if item.error is not None:  # type: ignore[union-attr]
                        try:
                            await self._finish(item.error)  # type: ignore[union-attr]
                        finally:
                            # The error's traceback keeps this frame: no cycle through it
                            # (the request's objects go at once, not with the cyclic GC).
                            item = taken = None  # type: ignore[assignment]
                    return
                elif kind is End:
                    await self._send_chunks(chunks, final=True)
                    chunks = []
                else:
                    assert kind is NeedBody
                    if chunks:
                        # Send what the app wrote before it asked for the body: the
                        # client may be waiting for it before it sends any.
                        await self._send_chunks(chunks, final=False)
                        chunks = []
                    receiver = self._receiving()
                    if not receiver.running and await receiver.first():
                        receiver.start()  # the rest is read ahead of the app
            if chunks:
                self._receiving().start()  # the response streams: watch for a disconnect
                await self._send_chunks(chunks, final=False)

    async def _send_head(self, item: Start | Complete | PathSend) -> None:
        """The response's head, with the whole body or the file when the item has one."""
        if self._gone():
            return
        self._started = True
        try:
            await self._send(
                {"type": "http.response.start", "status": item.status, "headers": item.headers}
            )
            if type(item) is Complete:
                await self._send({"type": "http.response.body", "body": item.body})
            elif type(item) is PathSend:
                await self._send({"type": "http.response.pathsend", "path": item.path})
        except OSError:
            self._receiving().abort()  # a send() that fails with an OSError: the client has gone

    async def _send_chunks(self, chunks: list[bytes], final: bool) -> None:
        """Send ``chunks``, joined into messages of up to ``chunk_size`` bytes."""
        if self._gone():
            return
        limit = self._wsgi.chunk_size
        try:
            if len(chunks) <= 1 or sum(map(len, chunks)) <= limit:
                body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                await self._send_body(body, not final)
                return
            batch: list[bytes] = []
            size = 0
            for chunk in chunks:
                if batch and size + len(chunk) > limit:
                    await self._send_body(b"".join(batch), True)
                    batch = []
                    size = 0
                batch.append(chunk)
                size += len(chunk)
            await self._send_body(b"".join(batch), not final)
        except OSError:
            self._receiving().abort()  # a send() that fails with an OSError: the client has gone

    async def _send_body(self, body: bytes, more: bool) -> None:
        await self._send({"type": "http.response.body", "body": body, "more_body": more})

    async def _finish(self, error: BaseException) -> None:
        if self._gone() and _caused_by_disconnect(error):
            logger.debug(
                "The client went away from %s %r; the app ended with %r.",
                self._scope.get("method"),
                self._scope.get("path"),
                error,
            )
            return
        if isinstance(error, BodyTooLarge) and not self._started:
            # The bridge's own limit tripped inside wsgi.input: answer it ourselves.
            logger.info("Answering 413 to %r: %s", self._scope.get("path"), error)
            await send_plain(self._send, error.status_hint, str(error))
            return
        try:
            raise error
        finally:
            del error  # its traceback keeps this frame: no reference cycle


def request_environ(
    wsgi: WSGIToASGI,
    scope: Scope,
    channel: ToLoop[Item],
    call_soon: CallSoon,
    loop: asyncio.AbstractEventLoop | None,
) -> tuple[Environ, RequestBody | None, bool]:
    """The request's environ, its body's source (None: no body), and whether to
    receive the body now, before the app starts.

    :raises BadRequest: as :func:`bridge._environ.build_environ`, or the body's
        declared length over ``max_body_size`` (:class:`BodyTooLarge`).
    """
    environ = build_environ(
        scope,
        keep_underscore_headers=wsgi.keep_underscore_headers,
        max_duplicate_headers=wsgi.max_duplicate_headers,
    )
    limit = wsgi.max_body_size
    declared = environ.get("CONTENT_LENGTH", "")
    length = int(declared) if declared.isascii() and declared.isdigit() else None
    if limit is not None and length is not None and length > limit:
        raise BodyTooLarge(limit)
    source: RequestBody | None = None
    read_now = False
    if (
        (declared == "0" or "CONTENT_LENGTH" not in environ)
        and "HTTP_TRANSFER_ENCODING" not in environ
        and scope.get("http_version", "1.1") in _HTTP_1
    ):
        # HTTP/1 framing says there is no body (RFC 9112 6.3).
        body = WSGIInput(_no_body, more=False)
    else:
        # wsgi.input reads from RequestBody, not from the pump: the pump holds the
        # environ, and a reference back would be a cycle for the GC per request.
        chunks: ToThread[tuple[bytes, bool]] = ToThread(call_soon, loop, wsgi.high_water)
        source = RequestBody(channel, chunks)
        body = WSGIInput(source.fetch, limit=limit)
        # A small declared body follows the headers at once (waitress even waits
        # for every body before it calls the app): take it before the app starts,
        # holding no thread yet, so the app's read needs no hop to the loop and back.
        # A client that expects 100-continue waits until the app reads, as natively.
        read_now = (
            length is not None
            and length <= SMALL_BODY
            and environ.get("HTTP_EXPECT", "").lower() != "100-continue"
        )
    environ["wsgi.input"] = body
    environ["wsgi.file_wrapper"] = FileWrapper
    return environ, source, read_now


async def send_plain(send: Send, status: int, text: str) -> None:
    """A short plain-text answer of the bridge's own, closing the connection."""
    body = text.encode("utf-8")
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode("ascii")),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _caused_by_disconnect(error: BaseException | None) -> bool:
    """True when ``error`` is, or was raised while handling, a ClientDisconnected."""
    seen = 0
    while error is not None and seen < 16:
        if isinstance(error, ClientDisconnected):
            return True
        error = error.__cause__ or error.__context__
        seen += 1
    return False


def _no_body() -> tuple[bytes, bool]:
    return b"", False  # never called: wsgi.input knows there is no body
