"""One request under ``ASGIToWSGI``, in the WSGI server's thread.

Theory of operation
-------------------
The WSGI server's thread owns every blocking call of the request (``wsgi.input``,
``start_response``, the server's socket through the iterable it gets back); the
app's task (:class:`bridge._asgi_to_wsgi_task.AppTask`) never touches them.

1. :meth:`WSGICall.respond` builds the scope, reads a small body at once when the
   client does not wait for ``100 Continue`` (so the app's first ``receive()`` needs
   no hop back here), starts the app's task on the loop, and waits for the response
   head, serving the app's body reads meanwhile. ``response_timeout`` bounds that
   wait (504).
2. It calls ``start_response`` and returns an iterable: the whole body when it came
   in one message, else a stream whose ``__next__`` keeps taking from the outbox, or
   the server's ``wsgi.file_wrapper`` for ``pathsend``.
3. The WSGI server calls the iterable's ``close()``. After the whole response (or
   the whole declared Content-Length) it waits for the app's task to end, so work the
   app does after its response is finished, and raises the app's exception there,
   as itself. ``after_response="detach"`` leaves instead, and the task logs its own
   errors; ``after_response_timeout`` bounds the wait. A ``close()`` before the end
   means the client left: the task is told, and the thread goes.

The app's error, raised here, keeps in its traceback every frame it leaves, with
their locals: a frame that still held the error (or the item that carried it) would
close a reference cycle, and the request's objects (the environ, the app's) would
wait for the cyclic GC instead of going at once. So each such frame drops them as
the error leaves (``finally: item = None``).
"""

from __future__ import annotations

import enum
import logging
import queue
import time
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any, Final, cast

from ._asgi_response import Body
from ._asgi_to_wsgi_input import CHUNK, InputReader, Outcome
from ._asgi_to_wsgi_task import DISCONNECT, AppTask, Ended, File, Item, NeedBody, Start
from ._environ import build_scope
from ._file_wrapper import FileWrapper
from ._headers import status_line
from ._hosts import drops_close_errors
from ._loop import LoopThread, post
from ._streams import ToThread
from .exceptions import ASGIProtocolError, BadRequest, BodyTooLarge, ClientDisconnected
from .types import Environ, StartResponse

if TYPE_CHECKING:
    from ._asgi_to_wsgi import ASGIToWSGI

logger = logging.getLogger("bridge")


class _State(enum.Enum):
    """Where the WSGI server's side of the request stands."""

    WAITING = "waiting for the response head"
    STREAMING = "streaming the response"
    DELIVERED = "the whole response is with the server"
    LEFT = "left"  # the server closed early, or the thread stopped waiting
    DONE = "done"  # the app's task ended and the thread knows how


# The members as module constants: read off the enum class, each access is a lookup
# through the enum's metaclass (several times a global's cost), on the request path.
_WAITING: Final = _State.WAITING
_STREAMING: Final = _State.STREAMING
_DELIVERED: Final = _State.DELIVERED
_LEFT: Final = _State.LEFT
_DONE: Final = _State.DONE


