"""A peer's WebSocket frames, read off its bytes: whole data frames here, the rest by wsproto.

Both relays read frames: ``ASGIToWSGI``'s the client's (masked, RFC 6455 5.3),
``WSGIToASGI``'s the WSGI app's (unmasked: the app is the server there). Almost
everything either peer sends on an open WebSocket is whole messages, each in one
unfragmented text or binary frame. :class:`WholeFrames` reads those itself and
hands every other frame to the relay's wsproto connection, byte for byte as it
arrives: control frames (ping, pong, close), fragmented messages, and anything
malformed, which wsproto turns into the same close event as before.

Why not all of them through wsproto: for each frame wsproto copies the payload
three or four times (into its buffer, out of it, into an event, and a ``bytearray``
the relay turns back into ``bytes``) and runs a generator pipeline, about 8 µs for a
short message and over 1 ms for 1 MiB; reading a whole data frame here costs one
copy (none for a frame that is a read by itself, one more to unmask) and about 2 µs.

Why it is exact: a whole data frame outside a fragmented message leaves wsproto's
connection as it found it (no message in progress, nothing buffered, the same
state), so wsproto, seeing only the other frames, is where it would be had it seen
them all. A frame is read here only when it is such a frame and is well formed the
way wsproto checks: FIN set, no RSV bit (neither relay negotiates an extension),
opcode text or binary, masked exactly when the peer is a client (5.1), its length in
the fewest bytes (5.2), at most the relay's message limit, and, for text, valid
UTF-8. Any other frame goes to wsproto, and so does everything after wsproto reports
a close, the peer's or a failure. Memory stays bounded as before: a frame read here
is at most the message limit, and wsproto's frames go through as they arrive.
"""

from __future__ import annotations

from collections.abc import Iterator

from wsproto.connection import Connection, ConnectionState
from wsproto.events import BytesMessage, CloseConnection, Event, TextMessage

from ._websocket_masking import mask

_DATA_OPCODES = (1, 2)  # text, binary
_CONTINUATION = 0


