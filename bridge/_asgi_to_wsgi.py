"""``ASGIToWSGI``: serve an ASGI app from a WSGI server.

Theory of operation
-------------------
Each adapter owns one event loop per process, run by a daemon thread that starts
with the first request (so a loop made before ``fork()``, e.g. by ``gunicorn
--preload``, is never reused: the child starts its own). The loop runs the app's
lifespan once, then one task per request.

A request is two parties: the WSGI server's thread, which called the adapter, and
the app's task on the loop. The WSGI thread owns all blocking I/O; the task never
touches ``wsgi.input`` or the server's socket.

* The task's ``send()`` puts response messages into ``inbox``, a thread-safe queue
  the WSGI thread reads. Body bytes waiting there are counted; above
  ``high_water`` the task's ``send()`` waits until the WSGI thread has taken them,
  so a slow client slows the app (back-pressure) and memory stays bounded.
* The task's ``receive()`` asks the WSGI thread for body bytes by putting
  ``NEED_BODY`` into the same inbox; the WSGI thread reads ``wsgi.input`` and posts
  the chunk back to the loop. A small body announced by ``CONTENT_LENGTH`` is read
  before the task starts, so the common request costs no extra hop.
* The WSGI thread waits for the first body message, calls ``start_response`` and
  returns a one-element list when the response is already complete, else an
  iterator whose ``__next__`` keeps pumping the inbox.
* When the WSGI server calls ``close()`` before the response is complete (client
  gone), the task's ``receive()`` returns ``http.disconnect`` and its ``send()``
  raises ``ClientDisconnected``. After the response is complete the WSGI thread
  leaves; work the app does after that (background tasks) stays on the loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import threading
import time
from collections.abc import Coroutine, Iterator, Mapping
from typing import Any, Final

import anyio
from asgiref.compatibility import guarantee_single_callable

from ._environ import (
    build_scope,
    content_length,
    decode_headers,
    status_line,
)
from ._lifespan import Lifespan, LifespanMode
from ._loop import LoopThread, ProcessLoop, post, uvloop_installed
from ._websocket_asgi_to_wsgi import serve_websocket
from .exceptions import (
    ASGIProtocolError,
    BadRequest,
    ClientDisconnected,
    LifespanFailed,
    ShuttingDown,
)
from .types import ASGIApp, Environ, Message, StartResponse

logger = logging.getLogger("bridge")

_CHUNK: Final = 65536
_NEED_BODY: Final = (0,)
_START: Final = 1
_BODY: Final = 2
_PATH: Final = 3
_DONE: Final = 4
_HEAD: Final = 5
_DISCONNECT: Final[Message] = {"type": "http.disconnect"}
_EMPTY_BODY: Final[Message] = {"type": "http.request", "body": b"", "more_body": False}
_EXTENSIONS: Final[dict[str, Any]] = {"http.response.pathsend": {}}


class ASGIToWSGI:
    """Serve an ASGI application from a WSGI server.

    ``ASGIToWSGI(asgi_app)`` is a WSGI application. The ASGI app runs on one event
    loop per process, in a daemon thread started with the first request (and
    started again in a child process after ``fork()``). Its lifespan startup runs
    before the first request is handled; shutdown runs on :meth:`close` and at
    interpreter exit.

    Arguments:

    * ``app``: the ASGI 3 application (an ASGI 2 double callable is adapted).
    * ``backend``: the event loop, ``"asyncio"`` or ``"trio"``; ``backend_options``
      are passed to :func:`anyio.run`. asyncio runs on uvloop when it is installed,
      as uvicorn's ``--loop auto`` does; ``{"use_uvloop": False}`` opts out.
    * ``lifespan``: ``"auto"`` (run it, tolerate apps without it), ``"on"`` or ``"off"``.
    * ``lifespan_timeout``: seconds to wait for startup and for shutdown.
    * ``response_timeout``: seconds to wait for the response to start before
      answering 504 and cancelling the app (``None``: wait as long as it takes).
    * ``high_water``: response bytes the app may send ahead of the WSGI server
      before its ``send()`` waits (back-pressure).
    * ``max_body_size``: answer 413 when the request body is larger (``None``: no limit).
    * ``websocket_max_size``: the largest WebSocket message the app receives; a larger
      one closes the connection with 1009 (WebSockets need a server that offers its
      socket: gunicorn, werkzeug).

    :raises TypeError: when ``app`` is not callable.
    :raises ValueError: on an unknown lifespan mode or a non-positive size.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        backend: str = "asyncio",
        backend_options: dict[str, Any] | None = None,
        lifespan: LifespanMode = "auto",
        lifespan_timeout: float = 60.0,
        response_timeout: float | None = None,
        high_water: int = 1048576,
        max_body_size: int | None = None,
        websocket_max_size: int = 16777216,
    ) -> None:
        if not callable(app):
            raise TypeError(f"Expected an ASGI application (a callable), but got {app!r}.")
        if lifespan not in ("auto", "on", "off"):
            raise ValueError(f"Expected lifespan 'auto', 'on' or 'off', but got {lifespan!r}.")
        if high_water < 1:
            raise ValueError(f"Expected 'high_water' to be at least 1, but got {high_water}.")
        if websocket_max_size < 1:
            raise ValueError(f"Expected 'websocket_max_size' >= 1, but got {websocket_max_size}.")
        if max_body_size is not None and max_body_size < 0:
            raise ValueError(f"Expected 'max_body_size' >= 0 or None, but got {max_body_size}.")
        self.app: ASGIApp = guarantee_single_callable(app)  # type: ignore[no-untyped-call]
        self.backend = backend
        if backend_options is None and backend == "asyncio" and uvloop_installed():
            # As uvicorn's --loop auto: uvloop's C event loop costs less per request.
            backend_options = {"use_uvloop": True}
        self.backend_options = backend_options
        self.lifespan: LifespanMode = lifespan
        self.lifespan_timeout = lifespan_timeout
        self.response_timeout = response_timeout
        self.high_water = high_water
        self.max_body_size = max_body_size
        self.websocket_max_size = websocket_max_size
        self._loops = ProcessLoop(self._new_loop, lifespan_timeout + 5)

    def __repr__(self) -> str:
        return f"ASGIToWSGI({self.app!r})"

    def _new_loop(self) -> LoopThread:
        return LoopThread(
            Lifespan(self.app, self.lifespan),
            backend=self.backend,
            backend_options=self.backend_options,
            lifespan_timeout=self.lifespan_timeout,
        )

    def close(self) -> None:
        """Run the app's lifespan shutdown and stop the event loop thread.

        The next request starts a new loop (and runs startup again).
        """
        self._loops.close(self.lifespan_timeout + 5)

    def __call__(self, environ: Environ, start_response: StartResponse) -> Any:
        loop = self._loops.get()
        if loop.lifespan.error is not None:
            raise LifespanFailed(f"The ASGI app's lifespan startup failed: {loop.lifespan.error}")
        if "HTTP_UPGRADE" in environ:
            answer = serve_websocket(self, loop, environ, start_response)
            if answer is not None:
                return answer
        try:
            exchange = _Exchange(self, loop, environ)
        except BadRequest as exc:
            logger.info("Refused a request: %s", exc)
            return _plain(start_response, exc.status_hint, str(exc))
        return exchange.respond(start_response)


