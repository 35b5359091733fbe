"""A FastAPI chat room with a websocket route, served by gunicorn through bridge.

Run it::

    gunicorn -k gthread --threads 32 examples.fastapi_websockets_on_gunicorn.app:wsgi_app
    python examples/fastapi_websockets_on_gunicorn/app.py    # werkzeug's server

Each open WebSocket holds one gunicorn thread: size ``--threads`` for the sockets you
expect open at once plus your HTTP traffic. Open two shells and chat::

    python -m websockets ws://127.0.0.1:8000/chat/alice
    python -m websockets ws://127.0.0.1:8000/chat/bob

Everything said in the room goes to everyone in it; ``/who`` (plain HTTP) lists who
is there, and ``/`` is a page that joins the room as "browser" from a browser. The
room lives in the lifespan state, so each worker process has its own: run one
worker, or put the room in Redis.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import HTMLResponse

from bridge import ASGIToWSGI


class Room:
    """The open WebSockets, by name."""

    def __init__(self) -> None:
        self.members: dict[str, WebSocket] = {}

    async def say(self, text: str) -> None:
        for websocket in list(self.members.values()):
            with contextlib.suppress(OSError, RuntimeError):  # one who just left
                await websocket.send_text(text)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Room]]:
    yield {"room": Room()}


app = FastAPI(lifespan=lifespan)


PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>FastAPI WebSocket under a WSGI server</title></head>
<body>
<h1>FastAPI WebSocket under a WSGI server</h1>
<p>WebSocket: <span id="status">connecting</span></p>
<form id="say"><input name="text" autocomplete="off"><button type="submit">Send</button></form>
<ol id="log"></ol>
<script>
const log = document.querySelector("#log");
const status = document.querySelector("#status");
const scheme = location.protocol === "https:" ? "wss://" : "ws://";
const socket = new WebSocket(scheme + location.host + "/chat/browser");
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


@app.get("/", response_class=HTMLResponse)
async def index() -> str:
    """A page that joins the room from the browser and shows what is said there."""
    return PAGE


@app.get("/who")
async def who(request: Request) -> dict[str, list[str]]:
    return {"members": sorted(request.state.room.members)}


@app.websocket("/chat/{name}")
async def chat(websocket: WebSocket, name: str) -> None:
    room: Room = websocket.state.room
    await websocket.accept()
    if name in room.members:
        await websocket.close(code=4009, reason="that name is taken")
        return
    room.members[name] = websocket
    await room.say(f"{name} joined")
    try:
        while True:
            text = await websocket.receive_text()
            await room.say(f"{name}: {text}")
    except WebSocketDisconnect:
        pass
    finally:
        del room.members[name]
    await room.say(f"{name} left")


wsgi_app = ASGIToWSGI(app)

if __name__ == "__main__":
    from werkzeug.serving import run_simple

    host, port = os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "8000"))
    run_simple(host, port, wsgi_app, threaded=True)
