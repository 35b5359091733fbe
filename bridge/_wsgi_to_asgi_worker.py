"""One request under ``WSGIToASGI``, in a pool thread: the worker that runs the WSGI app.

Theory of operation
-------------------
The worker calls the app and puts what it produces into the request's
:class:`~bridge._streams.ToLoop` channel, as the items below, for the pump on the
ASGI server's loop (:mod:`bridge._wsgi_to_asgi_pump`):

* a list or tuple response, once ``start_response()`` was called, is one
  :class:`Complete` item: a single hop back to the loop;
* otherwise :class:`Start` goes with the first non-empty chunk (PEP 3333 holds the
  headers until then), each further :class:`Chunk`, :data:`END`, and last
  :class:`Done` with the exception that ended the request, if any, or else the one
  the app handled with ``exc_info``. The chunk that fills the declared
  Content-Length does not wake the pump: :data:`END` follows at once and wakes it
  for both, so such a response is sent whole.

The iterable's ``close()`` runs in the worker's ``finally``: on success, on error and
when the client went away (the channel's ``put()`` then raises
:class:`~bridge.ClientDisconnected`, which stops the iteration). The app reads the
request body through ``wsgi.input``, whose source is :class:`RequestBody`: the
first read asks the pump for the body (:data:`NEED_BODY`), then reads what the pump
hands on.
"""

from __future__ import annotations

import contextvars
import logging
import os
from collections.abc import Iterable
from typing import Any, Final, NamedTuple

import anyio

from ._file_wrapper import FileWrapper
from ._loop import CallSoon, post
from ._streams import Gone, ToLoop, ToThread
from ._wsgi_response import HEADERS_HELD, HEADERS_SENT, WSGIResponse, close_iterable
from .exceptions import ClientDisconnected, WSGIProtocolError
from .types import Environ, ExcInfo, Scope, WSGIApp

logger = logging.getLogger("bridge")


class Start(NamedTuple):
    """The response head; the first chunk follows at once."""

    status: int
    headers: list[tuple[bytes, bytes]]


class Chunk(NamedTuple):
    data: bytes


class End(NamedTuple):
    """The body is complete."""


class Complete(NamedTuple):
    """A whole response in one item."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


class PathSend(NamedTuple):
    """A whole response whose body is a file the server sends by path."""

    status: int
    headers: list[tuple[bytes, bytes]]
    path: str


class Done(NamedTuple):
    """The worker's last item: the exception to raise to the ASGI server, if any."""

    error: BaseException | None


class NeedBody(NamedTuple):
    """The app read ``wsgi.input``: the pump receives the body."""


_new = tuple.__new__
"""Builds an item without a NamedTuple's own ``__new__``, a Python call, on every request."""

END: Final = End()
_DONE_CLEAN: Final = Done(None)  # (immutable: one serves every request)
NEED_BODY: Final = NeedBody()

Item = Start | Chunk | End | Complete | PathSend | Done | NeedBody


class RequestBody:
    """The request body on its way from the pump to ``wsgi.input``."""

    __slots__ = ("asked", "channel", "chunks")

    def __init__(self, channel: ToLoop[Item], chunks: ToThread[tuple[bytes, bool]]) -> None:
        self.channel = channel
        self.chunks = chunks
        self.asked = False
        """Whether the pump was asked for the body (or received its start unasked)."""

    def fetch(self) -> tuple[bytes, bool]:
        """``wsgi.input``'s source: the next chunk and whether more follow.

        :raises ClientDisconnected: when the client went away before the end.
        """
        if not self.asked:
            self.asked = True
            self.channel.put(NEED_BODY)
        try:
            return self.chunks.get()
        except Gone:
            raise ClientDisconnected(
                "The client disconnected before the request body was complete."
            ) from None


