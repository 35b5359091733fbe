"""A Starlette app, served by WSGI servers through ``bridge.ASGIToWSGI`` as ``wsgi_app``."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from bridge import ASGIToWSGI

from . import _asgi_shared as shared

NAME = "starlette"


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
    yield shared.startup_state(NAME)
    shared.record_shutdown(NAME)


async def index(request: Request) -> Response:
    return PlainTextResponse("ok\n")


async def json_document(request: Request) -> Response:
    return JSONResponse(shared.describe(NAME, request))


async def form(request: Request) -> Response:
    return JSONResponse(await shared.form_report(request))


async def upload(request: Request) -> Response:
    return JSONResponse(await shared.upload_report(request))


async def sse(request: Request) -> Response:
    return StreamingResponse(
        shared.two_events(request.query_params["token"]), media_type="text/event-stream"
    )


async def release(request: Request) -> Response:
    shared.RELEASED.add(request.path_params["token"])
    return JSONResponse({"released": request.path_params["token"]})


async def forever(request: Request) -> Response:
    token = request.query_params["token"]
    return shared.DisconnectRecordingResponse(shared.ticks(request, token), token)


async def background(request: Request) -> Response:
    token = request.query_params.get("token") or uuid.uuid4().hex
    task = BackgroundTask(shared.background_job, token)
    return JSONResponse({"queued": token}, background=task)


async def background_status(request: Request) -> Response:
    return JSONResponse(shared.background_status(request.path_params["token"]))


async def error(request: Request) -> Response:
    raise RuntimeError(shared.SECRET)


async def refuse(request: Request) -> Response:
    # Refuses without reading the body: a client that expects 100-continue never sends it.
    return PlainTextResponse("no", status_code=401)


async def download(request: Request) -> Response:
    params = request.query_params
    return shared.download(int(params["size"]), params["token"])


async def file(request: Request) -> Response:
    return shared.file_response(request.query_params["token"])


starlette_app = Starlette(
    routes=[
        Route("/", index),
        Route("/json", json_document),
        Route("/form", form, methods=["POST"]),
        Route("/upload", upload, methods=["POST"]),
        Route("/sse", sse),
        Route("/release/{token}", release, methods=["POST"]),
        Route("/forever", forever),
        Route("/background", background, methods=["POST"]),
        Route("/background/{token}", background_status),
        Route("/error", error),
        Route("/refuse", refuse, methods=["POST"]),
        Route("/download", download),
        Route("/file", file),
    ],
    lifespan=lifespan,
)
app = shared.crash_before_start(starlette_app)
wsgi_app = shared.record_file_wrapper(ASGIToWSGI(app))
