"""The ASGI app's side of one WebSocket connection under ``ASGIToWSGI``.

A :class:`WebSocketTask` is the job the adapter's loop thread runs: it starts the
connection's :class:`~bridge._websocket_a2w_relay.Relay` (the socket's I/O, on the
same loop), calls the app with the ``websocket`` scope, and its ``receive()`` and
``send()`` talk to the relay by plain calls: :meth:`Relay.submit` and
:meth:`Relay.consumed` one way, :meth:`deliver`, :meth:`drained` and :meth:`over`
the other. See :mod:`bridge._websocket_a2w_relay` for the whole picture.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import socket
import sys
from typing import TYPE_CHECKING, Final

import anyio
from wsproto.handshake import H11Handshake

from ._streams import Waiter, new_waiter, wake
from ._websocket_a2w_limits import Limits
from ._websocket_a2w_phase import DONE, Phase, check
from ._websocket_a2w_poll import AnyioPoller, AsyncioPoller
from ._websocket_a2w_relay import Relay
from .exceptions import ClientDisconnected, ShuttingDown
from .types import ASGIApp, Message, Scope

if TYPE_CHECKING:
    from ._loop import LoopThread

logger = logging.getLogger("bridge")

_CONNECT: Final[Message] = {"type": "websocket.connect"}


class WebSocketTask:
    """The app's ``receive()`` and ``send()`` for one connection, on the event loop."""

    __slots__ = (
        "_app",
        "_arrived",
        "_connected",
        "_drained",
        "_heard",
        "_inbox",
        "_loop",
        "_over",
        "_scope",
        "_sock",
        "_subprotocols",
        "phase",
        "relay",
        "task",
    )

    def __init__(
        self,
        app: ASGIApp,
        scope: Scope,
        loop: LoopThread,
        sock: socket.socket,
        handshake: H11Handshake,
        limits: Limits,
    ) -> None:
        self._app = app
        self._scope = scope
        self._subprotocols: list[str] = scope["subprotocols"]
        self._loop = loop
        self._sock = sock
        self.relay = Relay(sock, handshake, limits, self)
        self.phase = Phase.CONNECTING
        self._connected = False
        self._inbox: collections.deque[tuple[Message, int]] = collections.deque()
        self._over: Message | None = None
        """``websocket.disconnect``, once the relay has said the connection is over."""
        self._heard = False  # the app has received that websocket.disconnect
        self._arrived: Waiter | None = None
        self._drained: Waiter | None = None
        self.task: asyncio.Task[None] | None = None
        """Set by the loop when it starts the task on asyncio (:class:`bridge._loop.Job`)."""

    async def run(self) -> None:
        """The connection's task (:class:`bridge._loop.Job`)."""
        asyncio_loop = self._loop.asyncio_loop
        if asyncio_loop is not None and sys.platform != "win32":
            self.relay.start(AsyncioPoller(asyncio_loop, self._sock, self.relay))
            await self._call_app()
            return
        # trio, and asyncio's proactor loop (no add_reader): the poller's own tasks.
        poller = AnyioPoller(self._sock, self.relay)
        async with anyio.create_task_group() as group:
            group.start_soon(poller.run)
            self.relay.start(poller)
            await self._call_app()

    async def _call_app(self) -> None:
        loop = self._loop
        error: BaseException | None = None
        try:
            await self._app(self._scope, self._receive, self._send)
        except BaseException as exc:
            if isinstance(exc, loop.cancelled):
                error = ShuttingDown("The process is shutting down; the WebSocket was cancelled.")
                raise
            error = exc
        finally:
            heard = self._over["code"] if self._heard and self._over is not None else None
            if self.relay.submit((DONE, error, heard), 0) is None and error is not None:
                # The relay has ended, so it cannot report this: say it here, unless it
                # is the OSError a send() raises once the client is gone, or what the app
                # raised once told the client went away (1006).
                if isinstance(error, ShuttingDown):
                    logger.info("Closing a WebSocket: %s", error)
                elif heard == 1006:
                    logger.debug("A WebSocket client went away; the app ended with %r.", error)
                elif not (self.phase is Phase.CLOSED and isinstance(error, OSError)):
                    logger.error(
                        "Exception in the ASGI app after its WebSocket closed.", exc_info=error
                    )
            del error
            loop.tasks.discard(self.task)

    async def _receive(self) -> Message:
        if not self._connected:
            self._connected = True
            return _CONNECT
        while True:
            inbox = self._inbox
            if inbox:
                message, size = inbox.popleft()
                if size:
                    self.relay.consumed(size)
                return message
            if self._over is not None:
                self._heard = True
                return self._over
            event = self._arrived
            if event is None:
                event = self._arrived = new_waiter(self._loop.asyncio_loop)
            await event

    async def _send(self, message: Message) -> None:
        phase, command, size = check(self.phase, message, self._subprotocols)
        self.phase = phase
        wait = self.relay.submit(command, size)
        if wait is None:
            self.phase = Phase.CLOSED
            raise ClientDisconnected("The WebSocket connection is closed.")
        if wait:
            event = self._drained = new_waiter(self._loop.asyncio_loop)
            await event
            if self._over is not None and size:
                raise ClientDisconnected(
                    "The WebSocket connection closed before the message was sent."
                )

    # Called by the relay.

    def deliver(self, messages: list[tuple[Message, int]]) -> None:
        """Messages from the client, each with its size."""
        self._inbox.extend(messages)
        self._wake_receiver()

    def drained(self) -> None:
        """The relay has written enough: a waiting ``send()`` may return."""
        event = self._drained
        if event is not None:
            self._drained = None
            wake(event)

    def over(self, code: int, reason: str) -> None:
        """The connection is over; ``receive()`` says so after the messages before it."""
        self.phase = Phase.CLOSED
        self._over = {"type": "websocket.disconnect", "code": code, "reason": reason}
        self._wake_receiver()
        self.drained()

    def _wake_receiver(self) -> None:
        event = self._arrived
        if event is not None:
            self._arrived = None
            wake(event)