class WSGICall:
    """The WSGI server's side of one request, in its thread."""

    __slots__ = (
        "_adapter",
        "_environ",
        "_input",
        "_loop",
        "_outbox",
        "_start_response",
        "_state",
        "_task",
    )

    def __init__(
        self, adapter: ASGIToWSGI, loop: LoopThread, environ: Environ, start_response: StartResponse
    ) -> None:
        self._adapter = adapter
        self._loop = loop
        self._environ = environ
        self._start_response = start_response
        self._outbox: ToThread[Item] = ToThread(
            loop.call_soon, loop.asyncio_loop, adapter.high_water
        )
        self._state: _State = _WAITING
        self._input = InputReader(environ, adapter.max_body_size)
        self._task: AppTask

    def respond(self) -> Any:
        """Run the request; returns the WSGI response iterable."""
        try:
            first = self._input.first()
            scope = build_scope(self._environ, extensions={"http.response.pathsend": {}})
        except BadRequest as exc:
            logger.info("Refused a request: %s", exc)
            return _plain(self._start_response, exc.status_hint, str(exc))
        lifespan = self._loop.lifespan
        if lifespan.supported:
            scope["state"] = lifespan.state.copy()
        self._task = AppTask(self._adapter.app, scope, self._outbox, self._loop, first)
        self._loop.spawn(self._task)
        return self._await_head()

    def _await_head(self) -> Any:
        timeout = self._adapter.response_timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                item = self._next_item(deadline, self._loop.handoff_yields)
            except queue.Empty:
                self._state = _LEFT
                self._outbox.leave()
                post(self._loop.call_soon, self._task.cancel)
                logger.error(
                    "The ASGI app did not start a response within %s s; answering 504.", timeout
                )
                return _plain(self._start_response, 504, "Gateway Timeout")
            if type(item) is Start:
                self._start_response(item.status, item.headers)
                if not item.more:
                    self._state = _DELIVERED
                    return _Whole(self, item.body)
                self._state = _STREAMING
                return _Stream(self, item.body)
            if type(item) is File:
                return self._send_file(item)
            assert type(item) is Ended
            self._state = _DONE
            try:
                limit = self._adapter.max_body_size
                return _ended_before_response(
                    self._input.outcome, item.error, limit, self._start_response
                )
            finally:
                item = None  # type: ignore[assignment]  # (no cycle: see the essay)

    def next_chunk(self) -> bytes | None:
        """The next body chunk of a streamed response; None at its end.

        :raises: the app's exception when it ended mid-response.
        """
        if self._state is not _STREAMING:
            return None
        while True:
            item = self._next_item()
            if type(item) is Body:
                if not item.more:
                    self._state = _DELIVERED
                    return item.data or None
                if item.data:
                    return item.data
                continue
            self._state = _DONE
            if type(item) is Ended and item.error is not None:
                try:
                    raise item.error
                finally:
                    item = None  # type: ignore[assignment]  # (no cycle: see the essay)
            raise ASGIProtocolError("The ASGI app returned before completing its response.")

    def finish(self) -> None:
        """The WSGI server closed the response iterable."""
        state = self._state
        if state is not _DELIVERED:
            if state is not _DONE and state is not _LEFT:
                self._leave()
                post(self._loop.call_soon, self._task.client_left)
            return
        if self._adapter.after_response == "detach":
            self._leave()
            return
        item = self._outbox.get_nowait()  # first a look: the app has usually ended already
        if type(item) is not Ended:
            item = self._wait_for_the_end(item)
            if item is None:
                return
        self._state = _DONE
        if item.error is not None:
            if drops_close_errors(self._environ):
                _log_late(self._environ, item.error)
            try:
                raise item.error
            finally:
                item = None  # (no cycle: see the essay)

    def _wait_for_the_end(self, item: Item | None) -> Ended | None:
        """The app's end, serving its body reads meanwhile (``after_response_timeout``);
        None when the wait timed out and the thread left."""
        if type(item) is NeedBody:
            self._serve_body_read()
        timeout = self._adapter.after_response_timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                item = self._next_item(deadline)
            except queue.Empty:
                logger.warning(
                    "The ASGI app was still running %s s after its response to %s "
                    "(after_response_timeout); it goes on, and its errors are logged.",
                    timeout,
                    self._environ.get("PATH_INFO"),
                )
                self._leave()
                return None
            if type(item) is Ended:
                return item
            # The app's last body messages after the declared length: nothing to send.

    def _leave(self) -> None:
        """Stop reading the outbox; an end that came meanwhile is logged, not lost."""
        self._state = _LEFT
        self._outbox.leave()
        while (item := self._outbox.get_nowait()) is not None:
            if type(item) is Ended and item.error is not None:
                _log_late(self._environ, item.error)

    def _next_item(
        self, deadline: float | None = None, yields: int = 0
    ) -> Start | Body | File | Ended:
        """The next item from the app's task, serving its body reads meanwhile; waiting,
        it first offers the loop its core ``yields`` times (the opt-in's hand-off)."""
        outbox = self._outbox
        while True:
            item = outbox.get_after_yielding(
                yields, None if deadline is None else max(0.0, deadline - time.monotonic())
            )
            if not isinstance(item, NeedBody):
                return item
            self._serve_body_read()

    def _serve_body_read(self) -> None:
        """Read ``wsgi.input`` for the app's waiting ``receive()``."""
        try:
            message = self._input.read()
        except BadRequest:
            # The server's own input is broken: end the app's wait, then fail.
            post(self._loop.call_soon, self._task.body_arrived, DISCONNECT)
            raise
        post(self._loop.call_soon, self._task.body_arrived, message)

    def _send_file(self, item: File) -> Any:
        try:
            opened = open(item.path, "rb")  # closed by the server
        except OSError as exc:
            # Before start_response: the server answers 500, and the app's task goes on.
            self._leave()
            raise ASGIProtocolError(
                f"The file of 'http.response.pathsend' cannot be read: {exc}."
            ) from exc
        self._start_response(item.status, item.headers)
        self._state = _DELIVERED
        file = _ClosingFile(opened, self)
        wrapper = self._environ.get("wsgi.file_wrapper")
        if wrapper is not None:
            return wrapper(file, CHUNK)
        return FileWrapper(cast("IO[bytes]", file), CHUNK)  # in blocks, closed with it


