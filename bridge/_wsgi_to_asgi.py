"""``WSGIToASGI``: serve a WSGI app from an ASGI server.

How a request crosses, in three modules:

* here, the adapter: its options, the thread limit, and the ASGI entry point, which
  hands each scope type to its handler;
* :mod:`bridge._wsgi_to_asgi_pump`: the request on the ASGI server's loop (the
  environ, ``receive()`` and ``send()``, the disconnect watch);
* :mod:`bridge._wsgi_to_asgi_worker`: the request in a pool thread (the WSGI call,
  ``start_response``, the iterable and its ``close()``), checked call by call by
  :mod:`bridge._wsgi_response`.
"""

from __future__ import annotations

import logging

import anyio

from ._lifespan import answer_lifespan
from ._wsgi_to_asgi_pump import Pump
from .types import Receive, Scope, Send, WSGIApp

logger = logging.getLogger("bridge")


class WSGIToASGI:
    """Serve a WSGI application from an ASGI server.

    ``WSGIToASGI(wsgi_app)`` is an ASGI 3 application. Each request runs the WSGI
    app in a pool thread; the request body streams from ``receive()`` into
    ``wsgi.input`` as the app reads it, and the response streams from the app's
    iterable to ``send()`` with back-pressure both ways.

    Arguments:

    * ``app``: the WSGI application.
    * ``max_threads``: how many requests may run the app at once, as a count or a
      shared :class:`anyio.CapacityLimiter`. Further requests wait without blocking
      the event loop.
    * ``chunk_size``: small chunks the app yields while the client is busy are joined
      into ``send()`` messages of up to this many bytes; a larger chunk is sent as is.
    * ``high_water``: bytes the app may produce ahead of the client before its thread
      waits (back-pressure), and request body bytes read ahead of the app.
    * ``keep_underscore_headers``: keep request headers whose names contain ``_``.
      They are dropped by default, as nginx and gunicorn do, because ``X_Forwarded_For``
      and ``X-Forwarded-For`` would map to the same environ key.
    * ``max_duplicate_headers``: answer 400 when a header is repeated more often
      (``None``: no limit).
    * ``max_body_size``: answer 413 when the request body is larger (``None``: no limit).
    * ``max_websockets``: how many WebSockets may be open at once, as a count or a
      shared :class:`anyio.CapacityLimiter`, apart from ``max_threads`` (each holds
      a thread for its whole life); a handshake over the limit is denied (503).

    :raises TypeError: when ``app`` is not callable.
    :raises ValueError: on a non-positive limit or size.
    """

    def __init__(
        self,
        app: WSGIApp,
        *,
        max_threads: int | anyio.CapacityLimiter = 64,
        chunk_size: int = 65536,
        high_water: int = 1048576,
        keep_underscore_headers: bool = False,
        max_duplicate_headers: int | None = 100,
        max_body_size: int | None = None,
        max_websockets: int | anyio.CapacityLimiter = 64,
    ) -> None:
        if not callable(app):
            raise TypeError(f"Expected a WSGI application (a callable), but got {app!r}.")
        for name, value in (
            ("chunk_size", chunk_size),
            ("high_water", high_water),
            ("max_duplicate_headers", max_duplicate_headers),
        ):
            if value is not None and value < 1:
                raise ValueError(f"Expected '{name}' to be at least 1, but got {value}.")
        if max_body_size is not None and max_body_size < 0:
            raise ValueError(f"Expected 'max_body_size' >= 0 or None, but got {max_body_size}.")
        if isinstance(max_threads, int):
            if max_threads < 1:
                raise ValueError(f"Expected 'max_threads' to be at least 1, but got {max_threads}.")
            max_threads = anyio.CapacityLimiter(max_threads)
        self.app = app
        self.limiter = max_threads
        self.chunk_size = chunk_size
        self.high_water = high_water
        self.keep_underscore_headers = keep_underscore_headers
        self.max_duplicate_headers = max_duplicate_headers
        self.max_body_size = max_body_size
        if isinstance(max_websockets, int):
            if max_websockets < 1:
                raise ValueError(f"Expected 'max_websockets' >= 1, but got {max_websockets}.")
            max_websockets = anyio.CapacityLimiter(max_websockets)
        self.websocket_limiter = max_websockets

    def __repr__(self) -> str:
        return f"WSGIToASGI({self.app!r})"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await Pump(self, scope, receive, send).run()
        elif kind == "lifespan":
            await answer_lifespan(receive, send)
        elif kind == "websocket":
            # Imported on the first WebSocket: h11 and wsproto load with it, not with bridge.
            from ._websocket_wsgi_to_asgi import serve_websocket

            await serve_websocket(self, scope, receive, send)
        else:
            raise ValueError(f"WSGIToASGI cannot serve scope type {kind!r}.")
