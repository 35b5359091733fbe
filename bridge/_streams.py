"""The bounded hand-off between a thread and an event loop, once for each direction.

Both adapters pass items between one blocking thread (a WSGI server's thread, or a
pool thread running a WSGI app) and one event loop. Each direction is a queue
bounded by the bytes it holds:

* :class:`ToLoop`: a thread produces, the loop consumes (``WSGIToASGI``'s response).
  The thread's :meth:`~ToLoop.put` blocks while ``high_water`` bytes wait; the loop
  takes everything pending at once.
* :class:`ToThread`: the loop produces, a thread consumes (``ASGIToWSGI``'s response,
  ``WSGIToASGI``'s request body). The loop's :meth:`~ToThread.put` returns a waiter to
  await when ``high_water`` bytes wait; the thread wakes it at half the mark (low
  water), not for every item.

The loop is always woken by posting a callback (:func:`bridge._loop.post`): a thread
must never block on the loop. Waiters are bare futures on asyncio (cheaper than
``anyio.Event``), anyio events elsewhere. The thread's methods that every request calls
take the lock with ``acquire()`` and ``release()`` in ``try``/``finally``: half the cost
of a ``with`` statement. The loop's keep ``with``: a test harness that watches the loop
for blocking calls (blockbuster, in Starlette's suite) sees an ``acquire()`` of a lock
the thread holds for a moment as one.
"""

from __future__ import annotations

import asyncio
import os
import queue
import threading
from collections.abc import Generator
from typing import Any, Generic, Protocol, TypeVar

import anyio

from ._loop import CallSoon, post
from .exceptions import ClientDisconnected

Item = TypeVar("Item")


class Waiter(Protocol):
    """A one-shot waiter the loop awaits and a callback on the loop sets."""

    def done(self) -> bool: ...
    def set_result(self, result: None) -> None: ...
    def __await__(self) -> Generator[Any, None, Any]: ...


class _AnyioWaiter:
    """A one-shot waiter with a future's interface, on any anyio backend."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = anyio.Event()

    def done(self) -> bool:
        return self._event.is_set()

    def set_result(self, result: None) -> None:
        self._event.set()

    def __await__(self) -> Generator[Any, None, Any]:
        return self._event.wait().__await__()


def new_waiter(loop: asyncio.AbstractEventLoop | None) -> Waiter:
    """A bare future on asyncio, anyio's own event elsewhere; call on the loop."""
    return loop.create_future() if loop is not None else _AnyioWaiter()


def wake(waiter: Waiter) -> None:
    """Set ``waiter`` unless it is set already; call on the loop."""
    if not waiter.done():
        waiter.set_result(None)


class Gone(Exception):
    """Raised by :meth:`ToThread.get` after :meth:`ToThread.end`: the producer has gone."""


class _Sized(tuple):  # type: ignore[type-arg]
    """A :class:`ToThread` entry that counts against ``high_water``: ``(item, size)``.

    Items of no size go in the queue bare, so the thread's common case is one type
    check; made with ``tuple.__new__`` (no Python call).
    """

    __slots__ = ()


class _Bounded:
    """What both directions hold: the loop to wake, the mark, the bytes waiting.

    Each subclass's ``__init__`` sets them itself: one Python call per request fewer
    than a ``super().__init__()``.
    """

    __slots__ = ("_bytes", "_call_soon", "_high_water", "_lock", "_loop", "_waiter")

    _call_soon: CallSoon
    _loop: asyncio.AbstractEventLoop | None  # for waiters: asyncio's, or None for anyio's
    _high_water: int
    _lock: threading.Lock
    _bytes: int
    _waiter: Waiter | None


