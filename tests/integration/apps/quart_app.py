"""A small Quart app, served by WSGI servers through ``bridge.ASGIToWSGI`` as ``wsgi_app``."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from typing import Any, cast

from quart import Quart, request

from bridge import ASGIToWSGI
from bridge.types import ASGIApp

from . import _asgi_shared as shared

NAME = "quart"

quart_app = Quart(__name__)
STATE: dict[str, Any] = {}
"""Set by ``before_serving`` (Quart's lifespan startup) in each process."""


@quart_app.before_serving
async def startup() -> None:
    STATE.update(shared.startup_state(NAME))


@quart_app.after_serving
async def shutdown() -> None:
    shared.record_shutdown(NAME)


@quart_app.get("/")
async def index() -> str:
    return "ok\n"


@quart_app.get("/json")
async def json_document() -> dict[str, Any]:
    return {"app": NAME, "path": request.path, "pid": os.getpid(), "state": STATE}


@quart_app.post("/form")
async def form() -> dict[str, Any]:
    fields = await request.form
    files = await request.files
    upload = files["file"]
    data = upload.read()
    return {
        "fields": fields.to_dict(),
        "files": {
            "file": {
                "filename": upload.filename,
                "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
            }
        },
    }


@quart_app.get("/sse")
async def sse() -> tuple[AsyncIterator[bytes], int, dict[str, str]]:
    token = request.args["token"]
    return shared.two_events(token), 200, {"Content-Type": "text/event-stream"}


# Quart annotates the exact asgiref event types; the bridge takes any mapping.
wsgi_app = ASGIToWSGI(cast(ASGIApp, quart_app))
