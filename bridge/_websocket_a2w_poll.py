"""How the relay of an ASGI app's WebSocket waits, on the adapter's event loop.

The relay (:mod:`bridge._websocket_a2w_relay`) is driven by three calls: the
socket is readable, it is writable, a deadline passed. After each step it says
what it wants next with :meth:`Poller.want`: reading or not, writing or not, and
the seconds until its next deadline. A poller turns that into the loop's own
waiting:

* :class:`AsyncioPoller` (asyncio and uvloop): the loop's ``add_reader`` and
  ``add_writer`` callbacks, kept registered while wanted, and one ``call_at``
  timer. Nothing is created per message: a round trip costs the loop no task and
  no future, as a uvicorn protocol costs it none.
* :class:`AnyioPoller` (trio, or an asyncio loop without ``add_reader`` such as
  Windows' proactor): three small tasks under the job's task group, waiting with
  ``anyio.wait_readable``, ``anyio.wait_writable`` and a cancel scope's deadline.

A timer is moved only earlier: a deadline that moves later (the keepalive's, with
every message from the client) lets the pending timer fire, and the relay, asked
again, sets the later one. That is one timer per ping interval, not per message.
"""

from __future__ import annotations

import asyncio
import math
import socket
from collections.abc import Callable
from typing import Protocol

import anyio


class Steps(Protocol):
    """The relay, as a poller drives it."""

    def readable(self) -> None: ...
    def writable(self) -> None: ...
    def timer(self) -> None: ...
    def stop(self) -> None:
        """The poller is cancelled (the loop is stopping): end the connection now."""

    def fail(self, error: Exception) -> None:
        """A step raised (a bug): say it and end the connection, so that nothing hangs."""


class Poller(Protocol):
    def want(self, read: bool, write: bool, timeout: float | None) -> None:
        """Wait for what is wanted from now on; ``timeout``: seconds until the deadline."""

    def close(self) -> None:
        """Stop waiting for anything (the connection is over)."""


class AsyncioPoller:
    """The loop's reader and writer callbacks, and one timer (see the module doc)."""

    __slots__ = ("_due", "_fd", "_loop", "_reading", "_steps", "_timer", "_writing")

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, steps: Steps) -> None:
        self._loop = loop
        self._fd = sock.fileno()
        self._steps = steps
        self._reading = False
        self._writing = False
        self._timer: asyncio.TimerHandle | None = None
        self._due = math.inf

    def want(self, read: bool, write: bool, timeout: float | None) -> None:
        loop = self._loop
        if read is not self._reading:
            self._reading = read
            if read:
                loop.add_reader(self._fd, _guarded, self._steps.readable, self._steps)
            else:
                loop.remove_reader(self._fd)
        if write is not self._writing:
            self._writing = write
            if write:
                loop.add_writer(self._fd, _guarded, self._steps.writable, self._steps)
            else:
                loop.remove_writer(self._fd)
        if timeout is not None:
            due = loop.time() + timeout
            if due < self._due:
                if self._timer is not None:
                    self._timer.cancel()
                self._due = due
                self._timer = loop.call_at(due, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._due = math.inf
        _guarded(self._steps.timer, self._steps)

    def close(self) -> None:
        self.want(False, False, None)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class AnyioPoller:
    """Three tasks, for any anyio backend (see the module doc)."""

    __slots__ = ("_due", "_reading", "_scope", "_sock", "_steps", "_timer", "_wanted", "_writing")

    def __init__(self, sock: socket.socket, steps: Steps) -> None:
        self._sock = sock
        self._steps = steps
        self._reading = False
        self._writing = False
        self._wanted: dict[bool, anyio.Event] = {}
        """The events a watcher waits on until its direction is wanted (True: writing)."""
        self._scope = anyio.CancelScope()
        self._timer: anyio.CancelScope | None = None
        self._due = math.inf

    async def run(self) -> None:
        """The poller's tasks, until :meth:`close` (or the loop cancels them)."""
        try:
            with self._scope:
                async with anyio.create_task_group() as group:
                    group.start_soon(self._watch, False)
                    group.start_soon(self._watch, True)
                    group.start_soon(self._tick)
        finally:
            if not self._scope.cancel_called:
                self._steps.stop()

    def want(self, read: bool, write: bool, timeout: float | None) -> None:
        self._reading = read
        self._writing = write
        if read:
            self._release(False)
        if write:
            self._release(True)
        if timeout is not None:
            due = anyio.current_time() + timeout
            if due < self._due:
                self._due = due
                if self._timer is not None:
                    self._timer.deadline = due

    def _release(self, writing: bool) -> None:
        event = self._wanted.pop(writing, None)
        if event is not None:
            event.set()

    async def _watch(self, writing: bool) -> None:
        wait = anyio.wait_writable if writing else anyio.wait_readable
        step = self._steps.writable if writing else self._steps.readable
        while True:
            if not (self._writing if writing else self._reading):
                event = self._wanted[writing] = anyio.Event()
                await event.wait()
                continue
            await wait(self._sock)
            if self._writing if writing else self._reading:
                _guarded(step, self._steps)

    async def _tick(self) -> None:
        while True:
            with anyio.CancelScope(deadline=self._due) as timer:
                self._timer = timer
                await anyio.sleep_forever()
            self._timer = None
            self._due = math.inf
            _guarded(self._steps.timer, self._steps)

    def close(self) -> None:
        self._reading = self._writing = False
        self._scope.cancel()


def _guarded(step: Callable[[], None], steps: Steps) -> None:
    try:
        step()
    except Exception as exc:
        steps.fail(exc)
