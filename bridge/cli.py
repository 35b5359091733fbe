"""``python -m bridge``: serve or inspect any WSGI or ASGI app.

::

    python -m bridge serve myproject.wsgi:application --server uvicorn --workers 4
    python -m bridge serve myservice.main:app --server gunicorn
    python -m bridge serve myservice.main:app --server uwsgi   # or mod_wsgi, granian
    python -m bridge inspect myproject.asgi:app

There is deliberately no ``bridge`` console script: on Linux it would clash with
iproute2's ``/usr/sbin/bridge``. The installed script is ``wsgi-asgi-bridge``.
"""

from __future__ import annotations

import argparse
import errno
import os
import socket
import sys
from collections.abc import Sequence
from typing import Any, Literal

from ._asgi_to_wsgi import ASGIToWSGI
from ._importer import import_from_string
from ._interface import Interface, detect_interface
from ._mount import Mount
from ._servers import SERVERS, Options, Server
from ._websocket_asgi_to_wsgi import WEBSOCKET_SUPPORT
from ._wsgi_to_asgi import WSGIToASGI
from .exceptions import AppLoadError, BridgeError

_DESCRIPTIONS = {
    "wsgi": "WSGI",
    "asgi2": "ASGI 2 (double callable)",
    "asgi3": "ASGI 3",
}


def _say(text: str, *, error: bool = False) -> None:
    stream = sys.stderr if error else sys.stdout
    stream.write(text + "\n")
    stream.flush()


def _env(name: str, default: str) -> str:
    return os.environ.get(f"BRIDGE_{name}", default)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bridge",
        description="Serve any WSGI or ASGI app on any WSGI or ASGI server.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve",
        help="serve an app, bridged to the server's interface when needed",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    serve.add_argument("app", help="the app as an import string, MODULE:ATTRIBUTE")
    serve.add_argument(
        "--server",
        choices=["auto", *SERVERS],
        default=_env("SERVER", "auto"),
        help="the server to run; auto is uvicorn when installed, else wsgiref [BRIDGE_SERVER]",
    )
    serve.add_argument("--host", default=_env("HOST", "127.0.0.1"), help="[BRIDGE_HOST]")
    serve.add_argument("--port", type=int, default=int(_env("PORT", "8000")), help="[BRIDGE_PORT]")
    serve.add_argument(
        "--workers",
        type=int,
        default=int(_env("WORKERS", "1")),
        help="worker processes [BRIDGE_WORKERS]",
    )
    serve.add_argument(
        "--threads",
        type=int,
        default=int(_env("THREADS", "8")),
        help="threads per worker for gunicorn, waitress, uwsgi and mod_wsgi [BRIDGE_THREADS]",
    )
    serve.add_argument("--reload", action="store_true", help="restart when the code changes")
    serve.add_argument(
        "--interface",
        choices=["auto", *_DESCRIPTIONS],
        default="auto",
        help="the app's interface, when detection cannot tell",
    )
    inspect = commands.add_parser("inspect", help="print what an app is and how it would be served")
    inspect.add_argument("app", help="the app as an import string, MODULE:ATTRIBUTE")
    return parser


def _load(import_string: str) -> Any:
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    return import_from_string(import_string)


def _interface_of(app: Any) -> Interface:
    try:
        return detect_interface(app)
    except TypeError as exc:  # not an app, or a signature detection cannot read
        raise AppLoadError(str(exc)) from None


def _choose(name: str, interface: Interface) -> Server:
    if name != "auto":
        server = SERVERS[name]
        server.require()
        return server
    if SERVERS["uvicorn"].is_installed():
        return SERVERS["uvicorn"]
    _say(
        "bridge: uvicorn is not installed; serving with the standard library's wsgiref, "
        "which is for development only. For production: pip install "
        "'wsgi-asgi-bridge[uvicorn]' (or [gunicorn]).",
        error=True,
    )
    return SERVERS["wsgiref"]