class Worker(WSGIResponse):
    """The WSGI side of one request, run in a pool thread (it is the pool's job).

    It is the response's :class:`WSGIResponse` (the rules each call is checked
    against), and does the I/O: the app's call, and the items for the pump.
    """

    __slots__ = (
        "_app",
        "_call_soon",
        "_channel",
        "_context",
        "_environ",
        "_held",
        "_limiter",
        "_scope",
        "_warned",
    )

    def __init__(
        self,
        app: WSGIApp,
        environ: Environ,
        scope: Scope,
        channel: ToLoop[Item],
        call_soon: CallSoon,
        limiter: anyio.CapacityLimiter,
    ) -> None:
        self._app = app
        self._environ = environ
        self._scope = scope
        self._channel = channel
        self._call_soon = call_soon
        self._limiter = limiter
        self._context = contextvars.copy_context()  # the ASGI task's, as asgiref does
        self._warned = False
        self._held: Complete | None = None  # a whole response, put with the last item

    def __call__(self) -> None:
        # The response's state starts here, in the pool thread: the loop's thread,
        # which every request shares, does less.
        WSGIResponse.__init__(self, self._environ["REQUEST_METHOD"])
        self._context.run(Worker._work, self)

    def _work(self) -> None:
        error: BaseException | None = None
        iterable: Iterable[bytes] | None = None
        try:
            iterable = self._app(self._environ, self._start_response)
            kind = type(iterable)
            if (kind is list or kind is tuple) and self.phase is HEADERS_HELD:
                self._complete(iterable)  # type: ignore[arg-type]  # plain sequences: no close()
            elif kind is FileWrapper and self._send_path(iterable):  # type: ignore[arg-type]
                pass
            else:
                write = self._write
                for chunk in iterable:
                    write(chunk, True)
                    if self.length.complete:
                        break  # PEP 3333: stop at the declared Content-Length
                self._end()
        except BaseException as exc:
            error = exc
        finally:
            error = close_iterable(iterable, error)
            if error is None:
                error = self.handled  # answered, and now raised to the server
            # The request's objects go before the pump hears the end: once it has, the
            # server and its caller may move on while this thread still holds the job.
            del iterable
            del self._app, self._environ
            done = _DONE_CLEAN if error is None else _new(Done, (error,))
            pump_left = self._channel.finish(done, self._held)
            del error, done
            if pump_left:
                post(self._call_soon, self._limiter.release_on_behalf_of, self)

    def _start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
    ) -> Any:
        self.start(status, headers, exc_info)
        return self._write_callable

    def _write_callable(self, data: bytes) -> None:
        # PEP 3333: the first write() call transmits the headers, even for b"".
        if self.phase is HEADERS_HELD and type(data) is bytes and not data:
            self._send_start()
        self._write(data)

    def _send_start(self, wake: bool = True) -> None:
        status, headers = self.send_headers()
        self._channel.put(Start(status, headers), wake=wake)

    def _write(self, data: bytes, from_iterable: bool = False) -> None:
        data = self.chunk(data)
        length = self.length
        if length.dropped and not self._warned:
            self._warn_excess()
        if not data:
            return
        if self.phase is not HEADERS_SENT:
            self._send_start(wake=False)  # the chunk follows at once
        # The iterable's chunk that completes the declared Content-Length is the last:
        # the worker stops iterating and puts END next, which wakes the pump once for
        # all of them, so the response is sent whole. write() returns to the app: it
        # wakes the pump at once.
        last = from_iterable and length.complete
        self._channel.put(Chunk(data), len(data), wake=not last)

    def _end(self) -> None:
        if self.phase is not HEADERS_SENT:
            self._send_start()
        self.check_end()
        self._channel.put(END)

    def _complete(self, parts: list[bytes] | tuple[bytes, ...]) -> None:
        try:
            body = self.whole(parts)
        except WSGIProtocolError:
            if self.length.shortfall() and _all_bytes(parts):
                # Short of its length: send what there is, then fail, as a streamed
                # response would. (A part that is not bytes fails with nothing sent.)
                body = b"".join(parts)
                self._send_start()
                self._channel.put(Chunk(body), len(body))
            raise
        if self.length.dropped:
            self._warn_excess()
        # A list has no close(): finish() follows at once and puts both, one wake-up.
        self._held = _new(Complete, (self.status, self.headers, body))

    def _send_path(self, wrapper: FileWrapper) -> bool:
        extensions = self._scope.get("extensions") or {}
        if "http.response.pathsend" not in extensions or self.phase is not HEADERS_HELD:
            return False
        path = wrapper.sendable_path()
        if path is None:
            return False
        declared = self.length.remaining
        if declared is not None and declared != os.path.getsize(path):
            return False
        status, headers = self.send_headers()
        self._channel.put(PathSend(status, headers, path))
        return True

    def _warn_excess(self) -> None:
        self._warned = True
        logger.warning(
            "The app sent more than its declared Content-Length for %r; the excess was dropped.",
            self._scope.get("path"),
        )


def _all_bytes(parts: list[bytes] | tuple[bytes, ...]) -> bool:
    return all(isinstance(part, (bytes, bytearray, memoryview)) for part in parts)
