"""``wsgi.input``: a file-like request body that pulls ASGI messages on demand."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from .exceptions import BadRequest

Fetch = Callable[[], tuple[bytes, bool]]
"""Returns the next body chunk and whether more follow; raises ClientDisconnected."""


class WSGIInput:
    """The request body as PEP 3333's ``wsgi.input``.

    Each read pulls only as many ASGI ``http.request`` messages as it needs, so an
    app can start on the first chunk while the client still sends the rest, and
    memory stays bounded by the reads the app makes. Reading past the end returns
    ``b""``. When the client disconnects before the body is complete, reads raise
    :class:`bridge.ClientDisconnected` (an ``OSError``) instead of returning a
    truncated body.
    """

    __slots__ = ("_buffer", "_fetch", "_limit", "_more", "_received")

    def __init__(
        self, fetch: Fetch, first: bytes = b"", more: bool = True, limit: int | None = None
    ) -> None:
        self._fetch = fetch
        self._buffer = bytearray(first)
        self._more = more
        self._limit = limit
        self._received = len(first)
        if limit is not None and self._received > limit:
            raise _too_large(limit)

    def _pull(self) -> bool:
        """Append the next chunk to the buffer; False at the end of the body."""
        if not self._more:
            if self._limit is not None and self._received > self._limit:
                raise _too_large(self._limit)  # stays refused: never a silent short body
            return False
        chunk, self._more = self._fetch()
        if chunk:
            self._received += len(chunk)
            if self._limit is not None and self._received > self._limit:
                self._more = False
                raise _too_large(self._limit)
            self._buffer += chunk
        return True

    def read(self, size: int | None = -1) -> bytes:
        """Read ``size`` bytes, fewer only at the end of the body; all when negative."""
        buffer = self._buffer
        if size is None or size < 0:
            while self._pull():
                pass
            data = bytes(buffer)
            buffer.clear()
            return data
        while len(buffer) < size and self._pull():
            pass
        data = bytes(buffer[:size])
        del buffer[:size]
        return data

    def readline(self, size: int | None = -1) -> bytes:
        """Read up to and including the next ``b"\\n"``, or ``size`` bytes at most."""
        buffer = self._buffer
        start = 0
        while True:
            end = buffer.find(b"\n", start)
            if end >= 0:
                end += 1
                break
            if size is not None and 0 <= size <= len(buffer):
                end = size
                break
            start = len(buffer)
            if not self._pull():
                end = len(buffer)
                break
        if size is not None and 0 <= size < end:
            end = size
        data = bytes(buffer[:end])
        del buffer[:end]
        return data

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        """Read lines until the end, or until about ``hint`` bytes have been read."""
        lines: list[bytes] = []
        total = 0
        while line := self.readline():
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                break
        return lines

    def readinto(self, target: bytearray | memoryview) -> int:
        """Read into ``target``; returns the number of bytes read (0 at the end)."""
        data = self.read(len(target))
        target[: len(data)] = data
        return len(data)

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        """Nothing to release: the server owns the connection."""


def _too_large(limit: int) -> BadRequest:
    return BadRequest(f"The request body is larger than the limit of {limit} bytes.", 413)
