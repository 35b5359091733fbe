"""The shapes both protocols pass around, named once.

ASGI shapes are kept loose (mappings of ``str`` to anything), as Starlette does, so
that every module speaks the same words; the exact event shapes are documented in
:mod:`asgiref.typing`. WSGI shapes follow PEP 3333.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

__all__ = (
    "ASGIApp",
    "Environ",
    "ExcInfo",
    "Message",
    "Receive",
    "Scope",
    "Send",
    "StartResponse",
    "WSGIApp",
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

if TYPE_CHECKING:
    # typeshed's exact WSGI shapes, so Flask, Django and Werkzeug apps type-check.
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    Environ = WSGIEnvironment
    WSGIApp = WSGIApplication
    ExcInfo = (
        tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]
    )
else:
    Environ = dict[str, Any]
    ExcInfo = tuple
    StartResponse = Callable[..., Callable[[bytes], object]]
    WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]
