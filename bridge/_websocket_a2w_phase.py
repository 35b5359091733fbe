"""What an ASGI app may send on a WebSocket connection, and when.

One enum, :class:`Phase`, and one pure function, :func:`check`, which checks each
message the app sends against the phase it is sent in (ASGI HTTP and WebSocket spec
2.4, the ``websocket.http.response`` extension, RFC 6455 section 7.4 for close
codes) and turns it into a command for the relay, which does the socket's I/O on
the adapter's loop. Nothing here does I/O.

Transitions (the app's messages, then the relay's reports)::

    CONNECTING --websocket.accept----------------------> OPEN
    CONNECTING --websocket.close-----------------------> CLOSED   (403 Forbidden)
    CONNECTING --websocket.http.response.start---------> DENYING
    DENYING    --websocket.http.response.body (more)---> DENYING
    DENYING    --websocket.http.response.body (last)---> CLOSED
    OPEN       --websocket.send------------------------> OPEN
    OPEN       --websocket.close-----------------------> CLOSING
    any        --the relay: the connection is over-----> CLOSED
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import Any, Final

from ._headers import decode_headers
from ._websocket_messages import LOCAL_ONLY_CLOSE_CODES
from .exceptions import ASGIProtocolError, ClientDisconnected
from .types import Message

Command = tuple[Any, ...]
"""What the relay is asked to do: a tag below, then its arguments."""

ACCEPT: Final = 1  # (ACCEPT, subprotocol or None, headers): write the 101 handshake
FORBID: Final = 2  # (FORBID,): answer the handshake 403
DENY_START: Final = 3  # (DENY_START, status, headers): the head of a denial response
DENY_BODY: Final = 4  # (DENY_BODY, body, more): denial body bytes
SEND: Final = 5  # (SEND, payload bytes, is text): one message
CLOSE: Final = 6  # (CLOSE, code, reason): the close handshake, from this side
DONE: Final = 7  # (DONE, exception or None, the disconnect code it received or None): it ended

MAX_REASON_BYTES: Final = 123
"""A close frame's payload is at most 125 bytes, two of them the code (RFC 6455 5.5)."""


class Phase(enum.Enum):
    """Where one connection stands, as the app's task sees it."""

    CONNECTING = "connecting"
    """``websocket.connect`` is delivered; the app has not answered it yet."""
    DENYING = "denying"
    """The app started a denial response; its body follows."""
    OPEN = "open"
    """The app accepted: messages flow both ways."""
    CLOSING = "closing"
    """The app sent ``websocket.close``; the client's answer is pending."""
    CLOSED = "closed"
    """The connection is over: denied, closed both ways, or the client is gone."""


def sendable_close_code(code: object) -> bool:
    """Whether an endpoint may put ``code`` in a close frame (RFC 6455 7.4, IANA registry).

    1004 is reserved; 1005, 1006 and 1015 stand for what was not sent; codes below
    1000 and from 1016 to 2999 are unassigned; 3000 to 4999 belong to applications.
    """
    return type(code) is int and (
        1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999
    )


def check(
    phase: Phase, message: Message, subprotocols: Sequence[str]
) -> tuple[Phase, Command, int]:
    """The phase after the app sends ``message``, the relay's command, and its size.

    The size is the number of bytes the command holds for the client, counted
    against the bridge's buffer for back-pressure. ``subprotocols`` are those the
    client offered.

    :raises ClientDisconnected: when the connection is over (``CLOSED``): ASGI 2.4's
        ``OSError`` for a send on a closed connection.
    :raises ASGIProtocolError: when the message is malformed or not allowed in ``phase``.
    """
    if type(message) is not dict and not isinstance(message, Mapping):
        raise ASGIProtocolError(
            f"Expected an ASGI message (a dict), but got {type(message).__name__}."
        )
    kind = message.get("type")
    if phase is Phase.OPEN:
        if kind == "websocket.send":
            payload, text = _payload(message)
            return Phase.OPEN, (SEND, payload, text), len(payload)
        if kind == "websocket.close":
            code, reason = _close(message)
            return Phase.CLOSING, (CLOSE, code, reason), 0
        raise _unexpected(kind, "'websocket.send' or 'websocket.close'")
    if phase is Phase.CONNECTING:
        if kind == "websocket.accept":
            return Phase.OPEN, _accept(message, subprotocols), 0
        if kind == "websocket.close":
            _close(message)  # checked, though a 403 carries neither code nor reason
            return Phase.CLOSED, (FORBID,), 0
        if kind == "websocket.http.response.start":
            status = message.get("status")
            if type(status) is not int or not 200 <= status <= 599:
                raise ASGIProtocolError(
                    f"Expected a denial response status from 200 to 599, but got {status!r}."
                )
            headers = _headers(message)
            return Phase.DENYING, (DENY_START, status, headers), 0
        raise _unexpected(
            kind, "'websocket.accept', 'websocket.close' or 'websocket.http.response.start'"
        )
    if phase is Phase.DENYING:
        if kind == "websocket.http.response.body":
            body = _bytes(message.get("body", b""), "body")
            more = bool(message.get("more_body", False))
            return (Phase.DENYING if more else Phase.CLOSED), (DENY_BODY, body, more), len(body)
        raise _unexpected(kind, "'websocket.http.response.body'")
    if phase is Phase.CLOSING:
        raise ASGIProtocolError(f"Got ASGI message {kind!r} after 'websocket.close'.")
    raise ClientDisconnected(f"The WebSocket connection is closed; cannot send {kind!r}.")


