"""One WebSocket connection's protocol, without I/O: the relay's state machine.

:class:`Session` turns the app's commands (:mod:`bridge._websocket_a2w_phase`)
into bytes for the client and the client's bytes into ASGI messages for the app,
with wsproto (and h11 under it, for the handshake answer; whole messages are
framed by :class:`~bridge._websocket_a2w_writes.WriteQueue` going out and read by
:class:`~bridge._websocket_frames.WholeFrames` coming in). The relay
(:mod:`bridge._websocket_a2w_relay`) does the socket I/O around it and carries
what it reports (:class:`SessionEvents`) to the app's task. Its progress is
:class:`Wire`::

    HANDSHAKE --accept--------------------------------> OPEN
    HANDSHAKE --close (403)---------------------------> FLUSHING
    HANDSHAKE --denial head---------------------------> DENYING --last body--> FLUSHING
    HANDSHAKE --the app ended or failed---------------> ENDED   (error: the server answers)
    OPEN      --the app closes, ends or fails---------> CLOSING
    OPEN      --the client's close, a protocol error--> FLUSHING
    CLOSING   --the client's close--------------------> FLUSHING
    FLUSHING  --all written (the relay)---------------> ENDED
    any       --the client gone, a deadline passed----> ENDED
"""

from __future__ import annotations

import enum
import logging
import os
import time
from typing import Final, Protocol

from wsproto.connection import Connection, ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    Pong,
    RejectConnection,
    RejectData,
    TextMessage,
)
from wsproto.handshake import H11Handshake

from ._websocket_a2w_limits import Limits
from ._websocket_a2w_phase import ACCEPT, CLOSE, DENY_BODY, DENY_START, DONE, FORBID, SEND, Command
from ._websocket_a2w_writes import WriteQueue
from ._websocket_frames import WholeFrames
from ._websocket_masking import unmask_in_c
from ._websocket_messages import TOO_LARGE, Joiner
from .exceptions import ASGIProtocolError, ShuttingDown
from .types import Message

logger = logging.getLogger("bridge")

EARLY_LIMIT: Final = 65536
"""Bytes kept from a client that sends before the handshake answer (RFC 6455: none)."""


class Wire(enum.Enum):
    """Where the connection stands, as the relay sees it."""

    HANDSHAKE = "handshake"  # the app has not answered websocket.connect
    DENYING = "denying"  # a denial response is being written
    OPEN = "open"  # accepted: frames flow both ways
    CLOSING = "closing"  # our close frame is queued; waiting for the client's
    FLUSHING = "flushing"  # nothing more to read: write what is queued, then end
    ENDED = "ended"


class SessionEvents(Protocol):
    """What the session reports, for the relay to carry to the app's task."""

    def deliver(self, messages: list[tuple[Message, int]]) -> None:
        """Whole messages from the client, each with its size in bytes."""

    def over(self, code: int, reason: str) -> None:
        """The connection is over (said once)."""

    def credit(self, size: int) -> None:
        """``size`` of the app's bytes are written, or never will be: count them as sent."""


