"""The bytes one WebSocket connection has for its client, until they are written.

A :class:`WriteQueue` holds frames (and handshake answers) in order, each with the
number of the app's bytes it carries: once a frame is written, those bytes are
credited back to the app's send budget (back-pressure), and a frame that will never
be written is credited at once.
"""

from __future__ import annotations

import itertools
import socket
import ssl
from collections import deque
from collections.abc import Callable
from typing import Final

from ._websocket_messages import JOIN_LIMIT, data_frame_header

Buffer = bytes | bytearray | memoryview

WOULD_BLOCK = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)
"""What a non-blocking socket, or a TLS one, raises when it cannot go on now."""
_GATHER: Final = 64
"""Buffers written by one sendmsg()."""


class WriteQueue:
    """Frames waiting for the socket, each with the app's bytes it carries."""

    __slots__ = ("_credit", "buffers", "size")

    def __init__(self, credit: Callable[[int], None]) -> None:
        self.buffers: deque[tuple[Buffer, int]] = deque()
        self.size = 0
        """Bytes queued."""
        self._credit = credit

    def __bool__(self) -> bool:
        return bool(self.buffers)

    def add(self, data: Buffer, carried: int = 0) -> None:
        """Queue ``data``, which carries ``carried`` bytes of the app's."""
        if data:
            self.buffers.append((data, carried))
            self.size += len(data)
        else:
            self.drop(carried)

    def drop(self, carried: int) -> None:
        """The app's ``carried`` bytes will never be written: credit them now."""
        if carried:
            self._credit(carried)

    def add_message(self, payload: bytes, text: bool) -> None:
        """One whole message, framed without copying a large payload.

        A server's unfragmented data frame is a 2 to 10 byte header (RFC 6455 5.2:
        FIN, the opcode, no mask, the length) and the payload as it is; wsproto keeps
        no state for it (its ``send`` builds the same bytes, copying the payload three
        times). A large payload stays a buffer of its own, gathered with its header
        into one ``sendmsg()`` by :meth:`send_to`.
        """
        length = len(payload)
        header = data_frame_header(text, length, masked=False)
        if length <= JOIN_LIMIT:
            self.add(header + payload, length)
        else:
            self.add(header)
            self.add(payload, length)

    def send_to(self, sock: socket.socket) -> None:
        """Write what is queued, as far as the non-blocking ``sock`` takes it.

        :raises OSError: the connection is reset or broken.
        """
        buffers = self.buffers
        gather = not isinstance(sock, ssl.SSLSocket)  # TLS sockets have no sendmsg()
        while buffers:
            try:
                if gather and len(buffers) > 1:
                    written = sock.sendmsg([data for data, _ in itertools.islice(buffers, _GATHER)])
                else:
                    written = sock.send(buffers[0][0])
            except WOULD_BLOCK:
                return
            if not self.written(written):
                return  # the socket is full

    def written(self, count: int) -> bool:
        """``count`` bytes went out; False when the socket took only part of a buffer."""
        buffers = self.buffers
        self.size -= count
        while count:
            data, carried = buffers[0]
            if count < len(data):
                buffers[0] = (memoryview(data)[count:], carried)
                return False
            count -= len(data)
            buffers.popleft()
            if carried:
                self._credit(carried)
        return True
