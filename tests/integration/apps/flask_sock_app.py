"""A Flask app with flask-sock routes, served through ``bridge.WSGIToASGI``.

``app`` runs with ``max_threads=2`` so that a test can tell WebSockets hold no
token of the HTTP limiter; ``mounted`` serves the same Flask app under ``/ws-app``
through ``Mount``. ``/stats`` reports, as JSON, how many handlers run, how the
``/hold`` ones ended, and the process's threads, so a test can watch them end.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any, cast

from flask import Flask, Response, jsonify
from flask_sock import ConnectionClosed, Sock

from bridge import Mount, WSGIToASGI

flask_app = Flask(__name__)
flask_app.config["SOCK_SERVER_OPTIONS"] = {"subprotocols": ["chat.v2", "chat.v1"]}
_sock = Sock(flask_app)
_lock = threading.Lock()
_running = 0
_endings: dict[str, list[object]] = {}

Handler = Callable[..., None]


def _route(path: str) -> Callable[[Handler], Handler]:
    return cast(Callable[[Handler], Handler], _sock.route(path))


@contextlib.contextmanager
def _counted() -> Iterator[None]:
    global _running
    with _lock:
        _running += 1
    try:
        yield
    finally:
        with _lock:
            _running -= 1


def websocket_threads() -> list[str]:
    """The threads that serve WebSockets: the bridge's and simple-websocket's."""
    return [
        thread.name
        for thread in threading.enumerate()
        if thread.name == "bridge-websocket" or "simple_websocket" in thread.name
    ]


def python_threads() -> list[str]:
    """The process's Python threads, less the server's own foreign ones (granian's
    runtime threads show up as "Dummy" threads once they call into Python)."""
    return [
        thread.name
        for thread in threading.enumerate()
        if not isinstance(thread, threading._DummyThread)
    ]


@flask_app.get("/")
def index() -> str:
    return "ok"


@flask_app.get("/stats")
def stats() -> Response:
    with _lock:
        return jsonify(
            handlers=_running,
            endings=dict(_endings),
            threads=len(python_threads()),
            thread_names=python_threads(),
            websocket_threads=websocket_threads(),
        )


@_route("/echo")
def echo(ws: Any) -> None:
    with _counted():
        while True:
            data = ws.receive()
            if isinstance(data, str) and data.startswith("close "):
                _, code, reason = data.split(" ", 2)
                ws.close(int(code), reason)
                return
            ws.send(data)


@_route("/hold/<token>")
def hold(ws: Any, token: str) -> None:
    """Receives until the connection ends; records how (close code and reason)."""
    with _counted():
        try:
            while True:
                ws.receive()
        except ConnectionClosed:
            with _lock:
                _endings[token] = [ws.close_reason, ws.close_message]
            raise


app = WSGIToASGI(flask_app, max_threads=2, max_websockets=100)
mounted = Mount({"/ws-app": flask_app})
