"""The WSGI thread's side of an ASGI app's WebSocket under ``ASGIToWSGI``.

Theory of operation
-------------------
gunicorn (sync and gthread workers) and werkzeug's server put the connection's
socket in the environ (``gunicorn.socket``, ``werkzeug.socket``). For an upgrade
request the adapter takes that socket over for the connection's life, as
flask-sock does under the same servers: the WSGI server's thread stays in the
adapter's ``__call__`` and becomes the connection's *relay*; the app runs as a task
(:class:`~bridge._websocket_a2w_task.WebSocketTask`) on the adapter's event loop,
like an HTTP request. No thread is started per connection.

The relay owns every byte of socket I/O; the event loop never touches the socket.
It waits in ``select()`` on two things: the socket, and one end of a socket pair
that the app's task writes a byte to when it queues a command for a relay that is
asleep (:class:`~bridge._websocket_a2w_mailbox.Mailbox`). wsproto parses the
client's frames and writes control frames; h11, under wsproto, writes the handshake
answer; an outgoing message is its 2 to 10 byte header and the app's own bytes,
gathered into one ``sendmsg()`` (:mod:`bridge._websocket_a2w_writes`):

* ``websocket.accept`` becomes the 101 response (subprotocol, the app's headers);
  ``websocket.close`` before it, a 403; ``websocket.http.response.start`` and
  ``.body``, the app's own denial response. A denial ends the connection.
* Client frames are joined into messages (at most ``max_message_size`` bytes, else
  close 1009) and posted to the loop in batches, one post per socket read. Pings are
  answered here; the app never sees them.
* Back-pressure both ways is counted in bytes in the mailbox: the app's ``send()``
  waits while more than ``high_water`` bytes are queued or unwritten, and the relay
  stops reading while more than ``high_water`` bytes are delivered but not yet
  received by the app, so a slow party slows the other through TCP.
* Closing: the client's close frame is answered with the same code and delivered
  as ``websocket.disconnect``; the app's ``websocket.close`` is sent and the
  client's answer awaited (``close_timeout``). A protocol error from the client
  (wsproto cannot parse a frame) fails the connection (RFC 6455 7.1.7): close with
  its code (1002, 1007), no more reading. A client that goes away is a 1006.
* The app's task ending: returning after accept closes 1000; raising closes 1011
  and logs the exception here; before any answer, the exception (or the protocol
  error of an app that answered nothing) is returned to the caller, which raises
  it to the WSGI server: nothing has been written, so the server answers 500.
* After the session the relay shuts the socket down both ways (the server closes
  the TCP connection first, RFC 6455 7.1.1) and the caller tells the server, in
  its own terms, that the connection is finished.

The relay does the I/O; :class:`~bridge._websocket_a2w_session.Session` holds the
protocol (its progress is ``Wire``); the app's progress is
:class:`~bridge._websocket_a2w_phase.Phase`. With the bridge's opt-in
``BRIDGE_BATCH_SCHEDULING=1`` the relay runs under ``SCHED_BATCH`` for the session.
"""

from __future__ import annotations

import itertools
import logging
import os
import selectors
import socket
import ssl
import time
from typing import Final, Protocol

from wsproto.handshake import H11Handshake

from ._loop import CallSoon, post
from ._threads import HANDOFF_YIELDS, batch_scheduling, wake_without_preempting
from ._websocket_a2w_limits import Limits
from ._websocket_a2w_mailbox import Mailbox
from ._websocket_a2w_session import Session, Wire
from .types import Message

logger = logging.getLogger("bridge")

_READ_SIZE: Final = 262144
_GATHER: Final = 64
"""Buffers written by one sendmsg()."""
_OUT_LIMIT: Final = 262144
"""Frame bytes the relay holds before it takes more commands from the mailbox."""
_WOULD_BLOCK = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


def _batch_scheduling() -> int | None:
    """With the bridge's opt-in ``BRIDGE_BATCH_SCHEDULING=1``, run the relay under
    ``SCHED_BATCH`` as the bridge's own threads do (``wake_without_preempting``): the
    app's task wakes it for every message, and it would preempt the loop thread only
    to wait for the GIL. Returns the server thread's policy, to give it back."""
    if not batch_scheduling():
        return None
    policy: int = os.sched_getscheduler(0)
    wake_without_preempting()
    return policy


def _restore_scheduling(policy: int | None) -> None:
    if policy is not None and os.sched_getscheduler(0) != policy:
        try:
            os.sched_setscheduler(0, policy, os.sched_param(0))
        except OSError:
            pass  # not permitted here: the thread keeps SCHED_BATCH


class AppSide(Protocol):
    """The app's task, as the relay sees it: callbacks run on the loop."""

    def deliver(self, messages: list[tuple[Message, int]]) -> None: ...
    def drained(self) -> None: ...
    def over(self, code: int, reason: str) -> None: ...


