"""A Flask app with streaming, uploads and sessions, served by uvicorn through bridge.

Run it::

    python examples/flask_on_uvicorn/app.py            # http://127.0.0.1:8000
    uvicorn examples.flask_on_uvicorn.app:asgi_app     # the same, from uvicorn's CLI

Try ``curl -N http://127.0.0.1:8000/stream`` (a line every 100 ms),
``curl -F file=@README.md http://127.0.0.1:8000/upload``, ``/visits`` (a session
counter, kept in a signed cookie), and the flask-sock WebSocket ``/chat``, which
answers each message with its number: ``python -m websockets ws://127.0.0.1:8000/chat``,
or in a browser at ``/talk``.
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


TALK_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Flask WebSocket, through bridge</title></head>
<body>
<h1>Flask WebSocket, through bridge</h1>
<p>WebSocket: <span id="status">connecting</span></p>
<form id="say"><input name="text" autocomplete="off"><button type="submit">Send</button></form>
<ol id="log"></ol>
<script>
const log = document.querySelector("#log");
const status = document.querySelector("#status");
const scheme = location.protocol === "https:" ? "wss://" : "ws://";
const socket = new WebSocket(scheme + location.host + "/chat");
socket.onopen = () => { status.textContent = "open"; };
socket.onclose = () => { status.textContent = "closed"; };
socket.onmessage = (event) => {
  const line = document.createElement("li");
  line.textContent = event.data;
  log.append(line);
};
document.querySelector("#say").onsubmit = (event) => {
  event.preventDefault();
  const text = event.target.elements.text;
  socket.send(text.value);
  text.value = "";
};
</script>
</body>
</html>
"""


@app.get("/talk")
def talk() -> Response:
    """A page that opens ``/chat`` from the browser and shows what comes back."""
    return Response(TALK_PAGE, mimetype="text/html")


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
