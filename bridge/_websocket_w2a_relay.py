"""The ``OPEN`` phase of a WSGI app's WebSocket: frames both ways, then the close.

The session (:mod:`bridge._websocket_wsgi_to_asgi`) has accepted the app's 101; the
relay owns the bridge's end of the socket pair from then on. One task reads the
app's frames (:mod:`bridge._websocket_frames`: whole data frames itself, the rest
with wsproto) and sends them to the client; the other receives the
client's messages and writes them to the app as masked frames. Each waits for its
destination before it reads more from its source, so memory stays bounded both
ways. :class:`Phase` is the session's state; the relay moves it from ``OPEN`` to a
closing phase, and to ``DONE`` when the app's end of the socket is finished.
"""

from __future__ import annotations

import enum
import logging
from typing import Protocol

import anyio
from anyio.abc import TaskGroup
from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Event, Ping, TextMessage

from ._websocket_frames import WholeFrames
from ._websocket_messages import LOCAL_ONLY_CLOSE_CODES, TOO_LARGE, Joiner
from ._websocket_w2a_io import LoopEnd
from ._websocket_w2a_wire import data_frame
from .exceptions import WSGIProtocolError
from .types import Message as ASGIMessage
from .types import Receive, Scope

logger = logging.getLogger("bridge")

MAX_MESSAGE_SIZE = 16 * 1024 * 1024
"""Bytes (characters for text) of one message from the app the relay joins at most."""
CLOSE_TIMEOUT = 5.0
"""Seconds the app's end gets to finish after a close, before its socket is shut."""


class Phase(enum.Enum):
    """Where a session is; :data:`TRANSITIONS` lists the moves between them."""

    HANDSHAKE = "reading the app's answer to the upgrade"
    OPEN = "relaying messages both ways"
    APP_CLOSING = "the app closed; its end is finishing"
    CLIENT_CLOSING = "the client closed; the app's end is finishing"
    DONE = "the app's end is finished"


TRANSITIONS: dict[Phase, frozenset[Phase]] = {
    Phase.HANDSHAKE: frozenset({Phase.OPEN, Phase.DONE}),
    Phase.OPEN: frozenset({Phase.APP_CLOSING, Phase.CLIENT_CLOSING, Phase.DONE}),
    Phase.APP_CLOSING: frozenset({Phase.DONE}),
    Phase.CLIENT_CLOSING: frozenset({Phase.DONE}),
    Phase.DONE: frozenset(),
}


class RelaySession(Protocol):
    """What the relay needs of its session."""

    scope: Scope
    receive: Receive
    end: LoopEnd
    phase: Phase
    error: WSGIProtocolError | None
    max_message_size: int
    close_timeout: float

    def move(self, phase: Phase) -> None: ...
    async def send(self, message: ASGIMessage) -> bool: ...


