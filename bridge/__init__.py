"""Run WSGI apps on ASGI servers and ASGI apps on WSGI servers, streaming both ways."""

from __future__ import annotations

from ._asgi_to_wsgi import ASGIToWSGI
from ._file_wrapper import FileWrapper
from ._interface import detect_interface, to_asgi, to_wsgi
from ._mount import Mount
from ._wsgi_to_asgi import WSGIToASGI
from .exceptions import (
    AppLoadError,
    ASGIProtocolError,
    BadRequest,
    BodyTooLarge,
    BridgeError,
    ClientDisconnected,
    LifespanFailed,
    ProtocolError,
    ServerNotAvailable,
    ShuttingDown,
    WSGIProtocolError,
)

__version__ = "0.1.0"

__all__ = (
    "ASGIProtocolError",
    "ASGIToWSGI",
    "AppLoadError",
    "BadRequest",
    "BodyTooLarge",
    "BridgeError",
    "ClientDisconnected",
    "FileWrapper",
    "LifespanFailed",
    "Mount",
    "ProtocolError",
    "ServerNotAvailable",
    "ShuttingDown",
    "WSGIProtocolError",
    "WSGIToASGI",
    "detect_interface",
    "to_asgi",
    "to_wsgi",
)

for _name in __all__:
    globals()[_name].__module__ = __name__
del _name
