"""What the ASGI apps served through ``bridge.ASGIToWSGI`` share; each framework routes to it.

The test process and a server subprocess talk through files in the directory named
by ``$BRIDGE_ASGI_TEST_DIR`` (tokens are hex, so every name is safe):

* ``<token>.release``: written by the test once it has read the first event of
  ``/sse``; :func:`wait_released` also accepts ``POST /release/<token>`` for servers
  where that request reaches the same process.
* ``<token>.go`` and ``<token>.done``: the background task waits for the first and
  writes the second.
* ``<token>.disconnect``: one line per way the app learnt that the client of
  ``/forever`` went away (``receive:http.disconnect`` or ``send:<exception type>``).
* ``<token>.sent``: how many bytes ``/download`` has produced so far.
* ``<token>.file``: written by the test, sent by ``/file`` as a file response
  (``http.response.pathsend``); ``<token>.file_wrapper`` says what served it: the
  type the server's ``wsgi.file_wrapper`` returned, or ``absent``.
* ``startup-<pid>`` and ``shutdown-<pid>``: a line appended by lifespan startup and
  shutdown in process ``<pid>`` (one line each when each phase ran once).
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import anyio
from starlette.datastructures import UploadFile
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, StreamingResponse
from starlette.types import Receive, Scope, Send

from bridge.types import ASGIApp, Environ, StartResponse, WSGIApp
from bridge.types import Receive as BridgeReceive
from bridge.types import Scope as BridgeScope
from bridge.types import Send as BridgeSend

DIR_ENV = "BRIDGE_ASGI_TEST_DIR"
SECRET = "secret-7c2e0b: must never reach a client"
"""The message of the exceptions ``/error`` and ``/crash`` raise; for server logs only."""
STATE_VALUE = "set by lifespan startup"
POLL_SECONDS = 0.02
WAIT_SECONDS = 10.0
"""How long the app waits for a signal from the test before giving up."""
TICK_SECONDS = 0.05
FOREVER_TICKS = 1200
"""An "infinite" stream still ends after a minute, so a missed disconnect cannot spin."""

_TOKEN = re.compile(r"[0-9a-f]{8,64}")

RELEASED: set[str] = set()
"""Tokens released by ``POST /release/<token>`` in this process."""


def marker(token: str, suffix: str) -> Path:
    """``$BRIDGE_ASGI_TEST_DIR/<token>.<suffix>``; the token must be hex."""
    if not _TOKEN.fullmatch(token):
        raise ValueError(f"Expected a hex token, but got {token!r}.")
    return Path(os.environ[DIR_ENV]) / f"{token}.{suffix}"


def _record_phase(phase: str, app: str) -> None:
    with (Path(os.environ[DIR_ENV]) / f"{phase}-{os.getpid()}").open("a", encoding="ascii") as file:
        file.write(f"{app}\n")


def startup_state(app: str) -> dict[str, Any]:
    """The lifespan state: set once per process, by the process that runs startup.

    Also appends ``app`` to ``startup-<pid>``.
    """
    _record_phase("startup", app)
    return {"app": app, "value": STATE_VALUE, "startup_pid": os.getpid()}


def record_shutdown(app: str) -> None:
    """Lifespan shutdown ran in this process: appends ``app`` to ``shutdown-<pid>``."""
    _record_phase("shutdown", app)


def describe(app: str, request: Request) -> dict[str, Any]:
    """The ``/json`` document: the request, the serving pid and the lifespan state."""
    return {
        "app": app,
        "method": request.method,
        "path": request.url.path,
        "query": request.url.query,
        "pid": os.getpid(),
        "state": dict(request.scope.get("state", {})),
    }


async def form_report(request: Request) -> dict[str, Any]:
    """The fields of a form post, and for each file its name, size and sha256."""
    fields: dict[str, str] = {}
    files: dict[str, dict[str, Any]] = {}
    async with request.form() as form:
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                data = await value.read()
                files[name] = {
                    "filename": value.filename,
                    "content_type": value.content_type,
                    "size": len(data),
                    "sha256": hashlib.sha256(data).hexdigest(),
                }
            else:
                fields[name] = value
    return {"fields": fields, "files": files}


DOWNLOAD_CHUNK = 65536


def _status_kib(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    raise LookupError(field)


def reset_peak_memory() -> int:
    """Reset this process's peak resident memory (Linux); return the baseline in KiB.

    The baseline is the resident size after the reset, or the peak so far where the
    process may not reset it (a daemon that changed its user, as mod_wsgi's do): what
    a transfer adds to the peak (``VmHWM``) is then measured from either.
    """
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return _status_kib("VmHWM")
    return _status_kib("VmRSS")


def peak_memory() -> int:
    """This process's peak resident memory since the last reset, in KiB."""
    return _status_kib("VmHWM")


async def upload_report(request: Request) -> dict[str, Any]:
    """The body's size and sha256, how the WSGI server framed it in the environ, and
    the serving process's resident memory before and its peak during the upload (KiB)."""
    rss_before = reset_peak_memory()
    digest = hashlib.sha256()
    size = 0
    chunks = 0
    async for chunk in request.stream():
        digest.update(chunk)
        size += len(chunk)
        chunks += 1
    environ: Mapping[str, Any] = request.scope.get("wsgi_environ", {})
    return {
        "size": size,
        "sha256": digest.hexdigest(),
        "chunks": chunks,
        "content_length": environ.get("CONTENT_LENGTH") or None,
        "input_terminated": bool(environ.get("wsgi.input_terminated")),
        "transfer_encoding": request.headers.get("transfer-encoding"),
        "rss_before_kib": rss_before,
        "peak_kib": peak_memory(),
    }


async def _zeros(size: int, token: str) -> AsyncIterator[bytes]:
    sent = marker(token, "sent")
    for start in range(0, size, DOWNLOAD_CHUNK):
        if start % (16 * DOWNLOAD_CHUNK) == 0:
            sent.write_text(str(start), "ascii")
        # A new object each time: chunks held anywhere on the way all take memory.
        yield bytes(min(DOWNLOAD_CHUNK, size - start))
    sent.write_text(str(size), "ascii")


def download(size: int, token: str) -> StreamingResponse:
    """``size`` zero bytes, produced as fast as ``send()`` takes them.

    ``<token>.sent`` holds how many bytes the app has produced (every MiB). Headers:
    ``X-Pid`` and ``X-Rss-Before-Kib`` (after a peak reset), so the test can read the
    serving process's peak memory during the download.
    """
    headers = {"X-Pid": str(os.getpid()), "X-Rss-Before-Kib": str(reset_peak_memory())}
    body = _zeros(size, token)
    return StreamingResponse(body, media_type="application/octet-stream", headers=headers)


def file_response(token: str) -> FileResponse:
    """``<token>.file``, sent with ``http.response.pathsend`` under ``ASGIToWSGI``."""
    return FileResponse(marker(token, "file"), media_type="application/octet-stream")


def record_file_wrapper(app: WSGIApp) -> WSGIApp:
    """``app``, recording what served ``/file?token=...`` in ``<token>.file_wrapper``.

    The environ is left as it is (gunicorn checks the response's type against its
    ``wsgi.file_wrapper``): the record is the type of the iterable ``app`` returned,
    or ``absent`` when the server offers no ``wsgi.file_wrapper``.
    """

    def recorded(environ: Environ, start_response: StartResponse) -> Any:
        result = app(environ, start_response)
        token = environ.get("QUERY_STRING", "").partition("token=")[2]
        if environ.get("PATH_INFO") == "/file" and token:
            kind = type(result)
            used = f"{kind.__module__}.{kind.__qualname__}"
            if environ.get("wsgi.file_wrapper") is None:
                used = "absent"
            marker(token, "file_wrapper").write_text(f"{used}\n", "ascii")
        return result

    return recorded


def sse(event: str, data: str) -> bytes:
    return f"event: {event}\ndata: {data}\n\n".encode()


async def poll(condition: Callable[[], bool]) -> bool:
    """Wait until ``condition()`` holds, at most :data:`WAIT_SECONDS`; False if it never did."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        await anyio.sleep(POLL_SECONDS)


async def wait_released(token: str) -> bool:
    """Wait (bounded) until the test releases ``token``; False when it never did."""
    path = marker(token, "release")
    return await poll(lambda: token in RELEASED or path.exists())


async def two_events(token: str) -> AsyncIterator[bytes]:
    """An event, then (only once the test has released ``token``) a second one."""
    yield sse("first", f"pid={os.getpid()}")
    released = await wait_released(token)
    yield sse("second", f"released={'yes' if released else 'no'}")


def record_disconnect(token: str, how: str) -> None:
    with marker(token, "disconnect").open("a", encoding="ascii") as file:
        file.write(f"{how}\n")


async def ticks(request: Request, token: str) -> AsyncIterator[bytes]:
    """An event every 50 ms until the client goes away (the way FastAPI's docs poll)."""
    for tick in range(FOREVER_TICKS):
        if await request.is_disconnected():
            record_disconnect(token, "receive:http.disconnect")
            return
        yield sse("tick", str(tick))
        await anyio.sleep(TICK_SECONDS)


class DisconnectRecordingResponse(StreamingResponse):
    """A stream that records a disconnect reported by ``send()`` rather than ``receive()``."""

    def __init__(self, content: AsyncIterable[bytes], token: str) -> None:
        super().__init__(content, media_type="text/event-stream")
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except (ClientDisconnect, OSError) as exc:
            record_disconnect(self.token, f"send:{type(exc).__name__}")


async def background_job(token: str) -> None:
    """Wait (bounded) for ``<token>.go``, then write ``<token>.done``."""
    went = await poll(marker(token, "go").exists)
    marker(token, "done").write_text(f"pid={os.getpid()} go={'yes' if went else 'no'}\n", "ascii")


def background_status(token: str) -> dict[str, Any]:
    done = marker(token, "done")
    return {"done": done.exists(), "detail": done.read_text("ascii") if done.exists() else ""}


def crash_before_start(app: ASGIApp) -> ASGIApp:
    """``app``, except that ``/crash`` raises before any response message.

    Starlette's ``ServerErrorMiddleware`` answers exceptions from routes itself, so
    this is how an exception reaches the bridge before the response started.
    """

    async def guarded(scope: BridgeScope, receive: BridgeReceive, send: BridgeSend) -> None:
        if scope["type"] == "http" and scope["path"] == "/crash":
            raise RuntimeError(SECRET)
        await app(scope, receive, send)

    return guarded
