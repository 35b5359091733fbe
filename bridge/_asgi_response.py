"""An ASGI app's response, message by message: its phases and the check of each message.

Pure, like h11's ``_state.py``: :func:`receive_message` takes the phase a response
is in and the next message the app sent, and returns the phase it moves to and what
the message means, or raises. ``ASGIToWSGI``'s loop side
(:mod:`bridge._asgi_to_wsgi_task`) does the I/O.

The phases, and the messages that move between them::

    AWAITING_START --start--> STARTED --body(more)--> STREAMING --body--> COMPLETE
          |                      |  \\                                         ^
          |                      |   `--body / pathsend ----------------------'
          `--- the client goes (any phase before COMPLETE) ---> DISCONNECTED

Hints the bridge cannot carry (``http.response.push``, ``http.response.early_hint``)
are accepted in any phase and mean nothing. Other extensions are not advertised, so
an app that sends them broke the spec.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Final, NamedTuple

from ._content_length import DeclaredLength
from ._headers import _REASONS, decode_headers, status_line
from .exceptions import ASGIProtocolError, ClientDisconnected
from .types import Message

HINTS = frozenset({"http.response.push", "http.response.early_hint"})
"""Messages that only hint at what comes next: dropped where they cannot be carried."""


class Phase(enum.Enum):
    """How far the app's response has come."""

    AWAITING_START = "awaiting 'http.response.start'"
    STARTED = "started"
    STREAMING = "streaming"
    COMPLETE = "complete"
    DISCONNECTED = "disconnected"
    """The WSGI server closed the response before it was complete: the client left."""


# The members as module constants: read off the enum class, each access is a lookup
# through the enum's metaclass (several times a global's cost), on the request path.
AWAITING_START: Final = Phase.AWAITING_START
STARTED: Final = Phase.STARTED
STREAMING: Final = Phase.STREAMING
COMPLETE: Final = Phase.COMPLETE
DISCONNECTED: Final = Phase.DISCONNECTED


class Head(NamedTuple):
    """``http.response.start``: the status line and headers, as PEP 3333 wants them."""

    status: str
    headers: list[tuple[str, str]]
    code: int
    length: int | None
    """The declared Content-Length, None when there is none."""


class Body(NamedTuple):
    """``http.response.body``."""

    data: bytes
    more: bool


class PathSend(NamedTuple):
    """``http.response.pathsend``: the path as the app gave it."""

    path: str


Meaning = Head | Body | PathSend | None
"""What a message means for the response; None for a hint that is dropped."""


def receive_message(phase: Phase, message: Message) -> tuple[Phase, Meaning]:
    """Check the app's next ``message`` against ``phase``.

    :returns: the phase the response moves to, and what the message means.
    :raises ClientDisconnected: for a response message once the client has gone.
    :raises ASGIProtocolError: for a message the ASGI spec does not allow here.
    """
    if type(message) is not dict and not isinstance(message, Mapping):
        raise ASGIProtocolError(
            f"Expected an ASGI message (a dict), but got {type(message).__name__}."
        )
    kind = message.get("type")
    if kind == "http.response.body":
        if phase is STARTED or phase is STREAMING:
            body = message.get("body", b"")
            if type(body) is not bytes:
                body = _body_bytes(body)
            more = True if message.get("more_body") else False  # (no bool() call)
            # tuple.__new__: a NamedTuple's own __new__ is a Python call, on every message.
            return (STREAMING if more else COMPLETE), tuple.__new__(Body, (body, more))
    elif kind == "http.response.start":
        if phase is AWAITING_START:
            status = message.get("status")
            if type(status) is not int or not 100 <= status <= 999:
                raise ASGIProtocolError(f"Expected an int HTTP status, but got {status!r}.")
            headers, length = decode_headers(message.get("headers", ()))
            line = _REASONS.get(status) or status_line(status)  # (a call only when new)
            head = tuple.__new__(Head, (line, headers, status, length))
            return STARTED, head
    elif kind == "http.response.pathsend":
        if phase is STARTED:
            path = message.get("path")
            if not isinstance(path, str) or not path:
                raise ASGIProtocolError(f"Expected 'path' to be a str, but got {path!r}.")
            return COMPLETE, PathSend(path)
    elif kind in HINTS:
        return phase, None
    elif kind == "http.response.trailers":
        raise ASGIProtocolError(
            "WSGI cannot carry 'http.response.trailers'; the bridge does not advertise "
            "the trailers extension."
        )
    else:
        raise ASGIProtocolError(f"Expected an 'http.response.*' ASGI message, but got {kind!r}.")
    raise _out_of_order(phase, kind)


def fit_to_length(length: DeclaredLength, body: Body, head_sent: bool) -> Body | None:
    """``body`` as the WSGI server's thread gets it, under the declared Content-Length.

    The message that fills the declared length ends the thread's response, as a WSGI
    server stops there; once it has (``head_sent`` and nothing left), the app's last
    messages mean nothing to the thread: None. As an ASGI server built on h11 does,
    too much or too little body is the app's error.

    :raises ASGIProtocolError: when the body goes past the declared length, or ends
        short of it.
    """
    remaining = length.remaining
    if remaining is None:
        return body
    data, more = body
    if len(data) > remaining:
        raise ASGIProtocolError(
            "The ASGI app sent more than its declared Content-Length "
            f"({remaining} bytes were left, the message has {len(data)})."
        )
    if remaining == 0 and head_sent:
        return None
    length.clip(data)
    if length.remaining:
        if not more and length.shortfall():
            raise ASGIProtocolError(
                f"The ASGI app ended its response {length.shortfall()} bytes short of its "
                "declared Content-Length."
            )
        return body
    return tuple.__new__(Body, (data, False)) if more else body


def fit_declared(
    length: DeclaredLength | None, head: Head | None, body: Body, method: str
) -> tuple[Body | None, DeclaredLength]:
    """:func:`fit_to_length` for a response that declared a length, and the counter:
    ``length``, or for the first body message a new one from ``head``."""
    if length is None:
        assert head is not None and head.length is not None
        length = DeclaredLength(head.length, method=method, status=head.code)
    return fit_to_length(length, body, head is None), length


def _out_of_order(phase: Phase, kind: object) -> Exception:
    if phase is DISCONNECTED:
        return ClientDisconnected("The client disconnected; the WSGI server closed the response.")
    if phase is AWAITING_START:
        return ASGIProtocolError(f"Expected ASGI message 'http.response.start', but got {kind!r}.")
    if phase is COMPLETE:
        return ASGIProtocolError(f"Got ASGI message {kind!r} after the response was complete.")
    if kind == "http.response.start":
        return ASGIProtocolError("Got ASGI message 'http.response.start' a second time.")
    return ASGIProtocolError(
        "Got ASGI message 'http.response.pathsend' after 'http.response.body'; it must "
        "be the response's only body message."
    )


def _body_bytes(body: object) -> bytes:
    if isinstance(body, (bytearray, memoryview)):
        return bytes(body)
    raise ASGIProtocolError(f"Expected 'body' to be bytes, but got {type(body).__name__}.")
