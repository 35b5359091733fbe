"""A FastAPI app with WebSocket routes, served by WSGI servers through ``ASGIToWSGI``.

* ``/ws/echo``: accepts (choosing ``chat.v2`` or ``chat.v1`` when offered) and
  echoes text and bytes. The text ``state`` answers the scope's lifespan state as
  JSON, ``close:<code>:<reason>`` makes the app close, ``crash`` raises. On
  ``websocket.disconnect`` it writes ``<token>.disconnect`` (``<code> <reason>``)
  to ``$BRIDGE_ASGI_TEST_DIR`` when the query names a token.
* ``/ws/reject``: closes before accepting (the client sees 403).
* ``/ws/deny``: a denial response through ``websocket.http.response`` (401, a body).
* ``/ws/crash``: raises before accepting (the WSGI server answers 500).
* ``/``: plain HTTP.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Mapping
from typing import Any

from fastapi import FastAPI, WebSocket
from fastapi.responses import PlainTextResponse

from bridge import ASGIToWSGI

from . import _asgi_shared as shared

SUBPROTOCOLS = ("chat.v2", "chat.v1")
DENIAL_BODY = "no entry without a token"


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
    yield {"value": shared.STATE_VALUE, "startup_pid": os.getpid()}


fastapi_app = FastAPI(lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)


@fastapi_app.get("/", response_class=PlainTextResponse)
async def index() -> str:
    return "ok\n"


def _record(token: str | None, message: Mapping[str, Any]) -> None:
    if token:
        line = f"{message['code']} {message.get('reason') or ''}\n"
        shared.marker(token, "disconnect").write_text(line, "utf-8")


@fastapi_app.websocket("/ws/echo")
async def echo(websocket: WebSocket, token: str | None = None) -> None:
    offered = websocket.scope["subprotocols"]
    await websocket.accept(subprotocol=next((p for p in SUBPROTOCOLS if p in offered), None))
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            _record(token, message)
            return
        text = message.get("text")
        if text is None:
            await websocket.send_bytes(message["bytes"])
        elif text == "state":
            await websocket.send_json(dict(websocket.scope.get("state", {})))
        elif text == "crash":
            raise RuntimeError(shared.SECRET)
        elif text.startswith("close:"):
            _, code, reason = text.split(":", 2)
            await websocket.close(int(code), reason)
            return
        else:
            await websocket.send_text(text)


@fastapi_app.websocket("/ws/reject")
async def reject(websocket: WebSocket) -> None:
    await websocket.close(code=1008)


@fastapi_app.websocket("/ws/deny")
async def deny(websocket: WebSocket) -> None:
    response = PlainTextResponse(DENIAL_BODY, status_code=401, headers={"x-denied": "yes"})
    await websocket.send_denial_response(response)


@fastapi_app.websocket("/ws/crash")
async def crash(websocket: WebSocket) -> None:
    raise RuntimeError(shared.SECRET)


app = fastapi_app
wsgi_app = ASGIToWSGI(app)
