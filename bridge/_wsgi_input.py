"""``wsgi.input``: a file-like request body that pulls ASGI messages on demand."""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterator

from .exceptions import BodyTooLarge

Fetch = Callable[[], tuple[bytes, bool]]
"""Returns the next body chunk and whether more follow; raises ClientDisconnected."""


class WSGIInput:
    """The request body as PEP 3333's ``wsgi.input``.

    Nothing is fetched before the first read, and each read fetches only what it
    needs beyond what is buffered (the adapter bounds what it reads ahead), so an
    app can start on the first chunk while the client still sends the rest, and
    memory stays bounded. Reading past the end returns
    ``b""``. When the client disconnects before the body is complete, reads raise
    :class:`bridge.ClientDisconnected` (an ``OSError``) instead of returning a
    truncated body.
    """

    __slots__ = ("_buffered", "_chunks", "_fetch", "_limit", "_more", "_offset", "_received")

    def __init__(
        self, fetch: Fetch, first: bytes = b"", more: bool = True, limit: int | None = None
    ) -> None:
        self._fetch = fetch
        # The chunks received and not yet read, as they came: a read copies each byte
        # once at most (a read of exactly one whole chunk returns it as is).
        self._chunks: collections.deque[bytes] = collections.deque()
        self._offset = 0  # how much of the first chunk was read already
        self._buffered = 0
        if first:
            self._chunks.append(first)
            self._buffered = len(first)
        self._more = more
        self._limit = limit
        self._received = len(first)
        if limit is not None and self._received > limit:
            raise BodyTooLarge(limit)

    def _pull(self) -> bool:
        """Append the next chunk to the buffer; False at the end of the body."""
        if not self._more:
            if self._limit is not None and self._received > self._limit:
                raise BodyTooLarge(self._limit)  # stays refused: never a silent short body
            return False
        chunk, self._more = self._fetch()
        if type(chunk) is not bytes:
            if not isinstance(chunk, (bytearray, memoryview)):
                raise TypeError(
                    f"Expected the ASGI server's request body as bytes, not {type(chunk).__name__}."
                )
            chunk = bytes(chunk)
        if chunk:
            self._received += len(chunk)
            if self._limit is not None and self._received > self._limit:
                self._more = False
                raise BodyTooLarge(self._limit)
            self._chunks.append(chunk)
            self._buffered += len(chunk)
        return True

    def _take(self, size: int) -> bytes:
        """Remove and return the first ``size`` buffered bytes (at most what there is)."""
        size = min(size, self._buffered)
        if not size:
            return b""
        chunks = self._chunks
        self._buffered -= size
        first = chunks[0]
        offset = self._offset
        if size < len(first) - offset:
            self._offset = offset + size
            return first[offset : offset + size]
        parts: list[bytes] = []
        while size:
            first = chunks[0]
            available = len(first) - offset
            if size < available:
                parts.append(first[offset : offset + size])
                self._offset = offset + size
                break
            chunks.popleft()
            parts.append(first[offset:] if offset else first)
            size -= available
            offset = 0
            self._offset = 0
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _find_newline(self, start: int) -> int:
        """The position of the first buffered ``b"\\n"`` at or after ``start``, or -1."""
        base = 0
        offset = self._offset
        for chunk in self._chunks:
            length = len(chunk) - offset
            if start < base + length:
                found = chunk.find(b"\n", offset + max(0, start - base))
                if found >= 0:
                    return base + found - offset
            base += length
            offset = 0
        return -1

    def read(self, size: int | None = -1) -> bytes:
        """Read ``size`` bytes, fewer only at the end of the body; all when negative."""
        if size is None or size < 0:
            while self._pull():
                pass
            return self._take(self._buffered)
        while self._buffered < size and self._pull():
            pass
        return self._take(size)

    def readline(self, size: int | None = -1) -> bytes:
        """Read up to and including the next ``b"\\n"``, or ``size`` bytes at most."""
        start = 0
        while True:
            end = self._find_newline(start)
            if end >= 0:
                end += 1
                break
            if size is not None and 0 <= size <= self._buffered:
                end = size
                break
            start = self._buffered
            if not self._pull():
                end = self._buffered
                break
        if size is not None and 0 <= size < end:
            end = size
        return self._take(end)

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