class Session:
    """One connection's handshake answer and framing (see the module docstring)."""

    def __init__(self, handshake: H11Handshake, limits: Limits, events: SessionEvents) -> None:
        self.wire = Wire.HANDSHAKE
        self.out = WriteQueue(events.credit)
        """What is to be written to the client."""
        self.error: BaseException | None = None
        """Set when the handshake was never answered: the WSGI server is to answer it."""
        self.app_error: BaseException | None = None
        """The app's exception after the handshake: raised to the server once closed."""
        self._handshake = handshake
        self._conn: Connection | None = None
        self._frames: WholeFrames  # the client's frames, once accepted
        self._limits = limits
        self._events = events
        self._told = False
        self._early = bytearray()
        self._joiner = Joiner("websocket.receive", limits.max_message_size)
        self._deadline: float | None = None
        self._keepalive = Keepalive(limits)

    # The app's commands.

    def command(self, command: Command, size: int) -> None:
        tag = command[0]
        wire = self.wire
        if tag == SEND:
            if wire is Wire.OPEN:
                self.out.add_message(command[1], command[2])
            else:
                self.out.drop(size)  # closing: it cannot go out any more
        elif tag == CLOSE:
            self._close(command[1], command[2])
        elif tag == DONE:
            self._app_done(command[1], command[2])
        elif tag == DENY_BODY or wire is Wire.HANDSHAKE:
            self._answer(command, size)

    def _answer(self, command: Command, size: int) -> None:
        """The handshake answer: ACCEPT, FORBID, DENY_START, then DENY_BODY."""
        tag = command[0]
        if (tag == DENY_BODY) != (self.wire is Wire.DENYING):
            self.out.drop(size)  # (a denial body after the connection ended)
            return
        try:
            data = answer_bytes(self._handshake, command)
        except Exception as exc:  # a header or a body length h11 will not write
            self.out.drop(size)
            if self.wire is Wire.HANDSHAKE:
                self.error = ASGIProtocolError(f"Cannot write the handshake answer: {exc}")
                self.wire = Wire.ENDED
            else:
                logger.error("Ending a WebSocket denial response the app broke: %s", exc)
                self._flushing()
            return
        self.out.add(data, size)
        if tag == ACCEPT:
            self._conn = self._handshake.connection
            unmask_in_c(self._open())
            self._frames = WholeFrames(self._open(), self._limits.max_message_size, masked=True)
            self.wire = Wire.OPEN
            self._keepalive.heard(time.monotonic())
            if self._early:
                self._read_events(bytes(self._early))
                self._early.clear()
        elif tag == DENY_START:
            self.wire = Wire.DENYING
        elif tag == FORBID or not command[2]:
            self._flushing()

    def _close(self, code: int, reason: str) -> None:
        if self.wire is Wire.OPEN:
            self.out.add(self._open().send(CloseConnection(code, reason)), 0)
            self.wire = Wire.CLOSING
            self._deadline = time.monotonic() + self._limits.close_timeout

    def _app_done(self, error: BaseException | None, heard: int | None) -> None:
        wire = self.wire
        if wire is Wire.HANDSHAKE:
            self.error = error or ASGIProtocolError(
                "The ASGI app returned without answering 'websocket.connect' "
                "('websocket.accept', 'websocket.close' or a denial response)."
            )
            self.wire = Wire.ENDED
        elif wire is Wire.DENYING:
            if error is None:
                logger.error("The ASGI app ended before completing its WebSocket denial response.")
            self.app_error = error
            self._flushing()
        else:
            code = _closing_code(error, heard, self._told)
            if code == 1011:
                self.app_error = error  # raised to the server after the close: it logs it
            self._close(code, "")

    # The client's bytes.

    def reading(self) -> bool:
        """Whether the session wants the client's bytes now."""
        wire = self.wire
        if wire is Wire.OPEN or wire is Wire.CLOSING:
            return True
        return wire is Wire.HANDSHAKE and len(self._early) < EARLY_LIMIT

    def receive(self, data: bytes) -> None:
        """Bytes from the client; ``b""`` when it has closed its side or gone."""
        if not data:
            self.wire = Wire.ENDED
            return
        self._keepalive.heard(time.monotonic())
        if self.wire is Wire.HANDSHAKE:
            self._early += data
        elif self.wire is Wire.OPEN or self.wire is Wire.CLOSING:
            self._read_events(data)

    def _read_events(self, data: bytes) -> None:
        conn = self._open()
        messages: list[tuple[Message, int]] = []
        for event in self._frames.events(data):
            if isinstance(event, (TextMessage, BytesMessage)):
                message = self._joiner.add(event)
                if message is TOO_LARGE:
                    limit = self._limits.max_message_size
                    self._fail(1009, f"Message larger than {limit} bytes.")
                    break
                if message is not None and self.wire is Wire.OPEN:
                    messages.append(message)  # (after the app's close, no one wants it)
            elif isinstance(event, Ping):
                if conn.state is ConnectionState.OPEN:
                    self.out.add(conn.send(event.response()), 0)
            elif isinstance(event, Pong):
                self._keepalive.pong()
            elif isinstance(event, CloseConnection):
                self._client_closed(event)
                break
        if messages:
            self._events.deliver(messages)

    def _client_closed(self, event: CloseConnection) -> None:
        conn = self._open()
        state = conn.state
        if state is ConnectionState.REMOTE_CLOSING:  # the client starts the close handshake
            self.out.add(conn.send(event.response()), 0)
        elif state is not ConnectionState.CLOSED:  # wsproto could not parse the client's frames
            self._fail(event.code, event.reason or "")
            return
        self._tell_over(event.code, event.reason or "")
        self._flushing()

    def _fail(self, code: int, reason: str) -> None:
        """Fail the connection (RFC 6455 7.1.7): a close frame, then nothing more read."""
        conn = self._open()
        if conn.state is ConnectionState.OPEN:
            self.out.add(conn.send(CloseConnection(code, reason)), 0)
        self._tell_over(code, reason)
        self._flushing()

    # Time.

    def timeout(self, now: float) -> float | None:
        """Seconds until the session has something to do; ends it when a deadline passed."""
        deadline = self._deadline
        if deadline is not None:
            if now < deadline:
                return deadline - now
            self.wire = Wire.ENDED  # no close frame from the client, or writes stuck
            return 0.0
        if self.wire is not Wire.OPEN:
            return None
        wait = self._keepalive.wait(now)
        if wait is None or wait > 0:
            return wait
        if self._keepalive.lost(now):
            logger.info("A WebSocket client did not answer a ping in time; dropping it.")
            self.wire = Wire.ENDED
            return 0.0
        self.out.add(self._open().send(Ping(self._keepalive.ping(now))))
        return 0.0

    def end(self) -> None:
        """The relay stops: tell the app, if not told yet (1006: no close frame)."""
        self.wire = Wire.ENDED
        self._tell_over(1006, "")

    # Helpers.

    def _open(self) -> Connection:
        conn = self._conn
        assert conn is not None, "no WebSocket connection before the handshake answer"
        return conn

    def _flushing(self) -> None:
        self.wire = Wire.FLUSHING
        self._deadline = time.monotonic() + self._limits.close_timeout

    def _tell_over(self, code: int, reason: str) -> None:
        if not self._told:
            self._told = True
            self._events.over(int(code), reason)


