"""Telling WSGI, ASGI 2 and ASGI 3 apps apart, and the one-line converters."""

from __future__ import annotations

import inspect
from typing import Any, Literal

from ._asgi_to_wsgi import ASGIToWSGI, as_asgi3
from ._importer import import_from_string
from ._wsgi_to_asgi import WSGIToASGI
from .types import ASGIApp, WSGIApp

Interface = Literal["wsgi", "asgi2", "asgi3"]
_INTERFACES = ("wsgi", "asgi2", "asgi3")


def _positional_count(fn: Any) -> int | None:
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    count = 0
    for parameter in signature.parameters.values():
        if parameter.kind is parameter.VAR_POSITIONAL:
            return None
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            count += 1
    return count


def detect_interface(app: object) -> Interface:
    """Whether ``app`` is a WSGI, ASGI 2 or ASGI 3 application.

    Decided by the bridges' own types first, then, as uvicorn does, by whether the
    callable is a coroutine function and how many positional arguments it takes:
    ``(environ, start_response)`` is WSGI, ``(scope)`` returning an instance is
    ASGI 2, ``async (scope, receive, send)`` is ASGI 3.

    :raises TypeError: when ``app`` is not callable or the signature fits none of
        them; the message names what was found. Pass ``interface=`` to decide.
    """
    if isinstance(app, WSGIToASGI):
        return "asgi3"
    if isinstance(app, ASGIToWSGI):
        return "wsgi"
    if not callable(app):
        raise TypeError(f"Expected a WSGI or ASGI application, but got {app!r}, not callable.")
    if inspect.isclass(app):
        # Instantiated per request: with (scope) for ASGI 2, (environ, start_response)
        # for a WSGI app class (PEP 3333 allows both), (scope, receive, send) and then
        # awaited for ASGI 3 (Starlette's endpoints).
        if hasattr(app, "__await__"):
            return "asgi3"
        return "wsgi" if _positional_count(app) == 2 else "asgi2"
    call = app if inspect.isroutine(app) else type(app).__call__
    if inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(app):
        return "asgi3"
    count = _positional_count(app)
    if count == 3:
        return "asgi3"
    if count == 2:
        return "wsgi"
    if count == 1:
        return "asgi2"
    raise TypeError(
        f"Cannot tell whether {app!r} is a WSGI or an ASGI application: it takes "
        f"{'a variable number of' if count is None else count} positional arguments. "
        "Pass interface='wsgi', 'asgi2' or 'asgi3'."
    )


def _resolve(app: Any, interface: Interface | None) -> tuple[Any, Interface]:
    if isinstance(app, str):
        app = import_from_string(app)
    if interface is None:
        return app, detect_interface(app)
    if interface not in _INTERFACES:
        raise ValueError(f"Expected interface 'wsgi', 'asgi2' or 'asgi3', but got {interface!r}.")
    return app, interface


def to_asgi(app: Any, *, interface: Interface | None = None, **options: Any) -> ASGIApp:
    """Return ``app`` as an ASGI 3 application, bridging only when it is not one.

    ``app`` may be an import string (``"myproject.wsgi:application"``). An ASGI 3 app
    is returned unchanged, an ASGI 2 app is adapted, a WSGI app is wrapped in
    :class:`WSGIToASGI` with ``options``, and an :class:`ASGIToWSGI` is unwrapped
    rather than bridged twice.

    :raises TypeError: when the interface cannot be detected (pass ``interface=``).
    :raises bridge.exceptions.AppLoadError: when an import string cannot be loaded.
    """
    app, kind = _resolve(app, interface)
    if isinstance(app, ASGIToWSGI):
        return app.app
    if kind == "asgi3":
        return app  # type: ignore[no-any-return]
    if kind == "asgi2":
        return as_asgi3(app)
    return WSGIToASGI(app, **options)


def to_wsgi(app: Any, *, interface: Interface | None = None, **options: Any) -> WSGIApp:
    """Return ``app`` as a WSGI application, bridging only when it is not one.

    ``app`` may be an import string. A WSGI app is returned unchanged, an ASGI app
    is wrapped in :class:`ASGIToWSGI` with ``options``, and a :class:`WSGIToASGI` is
    unwrapped rather than bridged twice.

    :raises TypeError: when the interface cannot be detected (pass ``interface=``).
    :raises bridge.exceptions.AppLoadError: when an import string cannot be loaded.
    """
    app, kind = _resolve(app, interface)
    if isinstance(app, WSGIToASGI):
        return app.app
    if kind == "wsgi":
        return app  # type: ignore[no-any-return]
    return ASGIToWSGI(app, **options)