def _framed_without_body(environ: Environ) -> bool:
    """HTTP/1 framing says a ``wsgi.input_terminated`` request has no body.

    RFC 9112 6.3: without Content-Length or Transfer-Encoding a request has no
    body; gunicorn, for one, marks every request's input as terminated.
    """
    return (
        "HTTP_TRANSFER_ENCODING" not in environ
        and environ.get("SERVER_PROTOCOL") in ("HTTP/1.1", "HTTP/1.0")
        and "wsgi.input" in environ
    )


def _plain(start_response: StartResponse, status: int, text: str) -> list[bytes]:
    body = text.encode("utf-8")
    start_response(
        status_line(status),
        [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))],
    )
    return [body]


class _Exchange:
    """One request, shared by the WSGI thread and the app's task."""

    __slots__ = (
        "_adapter",
        "_body_complete",
        "_body_left",
        "_body_ready",
        "_body_sent",
        "_cancel_scope",
        "_complete",
        "_drained",
        "_environ",
        "_finished",
        "_gone",
        "_head",
        "_inbox",
        "_lock",
        "_loop",
        "_low_water",
        "_next_message",
        "_pending_bytes",
        "_received",
        "_receiving",
        "_running",
        "_scope",
        "_started",
        "_task",
        "_too_large",
    )

    def __init__(self, adapter: ASGIToWSGI, loop: LoopThread, environ: Environ) -> None:
        self._adapter = adapter
        self._loop = loop
        self._environ = environ
        scope = build_scope(environ, extensions=_EXTENSIONS)
        if loop.lifespan.supported:
            scope["state"] = loop.lifespan.state.copy()
        self._scope = scope
        self._inbox: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        # Request body: how much is left to read (None: read to EOF).
        length = content_length(environ)
        limit = adapter.max_body_size
        if limit is not None and length is not None and length > limit:
            raise BadRequest(f"The request body is larger than the limit of {limit} bytes.", 413)
        self._received = 0
        self._too_large = False
        self._low_water = adapter.high_water // 2
        if length is None and not environ.get("wsgi.input_terminated"):
            length = 0  # PEP 3333: without CONTENT_LENGTH there is no body to read.
        self._body_left = length
        self._next_message: Message | None = None
        if length is not None and length <= _CHUNK:
            self._next_message = self._read_body() if length else _EMPTY_BODY
        elif length is None and _framed_without_body(environ):
            # The server answers at once, so the first read is made here: an app that
            # calls receive() on a GET needs no hop back to this thread for it.
            self._next_message = self._read_body()
        # Loop-side state.
        self._body_complete = False
        self._started = False
        self._head: tuple[str, list[tuple[str, str]]] | None = None
        self._body_sent = False
        self._complete = False
        self._gone = False
        self._finished: anyio.Event | None = None
        self._task: asyncio.Task[Any] | None = None
        self._running = False
        self._cancel_scope: anyio.CancelScope | None = None
        self._body_ready: anyio.Event | None = None
        self._receiving = False
        self._pending_bytes = 0
        self._drained: anyio.Event | None = None

    # The WSGI thread.

    def respond(self, start_response: StartResponse) -> Any:
        loop = self._loop
        loop.spawn(self)
        timeout = self._adapter.response_timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        status: str | None = None
        headers: list[tuple[str, str]] = []
        while True:
            try:
                item = self._next_item(deadline)
            except queue.Empty:
                if self._head is not None:
                    deadline = None  # started: the rest of the response may take its time
                    continue
                self._cancel()
                logger.error(
                    "The ASGI app did not start a response within %s s; answering 504.", timeout
                )
                return _plain(start_response, 504, "Gateway Timeout")
            tag = item[0]
            if tag == _HEAD or tag == _BODY:
                if tag == _HEAD:
                    status, headers, body, more = item[1], item[2], item[3], item[4]
                else:
                    assert status is not None
                    body, more = item[1], item[2]
                if not more:
                    start_response(status, headers)
                    return [body]
                if not body:
                    continue
                start_response(status, headers)
                return _ResponseStream(self, body)
            elif tag == _START:
                status, headers = item[1], item[2]
            elif tag == _PATH:
                assert status is not None
                start_response(status, headers)
                file = open(item[1], "rb")
                wrapper = self._environ.get("wsgi.file_wrapper")
                if wrapper is not None:
                    return wrapper(file, _CHUNK)
                return _FileIterator(file)
            else:
                error = item[1]
                if self._too_large:
                    # The bridge's own limit ended the body: its answer, whatever the
                    # app made of the disconnect it was given.
                    limit = self._adapter.max_body_size
                    logger.info("Answering 413: the request body exceeded %s bytes.", limit)
                    return _plain(
                        start_response,
                        413,
                        f"The request body is larger than the limit of {limit} bytes.",
                    )
                if error is not None:
                    raise error
                if self._gone:  # not answering a client that has gone is allowed
                    raise ClientDisconnected("The client disconnected before the response.")
                raise ASGIProtocolError("The ASGI app returned without starting a response.")

    def _next_item(self, deadline: float | None = None) -> tuple[Any, ...]:
        """The next response item from the task, serving body reads meanwhile."""
        inbox = self._inbox
        while True:
            if deadline is None:
                item = inbox.get()
            else:
                item = inbox.get(timeout=max(0.0, deadline - time.monotonic()))
            if item is _NEED_BODY:
                try:
                    message = self._read_body()
                except BadRequest:
                    # The server's own input is broken: end the app's wait, then fail.
                    post(self._loop.call_soon, self._deliver_body, _DISCONNECT)
                    raise
                post(self._loop.call_soon, self._deliver_body, message)
                continue
            tag = item[0]
            if (tag == _BODY or tag == _HEAD) and item[-1]:
                # A chunk with more to follow: the app counted it against high water.
                size = len(item[1] if tag == _BODY else item[3])
                if size:
                    with self._lock:
                        self._pending_bytes -= size
                        drained = self._drained
                        # Wake the app at half the mark (low water), not for every chunk.
                        if drained is not None and self._pending_bytes <= self._low_water:
                            self._drained = None
                            post(self._loop.call_soon, drained.set)
            return item

    def _read_body(self) -> Message:
        left = self._body_left
        stream = self._environ.get("wsgi.input")
        if stream is None:
            raise BadRequest("The WSGI server's environ has no 'wsgi.input'.")
        try:
            data = stream.read(_CHUNK if left is None else min(_CHUNK, left))
        except Exception as exc:  # the server's input raises its own types on a cut upload
            logger.info("Reading the request body failed (%r); treating it as a disconnect.", exc)
            return _DISCONNECT
        if type(data) is not bytes:
            if not isinstance(data, (bytearray, memoryview)):
                raise BadRequest(
                    f"The WSGI server's wsgi.input returned {type(data).__name__}, not bytes."
                )
            data = bytes(data)
        self._received += len(data)
        limit = self._adapter.max_body_size
        if limit is not None and self._received > limit:
            self._too_large = True
            return _DISCONNECT
        if left is None:
            more = bool(data)
        else:
            left -= len(data)
            self._body_left = left
            if left and not data:
                return _DISCONNECT  # the client closed before sending CONTENT_LENGTH bytes
            more = left > 0
        return {"type": "http.request", "body": data, "more_body": more}

    def close_early(self) -> None:
        """The WSGI server closed the response before it was complete."""
        post(self._loop.call_soon, self._client_gone)

    def _cancel(self) -> None:
        post(self._loop.call_soon, self._cancel_on_loop)

    def _cancel_on_loop(self) -> None:
        # On the loop, so that either the task can be cancelled, or it has not
        # started yet and gives up on seeing _gone.
        self._client_gone()
        if not self._running:
            return  # _run_app sees _gone when it starts, and starts cancelled
        if self._task is not None:
            self._task.cancel()
        elif self._cancel_scope is not None:
            self._cancel_scope.cancel()

    # The app's task.

    def start(self, loop: LoopThread) -> Coroutine[Any, Any, None]:
        return self._run_app()

    async def _run_app(self) -> None:
        loop = self._loop
        error: BaseException | None = None
        self._running = True
        if loop.asyncio_loop is not None:
            self._task = asyncio.current_task()
        try:
            # Timed out before this task started (_gone): the app starts cancelled.
            if self._task is not None:
                if self._gone:
                    self._task.cancel()
                await self._adapter.app(self._scope, self._receive, self._send)
            else:
                with anyio.CancelScope() as self._cancel_scope:
                    if self._gone:
                        self._cancel_scope.cancel()
                    await self._adapter.app(self._scope, self._receive, self._send)
        except BaseException as exc:
            if isinstance(exc, loop.cancelled):
                if loop.stopping:
                    error = ShuttingDown("The process is shutting down; the request was cancelled.")
                else:
                    error = ShuttingDown("The bridge cancelled the request.")
                raise
            error = exc
            if self._complete or self._gone:
                if not (self._gone and isinstance(exc, OSError)):
                    logger.exception("Exception in the ASGI app after its response was complete.")
        finally:
            if not self._complete:
                self._inbox.put((_DONE, error))
            del error
            loop.forget(self._task)

    async def _receive(self) -> Message:
        message = self._next_message
        if message is not None:
            self._next_message = None
            if message is _DISCONNECT:
                self._client_gone()
            elif not message["more_body"]:
                self._body_complete = True
            return message
        while self._receiving:
            # Another receive() is waiting for the body; it gets the next chunk.
            assert self._body_ready is not None
            await self._body_ready.wait()
        if self._body_complete or self._gone or self._complete:
            if not (self._complete or self._gone):
                if self._finished is None:
                    self._finished = anyio.Event()
                await self._finished.wait()
            return _DISCONNECT
        self._receiving = True
        event = self._body_ready = anyio.Event()
        self._inbox.put(_NEED_BODY)
        await event.wait()
        return await self._receive()

    def _deliver_body(self, message: Message) -> None:
        self._next_message = message
        self._receiving = False
        if self._body_ready is not None:
            self._body_ready.set()

    def _client_gone(self) -> None:
        self._gone = True
        if self._finished is not None:
            self._finished.set()
        if self._receiving:
            self._deliver_body(_DISCONNECT)
        drained = self._drained
        if drained is not None:
            self._drained = None
            drained.set()

    async def _send(self, message: Message) -> None:
        if type(message) is not dict and not isinstance(message, Mapping):
            raise ASGIProtocolError(
                f"Expected an ASGI message (a dict), but got {type(message).__name__}."
            )
        kind = message.get("type")
        if kind == "http.response.body":
            if not self._started:
                raise ASGIProtocolError(
                    "Expected ASGI message 'http.response.start', but got 'http.response.body'."
                )
            if self._complete:
                raise ASGIProtocolError(
                    "Got ASGI message 'http.response.body' after the response was complete."
                )
            if self._gone:
                raise ClientDisconnected(
                    "The client disconnected; the WSGI server closed the response."
                )
            body = message.get("body", b"")
            if type(body) is not bytes:
                if not isinstance(body, (bytearray, memoryview)):
                    raise ASGIProtocolError(
                        f"Expected 'body' to be bytes, but got {type(body).__name__}."
                    )
                body = bytes(body)
            more = bool(message.get("more_body", False))
            self._body_sent = True
            if not more:
                self._complete = True
                if self._finished is not None:
                    self._finished.set()
                self._put_body(body, False)
                return
            if not body:
                return
            with self._lock:
                self._pending_bytes += len(body)
                drained = None
                if self._pending_bytes > self._adapter.high_water:
                    drained = self._drained = anyio.Event()
            self._put_body(body, True)
            if drained is not None:
                await drained.wait()
                if self._gone:
                    raise ClientDisconnected(
                        "The client disconnected; the WSGI server closed the response."
                    )
        elif kind == "http.response.start":
            if self._started:
                raise ASGIProtocolError("Got ASGI message 'http.response.start' a second time.")
            status = message.get("status")
            if type(status) is not int or not 100 <= status <= 599:
                raise ASGIProtocolError(f"Expected an int HTTP status, but got {status!r}.")
            raw_headers = message.get("headers", ())
            headers = decode_headers(raw_headers)
            self._started = True
            # Held until the first body bytes: one wake-up of the WSGI thread, not two.
            self._head = (status_line(status), headers)
        elif kind == "http.response.pathsend":
            if not self._started or self._complete or self._body_sent:
                raise ASGIProtocolError(
                    "Got ASGI message 'http.response.pathsend' outside a started response "
                    "or after 'http.response.body'."
                )
            path = message.get("path")
            if not isinstance(path, str) or not os.path.isabs(path):
                raise ASGIProtocolError(f"Expected an absolute 'path', but got {path!r}.")
            self._complete = True
            if self._finished is not None:
                self._finished.set()
            head = self._head
            if head is not None:
                self._head = None
                self._inbox.put((_START, head[0], head[1]))
            self._inbox.put((_PATH, path))
        elif kind == "http.response.trailers":
            raise ASGIProtocolError(
                "WSGI cannot carry 'http.response.trailers'; the bridge does not advertise "
                "the trailers extension."
            )
        else:
            raise ASGIProtocolError(
                f"Expected an 'http.response.*' ASGI message, but got {kind!r}."
            )

    def _put_body(self, body: bytes, more: bool) -> None:
        head = self._head
        if head is None:
            self._inbox.put((_BODY, body, more))
        else:
            self._head = None
            self._inbox.put((_HEAD, head[0], head[1], body, more))


