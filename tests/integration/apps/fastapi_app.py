"""A FastAPI app, served by WSGI servers through ``bridge.ASGIToWSGI`` as ``wsgi_app``."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import BackgroundTasks, FastAPI, Request
from fastapi.responses import FileResponse, PlainTextResponse, Response, StreamingResponse

from bridge import ASGIToWSGI

from . import _asgi_shared as shared

NAME = "fastapi"


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
    yield shared.startup_state(NAME)
    shared.record_shutdown(NAME)


fastapi_app = FastAPI(lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)


@fastapi_app.get("/", response_class=PlainTextResponse)
async def index() -> str:
    return "ok\n"


@fastapi_app.get("/json")
async def json_document(request: Request) -> dict[str, Any]:
    return shared.describe(NAME, request)


@fastapi_app.post("/form")
async def form(request: Request) -> dict[str, Any]:
    return await shared.form_report(request)


@fastapi_app.post("/upload")
async def upload(request: Request) -> dict[str, Any]:
    return await shared.upload_report(request)


@fastapi_app.get("/sse")
async def sse(token: str) -> StreamingResponse:
    return StreamingResponse(shared.two_events(token), media_type="text/event-stream")


@fastapi_app.post("/release/{token}")
async def release(token: str) -> dict[str, str]:
    shared.RELEASED.add(token)
    return {"released": token}


@fastapi_app.get("/forever")
async def forever(request: Request, token: str) -> StreamingResponse:
    return shared.DisconnectRecordingResponse(shared.ticks(request, token), token)


@fastapi_app.post("/background")
async def background(token: str, tasks: BackgroundTasks) -> dict[str, str]:
    tasks.add_task(shared.background_job, token)
    return {"queued": token}


@fastapi_app.get("/background/{token}")
async def background_status(token: str) -> dict[str, Any]:
    return shared.background_status(token)


@fastapi_app.get("/error")
async def error() -> None:
    raise RuntimeError(shared.SECRET)


@fastapi_app.post("/refuse")
async def refuse() -> Response:
    # Refuses without reading the body: a client that expects 100-continue never sends it.
    return Response("no", status_code=401)


@fastapi_app.get("/download")
async def download(size: int, token: str) -> StreamingResponse:
    return shared.download(size, token)


@fastapi_app.get("/file")
async def file(token: str) -> FileResponse:
    return shared.file_response(token)


app = shared.crash_before_start(fastapi_app)
wsgi_app = shared.record_file_wrapper(ASGIToWSGI(app))
