"""A Flask-SocketIO app in ``threading`` mode, served through ``bridge.WSGIToASGI``.

The ``echo`` event is emitted back to its sender; ``/stats`` tells which session
ids connected and disconnected.
"""

from __future__ import annotations

import threading
from typing import Any, cast

from flask import Flask, Response, jsonify, request
from flask_socketio import SocketIO, emit

from bridge import WSGIToASGI

flask_app = Flask(__name__)
socketio = SocketIO(flask_app, async_mode="threading")
_lock = threading.Lock()
_connected: list[str] = []
_disconnected: list[str] = []


def _sid() -> str:
    return cast(str, request.sid)  # type: ignore[attr-defined]  # set by Flask-SocketIO


def on_connect(auth: Any = None) -> None:
    with _lock:
        _connected.append(_sid())


def on_disconnect(reason: Any = None) -> None:
    with _lock:
        _disconnected.append(_sid())


def on_echo(data: Any) -> None:
    emit("echo", {"echoed": data, "transport": request.environ.get("HTTP_UPGRADE")})


socketio.on_event("connect", on_connect)
socketio.on_event("disconnect", on_disconnect)
socketio.on_event("echo", on_echo)


@flask_app.get("/")
def index() -> str:
    return "ok"


@flask_app.get("/stats")
def stats() -> Response:
    with _lock:
        return jsonify(connected=list(_connected), disconnected=list(_disconnected))


app = WSGIToASGI(flask_app)