class ToLoop(_Bounded, Generic[Item]):
    """Items from a thread to the loop, bounded by bytes.

    The two parties also settle who ends last: :meth:`finish` (the thread's last
    item) and :meth:`leave` (the loop stops reading) each say whether the other has
    already done so, so that exactly one of them releases what both share.
    """

    __slots__ = ("_aborted", "_finished", "_items", "_left", "_space", "_waiting")

    def __init__(
        self, call_soon: CallSoon, loop: asyncio.AbstractEventLoop | None, high_water: int
    ) -> None:
        self._call_soon, self._loop, self._high_water = call_soon, loop, high_water
        self._lock, self._bytes, self._waiter = threading.Lock(), 0, None
        self._items: list[Item] = []
        self._space: threading.Condition | None = None  # made when the thread must wait
        self._waiting = False  # the loop awaits _waiter
        self._aborted = False
        self._finished = False
        self._left = False

    # The thread's side.

    def put(self, item: Item, size: int = 0, wake: bool = True) -> None:
        """Queue ``item`` (``size`` bytes); blocks while ``high_water`` bytes wait.

        With ``wake=False`` the loop is not woken for it: the caller promises another
        ``put()`` or :meth:`finish` at once, which wakes it for both.

        :raises ClientDisconnected: once the loop has called :meth:`abort`.
        """
        lock = self._lock
        lock.acquire()
        try:
            while True:
                if self._aborted:
                    raise ClientDisconnected("The client disconnected; the response was cut.")
                if not size or self._bytes < self._high_water:
                    break
                if self._space is None:
                    self._space = threading.Condition(self._lock)
                self._space.wait()
            self._append(item, size, wake)
        finally:
            lock.release()

    def finish(self, item: Item, before: Item | None = None) -> bool:
        """Queue the thread's last item (after ``before``, when given); never blocks or
        raises.

        :returns: True when the loop has already left, so the thread must release
            what the loop would have.
        """
        lock = self._lock
        lock.acquire()
        try:
            if before is not None:
                self._items.append(before)
            self._append(item, 0, True)
            self._finished = True
            return self._left
        finally:
            lock.release()

    def _append(self, item: Item, size: int, wake: bool) -> None:
        self._items.append(item)
        self._bytes += size
        if wake and self._waiting:
            self._waiting = False
            post(self._call_soon, self._wake_loop)

    def _wake_loop(self) -> None:
        if self._waiter is not None:
            wake(self._waiter)

    # The loop's side.

    def take(self) -> list[Item] | Waiter:
        """Every pending item, or when there is none a waiter to await before asking again.

        Not a coroutine: a request in flight holds one object fewer, and the cyclic GC
        sees that (see docs/performance.md).
        """
        with self._lock:
            items = self._items
            if items:
                self._items = []
                self._bytes = 0
                if self._space is not None:
                    self._space.notify()
                return items
            waiter = self._waiter = new_waiter(self._loop)
            self._waiting = True
            return waiter

    def abort(self) -> None:
        """Make the thread's next :meth:`put` raise :class:`ClientDisconnected`."""
        with self._lock:
            self._aborted = True
            if self._space is not None:
                self._space.notify_all()

    def leave(self) -> bool:
        """The loop stops reading; True when the thread has finished too."""
        with self._lock:
            self._left = True
            return self._finished


class ToThread(_Bounded, Generic[Item]):
    """Items from the loop to a thread, bounded by bytes.

    When the thread stops reading early it calls :meth:`leave`; from then on items
    are dropped, and :meth:`finish` tells the loop that its last item has no reader.
    """

    __slots__ = ("_queue", "left")

    def __init__(
        self, call_soon: CallSoon, loop: asyncio.AbstractEventLoop | None, high_water: int
    ) -> None:
        self._call_soon, self._loop, self._high_water = call_soon, loop, high_water
        self._lock, self._bytes, self._waiter = threading.Lock(), 0, None
        # Bare items, _Sized entries, and None for end().
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.left = False
        """Whether the thread has stopped reading (:meth:`leave`)."""

    # The loop's side.

    def put(self, item: Item, size: int = 0) -> Waiter | None:
        """Queue ``item`` (``size`` bytes) and wake the thread.

        :returns: a waiter to await before putting more when ``high_water`` bytes
            wait, else None.
        """
        if self.left:
            return None  # nobody reads any more
        if not size:
            self._queue.put(item)
            return None
        waiter = None
        with self._lock:
            self._bytes += size
            if self._bytes > self._high_water:
                waiter = self._waiter = new_waiter(self._loop)
        self._queue.put(tuple.__new__(_Sized, (item, size)))
        return waiter

    async def wait_for_space(self) -> None:
        """Return once fewer than ``high_water`` bytes wait."""
        with self._lock:
            if self._bytes < self._high_water:
                return
            waiter = self._waiter = new_waiter(self._loop)
        await waiter

    def end(self) -> None:
        """No more items: the thread's next :meth:`get` (and every later one) raises."""
        self._queue.put(None)

    def finish(self, item: Item) -> bool:
        """Queue the loop's last item; never blocks.

        :returns: False when the thread has left, so nobody will take it.
        """
        with self._lock:
            if self.left:
                return False
            self._queue.put(item)
            return True

    # The thread's side.

    def get(self, timeout: float | None = None) -> Item:
        """The next item; blocks until there is one.

        :raises queue.Empty: when ``timeout`` s pass first.
        :raises Gone: after :meth:`end`.
        """
        entry = self._queue.get(True, timeout)
        if entry is None or type(entry) is _Sized:
            return self._unwrap(entry)
        return entry  # type: ignore[no-any-return]

    def get_after_yielding(self, yields: int, timeout: float | None = None) -> Item:
        """:meth:`get`, after offering this thread's core to others up to ``yields``
        times while nothing waits (``sched_yield``), for a producer on the same core."""
        for _ in range(yields):
            item = self.get_nowait()
            if item is not None:
                return item
            os.sched_yield()
        return self.get(timeout)

    def get_nowait(self) -> Item | None:
        """The next item if there is one, else None.

        :raises Gone: after :meth:`end`.
        """
        try:
            return self.get(0.0)
        except queue.Empty:
            return None

    def _unwrap(self, entry: _Sized | None) -> Item:
        if entry is None:
            self._queue.put(None)  # every later get fails the same way
            raise Gone
        item, size = entry
        with self._lock:
            self._bytes -= size
            waiter = self._waiter
            if waiter is not None and self._bytes <= self._high_water // 2:
                self._waiter = None
                post(self._call_soon, wake, waiter)
        return item  # type: ignore[no-any-return]

    def leave(self) -> None:
        """The thread stops reading: later items are dropped, a waiting loop is woken."""
        with self._lock:
            self.left = True
            waiter, self._waiter = self._waiter, None
        if waiter is not None:
            post(self._call_soon, wake, waiter)
