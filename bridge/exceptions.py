"""Exceptions raised by :mod:`bridge`.

::

    BridgeError
     ├── ClientDisconnected (also OSError)   the client went away mid-request
     ├── ProtocolError                       a wrapped app or a server broke its spec
     │    ├── WSGIProtocolError (also ValueError)
     │    └── ASGIProtocolError (also ValueError)
     ├── BadRequest                          the request cannot be bridged (answered 4xx)
     │    └── BodyTooLarge                   the body is over the adapter's max_body_size (413)
     ├── LifespanFailed                      the ASGI app's lifespan startup failed
     ├── ShuttingDown                        the bridge ended the app's task: the process exits
     ├── AppLoadError                        an import string does not lead to an app
     └── ServerNotAvailable                  the chosen server is not installed

Every error carries ``status_hint``: the HTTP status the bridge answers with when
it is the one to answer (before a response has started).
"""

from __future__ import annotations

__all__ = (
    "ASGIProtocolError",
    "AppLoadError",
    "BadRequest",
    "BodyTooLarge",
    "BridgeError",
    "ClientDisconnected",
    "LifespanFailed",
    "ProtocolError",
    "ServerNotAvailable",
    "ShuttingDown",
    "WSGIProtocolError",
)


class BridgeError(Exception):
    """Base class of every error :mod:`bridge` raises."""

    status_hint: int = 500


class ClientDisconnected(BridgeError, OSError):
    """Raised when the client went away before the request or response was complete.

    ``wsgi.input`` raises it when the upload is cut short, so a WSGI app never acts
    on a silently truncated body; an ASGI app's ``send()`` raises it once the WSGI
    server has closed the response.
    """

    status_hint = 400


class ProtocolError(BridgeError):
    """Raised when a wrapped app or a server broke the protocol it speaks."""


class WSGIProtocolError(ProtocolError, ValueError):
    """Raised when a WSGI app (or a WSGI server's environ) breaks PEP 3333."""


class ASGIProtocolError(ProtocolError, ValueError):
    """Raised when an ASGI app sends a message the ASGI spec does not allow."""


class BadRequest(BridgeError):
    """Raised when a request cannot be bridged; the bridge answers ``status_hint``."""

    def __init__(self, message: str, status_hint: int = 400) -> None:
        super().__init__(message)
        self.status_hint = status_hint


class BodyTooLarge(BadRequest):
    """Raised when a request body is larger than the adapter's ``max_body_size``.

    The bridge answers 413 when no response has started; ``wsgi.input`` raises it
    to a WSGI app that reads past the limit.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(f"The request body is larger than the limit of {limit} bytes.", 413)
        self.limit = limit


class LifespanFailed(BridgeError):
    """Raised for each request when the ASGI app's lifespan startup failed.

    ``ASGIToWSGI`` raises it to the WSGI server, which answers 500 and logs it; the
    app's own error was logged when startup failed.
    """


class ShuttingDown(BridgeError):
    """Raised in the WSGI thread when the bridge cancelled the ASGI app's task.

    The process is exiting (``ASGIToWSGI.close()`` or interpreter exit) while the
    request was still running: not the app's fault, nor the client's.
    """

    status_hint = 503


class AppLoadError(BridgeError, ImportError):
    """Raised when a ``"module:attribute"`` import string does not lead to an app."""


class ServerNotAvailable(BridgeError):
    """Raised when the server chosen to serve an app is not installed."""
