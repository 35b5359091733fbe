"""A WSGI app's response as PEP 3333 rules it: its phases and the check of each call.

Pure, like :mod:`bridge._asgi_response` for the other direction: a
:class:`WSGIResponse` takes the app's ``start_response()`` calls and body chunks,
checks each against the phase the response is in, and says what may be sent.
``WSGIToASGI``'s worker (:mod:`bridge._wsgi_to_asgi_worker`) does the I/O.
:func:`close_iterable` is the one rule that calls the app: ``close()``, whatever
happened, for the worker and for a WebSocket's call alike.

The phases::

    AWAITING_START --start_response()--> HEADERS_HELD --first body bytes--> HEADERS_SENT
                                          ^        |
                                          `--------'  start_response(..., exc_info)
                                                      replaces the held headers

PEP 3333 holds the headers until the first non-empty chunk (or a ``write()``, or the
end), so an error before that can still replace them. Once they are sent, a
``start_response()`` with ``exc_info`` re-raises that exception instead.
"""

from __future__ import annotations

import enum
import logging
from typing import Any, Final

from ._content_length import UNDECLARED, DeclaredLength
from ._headers import encode_headers, parse_status, response_content_length
from .exceptions import WSGIProtocolError
from .types import ExcInfo

logger = logging.getLogger("bridge")


class Phase(enum.Enum):
    AWAITING_START = "start_response() not called"
    HEADERS_HELD = "headers held until the first body bytes"
    HEADERS_SENT = "headers sent"


# The members as module constants: read off the enum class, each access is a lookup
# through the enum's metaclass (several times a global's cost), on the request path.
AWAITING_START: Final = Phase.AWAITING_START
HEADERS_HELD: Final = Phase.HEADERS_HELD
HEADERS_SENT: Final = Phase.HEADERS_SENT


class WSGIResponse:
    """The response of one WSGI call, checked as it is made."""

    __slots__ = ("handled", "headers", "length", "method", "phase", "status")

    def __init__(self, method: str) -> None:
        self.method = method
        self.phase: Phase = AWAITING_START
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.length = UNDECLARED
        self.handled: BaseException | None = None
        """The exception the app handled with ``exc_info`` before its headers went out."""

    def start(self, status: object, headers: object, exc_info: ExcInfo | None) -> None:
        """``start_response(status, headers, exc_info)``.

        :raises: ``exc_info``'s exception once the headers are sent (PEP 3333).
        :raises WSGIProtocolError: on a second call without ``exc_info``, or a
            malformed status or header.
        """
        if exc_info is not None and exc_info[1] is not None:
            try:
                if self.phase is HEADERS_SENT:
                    raise exc_info[1].with_traceback(exc_info[2])
                self.handled = exc_info[1]
            finally:
                exc_info = None  # no reference cycle through the traceback
        elif self.phase is not AWAITING_START:
            raise WSGIProtocolError(
                "start_response() was called a second time without exc_info; pass "
                "sys.exc_info() to replace the headers of a failed response."
            )
        code = parse_status(status)
        encoded = encode_headers(headers)
        try:
            declared = response_content_length(encoded)
        except ValueError as exc:
            raise WSGIProtocolError(str(exc)) from None
        self.status = code
        self.headers = encoded
        if declared is None:
            self.length = UNDECLARED
        else:
            self.length = DeclaredLength(declared, method=self.method, status=code)
        self.phase = HEADERS_HELD

    def chunk(self, data: Any) -> bytes:
        """A body chunk as the bytes to send: clipped at the declared length.

        :raises WSGIProtocolError: when it is not bytes, or comes before
            ``start_response()``.
        """
        if type(data) is not bytes:
            if not isinstance(data, (bytearray, memoryview)):
                raise WSGIProtocolError(
                    f"Expected the response body as bytes, but got {type(data).__name__}; "
                    "encode text before returning it."
                )
            data = bytes(data)
        if self.phase is AWAITING_START:
            raise WSGIProtocolError("The app produced a response without calling start_response().")
        return self.length.clip(data)

    def whole(self, parts: list[bytes] | tuple[bytes, ...]) -> bytes:
        """A list or tuple response, returned with its headers held, as one body.

        It is clipped at the declared length; the headers go out with it.

        :raises WSGIProtocolError: when a part is not bytes, or the body is short of
            the declared Content-Length (then nothing has been sent).
        """
        try:
            body = parts[0] if len(parts) == 1 and type(parts[0]) is bytes else b"".join(parts)
        except TypeError:
            raise WSGIProtocolError(
                "Expected the response iterable to hold bytes, but it holds "
                f"{sorted({type(part).__name__ for part in parts})}; encode text first."
            ) from None
        length = self.length
        if length.remaining is not None and len(body) != length.remaining:
            body = length.clip(body)
            self.check_end()
        self.phase = HEADERS_SENT
        return body

    def send_headers(self) -> tuple[int, list[tuple[bytes, bytes]]]:
        """The status and headers, now that they go out.

        :raises WSGIProtocolError: before ``start_response()``.
        """
        if self.phase is AWAITING_START:
            raise WSGIProtocolError("The app produced a response without calling start_response().")
        self.phase = HEADERS_SENT
        return self.status, self.headers

    def check_end(self) -> None:
        """The body has ended.

        :raises WSGIProtocolError: when it is short of the declared Content-Length;
            the connection must be aborted so the client does not wait for the rest.
        """
        missing = self.length.shortfall()
        if missing:
            raise WSGIProtocolError(
                f"The app declared Content-Length but its body was {missing} bytes short; "
                "the connection is aborted so the client does not wait for the rest."
            )


def close_iterable(iterable: object, error: BaseException | None) -> BaseException | None:
    """Call the response iterable's ``close()``, as PEP 3333 wants whatever happened.

    :returns: the call's error: ``error``, else what ``close()`` raised (a second
        error is logged, not lost).
    """
    close = getattr(iterable, "close", None)
    if close is not None:
        try:
            close()
        except BaseException as exc:
            if error is None:
                return exc
            logger.exception("The response iterable's close() raised too.")
    return error
