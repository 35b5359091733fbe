"""What both WebSocket relays do alike with frames and messages, whichever side is ASGI.

``ASGIToWSGI``'s relay joins the client's fragments into ``websocket.receive``;
``WSGIToASGI``'s joins the WSGI app's into ``websocket.send``. Either way a close code
that only stands for what was not sent goes on as a normal closure, and a whole message
is written as one frame behind the same header (:func:`data_frame_header`), masked or
not by the side that writes it, and a socket is shut down the same way (:func:`shut`).
"""

from __future__ import annotations

import socket
import struct
from typing import Any, Final

from wsproto.events import BytesMessage, TextMessage

from .types import Message

LOCAL_ONLY_CLOSE_CODES: Final = frozenset({1005, 1006, 1015})
"""Close codes that stand for what was not sent (RFC 6455 7.4.1): never in a frame, nor
in an ASGI ``websocket.close``; both relays send 1000 for them, as wsproto does."""


def data_frame_header(text: bool, length: int, masked: bool) -> bytes:
    """The 2 to 10 bytes before the payload of a whole, unfragmented data frame
    (RFC 6455 5.2): FIN and the opcode, the mask bit, the payload's length. A client's
    frame (``masked``) has its 4-byte key after them."""
    first = 0x81 if text else 0x82  # FIN, text or binary
    mask_bit = 0x80 if masked else 0
    if length < 126:
        return bytes((first, mask_bit | length))
    if length < 65536:
        return struct.pack("!BBH", first, mask_bit | 126, length)
    return struct.pack("!BBQ", first, mask_bit | 127, length)


JOIN_LIMIT: Final = 16384
"""A frame's payload up to this size is copied behind its header, to be written as one
buffer; a larger one stays a buffer of its own, written after the header in the same
system call (``sendmsg``, or the transport's ``writelines``). Joining costs a copy of
the payload, a second buffer a little per call: on a socket pair, and on uvloop's
transport, they cost the same between 8 and 16 KiB. 16 KiB is also a TLS record's
largest payload, so a joined frame goes out in one record."""


TOO_LARGE: Final[tuple[Message, int]] = ({"type": "websocket.too_large"}, -1)
"""What :meth:`Joiner.add` returns for a message over the size limit (compared by identity)."""


class Joiner:
    """Joins a peer's fragments into whole ASGI messages of type ``kind``, up to a size
    limit (bytes, or characters for text)."""

    __slots__ = ("_kind", "_limit", "_parts", "_size")

    def __init__(self, kind: str, limit: int) -> None:
        self._kind = kind
        self._limit = limit
        self._parts: list[Any] = []
        self._size = 0

    def add(self, event: TextMessage | BytesMessage) -> tuple[Message, int] | None:
        """The whole message and its size once ``event`` ends one; None before it ends;
        :data:`TOO_LARGE` when it has grown past the limit."""
        data = bytes(event.data) if isinstance(event.data, bytearray) else event.data
        parts = self._parts
        parts.append(data)
        self._size += len(data)
        if self._size > self._limit:
            return TOO_LARGE
        if not event.message_finished:
            return None
        size = self._size
        self._parts = []
        self._size = 0
        if isinstance(data, str):
            return {"type": self._kind, "text": "".join(parts)}, size
        whole = data if len(parts) == 1 else b"".join(parts)
        return {"type": self._kind, "bytes": whole}, size


def shut(sock: socket.socket, how: int = socket.SHUT_RDWR) -> None:
    """``shutdown()`` that ignores a socket already shut or closed."""
    try:
        sock.shutdown(how)
    except OSError:
        pass
