"""WebSocket masking in C, when the ``websockets`` library is installed.

Every frame a client sends is masked: its payload is XORed with a 4-byte key (RFC 6455
section 5.3), and the server XORs it back. wsproto does that in Python, over every
fourth byte with a byte table: about 1.1 to 1.8 ms per MiB, as much as an ASGI server
spends on the whole of a 1 MiB echo with C unmasking. The ``websockets`` library
(installed with ``uvicorn[standard]``, and by ``pip install 'bridge[speedups]'``) ships
that XOR in C (about 0.05 ms per MiB). With it:

* :func:`unmask_in_c` gives one wsproto server connection (``ASGIToWSGI``'s, reading a
  client) a frame decoder whose masker calls it; wsproto does the rest of the parsing
  as before. Nothing changes for other connections or for wsproto itself.
* :func:`mask` masks the frames ``WSGIToASGI`` writes to a WSGI app as its client.

Without it both fall back to wsproto's masker.

The decoder is wsproto's own, subclassed: wsproto has no public hook for its masker,
so this looks for the attributes it replaces (``Connection._proto._frame_decoder``, the
masker's key) and leaves a connection as it is when they are not there, so a wsproto
that changes them loses the speed and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from wsproto.connection import Connection
from wsproto.frame_protocol import FrameDecoder, XorMaskerSimple

_apply_mask: Callable[[bytes | bytearray, bytes], bytes] | None
try:
    from websockets.speedups import apply_mask as _apply_mask
except ImportError:  # no websockets, or one built without its C extension
    _apply_mask = None

AVAILABLE: Final = _apply_mask is not None
"""Whether client frames are unmasked in C (the ``websockets`` library is installed)."""


def mask(data: bytes, key: bytes) -> bytes:
    """``data`` XORed with the 4-byte ``key``, repeated (RFC 6455 section 5.3)."""
    if _apply_mask is not None:
        return _apply_mask(data, key)
    return bytes(XorMaskerSimple(key).process(data))  # type: ignore[arg-type]


class _CMasker:
    """wsproto's masker interface, in C: the key turns with each chunk of a payload."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        self._key = key

    def process(self, data: bytes | bytearray) -> bytes:
        key = self._key
        unmasked = _apply_mask(data, key)  # type: ignore[misc]
        turn = len(data) % 4
        if turn:
            self._key = key[turn:] + key[:turn]
        return unmasked


class _Decoder(FrameDecoder):
    """wsproto's frame decoder, with the C masker for each masked frame."""

    def parse_header(self) -> bool:
        if not super().parse_header():
            return False
        masker = self.masker
        if type(masker) is XorMaskerSimple:
            key = getattr(masker, "_masking_key", None)
            if key is not None and len(key) == 4:
                # wsproto calls only process(); its annotation names its own classes.
                self.masker = _CMasker(bytes(key))  # type: ignore[assignment]
        return True


def unmask_in_c(conn: Connection) -> bool:
    """Give ``conn`` (a server-side connection, before any frame) the C masker.

    :returns: whether it did; False without ``websockets`` or with a wsproto whose
        internals differ, and the connection then unmasks in Python as before.
    """
    if not AVAILABLE:
        return False
    proto: Any = getattr(conn, "_proto", None)
    decoder = getattr(proto, "_frame_decoder", None)
    if type(decoder) is not FrameDecoder or decoder.buffer or decoder.header is not None:
        return False
    proto._frame_decoder = _Decoder(decoder.client, decoder.extensions)
    return True
