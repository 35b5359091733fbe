"""The bytes on a handed-over WebSocket socket, as the client side of RFC 6455 sees them.

Shared by the WebSocket modules: the app's answer to the upgrade request read with
h11 (:class:`HandshakeReader`), the client's data frames (:func:`data_frame`), and
the head of a plain WSGI response written the way a WSGI server writes it
(:func:`response_head`). The I/O on the socket is :mod:`bridge._websocket_w2a_io`'s.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass

import h11

from ._websocket_masking import mask
from ._websocket_messages import JOIN_LIMIT, data_frame_header
from .exceptions import WSGIProtocolError

RECEIVE_SIZE = 262144
"""Bytes read from the socket at a time (as asyncio's transports read): the relay
holds at most this much unparsed."""

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3
# Headers of the handshake itself, or of HTTP/1.1 framing: the ASGI server writes its
# own, so they are not passed on with websocket.accept or a denial.
_HANDSHAKE_HEADERS = frozenset(
    {
        b"upgrade",
        b"connection",
        b"keep-alive",
        b"transfer-encoding",
        b"content-length",
        b"sec-websocket-accept",
        b"sec-websocket-protocol",
        b"sec-websocket-extensions",
    }
)
_FRAMING_HEADERS = frozenset({b"connection", b"keep-alive", b"transfer-encoding", b"upgrade"})


def accept_token(key: str) -> bytes:
    """``Sec-WebSocket-Accept`` for a ``Sec-WebSocket-Key`` (RFC 6455 section 4.2.2)."""
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + _GUID).digest())


@dataclass(frozen=True)
class Accepted:
    """The app switched protocols: what ``websocket.accept`` carries, and the bytes after."""

    subprotocol: str | None
    headers: list[tuple[bytes, bytes]]
    trailing: bytes


@dataclass(frozen=True)
class Denied:
    """The app answered with a plain HTTP response: the upgrade is denied."""

    status: int
    headers: list[tuple[bytes, bytes]]


class HandshakeReader:
    """Reads the app's answer to the upgrade request, as the app's HTTP/1.1 client.

    h11 bounds the head (16 KiB) and frames a denial's body (Content-Length,
    chunked, or up to the end of the connection).
    """

    __slots__ = ("_conn", "_key", "_offered")

    def __init__(self, key: str, offered: Sequence[str]) -> None:
        self._key = key
        self._offered = offered
        self._conn = h11.Connection(h11.CLIENT)
        # The request the app answers, only to put h11 in the state that expects it.
        self._conn.send(
            h11.Request(
                method="GET",
                target="/",
                headers=[
                    ("Host", "localhost"),
                    ("Upgrade", "websocket"),
                    ("Connection", "Upgrade"),
                ],
            )
        )
        self._conn.send(h11.EndOfMessage())

    def feed(self, data: bytes) -> Accepted | Denied | None:
        """Parse more of the head (``b""`` at the end of the stream); None until it is whole.

        :raises WSGIProtocolError: when the bytes are no HTTP/1.1 response, the
            stream ends inside the head, or the 101 is not a valid handshake response.
        """
        try:
            self._conn.receive_data(data)
            while True:
                event = self._conn.next_event()
                if event is h11.NEED_DATA:
                    return None
                if isinstance(event, h11.InformationalResponse):
                    if event.status_code == 101:
                        return self._accepted(event)
                    continue  # 100 or 103: the final answer follows
                if isinstance(event, h11.Response):
                    headers = [(n, v) for n, v in event.headers if n not in _FRAMING_HEADERS]
                    return Denied(event.status_code, headers)
                raise WSGIProtocolError(f"Expected an HTTP response head, but got {event!r}.")
        except h11.RemoteProtocolError as exc:
            raise WSGIProtocolError(
                f"The app's answer to the WebSocket upgrade is not valid HTTP/1.1: {exc}"
            ) from None

    def body(self, data: bytes | None) -> tuple[list[bytes], bool]:
        """A denial's body: the chunks parsed from ``data`` and whether the body ended.

        ``None`` parses only what came with the head; ``b""`` is the end of the stream.

        :raises WSGIProtocolError: when the body is cut short of its declared length.
        """
        chunks: list[bytes] = []
        try:
            if data is not None:
                self._conn.receive_data(data)
            while True:
                event = self._conn.next_event()
                if isinstance(event, h11.Data):
                    chunks.append(bytes(event.data))
                elif event is h11.NEED_DATA:
                    return chunks, False
                else:
                    return chunks, True  # EndOfMessage, or the connection closed after it
        except h11.RemoteProtocolError as exc:
            raise WSGIProtocolError(f"The app's denial response is cut short: {exc}") from None

    def _accepted(self, event: h11.InformationalResponse) -> Accepted:
        values: dict[bytes, list[bytes]] = {}
        extra: list[tuple[bytes, bytes]] = []
        for name, value in event.headers:
            values.setdefault(name, []).append(value)
            if name not in _HANDSHAKE_HEADERS:
                extra.append((name, value))
        connection = b",".join(values.get(b"connection", ())).lower()
        if values.get(b"upgrade", [b""])[0].lower() != b"websocket" or b"upgrade" not in {
            token.strip() for token in connection.split(b",")
        }:
            raise WSGIProtocolError("The app's 101 response does not upgrade to websocket.")
        if values.get(b"sec-websocket-accept") != [accept_token(self._key)]:
            raise WSGIProtocolError(
                "The app's 101 response has a wrong Sec-WebSocket-Accept for the request's key."
            )
        if b"sec-websocket-extensions" in values:
            raise WSGIProtocolError(
                "The app's 101 response negotiates extensions the client was not offered."
            )
        subprotocol = None
        chosen = values.get(b"sec-websocket-protocol")
        if chosen is not None:
            subprotocol = chosen[0].decode("latin-1").strip()
            if len(chosen) > 1 or subprotocol not in self._offered:
                raise WSGIProtocolError(
                    f"The app chose subprotocol {subprotocol!r}, which the client did not offer "
                    f"({list(self._offered)!r})."
                )
        trailing, _ = self._conn.trailing_data
        return Accepted(subprotocol, extra, bytes(trailing))


def data_frame(message: str | bytes) -> tuple[bytes, ...]:
    """A client's frame for a whole text or binary message (RFC 6455 5.2), masked.

    The same bytes as wsproto's ``Connection.send`` of a finished message, with a
    fresh key from ``os.urandom``, masked in C where it can be
    (:mod:`bridge._websocket_masking`), and one copy of the payload instead of four:
    a payload over ``JOIN_LIMIT`` stays a part of its own after the header and key,
    written with them in one system call. Data frames change no state of the
    connection, so control frames still go through it.
    """
    text = isinstance(message, str)
    payload = message.encode("utf-8") if isinstance(message, str) else message
    head = data_frame_header(text, len(payload), masked=True)
    key = masking_key()
    if len(payload) <= JOIN_LIMIT:
        return (head + key + mask(payload, key),)
    return head + key, mask(payload, key)


_keys: list[bytes] = []
if hasattr(os, "register_at_fork"):  # a forked worker draws keys of its own
    os.register_at_fork(after_in_child=_keys.clear)


def masking_key() -> bytes:
    """A fresh 4-byte masking key from ``os.urandom`` (RFC 6455 5.3: unpredictable).

    Drawn from a pool refilled 1,024 keys at a time: a system call per message saved.
    ``list.pop`` is atomic, so loops in several threads never share a key.
    """
    try:
        return _keys.pop()
    except IndexError:
        block = os.urandom(4096)
        _keys.extend([block[start : start + 4] for start in range(4, 4096, 4)])
        return block[:4]


def response_head(status: int, reason: str, headers: list[tuple[bytes, bytes]]) -> bytes:
    """An HTTP/1.1 response head as a WSGI server writes it, for a close-delimited body."""
    lines = [b"HTTP/1.1 %d %s\r\n" % (status, reason.encode("latin-1"))]
    lines.extend(name + b": " + value + b"\r\n" for name, value in headers)
    if status >= 200:
        lines.append(b"connection: close\r\n")
    lines.append(b"\r\n")
    return b"".join(lines)
