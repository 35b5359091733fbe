"""Flask, Starlette and a raw ASGI app in one server, mounted side by side.

Under uvicorn (one ASGI app; the Flask app runs through WSGIToASGI)::

    uvicorn examples.mixed_mount.app:app
    python examples/mixed_mount/app.py

Under gunicorn (the same mix as one WSGI app; the Starlette and raw apps run
through ASGIToWSGI, the Flask app is reached without a double bridge only when
mounted alone, and the lifespans of the ASGI mounts run once per worker)::

    gunicorn -k gthread --threads 8 examples.mixed_mount.app:wsgi_app

Routes: ``/`` (Flask, the legacy default), ``/api/...`` (Starlette, with lifespan
state), ``/health`` (a raw ASGI app).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

from flask import Flask, Response, jsonify, request, url_for
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bridge import Mount, to_wsgi
from bridge.types import Receive, Scope, Send

legacy = Flask(__name__)


@legacy.get("/")
def home() -> Response:
    return jsonify(
        app="flask",
        script_name=request.environ["SCRIPT_NAME"],
        path_info=request.environ["PATH_INFO"],
        about_url=url_for("about"),
    )


@legacy.get("/about")
def about() -> Response:
    return jsonify(app="flask", page="about")


@contextlib.asynccontextmanager
async def api_lifespan(app: Starlette) -> AsyncIterator[dict[str, object]]:
    yield {"greeting": "hello from the API's lifespan"}


async def api_index(request: Request) -> JSONResponse:
    return JSONResponse(
        {
            "app": "starlette",
            "root_path": request.scope["root_path"],
            "greeting": request.state.greeting,
            "items_url": str(request.url_for("items")),
        }
    )


async def api_items(request: Request) -> JSONResponse:
    return JSONResponse({"items": [1, 2, 3]})


api = Starlette(
    routes=[Route("/", api_index), Route("/items", api_items, name="items")],
    lifespan=api_lifespan,
)


async def health(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"2")],
        }
    )
    await send({"type": "http.response.body", "body": b"ok"})


app = Mount({"/api": api, "/health": health}, default=legacy)
wsgi_app = to_wsgi(app)

if __name__ == "__main__":
    import uvicorn

    uvicorn.run(
        app, host=os.environ.get("HOST", "127.0.0.1"), port=int(os.environ.get("PORT", "8000"))
    )
