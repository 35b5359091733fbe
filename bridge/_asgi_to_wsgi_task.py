"""One request under ``ASGIToWSGI``, on the adapter's event loop: the app's task.

Theory of operation
-------------------
The WSGI server's thread (:class:`bridge._asgi_to_wsgi_call.WSGICall`) and this task
share one :class:`~bridge._streams.ToThread`, the *outbox*, and nothing else: the
thread reaches the task only by posting a callback to the loop.

* ``send()`` checks each message against the response's phase
  (:func:`bridge._asgi_response.receive_message`) and puts what the thread needs in
  the outbox. The head waits for the first body message, so the thread is woken once
  for both (:class:`Start`). Body bytes with more to follow count against
  ``high_water``; above it ``send()`` waits until the thread has taken them
  (back-pressure).
* ``receive()`` asks the thread for request body (:data:`NEED_BODY`); the thread reads
  ``wsgi.input`` and posts the message back (:meth:`AppTask.body_arrived`). A small
  body may be here before the task starts. Once the body is complete, ``receive()``
  waits until the response is complete or the client left, then returns
  ``http.disconnect``.
* When the app declared a Content-Length, the body that fills it ends the thread's
  response at once, as a WSGI server stops at the declared length; the app may still
  send its last, empty message, and is not told of a disconnect meanwhile.
* When the WSGI server closes the response before its end (the client went away),
  the thread posts :meth:`AppTask.client_left`: the response becomes DISCONNECTED,
  ``receive()`` returns ``http.disconnect`` and ``send()`` raises
  :class:`~bridge.ClientDisconnected`.
* When the task ends, :class:`Ended` carries its exception to the thread, which
  raises it: before the response (the server answers 500), mid-response (the
  connection drops) or from the iterable's ``close()``. When the thread has left
  already, the task logs it instead: after a disconnect the app was told of, at
  debug in one line, as servers log a client that left; otherwise at error.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from typing import Final, NamedTuple

import anyio

from ._asgi_response import (
    AWAITING_START,
    COMPLETE,
    DISCONNECTED,
    Body,
    Head,
    Meaning,
    PathSend,
    Phase,
    fit_declared,
    receive_message,
)
from ._content_length import DeclaredLength
from ._loop import LoopThread
from ._streams import ToThread, Waiter, wake
from .exceptions import ClientDisconnected, ShuttingDown
from .types import ASGIApp, Message, Scope

logger = logging.getLogger("bridge")

DISCONNECT: Final[Message] = {"type": "http.disconnect"}


class NeedBody(NamedTuple):
    """The app called ``receive()`` for request body: the thread reads ``wsgi.input``."""


NEED_BODY: Final = NeedBody()


class Start(NamedTuple):
    """The response head with its first body message."""

    status: str
    headers: list[tuple[str, str]]
    body: bytes
    more: bool


class File(NamedTuple):
    """The response head, and a file to send as the whole body (``pathsend``)."""

    status: str
    headers: list[tuple[str, str]]
    path: str


class Ended(NamedTuple):
    """The app's task ended, with the exception that ended it, if any."""

    error: BaseException | None


_ENDED_CLEAN: Final = Ended(None)  # (immutable: one serves every request)

Item = NeedBody | Start | Body | File | Ended
"""What the task puts in the outbox for the thread."""


class _Body(enum.Enum):
    """How far the request body has come, as the app reads it."""

    UNREAD = "unread"  # more may come; nobody asked the thread for it
    ASKED = "asked"  # a receive() waits for the thread to read wsgi.input
    COMPLETE = "complete"  # the app has the last chunk


# The members as module constants: read off the enum class, each access is a lookup
# through the enum's metaclass (several times a global's cost), on the request path.
_BODY_UNREAD: Final = _Body.UNREAD
_BODY_ASKED: Final = _Body.ASKED
_BODY_COMPLETE: Final = _Body.COMPLETE


