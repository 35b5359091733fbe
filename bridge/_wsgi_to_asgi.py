"""``WSGIToASGI``: serve a WSGI app from an ASGI server.

Theory of operation
-------------------
A request is two parties: the *pump*, the ASGI task the server called, and the
*worker*, a pool thread that runs the WSGI app. They share one ``_Channel``.

1. The pump builds the environ, takes a token from the capacity limiter (so at
   most ``max_threads`` apps run at once; the rest wait on the loop, which stays
   free) and submits the worker.
2. The worker calls the app and puts what it produces into the channel: a
   finished list or tuple response as one ``COMPLETE`` item (a single hop back to
   the loop), otherwise the start line together with the first non-empty chunk
   (PEP 3333 delays headers until then), each further chunk, ``END``, and last
   ``DONE`` with the exception that ended the request, if any. A chunk that fills
   the declared Content-Length does not wake the pump: ``END`` follows at once and
   wakes it for both, so such a response is sent whole. ``close()`` on the
   app's iterable runs in the worker's ``finally``: on success, on error and when
   the client went away.
3. The pump takes everything pending at once, joins small chunks up to
   ``chunk_size`` and awaits ``send()``. Servers flush before ``send()`` returns
   and the channel holds at most ``high_water`` bytes, so a slow client blocks the
   worker in ``put()``: back-pressure, with bounded memory.
4. The pump is the one caller of ``receive()`` until the *receiver* task starts.
   A small declared body (Content-Length up to 64 KiB, no ``Expect:
   100-continue``) is received by the pump before the worker starts, so it costs no
   hop at all. Otherwise, when the app first reads ``wsgi.input``, the worker puts
   ``NEED_BODY`` (once) and waits on ``_bodies``; the pump receives the first
   message itself, so a body in one message costs one hop and no task. If more
   follows, the pump starts the receiver, which owns ``receive()`` from then on and
   reads the body ahead of the app into ``_bodies``, at most ``high_water`` bytes
   ahead (back-pressure on uploads). A disconnect before the body's end makes the
   read raise ``ClientDisconnected``, never a silent short body.
5. Once a response streams, the receiver is started too if it is not running: after
   the body it waits for ``http.disconnect`` (some servers make ``send()`` a silent
   no-op after a disconnect). On disconnect it aborts the channel: the worker's
   next ``put()`` raises ``ClientDisconnected``, iteration stops and ``close()``
   runs.
6. If the pump is cancelled, it aborts the channel the same way. The limiter
   token is released by whichever of the two finishes second: the pump on the
   loop, or the worker by posting the release to the loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import queue
import threading
from collections.abc import Generator, Iterable, Iterator, Sequence
from typing import IO, Any, Final, Protocol

import anyio

from ._environ import build_environ, encode_headers, parse_status, response_content_length
from ._lifespan import answer_lifespan
from ._loop import CallSoon, current_loop, post
from ._threads import pool
from ._websocket_wsgi_to_asgi import serve_websocket
from ._wsgi_input import WSGIInput
from .exceptions import BadRequest, ClientDisconnected, WSGIProtocolError
from .types import Environ, ExcInfo, Message, Receive, Scope, Send, WSGIApp

logger = logging.getLogger("bridge")

_NEED_BODY: Final = object()
_END: Final = object()
_START: Final = 1
_COMPLETE: Final = 2
_DONE: Final = 3
_PATHSEND: Final = 4


class FileWrapper:
    """``wsgi.file_wrapper``: a file as a response iterable.

    The bridge sends it with the ASGI ``http.response.pathsend`` extension when the
    server offers it and the file is a regular file read from its start; otherwise
    it is read in blocks in the worker thread.
    """

    __slots__ = ("block_size", "filelike")

    def __init__(self, filelike: IO[bytes], block_size: int = 65536) -> None:
        self.filelike = filelike
        self.block_size = block_size

    def __iter__(self) -> Iterator[bytes]:
        read = self.filelike.read
        size = max(self.block_size, 65536)
        while block := read(size):
            yield block

    def close(self) -> None:
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()

    def sendable_path(self) -> str | None:
        """The file's absolute path, when sending it by path gives the same bytes."""
        name = getattr(self.filelike, "name", None)
        if not isinstance(name, str):
            return None
        try:
            if self.filelike.tell() != 0:
                return None
            opened = os.fstat(self.filelike.fileno())
            path = os.path.realpath(name)
            on_disk = os.stat(path)
        except (OSError, AttributeError, ValueError):
            return None
        if (opened.st_dev, opened.st_ino) != (on_disk.st_dev, on_disk.st_ino):
            return None
        return path


