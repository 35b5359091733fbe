"""An ASGI app's WebSockets on a WSGI server: ``ASGIToWSGI``'s dispatch to them.

:func:`serve_websocket` takes an upgrade request when the WSGI server offers the
connection's socket, serves the connection on the adapter's loop, where the app
runs with a ``websocket`` scope (see :mod:`bridge._websocket_a2w_relay`), holds the
calling WSGI thread until the connection is over, then tells the server the
connection is finished in the way that server understands:

* gunicorn (sync and gthread workers): ``StopIteration`` from the app call, the
  workers' own signal to close a connection without answering ("Closing
  connection.", at debug level). Any return would make gunicorn write a status
  line on the socket.
* werkzeug's ``WSGIRequestHandler``: a ``ConnectionError`` (werkzeug's "connection
  dropped", silent); werkzeug's keep-alive loop then reads the socket the relay
  has shut down, sees the end, and closes it. A return would make werkzeug write a
  response.

Servers without the socket (waitress, mod_wsgi, wsgiref) get the request as plain
HTTP, as before, with one info line in the log saying why.
"""

from __future__ import annotations

import dataclasses
import logging
import socket
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Final, NoReturn, Protocol

from ._headers import status_line
from ._websocket_a2w_limits import Limits
from ._websocket_environ import build_websocket_scope, wants_websocket, websocket_handshake_problem
from .exceptions import BadRequest, BridgeError
from .types import ASGIApp, Environ, StartResponse

if TYPE_CHECKING:
    from ._loop import LoopThread

logger = logging.getLogger("bridge")

SOCKET_KEYS: Final = ("gunicorn.socket", "werkzeug.socket")
"""Environ keys under which WSGI servers hand over the connection's socket."""
_EXTENSIONS: Final[dict[str, Any]] = {"websocket.http.response": {}}

WEBSOCKET_SUPPORT: Final = {
    "gunicorn": "yes (gunicorn's sync and gthread workers hand over the socket; "
    "one worker thread per open WebSocket)",
    "waitress": "no: waitress offers no socket (upgrade requests reach the app as HTTP)",
    "wsgiref": "no: wsgiref offers no socket (upgrade requests reach the app as HTTP)",
    "granian": "no: granian's WSGI interface offers no socket; its ASGI interface "
    "serves them (an ASGI app, or WSGIToASGI(app))",
}
"""Whether WebSockets work where a server ``python -m bridge`` runs serves its app with
its WSGI interface: a WSGI app as it is, or an ASGI app through ``ASGIToWSGI``. Both
need the connection's socket (flask-sock and Flask-SocketIO look for the same keys)."""


class ConnectionHandedBack(BridgeError, ConnectionError):
    """Raised to werkzeug's server once the bridge has served a WebSocket on its socket.

    werkzeug treats it as a dropped connection: it writes nothing and logs nothing.
    """


class _Adapter(Protocol):
    app: ASGIApp
    high_water: int
    websocket_max_size: int


DEFAULT_LIMITS: Limits = Limits()
"""The bounds of every connection, but for the adapter's ``high_water`` and
``websocket_max_size``."""


_told_no_socket = False


def serve_websocket(
    adapter: _Adapter, loop: LoopThread, environ: Environ, start_response: StartResponse
) -> Iterable[bytes] | None:
    """Serve a WebSocket upgrade request; None when the request is not one to take.

    None for a request that is not an upgrade to WebSocket, or one the server
    offers no socket for: the caller serves it as HTTP.

    :raises StopIteration: to gunicorn, when the WebSocket is over.
    :raises ConnectionHandedBack: to werkzeug, when the WebSocket is over.
    :raises Exception: the app's own: before it answered the handshake (the server
        answers 500), or after, once the client has its close (1011).
    """
    if not wants_websocket(environ):
        return None
    sock = next((environ[key] for key in SOCKET_KEYS if key in environ), None)
    if not isinstance(sock, socket.socket):
        _say_no_socket(environ)
        return None
    # wsproto and h11 load with the first WebSocket, not with bridge.
    from wsproto.connection import ConnectionType
    from wsproto.handshake import H11Handshake

    from ._websocket_a2w_task import WebSocketTask

    problem = websocket_handshake_problem(environ)
    handshake = H11Handshake(ConnectionType.SERVER)
    if problem is None:
        try:
            scope = build_websocket_scope(environ, extensions=dict(_EXTENSIONS))
            # The request target plays no part in the answer; the headers do.
            handshake.initiate_upgrade_connection(scope["headers"], "/")
        except BadRequest as exc:
            problem = exc
        except Exception as exc:  # h11 or wsproto refused the handshake
            problem = BadRequest(f"Invalid WebSocket handshake: {exc}")
    if problem is not None:
        return _refuse(start_response, problem)
    if loop.lifespan.supported:
        scope["state"] = loop.lifespan.state.copy()
    limits = dataclasses.replace(
        DEFAULT_LIMITS,
        high_water=adapter.high_water,
        max_message_size=adapter.websocket_max_size,
    )
    task = WebSocketTask(adapter.app, scope, loop, sock, handshake, limits)
    relay = task.relay
    loop.spawn(task)
    error = relay.wait(loop)
    if error is not None:
        raise error  # nothing was written: the server answers 500 and logs it
    if relay.app_error is not None:
        # The client has its close (1011) and the socket is shut: the server logs it.
        raise relay.app_error
    _hand_back(environ)


def _hand_back(environ: Environ) -> NoReturn:
    if "gunicorn.socket" in environ:
        raise StopIteration("the WebSocket is over")
    raise ConnectionHandedBack("The WebSocket is over; the bridge has closed the connection.")


def _refuse(start_response: StartResponse, problem: BadRequest) -> list[bytes]:
    logger.info("Refused a WebSocket handshake: %s", problem)
    body = str(problem).encode("utf-8")
    headers = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))]
    if problem.status_hint == 426:
        headers.append(("Sec-WebSocket-Version", "13"))
    start_response(status_line(problem.status_hint), headers)
    return [body]


def _say_no_socket(environ: Environ) -> None:
    global _told_no_socket
    if not _told_no_socket:
        _told_no_socket = True
        server = environ.get("SERVER_SOFTWARE") or "this WSGI server"
        logger.info(
            "A WebSocket upgrade request reached ASGIToWSGI, but %s offers no socket to "
            "take over, so it is served as plain HTTP. WebSockets work under gunicorn "
            "(sync, gthread) and werkzeug's server.",
            server,
        )