class AppTask:
    """The app's side of one request: its task, ``receive()`` and ``send()``, on the loop."""

    __slots__ = (
        "_app",
        "_body",
        "_body_ready",
        "_drained",
        "_head",
        "_length",
        "_loop",
        "_next",
        "_outbox",
        "_phase",
        "_scope",
        "_settled",
        "_told",
        "_trio_scope",
        "task",
    )

    def __init__(
        self,
        app: ASGIApp,
        scope: Scope,
        outbox: ToThread[Item],
        loop: LoopThread,
        first: Message | None,
    ) -> None:
        self._app = app
        self._scope = scope
        self._outbox = outbox
        self._loop = loop
        self._next = first  # a request message the app has not received yet
        self._body: _Body = _BODY_UNREAD
        self._body_ready: anyio.Event | None = None
        self._phase: Phase = AWAITING_START
        self._head: Head | None = None  # held until the first body message
        self._length: DeclaredLength | None = None  # None: no length declared
        self._settled: anyio.Event | None = None  # set once COMPLETE or DISCONNECTED
        self._drained: Waiter | None = None
        self._told = False  # the app has seen the disconnect
        self.task: asyncio.Task[None] | None = None
        """Set by the loop when it starts the task on asyncio (:class:`bridge._loop.Job`)."""
        self._trio_scope: anyio.CancelScope | None = None

    # Posted by the thread.

    def body_arrived(self, message: Message) -> None:
        """The thread read ``message`` from ``wsgi.input`` for the waiting ``receive()``."""
        self._next = message
        if self._body is _BODY_ASKED:
            self._body = _BODY_UNREAD
        if self._body_ready is not None:
            self._body_ready.set()

    def client_left(self) -> None:
        """The WSGI server closed the response before its end: the client went away."""
        if self._phase is not COMPLETE:
            self._phase = DISCONNECTED
        if self._settled is not None:
            self._settled.set()
        if self._body is _BODY_ASKED:
            self.body_arrived(DISCONNECT)
        drained, self._drained = self._drained, None
        if drained is not None:
            wake(drained)

    def cancel(self) -> None:
        """Cancel the app: the thread gave up waiting for the response."""
        self.client_left()
        if self.task is not None:
            self.task.cancel()
        elif self._trio_scope is not None:
            self._trio_scope.cancel()
        # Not started yet: run() sees DISCONNECTED and never calls the app.

    # The app's task.

    async def run(self) -> None:
        """The app's task (:class:`bridge._loop.Job`)."""
        if self._phase is DISCONNECTED:
            self._loop.tasks.discard(self.task)
            return  # cancelled before it started: the thread has answered already
        error: BaseException | None = None
        try:
            if self.task is not None:
                await self._app(self._scope, self.receive, self.send)
            else:
                with anyio.CancelScope() as self._trio_scope:
                    await self._app(self._scope, self.receive, self.send)
                if self._trio_scope.cancelled_caught:
                    error = ShuttingDown(
                        "The ASGI app's task was cancelled: the bridge cancelled it."
                    )
        except BaseException as exc:
            loop = self._loop
            if isinstance(exc, loop.cancelled):
                why = "the process is shutting down" if loop.stopping else "the bridge cancelled it"
                error = ShuttingDown(f"The ASGI app's task was cancelled: {why}.")
                raise
            error = exc
        finally:
            ended = _ENDED_CLEAN if error is None else tuple.__new__(Ended, (error,))
            if not self._outbox.finish(ended):  # the thread left
                phase: Phase = self._phase  # (what the awaits above changed)
                _report_unclaimed(self._scope, error, phase is DISCONNECTED, self._told)
            del error, ended
            self._loop.tasks.discard(self.task)

    async def receive(self) -> Message:
        while True:
            message = self._next
            if message is not None:
                self._next = None
                if message is DISCONNECT:
                    self.client_left()
                    self._told = True
                elif not message.get("more_body", False):
                    self._body = _BODY_COMPLETE
                return message
            if self._body is _BODY_ASKED:
                # Another receive() waits for the body: the next chunk is its.
                assert self._body_ready is not None
                await self._body_ready.wait()
                continue
            phase = self._phase
            if self._body is _BODY_COMPLETE or phase is COMPLETE or phase is DISCONNECTED:
                return await self._disconnect()
            self._body = _BODY_ASKED
            self._body_ready = anyio.Event()
            self._outbox.put(NEED_BODY)
            await self._body_ready.wait()

    async def _disconnect(self) -> Message:
        """``http.disconnect``, once the response is complete or the client left."""
        if self._phase is not COMPLETE and self._phase is not DISCONNECTED:
            if self._settled is None:
                self._settled = anyio.Event()
            await self._settled.wait()
        if self._phase is DISCONNECTED:
            self._told = True
        return DISCONNECT

    async def send(self, message: Message) -> None:
        phase = self._phase
        if phase is DISCONNECTED or self._outbox.left:
            if phase is not COMPLETE and phase is not DISCONNECTED:
                self.client_left()  # before its posted call arrives: the app may never yield
            phase = self._phase
            if phase is DISCONNECTED:
                self._told = True  # receive_message() raises ClientDisconnected for it
        self._phase, meaning = receive_message(phase, message)
        if type(meaning) is Head:
            self._head = meaning  # its declared length is enforced from the first body on
            return
        if type(meaning) is not Body:
            self._send_other(meaning, message)
            return
        # The body goes to the outbox, with the held head, fitted to a declared length.
        data, more = meaning
        head = self._head
        fitted: Body | None = meaning
        if self._length is not None or (
            head is not None and head.length is not None and (more or len(data) != head.length)
        ):
            # A declared length to count (not one message that is the whole of it).
            fitted, self._length = fit_declared(self._length, head, meaning, self._scope["method"])
        if not more and self._settled is not None:
            self._settled.set()
        if fitted is None:
            return  # the thread's response ended with the declared length
        data, more = fitted
        if more and not data:
            return
        item: Start | Body = fitted
        if head is not None:
            self._head = None
            item = tuple.__new__(Start, (head.status, head.headers, data, more))
        drained = self._outbox.put(item, len(data) if more else 0)
        if drained is not None:  # back-pressure: until the thread is down to low water
            self._drained = drained
            await drained
            if self._phase is DISCONNECTED:
                self._told = True
                raise ClientDisconnected(
                    "The client disconnected; the WSGI server closed the response."
                )

    def _send_other(self, meaning: Meaning, message: Message) -> None:
        """``http.response.pathsend``, or a hint that WSGI cannot carry (dropped)."""
        if not isinstance(meaning, PathSend):
            logger.debug("Dropped ASGI message %r: WSGI cannot carry it.", message.get("type"))
            return
        head, self._head = self._head, None
        assert head is not None
        # The WSGI thread opens the file, as the app would (no file system call on the loop).
        self._outbox.put(File(head.status, head.headers, meaning.path))
        if self._settled is not None:
            self._settled.set()


def _report_unclaimed(
    scope: Scope, error: BaseException | None, disconnected: bool, told: bool
) -> None:
    """Log how a task ended after the WSGI thread left.

    A client that went away is not a server error: one debug line, also for the
    exception the app raised once it was told. Other exceptions are errors.
    """
    if isinstance(error, ShuttingDown):
        return  # the thread gave up on the response and said why
    target = f"{scope.get('method', '')} {scope.get('path', '')!r}"
    if disconnected and (error is None or told):
        ending = "" if error is None else f"; the app ended with {error!r}"
        logger.debug("The client went away from %s%s.", target, ending)
    elif error is not None:
        logger.error(
            "Exception in the ASGI app after the WSGI server left the response to %s.",
            target,
            exc_info=error,
        )