class _Waiter(Protocol):
    def done(self) -> bool: ...
    def set_result(self, result: None) -> None: ...
    def __await__(self) -> Generator[Any, None, Any]: ...


class _AnyioWaiter:
    """A one-shot waiter with a future's interface, on any anyio backend."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = anyio.Event()

    def done(self) -> bool:
        return self._event.is_set()

    def set_result(self, result: None) -> None:
        self._event.set()

    def __await__(self) -> Generator[Any, None, Any]:
        return self._event.wait().__await__()


class _Channel:
    """Worker-to-pump queue of response items, bounded by bytes."""

    __slots__ = (
        "_aborted",
        "_bytes",
        "_call_soon",
        "_event",
        "_finished",
        "_high_water",
        "_items",
        "_left",
        "_lock",
        "_loop",
        "_space",
        "_waiting",
    )

    def __init__(
        self, call_soon: CallSoon, loop: asyncio.AbstractEventLoop | None, high_water: int
    ) -> None:
        self._call_soon = call_soon
        self._high_water = high_water
        self._items: list[object] = []
        self._lock = threading.Lock()
        self._space: threading.Condition | None = None  # made when the worker must wait
        self._bytes = 0
        self._waiting = False
        self._event: _Waiter | None = None
        self._loop = loop  # for waiters: asyncio's, or None for anyio's
        self._aborted = False
        self._finished = False  # the worker put its last item
        self._left = False  # the pump stopped reading

    # Worker side.

    def put(self, item: object, size: int = 0, wake: bool = True) -> None:
        """Queue ``item``; blocks while the channel is full.

        With ``wake=False`` the pump is not woken for it: the caller promises a
        :meth:`finish` right after, which wakes it once for both.

        :raises ClientDisconnected: once the pump has aborted the channel.
        """
        with self._lock:
            while True:
                if self._aborted:
                    raise ClientDisconnected("The client disconnected; the response was cut.")
                if not size or self._bytes < self._high_water:
                    break
                if self._space is None:
                    self._space = threading.Condition(self._lock)
                self._space.wait()
            self._append(item, size, wake)

    def finish(self, item: object) -> bool:
        """Queue the last item; never blocks or raises.

        Returns True when the pump has already left, so the worker must release
        what the pump would have (see :meth:`leave`).
        """
        with self._lock:
            self._append(item, 0, True)
            self._finished = True
            return self._left

    def _append(self, item: object, size: int, wake: bool) -> None:
        self._items.append(item)
        self._bytes += size
        if wake and self._waiting:
            self._waiting = False
            post(self._call_soon, self._wake_pump)

    def _wake_pump(self) -> None:
        if self._event is not None:
            _wake(self._event)

    # Pump side.

    def take(self) -> list[object] | _Waiter:
        """Every pending item, or when there is none a waiter to await before asking again.

        Not a coroutine: a request in flight holds one object fewer, and the cyclic
        GC sees that (see docs/performance.md).
        """
        with self._lock:
            items = self._items
            if items:
                self._items = []
                self._bytes = 0
                if self._space is not None:
                    self._space.notify()
                return items
            waiter = self._event = _new_waiter(self._loop)
            self._waiting = True
            return waiter

    def abort(self) -> None:
        """Make the worker's next ``put()`` raise ClientDisconnected."""
        with self._lock:
            self._aborted = True
            if self._space is not None:
                self._space.notify_all()

    def leave(self) -> bool:
        """The pump is done; True when the worker has finished too.

        Whichever of the two comes second releases the limiter token: the pump
        directly on the loop, or the worker by posting to it.
        """
        with self._lock:
            self._left = True
            return self._finished