def _closing_code(error: BaseException | None, heard: int | None, told: bool) -> int:
    """The close code for an app that ended after accepting; says what is not raised."""
    if error is None or (told and isinstance(error, OSError)):
        return 1000  # an app that returns without closing: a normal closure
    if heard == 1006:
        # The client went away without a close frame, and the app raised once told: a
        # client that leaves is not a server error (the wire has ended: nothing is sent).
        logger.debug("A WebSocket client went away; the app ended with %r.", error)
        return 1000
    if isinstance(error, ShuttingDown):
        logger.info("Closing a WebSocket: %s", error)
        return 1001
    return 1011


def answer_bytes(handshake: H11Handshake, command: Command) -> bytes:
    """The bytes of the handshake answer ``command`` asks for (h11, through wsproto).

    :raises Exception: what h11 raises for an answer it will not write.
    """
    tag = command[0]
    event: AcceptConnection | RejectConnection | RejectData
    if tag == ACCEPT:
        event = AcceptConnection(subprotocol=command[1], extra_headers=command[2])
    elif tag == DENY_BODY:
        event = RejectData(command[1], body_finished=not command[2])
    else:
        body = tag == DENY_START
        status, headers = (command[1], command[2]) if body else (403, [])
        if not any(name == b"connection" for name, _ in headers):
            headers = [*headers, (b"connection", b"close")]  # the connection ends after it
        event = RejectConnection(status_code=status, headers=headers, has_body=body)
    return handshake.send(event)


class Keepalive:
    """Pings a client that has been silent for ``ping_interval`` seconds, and counts
    it lost when no pong comes within ``ping_timeout`` (RFC 6455 5.5.2)."""

    __slots__ = ("_heard", "_interval", "_pong_due", "_timeout")

    def __init__(self, limits: Limits) -> None:
        self._interval = limits.ping_interval
        self._timeout = limits.ping_timeout
        self._heard = time.monotonic()
        self._pong_due: float | None = None

    def heard(self, now: float) -> None:
        self._heard = now

    def pong(self) -> None:
        self._pong_due = None

    def wait(self, now: float) -> float | None:
        """Seconds until a ping or the pong is due (0: now); None: never."""
        if self._pong_due is not None:
            return max(0.0, self._pong_due - now)
        if self._interval is None:
            return None
        return max(0.0, self._heard + self._interval - now)

    def lost(self, now: float) -> bool:
        return self._pong_due is not None and now >= self._pong_due

    def ping(self, now: float) -> bytes:
        """A ping's payload, sent now."""
        self._pong_due = now + self._timeout
        return os.urandom(4)