def _ended_before_response(
    outcome: Outcome, error: BaseException | None, limit: int | None, start_response: StartResponse
) -> Any:
    """The answer when the app's task ended before a response: the bridge's 413, or the
    app's error, or what the request's end says, raised to the WSGI server."""
    if outcome is Outcome.TOO_LARGE:
        # The bridge's own limit ended the body: its answer, whatever the app made of the
        # disconnect it was given.
        exc = BodyTooLarge(limit or 0)
        logger.info("Answering 413: %s", exc)
        return _plain(start_response, 413, str(exc))
    if error is not None:
        try:
            raise error
        finally:
            error = None  # (no cycle: see the essay)
    if outcome is Outcome.CUT:  # not answering a client that has gone is allowed
        raise ClientDisconnected("The client disconnected before the response.")
    raise ASGIProtocolError("The ASGI app returned without starting a response.")


def _plain(start_response: StartResponse, status: int, text: str) -> list[bytes]:
    """A short plain-text answer of the bridge's own."""
    body = text.encode("utf-8")
    start_response(
        status_line(status),
        [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))],
    )
    return [body]


def _log_late(environ: Environ, error: BaseException) -> None:
    """An exception after the response that the WSGI server will not hear of."""
    path = environ.get("PATH_INFO")
    logger.error("Exception in the ASGI app after its response to %s.", path, exc_info=error)


class _Whole:
    """The iterable of a response whose body came whole: one chunk, and ``close()``.

    Not a list subclass: granian takes a list's items and never calls its ``close()``.
    It has a length, so that waitress, for one, sets Content-Length itself.
    """

    __slots__ = ("_body", "_call")

    def __init__(self, call: WSGICall, body: bytes) -> None:
        self._call = call
        self._body = body

    def __iter__(self) -> Iterator[bytes]:
        return iter((self._body,))

    def __len__(self) -> int:
        return 1

    def close(self) -> None:
        self._call.finish()


class _Stream:
    """The iterable of a streamed response."""

    __slots__ = ("_call", "_first")

    def __init__(self, call: WSGICall, first: bytes) -> None:
        self._call = call
        self._first: bytes | None = first

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        first = self._first
        if first is not None:
            self._first = None
            return first
        chunk = self._call.next_chunk()
        if chunk is None:
            raise StopIteration
        return chunk

    def close(self) -> None:
        self._call.finish()


class _ClosingFile:
    """A file for ``pathsend`` whose ``close()`` also ends the request.

    The server's ``wsgi.file_wrapper`` gets this object, so that it can still send
    the file its own way (``sendfile``) and its ``close()`` reaches the request.
    """

    __slots__ = ("_call", "_file")

    def __init__(self, file: Any, call: WSGICall) -> None:
        self._file = file
        self._call = call

    def read(self, size: int = -1) -> bytes:
        data: bytes = self._file.read(size)
        return data

    def fileno(self) -> int:
        fileno: int = self._file.fileno()
        return fileno

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)

    def close(self) -> None:
        try:
            self._file.close()
        finally:
            self._call.finish()