class _BodyBuffer:
    """Request body chunks the receiver read ahead of the worker, bounded by bytes."""

    __slots__ = ("_asked", "_bytes", "_channel", "_lock", "_queue", "_waiter", "received")

    def __init__(self, channel: _Channel) -> None:
        self._channel = channel  # its loop, call_soon and high_water serve here too
        self._asked = False  # the worker has asked the pump for the body
        self._queue: queue.SimpleQueue[tuple[bytes, bool] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._bytes = 0
        self._waiter: _Waiter | None = None
        self.received = 0  # bytes of body put in so far (the receiver's side only)

    # Receiver side.

    def put(self, chunk: bytes, more: bool) -> None:
        self.received += len(chunk)
        with self._lock:
            self._bytes += len(chunk)
        self._queue.put((chunk, more))

    def end(self) -> None:
        """The body ends here: the client has gone."""
        self._queue.put(None)

    async def wait_for_space(self) -> None:
        with self._lock:
            if self._bytes < self._channel._high_water:
                return
            waiter = self._waiter = _new_waiter(self._channel._loop)
        await waiter

    # Worker side.

    def fetch(self) -> tuple[bytes, bool]:
        """``wsgi.input``'s source: asks the pump for the body once, then reads chunks."""
        if not self._asked:
            self._asked = True
            self._channel.put(_NEED_BODY)
        return self.get()

    def get(self) -> tuple[bytes, bool]:
        """The next chunk and whether more follow; blocks until the receiver has one.

        :raises ClientDisconnected: when the client went away before the end.
        """
        item = self._queue.get()
        if item is None:
            self._queue.put(None)  # every later read fails the same way
            raise ClientDisconnected(
                "The client disconnected before the request body was complete."
            )
        size = len(item[0])
        if size:
            with self._lock:
                self._bytes -= size
                waiter = self._waiter
                # Wake the receiver at half the mark, not for every chunk.
                if waiter is not None and self._bytes <= self._channel._high_water // 2:
                    self._waiter = None
                    post(self._channel._call_soon, _wake, waiter)
        return item


def _new_waiter(loop: asyncio.AbstractEventLoop | None) -> _Waiter:
    """A bare future on asyncio (cheaper than ``anyio.Event``), anyio's own elsewhere."""
    return loop.create_future() if loop is not None else _AnyioWaiter()


def _wake(waiter: _Waiter) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _no_body() -> tuple[bytes, bool]:
    return b"", False  # never called: wsgi.input knows there is no body


_SMALL_BODY: Final = 65536
"""A declared body up to this size is received before the app starts."""


def _is_body_empty(environ: Environ, scope: Scope) -> bool:
    """True when HTTP/1 framing says the request has no body (RFC 9112 6.3)."""
    return (
        environ.get("CONTENT_LENGTH") in (None, "0")
        and "HTTP_TRANSFER_ENCODING" not in environ
        and scope.get("http_version", "1.1") in ("1.1", "1.0")
    )


class WSGIToASGI:
    """Serve a WSGI application from an ASGI server.

    ``WSGIToASGI(wsgi_app)`` is an ASGI 3 application. Each request runs the WSGI
    app in a pool thread; the request body streams from ``receive()`` into
    ``wsgi.input`` as the app reads it, and the response streams from the app's
    iterable to ``send()`` with back-pressure both ways.

    Arguments:

    * ``app``: the WSGI application.
    * ``max_threads``: how many requests may run the app at once, as a count or a
      shared :class:`anyio.CapacityLimiter`. Further requests wait without blocking
      the event loop.
    * ``chunk_size``: small chunks the app yields while the client is busy are joined
      into ``send()`` messages of up to this many bytes; a larger chunk is sent as is.
    * ``high_water``: bytes the app may produce ahead of the client before its thread
      waits (back-pressure), and request body bytes read ahead of the app.
    * ``keep_underscore_headers``: keep request headers whose names contain ``_``.
      They are dropped by default, as nginx and gunicorn do, because ``X_Forwarded_For``
      and ``X-Forwarded-For`` would map to the same environ key.
    * ``max_duplicate_headers``: answer 400 when a header is repeated more often.
    * ``max_body_size``: answer 413 when the request body is larger (``None``: no limit).
    * ``max_websockets``: how many WebSockets may be open at once, as a count or a
      shared :class:`anyio.CapacityLimiter`, apart from ``max_threads`` (each holds
      a thread for its whole life); a handshake over the limit is denied (503).

    :raises TypeError: when ``app`` is not callable.
    :raises ValueError: on a non-positive limit or size.
    """

    def __init__(
        self,
        app: WSGIApp,
        *,
        max_threads: int | anyio.CapacityLimiter = 64,
        chunk_size: int = 65536,
        high_water: int = 1048576,
        keep_underscore_headers: bool = False,
        max_duplicate_headers: int = 100,
        max_body_size: int | None = None,
        max_websockets: int | anyio.CapacityLimiter = 64,
    ) -> None:
        if not callable(app):
            raise TypeError(f"Expected a WSGI application (a callable), but got {app!r}.")
        for name, value in (
            ("chunk_size", chunk_size),
            ("high_water", high_water),
            ("max_duplicate_headers", max_duplicate_headers),
        ):
            if value < 1:
                raise ValueError(f"Expected '{name}' to be at least 1, but got {value}.")
        if max_body_size is not None and max_body_size < 0:
            raise ValueError(f"Expected 'max_body_size' >= 0 or None, but got {max_body_size}.")
        if isinstance(max_threads, int):
            if max_threads < 1:
                raise ValueError(f"Expected 'max_threads' to be at least 1, but got {max_threads}.")
            max_threads = anyio.CapacityLimiter(max_threads)
        self.app = app
        self.limiter = max_threads
        self.chunk_size = chunk_size
        self.high_water = high_water
        self.keep_underscore_headers = keep_underscore_headers
        self.max_duplicate_headers = max_duplicate_headers
        self.max_body_size = max_body_size
        if isinstance(max_websockets, int):
            if max_websockets < 1:
                raise ValueError(f"Expected 'max_websockets' >= 1, but got {max_websockets}.")
            max_websockets = anyio.CapacityLimiter(max_websockets)
        self.websocket_limiter = max_websockets

    def __repr__(self) -> str:
        return f"WSGIToASGI({self.app!r})"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await _Responder(self, scope, receive, send).run()
        elif kind == "lifespan":
            await answer_lifespan(receive, send)
        elif kind == "websocket":
            await serve_websocket(self, scope, receive, send)
        else:
            raise ValueError(f"WSGIToASGI cannot serve scope type {kind!r}.")


async def _send_plain(send: Send, status: int, text: str) -> None:
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


class _Responder:
    """One request: the pump's state on the loop and the worker's in its thread."""

    __slots__ = (
        "_bodies",
        "_body_done",
        "_channel",
        "_context",
        "_environ",
        "_gone",
        "_headers",
        "_headers_sent",
        "_leftover",
        "_receive",
        "_remaining",
        "_scope",
        "_send",
        "_sent_start",
        "_status",
        "_streaming",
        "_wsgi",
    )

    def __init__(self, wsgi: WSGIToASGI, scope: Scope, receive: Receive, send: Send) -> None:
        self._wsgi = wsgi
        self._scope = scope
        self._receive = receive
        self._send = send
        # Worker-side state.
        self._status: int | None = None
        self._headers: list[tuple[bytes, bytes]]  # set with _status, which is checked first
        self._headers_sent = False
        self._remaining: int | None = None
        # Pump-side state.
        self._body_done = False
        self._gone = False
        self._sent_start = False
        self._leftover: Sequence[object] = ()
        self._streaming = False  # the receiver task owns receive()
        self._bodies: _BodyBuffer | None = None

    # The pump.

    async def run(self) -> None:
        wsgi = self._wsgi
        scope = self._scope
        call_soon, loop = current_loop()
        self._channel = _Channel(call_soon, loop, wsgi.high_water)
        try:
            environ = build_environ(
                scope,
                keep_underscore_headers=wsgi.keep_underscore_headers,
                max_duplicate_headers=wsgi.max_duplicate_headers,
            )
            limit = wsgi.max_body_size
            declared = environ.get("CONTENT_LENGTH", "")
            plain = declared.isascii() and declared.isdigit()  # else the app sees it as is
            if limit is not None and plain and int(declared) > limit:
                raise BadRequest(
                    f"The request body is larger than the limit of {limit} bytes.", 413
                )
            if _is_body_empty(environ, scope):
                self._body_done = True
                body = WSGIInput(_no_body, more=False)
            else:
                # Only a request with a body has a buffer. wsgi.input reads from the
                # buffer, not from this responder: the responder holds the environ,
                # and a reference back would be a cycle for the GC per request.
                self._bodies = _BodyBuffer(self._channel)
                body = WSGIInput(self._bodies.fetch, limit=limit)
        except BadRequest as exc:
            logger.info("Refused a request to %r: %s", scope.get("path"), exc)
            await _send_plain(self._send, exc.status_hint, str(exc))
            return
        environ["wsgi.input"] = body
        environ["wsgi.file_wrapper"] = FileWrapper
        self._environ = environ
        if (
            self._bodies is not None
            and plain
            and len(declared) <= 5
            and int(declared) <= _SMALL_BODY
            and environ.get("HTTP_EXPECT", "").lower() != "100-continue"
        ):
            # A small declared body follows the headers at once (waitress even waits
            # for every body before it calls the app): take it before the app starts,
            # holding no thread yet, so the app's read needs no hop to the loop and back.
            # A client that expects 100-continue waits until the app reads, as natively.
            self._bodies._asked = True
            if await self._receive_first():
                self._streaming = True  # it came in pieces: read the rest ahead

        limiter = wsgi.limiter
        try:
            limiter.acquire_on_behalf_of_nowait(self)
        except anyio.WouldBlock:
            await limiter.acquire_on_behalf_of(self)
        self._context = contextvars.copy_context()
        pool.submit(self)  # runs self(): no bound method or closure per request
        try:
            if self._streaming or not await self._relay():
                self._streaming = True
                if loop is not None:
                    await self._relay_with_receiver_task(loop)
                else:
                    await self._relay_with_receiver_in_task_group()
        except BaseException:
            self._abort()
            raise
        finally:
            if self._channel.leave():
                limiter.release_on_behalf_of(self)

    async def _relay_with_receiver_task(self, loop: asyncio.AbstractEventLoop) -> None:
        # On asyncio the receiver is a bare task: an anyio task group and cancel scope
        # cost more than the rest of a small streamed request (anyio formats the
        # task's repr on every cancel).
        receiver = loop.create_task(self._receive_ahead())
        error: BaseException | None = None
        try:
            await self._relay()
        finally:
            if receiver.done():
                if not receiver.cancelled():
                    error = receiver.exception()  # retrieved even when _relay raised
            else:
                # Stopped and waited for, as a task group would: nothing of the
                # request runs on after the app call returns.
                stopped = loop.create_future()
                receiver.add_done_callback(lambda _: _wake(stopped))
                receiver.cancel()
                await stopped
        if error is not None:
            raise error

    async def _relay_with_receiver_in_task_group(self) -> None:
        errors: list[Exception] = []  # raised below as themselves, not in an ExceptionGroup
        # The receiver is stopped by cancelling a scope of its own, which it leaves
        # normally: a task ending in a cancellation would leave a reference cycle
        # (its exception and anyio's frame) for the GC.
        stop_receiver = anyio.CancelScope()

        async def receive_ahead() -> None:
            with stop_receiver:
                try:
                    await self._receive_ahead()
                except Exception as exc:
                    errors.append(exc)

        async with anyio.create_task_group() as task_group:
            task_group.start_soon(receive_ahead)
            try:
                await self._relay()
            except Exception as exc:
                errors.insert(0, exc)
            stop_receiver.cancel()
        if errors:
            raise errors[0]

    async def _relay(self) -> bool:
        """Relay the worker's items to ``send()`` until it is done.

        Until the receiver runs (``_streaming``) it returns False when the response
        turns out to stream (before sending the first body message) or the body to
        need more than one message, so that the caller can start the receiver first.
        """
        channel = self._channel
        send = self._send
        streaming = self._streaming
        while True:
            items = self._leftover
            if not items:
                taken = channel.take()
                while not isinstance(taken, list):
                    await taken
                    taken = channel.take()
                items = taken
            self._leftover = ()
            chunks: list[bytes] = []
            final = False
            for index, item in enumerate(items):
                if type(item) is bytes:
                    chunks.append(item)
                elif item is _END:
                    final = True
                elif item is _NEED_BODY:
                    if streaming:
                        continue  # the receiver is already reading the body
                    if chunks and not self._gone:
                        # Send what the app wrote before it asked for the body: the
                        # client may be waiting for it before it sends any.
                        await self._send_chunks(chunks, False)
                        chunks.clear()
                    # The first message inline: a small body costs one hop and no task.
                    if await self._receive_first():
                        self._leftover = items[index + 1 :]
                        return False  # the receiver reads the rest ahead of the app
                else:
                    assert type(item) is tuple
                    tag = item[0]
                    if tag == _DONE:
                        if (chunks or final) and not self._gone:
                            await self._send_chunks(chunks, final)
                        if item[1] is not None:
                            await self._finish(item[1])
                        return True
                    self._sent_start = True
                    if self._gone:
                        continue
                    await send(
                        {"type": "http.response.start", "status": item[1], "headers": item[2]}
                    )
                    if tag == _COMPLETE:
                        await send({"type": "http.response.body", "body": item[3]})
                    elif tag == _PATHSEND:
                        await send({"type": "http.response.pathsend", "path": item[3]})
            if chunks and not final and not streaming:
                self._leftover = chunks
                return False
            if (chunks or final) and not self._gone:
                await self._send_chunks(chunks, final)

    async def _send_chunks(self, chunks: list[bytes], final: bool) -> None:
        send = self._send
        limit = self._wsgi.chunk_size
        count = len(chunks)
        if count == 1 or (count and sum(map(len, chunks)) <= limit):
            body = chunks[0] if count == 1 else b"".join(chunks)
            await send({"type": "http.response.body", "body": body, "more_body": not final})
            return
        batch: list[bytes] = []
        size = 0
        for chunk in chunks:
            if batch and size + len(chunk) > limit:
                await send(
                    {"type": "http.response.body", "body": b"".join(batch), "more_body": True}
                )
                batch = []
                size = 0
            batch.append(chunk)
            size += len(chunk)
        await send({"type": "http.response.body", "body": b"".join(batch), "more_body": not final})

    async def _finish(self, error: BaseException) -> None:
        if self._gone and isinstance(error, ClientDisconnected):
            logger.debug("Client went away from %r.", self._scope.get("path"))
            return
        if isinstance(error, BadRequest) and not self._sent_start:
            # The bridge's own limit tripped inside wsgi.input: answer it ourselves.
            await _send_plain(self._send, error.status_hint, str(error))
            return
        raise error

    async def _receive_first(self) -> bool:
        """Receive the first body message; True when more body follows.

        For the worker's first ``NEED_BODY``, or before the worker starts for a small
        declared body.
        """
        assert self._bodies is not None  # the worker asks only for a body there is
        message = await self._receive()
        if message["type"] != "http.request":
            self._abort()  # the client has gone
            return False
        return self._hand_on(message)

    def _hand_on(self, message: Message) -> bool:
        """Buffer a body message's bytes for the worker; True when more follow."""
        assert self._bodies is not None
        more = bool(message.get("more_body", False))
        if not more:
            self._body_done = True
        self._bodies.put(message.get("body", b""), more)
        return more

    async def _receive_ahead(self) -> None:
        """Own ``receive()``: read the body ahead of the app, then watch for a disconnect.

        It reads at most ``high_water`` bytes ahead, so an app that stops reading
        mid-upload also delays the news of a disconnect; after the body it waits
        for ``http.disconnect`` until the pump stops it.
        """
        receive = self._receive
        bodies = self._bodies
        limit = self._wsgi.max_body_size
        try:
            while True:
                if bodies is not None and not self._body_done:
                    await bodies.wait_for_space()
                message = await receive()
                kind = message["type"]
                if kind == "http.disconnect":
                    self._abort()
                    return
                if bodies is not None and kind == "http.request" and not self._body_done:
                    self._hand_on(message)
                    if limit is not None and bodies.received > limit:
                        return  # wsgi.input refuses the body: read no more of it
        except Exception:
            self._abort()  # the worker must not wait for body that will never come
            raise

    def _abort(self) -> None:
        self._gone = True
        self._channel.abort()
        if self._bodies is not None:
            self._bodies.end()

    # The worker.

    def __call__(self) -> None:
        """The worker's job, in a pool thread."""
        self._context.run(_Responder._work, self)

    def _work(self) -> None:
        error: BaseException | None = None
        iterable: Iterable[bytes] | None = None
        try:
            iterable = self._wsgi.app(self._environ, self._start_response)
            kind = type(iterable)
            if (kind is list or kind is tuple) and not self._headers_sent:
                self._complete(iterable)  # type: ignore[arg-type]  # plain sequences: no close()
            elif kind is FileWrapper and self._send_path(iterable):  # type: ignore[arg-type]
                pass
            else:
                write = self._write
                for chunk in iterable:
                    write(chunk, True)
                    if self._remaining == 0:
                        break
                self._end()
        except BaseException as exc:
            error = exc
        finally:
            close = getattr(iterable, "close", None)
            if close is not None:
                try:
                    close()
                except BaseException as exc:
                    if error is None:
                        error = exc
                    else:
                        logger.exception("The response iterable's close() raised too.")
            pump_left = self._channel.finish((_DONE, error))
            del error
            if pump_left:
                post(self._channel._call_soon, self._wsgi.limiter.release_on_behalf_of, self)

    def _start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
    ) -> Any:
        if exc_info is not None and exc_info[1] is not None:
            try:
                if self._headers_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self._status is not None:
            raise WSGIProtocolError(
                "start_response() was called a second time without exc_info; pass "
                "sys.exc_info() to replace the headers of a failed response."
            )
        code = parse_status(status)
        encoded = encode_headers(headers)
        try:
            remaining = response_content_length(encoded)
        except ValueError as exc:
            raise WSGIProtocolError(str(exc)) from None
        self._status = code
        self._headers = encoded
        self._remaining = remaining
        return self._write_callable

    def _write_callable(self, data: bytes) -> None:
        # PEP 3333: the first write() call transmits the headers, even for b"".
        if not self._headers_sent and type(data) is bytes and not data:
            self._send_start()
        self._write(data)

    def _send_start(self, wake: bool = True) -> None:
        if self._status is None:
            raise WSGIProtocolError("The app produced a response without calling start_response().")
        self._channel.put((_START, self._status, self._headers), wake=wake)
        self._headers_sent = True

    def _write(self, data: bytes, from_iterable: bool = False) -> None:
        if type(data) is not bytes:
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise WSGIProtocolError(
                    f"Expected the response body as bytes, but got {type(data).__name__}; "
                    "encode text before returning it."
                )
            data = bytes(data)
        if not data:
            return
        remaining = self._remaining
        last = False
        if remaining is not None:
            if remaining == 0:
                return
            if len(data) >= remaining:
                if len(data) > remaining:
                    logger.warning(
                        "The app sent more than its declared Content-Length for %r; "
                        "the excess was dropped.",
                        self._scope.get("path"),
                    )
                    data = data[:remaining]
                self._remaining = 0
                last = from_iterable  # write() returns to the app: send at once
            else:
                self._remaining = remaining - len(data)
        if not self._headers_sent:
            self._send_start(wake=False)  # the chunk follows at once
        # The iterable's chunk that completes the declared Content-Length is the last:
        # the worker stops iterating and puts END next, which wakes the pump once for
        # all of them, so the response is sent whole and needs no receiver task.
        self._channel.put(data, len(data), wake=not last)

    def _short_body(self, remaining: int | None) -> WSGIProtocolError | None:
        if (
            remaining
            and remaining > 0
            and self._environ["REQUEST_METHOD"] != "HEAD"
            and self._status not in (204, 304)
        ):
            return WSGIProtocolError(
                f"The app declared Content-Length but its body was {remaining} bytes short; "
                "the connection is aborted so the client does not wait for the rest."
            )
        return None

    def _end(self) -> None:
        if not self._headers_sent:
            self._send_start()
        error = self._short_body(self._remaining)
        if error is not None:
            raise error
        self._channel.put(_END)

    def _complete(self, parts: list[bytes] | tuple[bytes, ...]) -> None:
        if self._status is None:
            raise WSGIProtocolError("The app returned a response without calling start_response().")
        try:
            body = parts[0] if len(parts) == 1 and type(parts[0]) is bytes else b"".join(parts)
        except TypeError:
            raise WSGIProtocolError(
                "Expected the response iterable to hold bytes, but it holds "
                f"{sorted({type(part).__name__ for part in parts})}; encode text first."
            ) from None
        remaining = self._remaining
        if remaining is not None and len(body) != remaining:
            if len(body) > remaining:
                body = body[:remaining]
                logger.warning(
                    "The app sent more than its declared Content-Length for %r; "
                    "the excess was dropped.",
                    self._scope.get("path"),
                )
            else:
                error = self._short_body(remaining - len(body))
                if error is not None:
                    # Send what there is, then fail, as a streamed response would.
                    self._send_start()
                    self._channel.put(body, len(body))
                    raise error
        self._headers_sent = True
        # finish() follows at once (a list has no close()): one wake-up for both.
        self._channel.put((_COMPLETE, self._status, self._headers, body), wake=False)

    def _send_path(self, wrapper: FileWrapper) -> bool:
        extensions = self._scope.get("extensions") or {}
        if "http.response.pathsend" not in extensions or self._headers_sent:
            return False
        path = wrapper.sendable_path()
        if path is None or self._status is None:
            return False
        if self._remaining is not None and self._remaining != os.path.getsize(path):
            return False
        self._headers_sent = True
        self._channel.put((_PATHSEND, self._status, self._headers, path))
        return True