class _ResponseStream:
    """The WSGI iterable of a streamed response."""

    __slots__ = ("_done", "_exchange", "_first")

    def __init__(self, exchange: _Exchange, first: bytes) -> None:
        self._exchange = exchange
        self._first: bytes | None = first
        self._done = False

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        first = self._first
        if first is not None:
            self._first = None
            return first
        if self._done:
            raise StopIteration
        while True:
            item = self._exchange._next_item()
            tag = item[0]
            if tag == _BODY:
                body, more = item[1], item[2]
                if not more:
                    self._done = True
                    if body:
                        return body  # type: ignore[no-any-return]
                    raise StopIteration
                if body:
                    return body  # type: ignore[no-any-return]
            elif tag == _DONE:
                self._done = True
                error = item[1]
                if error is not None:
                    raise error
                raise ASGIProtocolError("The ASGI app returned before completing its response.")
            else:
                self._done = True
                raise ASGIProtocolError(f"Unexpected response item {item!r} mid-stream.")

    def close(self) -> None:
        if not self._done:
            self._done = True
            self._exchange.close_early()


class _FileIterator:
    __slots__ = ("_file",)

    def __init__(self, file: Any) -> None:
        self._file = file

    def __iter__(self) -> Iterator[bytes]:
        read = self._file.read
        while block := read(_CHUNK):
            yield block

    def close(self) -> None:
        self._file.close()