def _check_port(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise BridgeError(
                    f"Port {port} on {host} is in use by another program; pick another with "
                    "--port, or stop the program that holds it."
                ) from None
            raise BridgeError(f"Cannot listen on {host}:{port}: {exc.strerror}.") from None


def _describe(app: Any, interface: Interface) -> str:
    kind = type(app)
    return f"{_DESCRIPTIONS[interface]} ({kind.__module__}.{kind.__qualname__})"


def _websockets_under(server: Server, app: Any, speaks: Literal["asgi", "wsgi"]) -> str:
    """Whether the app's WebSockets work when ``server`` serves it (see ``_inspect``)."""
    if server.interface_for(speaks) == "wsgi":
        return WEBSOCKET_SUPPORT.get(server.name, "no: it offers no socket")
    if speaks == "wsgi" and not isinstance(app, ASGIToWSGI):
        return (
            "yes, through WSGIToASGI (flask-sock, Flask-SocketIO in threading mode; "
            "one thread per open WebSocket, up to max_websockets)"
        )
    return "yes"


def _inspect(import_string: str) -> int:
    app = _load(import_string)
    interface = _interface_of(app)
    _say(f"{import_string}: {_describe(app, interface)}")
    if isinstance(app, WSGIToASGI):
        _say(f"  wraps the WSGI app {app.app!r}")
    if isinstance(app, ASGIToWSGI):
        _say(f"  wraps the ASGI app {app.app!r}")
    if isinstance(app, Mount):
        for prefix, mounted in app.routes:
            inner = mounted.app if isinstance(mounted, WSGIToASGI) else mounted
            bridged = " through WSGIToASGI" if isinstance(mounted, WSGIToASGI) else ""
            _say(f"  {prefix or '/'} -> {_describe(inner, detect_interface(inner))}{bridged}")
        if app.default is not None:
            default = app.default
            inner = default.app if isinstance(default, WSGIToASGI) else default
            bridged = " through WSGIToASGI" if isinstance(default, WSGIToASGI) else ""
            _say(f"  (default) -> {_describe(inner, detect_interface(inner))}{bridged}")
    speaks: Literal["asgi", "wsgi"] = "wsgi" if interface == "wsgi" else "asgi"
    for server in SERVERS.values():
        if server.interface_for(speaks) == speaks:
            how = "as it is"
        elif isinstance(app, (WSGIToASGI, ASGIToWSGI)):
            how = "the app it wraps, unwrapped"
        else:
            how = "through ASGIToWSGI" if speaks == "asgi" else "through WSGIToASGI"
        state = "" if server.is_installed() else " (not installed)"
        _say(f"  served by {server.name}{state}: {how}")
        _say(f"    websockets: {_websockets_under(server, app, speaks)}")
    from ._websocket_masking import AVAILABLE  # loads wsproto: only here, not with bridge

    if AVAILABLE:
        _say("  WebSocket masking: in C (the websockets library is installed)")
    else:
        _say(
            "  WebSocket masking: in Python; pip install 'wsgi-asgi-bridge[speedups]' "
            "to do it in C (large messages cost a third of the CPU)"
        )
    return 0


def _serve(arguments: argparse.Namespace) -> int:
    forced = None if arguments.interface == "auto" else arguments.interface
    app = _load(arguments.app)
    interface: Interface = forced or _interface_of(app)
    server = _choose(arguments.server, interface)
    _check_port(arguments.host, arguments.port)
    os.environ["BRIDGE_APP"] = arguments.app
    if forced:
        os.environ["BRIDGE_INTERFACE"] = forced
    speaks: Literal["asgi", "wsgi"] = "wsgi" if interface == "wsgi" else "asgi"
    target = server.interface_for(speaks)
    os.environ["BRIDGE_TARGET"] = target
    if target == speaks:
        bridged = ""
    elif isinstance(app, (WSGIToASGI, ASGIToWSGI)):
        bridged = ", unwrapped"
    else:
        bridged = " through WSGIToASGI" if speaks == "wsgi" else " through ASGIToWSGI"
    _say(
        f"bridge: serving {arguments.app} ({_DESCRIPTIONS[interface]}) with {server.name}"
        f"{bridged} on http://{arguments.host}:{arguments.port}",
        error=True,
    )
    options = Options(
        host=arguments.host,
        port=arguments.port,
        workers=arguments.workers,
        threads=arguments.threads,
        reload=arguments.reload,
    )
    server.run("bridge._served:app", options)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status.

    Errors a user can fix (a bad import string, a missing server, a port in use)
    print one line to stderr and exit with status 1.
    """
    arguments = _parser().parse_args(argv)
    try:
        if arguments.command == "inspect":
            return _inspect(arguments.app)
        return _serve(arguments)
    except BridgeError as exc:
        _say(f"bridge: error: {exc}", error=True)
        return 1
    except KeyboardInterrupt:
        return 130
