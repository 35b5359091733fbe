"""The bridge's end of a WebSocket's socket pair, driven by the event loop.

:func:`open_end` wraps the non-blocking socket in a :class:`LoopEnd`. On asyncio
(uvloop included) the loop's own transport reads and writes it: the socket stays
registered with the loop, which costs a few microseconds per message where a
registration per wait (``anyio.wait_readable``) costs about 25. Elsewhere (trio)
:class:`_WaitingEnd` reads and writes the socket itself, waiting with
``anyio.wait_readable`` and ``wait_writable``. Either way the loop never blocks,
and memory stays bounded: reading pauses while more than ``READ_HIGH_WATER`` bytes
wait for :meth:`LoopEnd.receive`, and :meth:`LoopEnd.write` waits while earlier
frames are still unsent.
"""

from __future__ import annotations

import asyncio
import collections
import socket
from typing import Protocol, cast

import anyio

from ._websocket_messages import shut
from ._websocket_w2a_wire import RECEIVE_SIZE

WRITE_HIGH_WATER = 65536
"""Bytes of earlier frames the asyncio transport may hold before a write waits."""
READ_HIGH_WATER = RECEIVE_SIZE
"""Bytes read from the app and not yet taken by the relay before reading pauses."""


class LoopEnd(Protocol):
    """The bridge's end of the socket pair."""

    async def receive(self) -> bytes:
        """The next bytes from the app; ``b""`` once its end is finished (or this one shut)."""
        ...

    async def write(self, *parts: bytes | bytearray) -> None:
        """Write a whole frame (its parts in order), after any earlier one; returns at
        once if the app's end is gone."""
        ...

    def shut(self) -> None:
        """End the connection both ways now: the app reads its end, its writes fail."""
        ...

    def close(self) -> None:
        """Release the socket (on the loop's thread)."""
        ...

    async def wait_closed(self) -> None:
        """Until the socket's descriptor is closed (uvloop closes its own a moment later)."""
        ...


async def open_end(sock: socket.socket, loop: asyncio.AbstractEventLoop | None) -> LoopEnd:
    """The bridge's end for ``sock`` on the running loop (``loop`` when it is asyncio's)."""
    if loop is None:
        return _WaitingEnd(sock)
    _, end = await loop.connect_accepted_socket(lambda: _TransportEnd(loop), sock)
    return end


class _TransportEnd(asyncio.Protocol):
    """The asyncio transport's protocol: reads one chunk at a time, writes flow-controlled."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._transport: asyncio.Transport
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0  # bytes in _chunks
        self._paused = False  # reading paused: _buffered is over READ_HIGH_WATER
        self._finished = False  # the app's end is done, or this one is shut
        self._reader: asyncio.Future[None] | None = None  # receive() waiting for data
        self._writable = asyncio.Event()  # clear while the transport is over high water
        self._writable.set()
        self._lost: asyncio.Future[None] = loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's are no subclass

        self._transport.set_write_buffer_limits(WRITE_HIGH_WATER)

    def data_received(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > READ_HIGH_WATER and not self._paused:
            # Until the relay has used some: back-pressure on the app. Reading stays on
            # below the mark, which spares the loop two system calls per message.
            self._paused = True
            self._transport.pause_reading()
        self._wake_reader()

    def eof_received(self) -> bool:
        self._finished = True
        self._wake_reader()
        return True  # the bridge may still answer a close frame; it closes the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._finished = True
        self._writable.set()
        self._wake_reader()
        if not self._lost.done():
            self._lost.set_result(None)

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    def _wake_reader(self) -> None:
        reader = self._reader
        if reader is not None and not reader.done():
            reader.set_result(None)

    async def receive(self) -> bytes:
        while not self._chunks:
            if self._finished:
                return b""
            self._reader = reader = self._loop.create_future()
            try:
                await reader
            finally:
                self._reader = None
        data = self._chunks.popleft()
        self._buffered -= len(data)
        if self._paused and not self._chunks:
            self._paused = False
            self._transport.resume_reading()
        return data

    async def write(self, *parts: bytes | bytearray) -> None:
        while not self._writable.is_set():
            await self._writable.wait()
        if not self._finished and not self._transport.is_closing():
            if len(parts) == 1:
                self._transport.write(parts[0])
            else:
                self._transport.writelines(parts)

    def shut(self) -> None:
        self._finished = True
        self._transport.abort()
        self._writable.set()
        self._wake_reader()

    def close(self) -> None:
        self.shut()

    async def wait_closed(self) -> None:
        await asyncio.shield(self._lost)


class _WaitingEnd:
    """The socket itself, waited on with anyio (trio, or any loop without transports)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._writing: anyio.Event | None = None  # set while a frame waits for room

    async def receive(self) -> bytes:
        while True:
            try:
                return self._sock.recv(RECEIVE_SIZE)
            except BlockingIOError:
                await anyio.wait_readable(self._sock)
            except OSError:
                return b""  # reset, or shut down on this side

    async def write(self, *parts: bytes | bytearray) -> None:
        while self._writing is not None:  # frames from two tasks never interleave
            await self._writing.wait()
        self._writing = writing = anyio.Event()
        try:
            for part in parts:
                view = memoryview(part)
                while view:
                    try:
                        sent = self._sock.send(view)
                    except BlockingIOError:
                        await anyio.wait_writable(self._sock)
                        continue
                    except OSError:
                        return  # the app's end is gone: the reader sees its end
                    view = view[sent:]
        finally:
            self._writing = None
            writing.set()

    def shut(self) -> None:
        shut(self._sock)

    def close(self) -> None:
        self._sock.close()

    async def wait_closed(self) -> None:
        pass  # closed at once