class Relay:
    """The ``OPEN`` phase and the close: frames both ways, one task per direction."""

    def __init__(self, session: RelaySession, trailing: bytes) -> None:
        self._session = session
        self._end = session.end
        self._conn = Connection(ConnectionType.CLIENT)
        self._frames = WholeFrames(self._conn, session.max_message_size, masked=False)
        self._trailing = trailing
        self._joiner = Joiner("websocket.send", session.max_message_size)
        self._task_group: TaskGroup

    async def run(self) -> None:
        errors: list[Exception] = []  # raised below as themselves, not in a group

        async def from_client() -> None:
            try:
                await self._from_client()
            except Exception as exc:
                errors.append(exc)
                self._end.shut()  # ends _from_app

        async with anyio.create_task_group() as task_group:
            self._task_group = task_group
            task_group.start_soon(from_client)
            try:
                await self._from_app()
            except Exception as exc:
                errors.insert(0, exc)
            task_group.cancel_scope.cancel()
        if errors:
            raise errors[0]

    def _close_phase(self, phase: Phase) -> None:
        """Enter a closing phase; the app's end gets ``close_timeout`` to finish."""
        self._session.move(phase)
        self._task_group.start_soon(self._shut_later)

    async def _shut_later(self) -> None:
        await anyio.sleep(self._session.close_timeout)
        logger.debug("The app's end of a WebSocket did not finish in time; it is shut.")
        self._end.shut()

    # The app to the client.

    async def _from_app(self) -> None:
        frames = self._frames
        data = self._trailing or await self._end.receive()
        while data:
            for event in frames.events(data):
                await self._on_event(event)
            data = await self._end.receive()
        if self._session.phase is Phase.OPEN:
            logger.debug("The app's end of a WebSocket closed without a close frame.")
            await self._session.send({"type": "websocket.close", "code": 1011})
        self._session.move(Phase.DONE)

    async def _on_event(self, event: Event) -> None:
        if isinstance(event, (TextMessage, BytesMessage)):
            await self._on_data(event)
        elif isinstance(event, Ping):
            if self._conn.state is ConnectionState.OPEN:
                await self._end.write(self._conn.send(event.response()))
        elif isinstance(event, CloseConnection):
            await self._on_close(event)

    async def _on_data(self, event: TextMessage | BytesMessage) -> None:
        session = self._session
        if session.phase is not Phase.OPEN:
            return  # the client is gone, or the app closed: nobody to send it to
        joined = self._joiner.add(event)
        if joined is None:
            return
        if joined is TOO_LARGE:
            logger.warning(
                "The app's WebSocket message to %r is over the limit of %d; closing with 1009.",
                session.scope.get("path"),
                session.max_message_size,
            )
            await self._fail(1009, "Message too big", 1009)
            return
        if not await session.send(joined[0]):
            await self._client_closed(1006, "")

    async def _on_close(self, event: CloseConnection) -> None:
        session = self._session
        if self._conn.state in (ConnectionState.OPEN, ConnectionState.LOCAL_CLOSING):
            # Not a close frame: wsproto could not parse the app's bytes.
            reason = event.reason or ""
            session.error = WSGIProtocolError(f"The app sent invalid WebSocket data: {reason}")
            await self._fail(event.code, reason, 1011)
            return
        if session.phase is not Phase.OPEN:
            return  # the app's answer to the client's close
        self._close_phase(Phase.APP_CLOSING)
        code = 1000 if event.code in LOCAL_ONLY_CLOSE_CODES else int(event.code)
        await session.send({"type": "websocket.close", "code": code, "reason": event.reason or ""})
        await self._end.write(self._conn.send(event.response()))

    async def _fail(self, code: int, reason: str, client_code: int) -> None:
        """Fail the connection (RFC 6455 7.1.7): a close frame to the app, its socket shut."""
        if self._conn.state is ConnectionState.OPEN:
            await self._end.write(self._conn.send(CloseConnection(code=code, reason=reason)))
        if self._session.phase is Phase.OPEN:
            self._session.move(Phase.APP_CLOSING)
            await self._session.send({"type": "websocket.close", "code": client_code})
        self._end.shut()

    # The client to the app.

    async def _from_client(self) -> None:
        session = self._session
        conn = self._conn
        while True:
            message = await session.receive()
            kind = message["type"]
            if kind == "websocket.receive":
                if session.phase is not Phase.OPEN or conn.state is not ConnectionState.OPEN:
                    continue  # the app closed: dropped, as a closing peer drops data
                text = message.get("text")
                await self._end.write(
                    *data_frame(text if text is not None else message.get("bytes") or b"")
                )
            elif kind == "websocket.disconnect":
                await self._client_closed(message.get("code", 1005), message.get("reason") or "")
                return

    async def _client_closed(self, code: int, reason: str) -> None:
        if self._session.phase is not Phase.OPEN:
            return  # the server confirms the app's close, or the client left twice
        self._close_phase(Phase.CLIENT_CLOSING)
        if code in (1006, 1015) or self._conn.state is not ConnectionState.OPEN:
            self._end.shut()  # the client vanished: the app's connection ends, as natively
            return
        await self._end.write(self._conn.send(CloseConnection(code=code, reason=reason or None)))
