r"""``WSGIToASGI``'s side of ``receive()``: the request body for the worker, then the
watch for a disconnect.

The pump (:mod:`bridge._wsgi_to_asgi_pump`) calls ``receive()`` itself for the first
body message (:meth:`Receiver.first`): a body in one message costs one hop and no
task. From the moment more body follows, or the response streams, a *receiver* task
owns ``receive()`` (:meth:`Receiver.start`): it reads the body ahead of the app, at
most ``high_water`` bytes ahead (back-pressure on uploads), and after the body it
waits for ``http.disconnect``, because some servers make ``send()`` a silent no-op
once the client has gone. Either way a disconnect :meth:`~Receiver.abort`\ s the
request: the worker's next ``put()`` raises, its body reads fail, and the pump sends
nothing more.

On asyncio the receiver is a bare task, started only when needed (an anyio task group
and cancel scope cost more than the rest of a small request); elsewhere the relay
runs inside a task group (:meth:`Receiver.around`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import anyio
import anyio.abc

from ._streams import ToLoop, new_waiter, wake
from ._wsgi_to_asgi_worker import Item, RequestBody
from .types import Message, Receive


class Receiver:
    """One request's ``receive()``, on the ASGI server's loop."""

    __slots__ = (
        "_body",
        "_body_complete",
        "_channel",
        "_error",
        "_limit",
        "_receive",
        "_received",
        "_stop",
        "_task",
        "_task_group",
        "gone",
        "running",
    )

    def __init__(
        self,
        receive: Receive,
        channel: ToLoop[Item],
        body: RequestBody | None,
        limit: int | None,
    ) -> None:
        self._receive = receive
        self._channel = channel
        self._body = body  # None: framing says there is no body
        self._body_complete = body is None
        self._limit = limit
        self.gone = False
        """The client has gone: nothing more is sent."""
        self.running = False
        """The receiver task owns ``receive()``."""
        self._received = 0  # request body bytes handed to the worker
        self._task: asyncio.Task[None] | None = None  # asyncio's receiver
        self._task_group: anyio.abc.TaskGroup | None = None  # other backends'
        self._stop: anyio.CancelScope | None = None
        self._error: Exception | None = None

    def abort(self) -> None:
        """The client has gone: the worker's next put() raises, its body reads fail."""
        self.gone = True
        self._channel.abort()
        if self._body is not None:
            self._body.chunks.end()

    async def first(self) -> bool:
        """Receive one body message inline; True when more body follows."""
        message = await self._receive()
        if message["type"] != "http.request":
            self.abort()
            return False
        return self._hand_on(message)

    def _hand_on(self, message: Message) -> bool:
        """Hand a body message's bytes to the worker; True when more follow."""
        assert self._body is not None
        more = bool(message.get("more_body", False))
        if not more:
            self._body_complete = True
        chunk: bytes = message.get("body", b"")
        size = len(chunk)
        self._received += size
        self._body.chunks.put((chunk, more), size)
        return more

    def start(self) -> None:
        """Start the receiver task, unless it runs already."""
        if self.running:
            return
        self.running = True
        if self._task_group is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
            return
        # Stopped by cancelling a scope of its own, which it leaves normally: a task
        # ending in a cancellation would leave a reference cycle for the GC.
        self._stop = anyio.CancelScope()
        self._task_group.start_soon(self._run_in_scope, self._stop)

    async def stop(self) -> None:
        """On asyncio: stop the receiver task and wait for it; raise what it raised."""
        task = self._task
        if task is None:
            return
        self._task = None  # the task's exception refers to this object: no cycle
        if task.done():
            error = None if task.cancelled() else task.exception()
            if isinstance(error, Exception):
                raise error
            return
        # Stopped and waited for, as a task group would: nothing of the request runs on
        # after the app call returns.
        stopped = new_waiter(asyncio.get_running_loop())
        task.add_done_callback(lambda _: wake(stopped))
        task.cancel()
        await stopped

    async def around(self, relay: Callable[[], Awaitable[None]]) -> None:
        """Off asyncio: run ``relay`` in a task group the receiver can start in.

        The relay's exception, or else the receiver's, is raised as itself.
        """
        error: Exception | None = None
        async with anyio.create_task_group() as self._task_group:
            try:
                await relay()
            except Exception as exc:
                error = exc
            finally:
                if self._stop is not None:
                    self._stop.cancel()
        self._task_group = None
        error = error or self._error
        if error is not None:
            raise error

    async def _run_in_scope(self, scope: anyio.CancelScope) -> None:
        with scope:
            try:
                await self._run()
            except Exception as exc:
                self._error = exc

    async def _run(self) -> None:
        """Own ``receive()``: read the body ahead of the app, then watch for a disconnect.

        It reads at most ``high_water`` bytes ahead, so an app that stops reading
        mid-upload also delays the news of a disconnect; after the body it waits for
        ``http.disconnect`` until the pump stops it.
        """
        body = self._body
        limit = self._limit
        try:
            while True:
                reading = not self._body_complete
                if reading:
                    assert body is not None
                    await body.chunks.wait_for_space()
                message = await self._receive()
                kind = message["type"]
                if kind == "http.disconnect":
                    self.abort()
                    return
                if reading and kind == "http.request":
                    self._hand_on(message)
                    if limit is not None and self._received > limit:
                        return  # wsgi.input refuses the body: read no more of it
        except Exception:
            self.abort()  # the worker must not wait for body that will never come
            raise
