"""The hand-over point between one WebSocket's app task and its relay thread.

The app's task (on the adapter's event loop) puts commands in; the relay (the WSGI
server's thread, which owns the socket) takes them out. Both byte counts that make
the back-pressure live here, under one lock, with the flags that say when the
other party must be woken:

* ``submit`` counts the bytes of each outgoing message until the relay has written
  them (``sent``); above ``high_water`` the app is told to wait, and the relay
  wakes it once the count is back at half the mark.
* ``delivered`` counts the bytes of incoming messages handed to the app until it
  has received them (``consumed``); above ``high_water`` the relay stops reading
  the socket, and the app wakes it once the count is back at half the mark.

The relay sleeps in ``select()`` on the socket and on one end of a socket pair;
the app writes a byte to the other end only when the relay said it was going to
sleep (:meth:`Mailbox.prepare_sleep`), so a busy connection makes no wake-up calls.
"""

from __future__ import annotations

import collections
import socket
import threading

from ._websocket_a2w_phase import Command


class Mailbox:
    """Commands and byte counts shared by the app's task and the relay thread."""

    __slots__ = (
        "_asleep",
        "_drain_wanted",
        "_ended",
        "_high",
        "_in_pending",
        "_lock",
        "_low",
        "_out_pending",
        "_outbox",
        "_read_paused",
        "_wake_r",
        "_wake_w",
    )

    def __init__(self, high_water: int) -> None:
        self._lock = threading.Lock()
        self._outbox: collections.deque[tuple[Command, int]] = collections.deque()
        self._high = high_water
        self._low = high_water // 2
        self._out_pending = 0
        self._in_pending = 0
        self._drain_wanted = False
        self._read_paused = False
        self._asleep = False
        self._ended = False
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)

    # The app's task, on the event loop.

    def submit(self, command: Command, size: int) -> bool | None:
        """Queue ``command`` (holding ``size`` bytes for the client) for the relay.

        :returns: True when the app should wait for ``drained`` before sending more,
            False when it need not, None when the relay has ended (nobody takes it).
        """
        with self._lock:
            if self._ended:
                return None
            self._outbox.append((command, size))
            self._out_pending += size
            wait = self._out_pending > self._high
            if wait:
                self._drain_wanted = True
            wake = self._asleep
            self._asleep = False
        if wake:
            self._wake()
        return wait

    def consumed(self, size: int) -> None:
        """The app received an incoming message of ``size`` bytes."""
        with self._lock:
            self._in_pending -= size
            if not (self._read_paused and self._in_pending <= self._low):
                return
            self._read_paused = False
            wake = self._asleep
            self._asleep = False
        if wake:
            self._wake()

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except OSError:
            pass  # the pair is full (the relay has a wake-up pending) or closed

    # The relay, in the WSGI thread.

    def has_commands(self) -> bool:
        """Whether commands wait (a look without the lock: :meth:`prepare_sleep` is sure)."""
        return bool(self._outbox)

    def take(self) -> tuple[Command, int] | None:
        """The next command and its size, None when there is none."""
        outbox = self._outbox
        return outbox.popleft() if outbox else None

    def sent(self, size: int) -> bool:
        """``size`` bytes of queued messages are written; True: wake the waiting app."""
        with self._lock:
            self._out_pending -= size
            if self._drain_wanted and self._out_pending <= self._low:
                self._drain_wanted = False
                return True
        return False

    def delivered(self, size: int) -> None:
        """``size`` bytes of incoming messages are on their way to the app."""
        with self._lock:
            self._in_pending += size
            if self._in_pending > self._high:
                self._read_paused = True

    def prepare_sleep(self, can_take: bool) -> bool | None:
        """Before ``select()``: None when commands wait (and ``can_take``), so do not
        sleep; else whether reading is paused, with any change from now on waking."""
        with self._lock:
            if can_take and self._outbox:
                return None
            self._asleep = True
            return self._read_paused

    def woke(self, by_pair: bool) -> None:
        """After ``select()``; ``by_pair``: the wake-up socket was readable."""
        with self._lock:
            self._asleep = False
        if by_pair:
            try:
                # One byte per sleep: one read drains it (a leftover only wakes once more).
                self._wake_r.recv(4096)
            except OSError:
                pass  # (BlockingIOError: nothing there after all)

    def wake_socket(self) -> socket.socket:
        """The end of the pair the relay selects on."""
        return self._wake_r

    def end(self) -> None:
        """The relay has ended: commands are refused from now on."""
        with self._lock:
            self._ended = True
            self._outbox.clear()
        self._wake_r.close()
        self._wake_w.close()
