"""The socket side of an ASGI app's WebSocket under ``ASGIToWSGI``, on the event loop.

Theory of operation
-------------------
gunicorn (sync and gthread workers) and werkzeug's server put the connection's
socket in the environ (``gunicorn.socket``, ``werkzeug.socket``). For an upgrade
request the adapter takes that socket over for the connection's life, as
flask-sock does under the same servers: the WSGI server's thread stays in the
adapter's ``__call__``, waiting, and the connection is served on the adapter's
event loop, where the app runs as it does for an HTTP request. No thread is
started per connection, and no message crosses a thread: the loop reads the
client's frames, hands them to the app's ``receive()`` and writes what its
``send()`` gives, as an ASGI server's own WebSocket protocol does.

Three objects share the work, all on the loop:

* :class:`~bridge._websocket_a2w_task.WebSocketTask` is the app's task, its
  ``receive()`` and ``send()``;
* :class:`~bridge._websocket_a2w_session.Session` holds the protocol without I/O:
  a client's whole message in one frame is read directly, every other frame by
  wsproto (:mod:`bridge._websocket_frames`), which also writes control frames; h11
  (under wsproto) writes the handshake answer, and an outgoing message is its 2 to
  10 byte header and the app's own bytes (:mod:`bridge._websocket_a2w_writes`);
* the :class:`Relay`, here, does the socket I/O around the session, driven by a
  poller (:mod:`bridge._websocket_a2w_poll`): the loop's reader and writer
  callbacks, and one timer.

What crosses:

* ``websocket.accept`` becomes the 101 response (subprotocol, the app's headers);
  ``websocket.close`` before it, a 403; ``websocket.http.response.start`` and
  ``.body``, the app's own denial response. A denial ends the connection.
* Client frames are joined into messages (at most ``max_message_size`` bytes, else
  close 1009) and delivered to the app in the order they came. Pings are answered
  here; the app never sees them. A client silent for ``ping_interval`` is pinged.
* Each ``send()`` is written at once, as far as the socket takes it.
  Back-pressure both ways is counted in bytes: the app's ``send()`` waits while
  more than ``high_water`` bytes are unwritten, and the relay stops reading while
  more than ``high_water`` bytes are delivered but not yet received by the app, so
  a slow party slows the other through TCP.
* Closing: the client's close frame is answered with the same code and delivered
  as ``websocket.disconnect``; the app's ``websocket.close`` is sent and the
  client's answer awaited (``close_timeout``). A protocol error from the client
  (a frame wsproto rejects) fails the connection (RFC 6455 7.1.7): close with
  its code (1002, 1007), no more reading. A client that goes away is a 1006.
* The app's task ending: returning after accept closes 1000; raising closes 1011;
  before any answer, the exception (or the protocol error of an app that answered
  nothing) goes to the WSGI thread, which raises it to the server: nothing has
  been written, so the server answers 500.
* Once the connection is over the relay shuts the socket down both ways (the
  server closes the TCP connection first, RFC 6455 7.1.1) and lets the WSGI
  thread go (:meth:`Relay.wait`), which tells the server, in its own terms, that
  the connection is finished. Should the loop stop first (the process is
  shutting down), the thread sees it and shuts the socket down itself.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import TYPE_CHECKING, Final, Protocol

from wsproto.handshake import H11Handshake

from ._websocket_a2w_limits import Limits
from ._websocket_a2w_session import Session, Wire
from ._websocket_a2w_writes import WOULD_BLOCK
from ._websocket_messages import shut as shut_socket
from .types import Message

if TYPE_CHECKING:
    from ._loop import LoopThread
    from ._websocket_a2w_phase import Command
    from ._websocket_a2w_poll import Poller

logger = logging.getLogger("bridge")

_READ_SIZE: Final = 262144
_LOOP_CHECK: Final = 1.0
"""Seconds between the waiting WSGI thread's looks at whether the loop still runs."""


class AppSide(Protocol):
    """The app's task, as the relay sees it."""

    def deliver(self, messages: list[tuple[Message, int]]) -> None: ...
    def drained(self) -> None: ...
    def over(self, code: int, reason: str) -> None: ...


class _NotStarted:
    def want(self, read: bool, write: bool, timeout: float | None) -> None:
        pass

    def close(self) -> None:
        pass


_NOT_STARTED: Final = _NotStarted()