class Relay:
    """Relays one WebSocket connection between its socket and the app's task."""

    def __init__(
        self,
        sock: socket.socket,
        handshake: H11Handshake,
        mailbox: Mailbox,
        app: AppSide,
        call_soon: CallSoon,
        limits: Limits,
    ) -> None:
        self._sock = sock
        self._mailbox = mailbox
        self._app = app
        self._call_soon = call_soon
        self._session = Session(handshake, limits, self)
        self._yields = 0  # with the opt-in: HANDOFF_YIELDS after each delivery
        self._delivered = False  # a message went to the app since the last wait

    @property
    def app_error(self) -> BaseException | None:
        """The app's exception after the handshake, once the connection is closed."""
        return self._session.app_error

    def run(self) -> BaseException | None:
        """Relay until the connection is over.

        :returns: the exception to raise to the WSGI server when the handshake was
            never answered (the socket is untouched, so the server can answer 500);
            None when the connection is spent and shut down.
        """
        sock = self._sock
        session = self._session
        timeout = sock.gettimeout()
        sock.setblocking(False)
        selector = selectors.DefaultSelector()
        policy = _batch_scheduling()
        if policy is not None:
            self._yields = HANDOFF_YIELDS
        try:
            selector.register(self._mailbox.wake_socket(), selectors.EVENT_READ)
            selector.register(sock, selectors.EVENT_READ)
            mask = selectors.EVENT_READ
            while True:
                self._take()
                self._flush()
                if session.wire is Wire.FLUSHING and not session.out:
                    break
                if session.wire is Wire.ENDED:
                    break
                mask = self._wait(selector, mask)
        except OSError as exc:  # the client reset the connection, or it broke
            logger.debug("The WebSocket connection failed: %r", exc)
        finally:
            selector.close()
            session.end()
            self._mailbox.end()
            if session.error is None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass  # already gone
            sock.settimeout(timeout)
            _restore_scheduling(policy)
        return session.error

    def _take(self) -> None:
        session = self._session
        take = self._mailbox.take
        while session.out.size < _OUT_LIMIT and session.wire is not Wire.ENDED:
            item = take()
            if item is None:
                return
            session.command(*item)

    def _flush(self) -> None:
        """Write what the session queued, as far as the socket takes it."""
        out = self._session.out
        buffers = out.buffers
        sock = self._sock
        gather = not isinstance(sock, ssl.SSLSocket)  # TLS sockets have no sendmsg()
        while buffers:
            try:
                if gather and len(buffers) > 1:
                    written = sock.sendmsg([data for data, _ in itertools.islice(buffers, _GATHER)])
                else:
                    written = sock.send(buffers[0][0])
            except _WOULD_BLOCK:
                return
            if not out.written(written):
                return  # the socket is full

    def _wait(self, selector: selectors.BaseSelector, mask: int) -> int:
        """Sleep until the socket or the app has something; returns the socket's mask."""
        if self._delivered:
            # With the opt-in, offer the loop's thread this core before sleeping: on a
            # shared core the app's answer is then waiting, and the loop need not wake
            # this thread through the socket pair (nor be preempted by it).
            self._delivered = False
            for _ in range(self._yields):
                os.sched_yield()
                if self._mailbox.has_commands():
                    return mask
        session = self._session
        paused = self._mailbox.prepare_sleep(session.out.size < _OUT_LIMIT)
        if paused is None:
            return mask  # commands are waiting
        wanted = selectors.EVENT_WRITE if session.out else 0
        if not paused and session.reading():
            wanted |= selectors.EVENT_READ
        if wanted != mask:
            if not wanted:
                selector.unregister(self._sock)
            elif not mask:
                selector.register(self._sock, wanted)
            else:
                selector.modify(self._sock, wanted)
        woken = False
        for key, events in selector.select(session.timeout(time.monotonic())):
            if key.fileobj is not self._sock:
                woken = True
            elif events & selectors.EVENT_READ:
                self._read()
        self._mailbox.woke(woken)
        return wanted

    def _read(self) -> None:
        sock = self._sock
        try:
            data = sock.recv(_READ_SIZE)
            # TLS: bytes already decrypted wake no select(); take them now.
            pending = getattr(sock, "pending", None)
            while data and pending is not None and pending():
                data += sock.recv(_READ_SIZE)
        except _WOULD_BLOCK:
            return
        self._session.receive(data)

    # SessionEvents, in this thread: posted to the app's task on the loop.

    def deliver(self, messages: list[tuple[Message, int]]) -> None:
        self._delivered = True
        self._mailbox.delivered(sum(size for _, size in messages))
        post(self._call_soon, self._app.deliver, messages)

    def over(self, code: int, reason: str) -> None:
        post(self._call_soon, self._app.over, code, reason)

    def credit(self, size: int) -> None:
        if size and self._mailbox.sent(size):
            post(self._call_soon, self._app.drained)
