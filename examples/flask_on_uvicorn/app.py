"""A Flask app with streaming, uploads and sessions, served by uvicorn through bridge.

Run it::

    python examples/flask_on_uvicorn/app.py            # http://127.0.0.1:8000
    uvicorn examples.flask_on_uvicorn.app:asgi_app     # the same, from uvicorn's CLI

Try ``curl -N http://127.0.0.1:8000/stream`` (a line every 100 ms),
``curl -F file=@README.md http://127.0.0.1:8000/upload``, ``/visits`` (a session
counter, kept in a signed cookie), and the flask-sock WebSocket ``/chat``, which
answers each message with its number: ``python -m websockets ws://127.0.0.1:8000/chat``.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from typing import Any

from flask import Flask, Response, jsonify, request, session
from flask_sock import Sock

from bridge import WSGIToASGI

app = Flask(__name__)
app.secret_key = os.environ.get("FLASK_SECRET_KEY", "change-me-in-production")


@app.get("/")
def index() -> Response:
    return jsonify(message="Flask, served by uvicorn through bridge", path=request.path)


@app.get("/stream")
def stream() -> Response:
    def lines() -> Iterator[str]:
        for number in range(10):
            yield f"line {number}\n"
            time.sleep(0.1)

    return Response(lines(), mimetype="text/plain")


@app.post("/upload")
def upload() -> Response:
    upload = request.files["file"]
    digest = hashlib.sha256()
    size = 0
    while block := upload.stream.read(65536):
        digest.update(block)
        size += len(block)
    return jsonify(filename=upload.filename, size=size, sha256=digest.hexdigest())


@app.get("/visits")
def visits() -> Response:
    session["visits"] = session.get("visits", 0) + 1
    return jsonify(visits=session["visits"])


def chat(ws: Any) -> None:
    """A WebSocket through flask-sock: each message comes back numbered, until "bye"."""
    number = 0
    while (message := ws.receive()) != "bye":
        number += 1
        ws.send(f"{number}: {message}")
    ws.close(1000, "see you")


Sock(app).route("/chat")(chat)

asgi_app = WSGIToASGI(app, max_websockets=32)

if __name__ == "__main__":
    import uvicorn

    uvicorn.run(
        asgi_app,
        host=os.environ.get("HOST", "127.0.0.1"),
        port=int(os.environ.get("PORT", "8000")),
    )