def _unexpected(kind: object, expected: str) -> ASGIProtocolError:
    return ASGIProtocolError(f"Expected ASGI message {expected}, but got {kind!r}.")


def _payload(message: Message) -> tuple[bytes, bool]:
    """The message's payload (text in UTF-8), and whether it is text."""
    text = message.get("text")
    data = message.get("bytes")
    if (text is None) == (data is None):
        raise ASGIProtocolError(
            "Expected exactly one of 'text' and 'bytes' to be set in 'websocket.send'."
        )
    if data is not None:
        return _bytes(data, "bytes"), False
    if type(text) is not str:
        raise ASGIProtocolError(f"Expected 'text' to be a str, but got {type(text).__name__}.")
    try:
        return text.encode("utf-8"), True
    except UnicodeEncodeError as exc:
        raise ASGIProtocolError(f"Expected 'text' that UTF-8 can encode: {exc}") from None


def _bytes(value: object, key: str) -> bytes:
    if type(value) is bytes:
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise ASGIProtocolError(f"Expected {key!r} to be bytes, but got {type(value).__name__}.")


def _close(message: Message) -> tuple[int, str]:
    """The close code and reason for the frame, as wsproto (uvicorn, hypercorn) sends them.

    A code that only stands for what was not sent (1005, 1006, 1015) goes out as 1000,
    and a reason over the frame's room is cut at a character boundary.
    """
    code = message.get("code")
    if code is None or code in LOCAL_ONLY_CLOSE_CODES:
        code = 1000
    if not sendable_close_code(code):
        raise ASGIProtocolError(
            f"Expected a close code an endpoint may send (1000-1003, 1007-1014, "
            f"3000-4999), but got {code!r}."
        )
    reason = message.get("reason") or ""
    if type(reason) is not str:
        raise ASGIProtocolError(f"Expected 'reason' to be a str, but got {type(reason).__name__}.")
    try:
        encoded = reason.encode("utf-8")
    except UnicodeEncodeError:
        raise ASGIProtocolError(f"Expected a close reason in UTF-8, but got {reason!r}.") from None
    if len(encoded) > MAX_REASON_BYTES:
        reason = encoded[:MAX_REASON_BYTES].decode("utf-8", errors="ignore")
    return code, reason


def _accept(message: Message, subprotocols: Sequence[str]) -> Command:
    subprotocol = message.get("subprotocol")
    if subprotocol is not None and subprotocol not in subprotocols:
        raise ASGIProtocolError(
            f"Expected the accepted subprotocol to be one the client offered "
            f"({list(subprotocols)!r}), but got {subprotocol!r}."
        )
    headers = _headers(message)
    for name, _ in headers:
        if name == b"sec-websocket-protocol":
            raise ASGIProtocolError(
                "'websocket.accept' headers must not include sec-websocket-protocol; "
                "use the 'subprotocol' key."
            )
    return (ACCEPT, subprotocol, headers)


def _headers(message: Message) -> list[tuple[bytes, bytes]]:
    """The message's headers, validated (no CR, LF or NUL, token names), as bytes."""
    decoded, _ = decode_headers(message.get("headers", ()))
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in decoded]
