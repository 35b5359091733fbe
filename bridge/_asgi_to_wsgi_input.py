"""``ASGIToWSGI``'s request body: ``wsgi.input`` read, in the WSGI server's thread, into
``http.request`` messages for the app.

The app's ``receive()`` asks for the body a chunk at a time; the WSGI thread reads
``wsgi.input`` (:meth:`InputReader.read`) and posts the message back to the loop.
:meth:`InputReader.first` reads the first chunk before the app starts when that
spares it a hop: a small declared body, or an input that HTTP/1 framing says is
empty. A client that expects ``100 Continue`` is never read ahead: the server asks
it for the body only when the app reads.
"""

from __future__ import annotations

import enum
import logging
from typing import Final

from ._asgi_to_wsgi_task import DISCONNECT
from ._environ import content_length
from .exceptions import BadRequest, BodyTooLarge
from .types import Environ, Message

logger = logging.getLogger("bridge")

CHUNK: Final = 65536
"""Bytes read from ``wsgi.input`` (or a file for ``pathsend``) at a time."""
_HTTP_1: Final = ("HTTP/1.1", "HTTP/1.0")
_EMPTY_BODY: Final[Message] = {"type": "http.request", "body": b"", "more_body": False}


class Outcome(enum.Enum):
    """How reading the request body went."""

    OPEN = "open"
    CUT = "cut"  # the client went away before the whole body came
    TOO_LARGE = "too large"  # over max_body_size: the bridge stopped reading


class InputReader:
    """The request body of one WSGI call, as ``http.request`` messages."""

    __slots__ = ("_environ", "_left", "_limit", "_received", "outcome")

    def __init__(self, environ: Environ, limit: int | None) -> None:
        self._environ = environ
        self._limit = limit
        self._left: int | None = None  # bytes still to read; None: to EOF
        self._received = 0
        self.outcome: Outcome = Outcome.OPEN

    def first(self) -> Message | None:
        """Check the declared body; read its first chunk now when that spares the app a hop.

        :raises BodyTooLarge: when the declared body is over the limit.
        :raises BadRequest: when the declared length is malformed.
        """
        environ = self._environ
        length = content_length(environ)
        if self._limit is not None and length is not None and length > self._limit:
            raise BodyTooLarge(self._limit)
        if length is None and not environ.get("wsgi.input_terminated"):
            length = 0  # PEP 3333: without CONTENT_LENGTH there is no body to read.
        self._left = length
        if length == 0:
            return _EMPTY_BODY
        if environ.get("HTTP_EXPECT", "").lower() == "100-continue":
            return None  # the client sends its body only once the app asks for it
        if length is not None and length <= CHUNK:
            return self.read()
        if (
            length is None
            and "HTTP_TRANSFER_ENCODING" not in environ
            and environ.get("SERVER_PROTOCOL") in _HTTP_1
            and "wsgi.input" in environ
        ):
            # HTTP/1 framing says this terminated input has no body (RFC 9112 6.3:
            # neither Content-Length nor Transfer-Encoding; gunicorn marks every input
            # terminated). The server answers at once, so the first read is made here:
            # an app that calls receive() on a GET needs no hop back to this thread.
            return self.read()
        return None

    def read(self) -> Message:
        """The next chunk as a message; ``http.disconnect`` when the body cannot go on.

        :raises BadRequest: when the server's ``wsgi.input`` is missing or broken.
        """
        left = self._left
        stream = self._environ.get("wsgi.input")
        if stream is None:
            raise BadRequest("The WSGI server's environ has no 'wsgi.input'.")
        try:
            data = stream.read(CHUNK if left is None else min(CHUNK, left))
        except Exception as exc:  # the server's input raises its own types on a cut upload
            logger.info("Reading the request body failed (%r); treating it as a disconnect.", exc)
            self.outcome = Outcome.CUT
            return DISCONNECT
        if type(data) is not bytes:
            if not isinstance(data, (bytearray, memoryview)):
                raise BadRequest(
                    f"The WSGI server's wsgi.input returned {type(data).__name__}, not bytes."
                )
            data = bytes(data)
        self._received += len(data)
        if self._limit is not None and self._received > self._limit:
            self.outcome = Outcome.TOO_LARGE
            return DISCONNECT
        if left is None:
            more = bool(data)
        else:
            left -= len(data)
            self._left = left
            if left and not data:
                self.outcome = Outcome.CUT  # the client closed before CONTENT_LENGTH bytes
                return DISCONNECT
            more = left > 0
        return {"type": "http.request", "body": data, "more_body": more}