class Relay:
    """Relays one WebSocket connection between its socket and the app's task."""

    __slots__ = (
        "_app",
        "_drain_wanted",
        "_ended",
        "_finished",
        "_high",
        "_in_pending",
        "_low",
        "_out_pending",
        "_poller",
        "_read_paused",
        "_session",
        "_sock",
        "_taken",
        "_timeout",
    )

    def __init__(
        self, sock: socket.socket, handshake: H11Handshake, limits: Limits, app: AppSide
    ) -> None:
        self._sock = sock
        self._session = Session(handshake, limits, self)
        self._app = app
        self._poller: Poller = _NOT_STARTED
        self._high = limits.high_water
        self._low = limits.high_water // 2
        self._out_pending = 0  # the app's bytes sent and not yet written
        self._in_pending = 0  # the client's bytes delivered and not yet received
        self._drain_wanted = False  # the app's send() waits for the count to fall
        self._read_paused = False
        self._ended = False
        self._finished = threading.Event()
        self._taken = False  # the socket is non-blocking, in the relay's hands
        self._timeout: float | None = None  # the socket's own timeout, given back after

    # The WSGI thread.

    def wait(self, loop: LoopThread) -> BaseException | None:
        """Block until the connection is over (in the WSGI server's thread).

        :returns: the exception to raise to the WSGI server when the handshake was
            never answered (the socket is untouched, so the server can answer 500);
            None when the connection is spent and shut down.
        """
        while not self._finished.wait(_LOOP_CHECK):
            if loop.has_stopped() and not self._finished.is_set():
                # No loop to finish the connection: finish it here (nothing runs there).
                logger.debug("The event loop stopped while a WebSocket was open.")
                self._release_socket(shut=True)
                return None
        return self._session.error

    @property
    def app_error(self) -> BaseException | None:
        """The app's exception after the handshake, once the connection is closed."""
        return self._session.app_error

    # The app's task, on the loop.

    def start(self, poller: Poller) -> None:
        """Take the socket over, in the loop's thread."""
        self._poller = poller
        self._timeout = self._sock.gettimeout()
        self._sock.setblocking(False)
        self._taken = True
        self._step()

    def submit(self, command: Command, size: int) -> bool | None:
        """Carry out the app's ``command`` (holding ``size`` bytes for the client).

        :returns: True when the app should wait for ``drained`` before sending more,
            False when it need not, None when the connection is over.
        """
        if self._ended:
            return None
        self._out_pending += size
        try:
            self._session.command(command, size)
            self._step()
        except Exception as exc:  # a bug: the app's send() fails, nothing hangs
            self.fail(exc)
            return None
        if self._out_pending > self._high and not self._ended:
            self._drain_wanted = True
            return True
        return False

    def consumed(self, size: int) -> None:
        """The app received an incoming message of ``size`` bytes."""
        self._in_pending -= size
        if self._read_paused and self._in_pending <= self._low:
            self._read_paused = False
            if not self._ended:
                self._step()

    # The poller's calls.

    def readable(self) -> None:
        sock = self._sock
        try:
            data = sock.recv(_READ_SIZE)
            # TLS: bytes already decrypted wake no poller; take them now.
            pending = getattr(sock, "pending", None)
            while data and pending is not None and pending():
                data += sock.recv(_READ_SIZE)
        except WOULD_BLOCK:
            return
        except OSError as exc:  # the client reset the connection, or it broke
            self._failed(exc)
            return
        self._session.receive(data)
        self._step()

    def stop(self) -> None:
        if not self._ended:
            self._finish()

    def fail(self, error: Exception) -> None:
        logger.error("The bridge's WebSocket relay failed; closing.", exc_info=error)
        self.stop()

    # The session's events (SessionEvents), on the loop.

    def deliver(self, messages: list[tuple[Message, int]]) -> None:
        self._in_pending += sum(size for _, size in messages)
        if self._in_pending > self._high:
            self._read_paused = True
        self._app.deliver(messages)

    def over(self, code: int, reason: str) -> None:
        self._app.over(code, reason)

    def credit(self, size: int) -> None:
        self._out_pending -= size
        if self._drain_wanted and self._out_pending <= self._low:
            self._drain_wanted = False
            self._app.drained()

    # Steps.

    def _step(self) -> None:
        """Write what is queued, then end the connection or say what to wait for."""
        session = self._session
        try:
            while True:
                if session.out:
                    session.out.send_to(self._sock)
                wire = session.wire
                if wire is Wire.ENDED or (wire is Wire.FLUSHING and not session.out):
                    self._finish()
                    return
                timeout = session.timeout(time.monotonic())
                if timeout != 0.0:
                    break  # else the session queued a ping or ended: go round again
        except OSError as exc:
            self._failed(exc)
            return
        reading = not self._read_paused and session.reading()
        self._poller.want(reading, bool(session.out), timeout)

    writable = timer = _step  # the socket has room, a deadline passed: step

    def _failed(self, exc: OSError) -> None:
        logger.debug("The WebSocket connection failed: %r", exc)
        self._finish()

    def _finish(self) -> None:
        """The connection is over: tell the app (1006 if not told), let the socket go."""
        self._ended = True
        self._poller.close()
        self._session.end()
        self._release_socket(shut=self._session.error is None)

    def _release_socket(self, shut: bool) -> None:
        self._ended = True
        sock = self._sock
        if shut:
            shut_socket(sock)
        if self._taken:
            sock.settimeout(self._timeout)
        self._finished.set()