class WholeFrames:
    """Splits a peer's bytes into frames: whole data frames here, the rest to wsproto."""

    __slots__ = (
        "_chunks",
        "_conn",
        "_fragmented",
        "_head",
        "_length",
        "_limit",
        "_masked",
        "_offset",
        "_passing",
        "_size",
        "_text",
        "_through",
    )

    def __init__(self, conn: Connection, limit: int, *, masked: bool) -> None:
        self._conn = conn
        self._masked = masked  # the peer is a client: its frames are masked
        self._limit = limit  # the largest payload read here; larger ones go to wsproto
        self._chunks: list[bytes] = []  # bytes not yet parsed; the first from _offset
        self._offset = 0
        self._size = 0  # bytes in _chunks after _offset
        self._head = 0  # the header's length of the frame to read here; 0: none parsed
        self._length = 0  # its payload's
        self._text = False  # that frame is text
        self._through = 0  # bytes of the current frame still to hand to wsproto
        self._fragmented = False  # wsproto holds part of a fragmented message
        self._passing = False  # wsproto reported a close: everything goes to it

    def events(self, data: bytes) -> Iterator[Event]:
        """The events in ``data`` and the bytes before it, in the peer's order."""
        conn = self._conn
        if self._passing:
            if conn.state is not ConnectionState.CLOSED:
                conn.receive_data(data)
                yield from self._from_wsproto()
            return
        if not self._size and not self._fragmented:
            message = _one_short_frame(data, self._masked)
            if message is not None:
                yield message
                return
        self._chunks.append(data)
        self._size += len(data)
        while not self._passing:
            if self._through:
                taken = min(self._through, self._size)
                if not taken:
                    return
                self._through -= taken
                piece = self._take(taken)
                if conn.state is not ConnectionState.CLOSED:
                    conn.receive_data(piece)
                    yield from self._from_wsproto()
                continue
            if not self._head:
                if not self._parse_header():
                    return
                if self._through:
                    continue
            if self._size < self._head + self._length:
                return
            header = self._take(self._head)
            self._head = 0
            raw = self._take(self._length)
            payload = mask(raw, header[-4:]) if self._masked else raw
            if self._text:
                try:
                    text = payload.decode("utf-8")
                except UnicodeDecodeError:
                    # wsproto gives its own close event for the frame (1007).
                    conn.receive_data(header + raw)
                    yield from self._from_wsproto()
                else:
                    yield TextMessage(data=text)
            else:
                yield BytesMessage(data=payload)
        if self._size:  # from here on wsproto reads everything
            rest = self._take(self._size)
            if conn.state is not ConnectionState.CLOSED:
                conn.receive_data(rest)
                yield from self._from_wsproto()

    def _from_wsproto(self) -> Iterator[Event]:
        for event in self._conn.events():
            if isinstance(event, CloseConnection):
                self._passing = True
            yield event

    def _parse_header(self) -> bool:
        """Read the next frame's header: True when it is whole (the frame is then
        either one to read here, ``_head``, or one to hand on, ``_through``)."""
        if self._size < 2:
            return False
        first = self._chunks[0]
        offset = self._offset
        head = first[offset : offset + 14] if len(first) - offset >= 14 else self._peek(14)
        b0, b1 = head[0], head[1]
        length = b1 & 0x7F
        size = 2
        if length == 126:
            size = 4
        elif length == 127:
            size = 10
        if b1 & 0x80:
            size += 4
        if len(head) < size:
            return False
        minimal = True
        if length == 126:
            length = int.from_bytes(head[2:4], "big")
            minimal = length >= 126
        elif length == 127:
            length = int.from_bytes(head[2:10], "big")
            minimal = length >= 65536
        opcode = b0 & 0x0F
        if (
            b0 & 0xF0 == 0x80  # FIN, no RSV bit
            and opcode in _DATA_OPCODES
            and bool(b1 & 0x80) is self._masked
            and minimal
            and length <= self._limit
            and not self._fragmented
        ):
            self._head = size
            self._text = opcode == 1
            self._length = length
            return True
        if opcode in _DATA_OPCODES:
            self._fragmented = not b0 & 0x80
        elif opcode == _CONTINUATION and b0 & 0x80:
            self._fragmented = False
        self._through = size + length
        return True

    def _peek(self, count: int) -> bytes:
        """Up to ``count`` bytes from the front, not taken."""
        parts = []
        want = count
        offset = self._offset
        for chunk in self._chunks:
            part = chunk[offset : offset + want]
            parts.append(part)
            want -= len(part)
            offset = 0
            if not want:
                break
        return b"".join(parts)

    def _take(self, count: int) -> bytes:
        """The next ``count`` bytes (at most ``_size``), taken."""
        if not count:
            return b""
        chunks = self._chunks
        first = chunks[0]
        offset = self._offset
        self._size -= count
        end = offset + count
        if end <= len(first):
            if end == len(first):
                del chunks[0]
                self._offset = 0
                if not offset:
                    return first
            else:
                self._offset = end
            return first[offset:end]
        parts: list[bytes | memoryview] = [memoryview(first)[offset:]]
        want = end - len(first)
        del chunks[0]
        self._offset = 0
        while want:
            chunk = chunks[0]
            if len(chunk) <= want:
                parts.append(chunk)
                want -= len(chunk)
                del chunks[0]
            else:
                parts.append(memoryview(chunk)[:want])
                self._offset = want
                want = 0
        return b"".join(parts)


def _one_short_frame(data: bytes, masked: bool) -> Event | None:
    """The message when ``data`` is one whole frame of under 126 bytes that
    :class:`WholeFrames` reads itself (the common case, without its general path's
    bookkeeping); else None."""
    if len(data) < 2:
        return None
    b0, b1 = data[0], data[1]
    head = 6 if masked else 2
    length = len(data) - head  # under 126, the message limit does not matter
    if length > 125 or b1 != length | (0x80 if masked else 0):
        return None
    payload = mask(data[6:], data[2:6]) if masked else data[2:]
    if b0 == 0x82:
        return BytesMessage(data=payload)
    if b0 == 0x81:
        try:
            return TextMessage(data=payload.decode("utf-8"))
        except UnicodeDecodeError:
            return None  # the general path gives wsproto's close event
    return None
