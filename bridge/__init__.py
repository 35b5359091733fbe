"""Run WSGI apps on ASGI servers and ASGI apps on WSGI servers, streaming both ways."""

from __future__ import annotations

from ._asgi_to_wsgi import ASGIToWSGI
from ._wsgi_to_asgi import FileWrapper, WSGIToASGI
from .exceptions import (
    ASGIProtocolError,
    BadRequest,
    BridgeError,
    ClientDisconnected,
    ProtocolError,
    WSGIProtocolError,
)

__version__ = "0.1.0"

__all__ = (
    "ASGIProtocolError",
    "ASGIToWSGI",
    "BadRequest",
    "BridgeError",
    "ClientDisconnected",
    "FileWrapper",
    "ProtocolError",
    "WSGIProtocolError",
    "WSGIToASGI",
)

for _name in __all__:
    globals()[_name].__module__ = __name__
del _name
