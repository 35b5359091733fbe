"""The applications the benchmarks serve, in process and from server subprocesses.

Servers import them as ``benchmarks.apps:NAME`` (``uvicorn benchmarks.apps:hello_bridge``,
``gunicorn benchmarks.apps:hello_wsgi``). Every name is built on first access by a
factory in :data:`FACTORIES`, so a server process imports only the adapter and the
framework it serves: no peer's import cost or threads leak into another's figures.

Naming: ``<case>_<implementation>``. Implementations:

* ``asgi`` / ``wsgi``: the native app, served directly (the baseline).
* ``bridge``: the project's adapter (``WSGIToASGI`` for a WSGI app on an ASGI
  server, ``ASGIToWSGI`` for an ASGI app on a WSGI server).
* ``a2wsgi``, ``asgiref``, ``uvicorn_old``: the peers.

Every app answers the same bytes whatever wraps it, so the figures compare only the
cost of the adapter.
"""

from __future__ import annotations

import asyncio
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any

HELLO = b"Hello, world!"
KIB = 1024
MIB = 1024 * 1024
STREAM_SIZE = 10 * MIB
"""The in-process stream: 10 MiB ..."""
STREAM_CHUNK = 64 * KIB
"""... in 64 KiB chunks."""
BIG_SIZE = 256 * MIB
"""The size of the download and upload through a server."""
DRIP_INTERVAL = 0.1
"""Seconds between the chunks of the drip response (first chunk after one interval)."""
DRIP_CHUNKS = 3
SLOW_SECONDS = 0.1
"""How long the blocking route of the concurrency test sleeps."""

_HELLO_HEADERS_WSGI = [("Content-Type", "text/plain"), ("Content-Length", str(len(HELLO)))]
_HELLO_HEADERS_ASGI = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(HELLO))]

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]
Scope = dict[str, Any]
ASGIApp = Callable[..., Any]


# Native WSGI apps.


def wsgi_hello(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", _HELLO_HEADERS_WSGI)
    return [HELLO]


def wsgi_upload(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """Read the request body in 64 KiB pieces, discard it, answer its length."""
    stream = environ["wsgi.input"]
    left = int(environ.get("CONTENT_LENGTH") or 0)
    total = 0
    while left > 0:
        data = stream.read(min(STREAM_CHUNK, left))
        if not data:
            break
        total += len(data)
        left -= len(data)
    body = b"%d" % total
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def requested_size(query: str, default: int) -> int:
    """``size=N`` from a query string (readiness probes and warm-ups ask for a few bytes)."""
    if query.startswith("size="):
        return int(query[5:])
    return default


def make_wsgi_stream(default_size: int, chunk: int) -> WSGIApp:
    """A WSGI app answering ``size`` bytes in ``chunk``-byte pieces, with Content-Length."""
    piece = b"x" * chunk

    def pieces(size: int) -> Iterator[bytes]:
        count, rest = divmod(size, chunk)
        for _ in range(count):
            yield piece
        if rest:
            yield piece[:rest]

    def wsgi_stream(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        size = requested_size(environ.get("QUERY_STRING", ""), default_size)
        start_response(
            "200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(size))]
        )
        return pieces(size)

    return wsgi_stream


def wsgi_drip(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """Yield a chunk every ``DRIP_INTERVAL`` seconds, the first one after one interval."""
    start_response("200 OK", [("Content-Type", "text/plain")])

    def drip() -> Iterator[bytes]:
        for index in range(DRIP_CHUNKS):
            time.sleep(DRIP_INTERVAL)
            yield b"tick %d\n" % index

    return drip()


def wsgi_sleep(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """A blocking handler: sleeps ``SLOW_SECONDS`` in the worker thread."""
    time.sleep(SLOW_SECONDS)
    start_response("200 OK", _HELLO_HEADERS_WSGI)
    return [HELLO]


# Native ASGI apps.


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def asgi_hello(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        await _lifespan(receive, send)
        return
    await send({"type": "http.response.start", "status": 200, "headers": _HELLO_HEADERS_ASGI})
    await send({"type": "http.response.body", "body": HELLO})


async def asgi_upload(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        await _lifespan(receive, send)
        return
    total = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return
        total += len(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"%d" % total
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))],
        }
    )
    await send({"type": "http.response.body", "body": body})


def make_asgi_stream(default_size: int, chunk: int) -> ASGIApp:
    """An ASGI app answering ``size`` bytes in ``chunk``-byte messages, with Content-Length."""
    piece = b"x" * chunk

    async def asgi_stream(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await _lifespan(receive, send)
            return
        size = requested_size(scope["query_string"].decode("latin-1"), default_size)
        count, rest = divmod(size, chunk)
        headers = [
            (b"content-type", b"application/octet-stream"),
            (b"content-length", b"%d" % size),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for _ in range(count):
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": piece[:rest]})

    return asgi_stream


async def asgi_drip(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        await _lifespan(receive, send)
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    for index in range(DRIP_CHUNKS):
        await asyncio.sleep(DRIP_INTERVAL)
        await send({"type": "http.response.body", "body": b"tick %d\n" % index, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


def make_concurrency_app(wrap: Callable[[WSGIApp], ASGIApp]) -> ASGIApp:
    """``/slow``: the blocking WSGI handler through ``wrap``; anything else: native ASGI hello."""
    slow = wrap(wsgi_sleep)

    async def router(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/slow":
            await slow(scope, receive, send)
        else:
            await asgi_hello(scope, receive, send)

    return router


# Frameworks.


def make_flask() -> WSGIApp:
    import flask

    app = flask.Flask("bench")

    @app.route("/")
    def hello() -> str:
        return "Hello, world!"

    return app


def make_starlette() -> ASGIApp:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse("Hello, world!")

    return Starlette(routes=[Route("/", hello)])


# Adapters (imported on use, so a server loads only its own).


def bridge_w2a(app: WSGIApp) -> ASGIApp:
    from bridge import WSGIToASGI

    return WSGIToASGI(app)


def bridge_a2w(app: ASGIApp) -> WSGIApp:
    from bridge import ASGIToWSGI

    return ASGIToWSGI(app)


def a2wsgi_w2a(app: WSGIApp) -> ASGIApp:
    from a2wsgi import WSGIMiddleware

    return WSGIMiddleware(app)  # type: ignore[arg-type]


def a2wsgi_a2w(app: ASGIApp) -> WSGIApp:
    from a2wsgi import ASGIMiddleware

    return ASGIMiddleware(app)


def asgiref_w2a(app: WSGIApp) -> ASGIApp:
    from asgiref.wsgi import WsgiToAsgi

    return WsgiToAsgi(app)


def uvicorn_old_w2a(app: WSGIApp) -> ASGIApp:
    """uvicorn's own, deprecated WSGI middleware (the private class, not the a2wsgi alias)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from uvicorn.middleware.wsgi import _WSGIMiddleware

        return _WSGIMiddleware(app)


W2A_ADAPTERS: dict[str, Callable[[WSGIApp], ASGIApp]] = {
    "bridge": bridge_w2a,
    "a2wsgi": a2wsgi_w2a,
    "asgiref": asgiref_w2a,
    "uvicorn_old": uvicorn_old_w2a,
}
"""WSGI -> ASGI adapters, by implementation name."""

A2W_ADAPTERS: dict[str, Callable[[ASGIApp], WSGIApp]] = {
    "bridge": bridge_a2w,
    "a2wsgi": a2wsgi_a2w,
}
"""ASGI -> WSGI adapters, by implementation name."""


def _big_wsgi_download() -> WSGIApp:
    return make_wsgi_stream(BIG_SIZE, STREAM_CHUNK)


def _big_asgi_download() -> ASGIApp:
    return make_asgi_stream(BIG_SIZE, STREAM_CHUNK)


def _handoff_floor() -> WSGIApp:
    from .floor import HandoffFloor

    return HandoffFloor(HELLO, _HELLO_HEADERS_WSGI)


def _factories() -> dict[str, Callable[[], Any]]:
    table: dict[str, Callable[[], Any]] = {
        "hello_asgi": lambda: asgi_hello,
        "hello_wsgi": lambda: wsgi_hello,
        "upload_asgi": lambda: asgi_upload,
        "upload_wsgi": lambda: wsgi_upload,
        "download_asgi": _big_asgi_download,
        "download_wsgi": _big_wsgi_download,
        "drip_asgi": lambda: asgi_drip,
        "drip_wsgi": lambda: wsgi_drip,
        "concurrency_asgi": lambda: make_concurrency_app(lambda app: asgi_hello),
    }
    # A WSGI app on an ASGI server.
    for impl, wrap in W2A_ADAPTERS.items():
        table[f"hello_w2a_{impl}"] = lambda wrap=wrap: wrap(wsgi_hello)
        table[f"flask_w2a_{impl}"] = lambda wrap=wrap: wrap(make_flask())
        table[f"upload_w2a_{impl}"] = lambda wrap=wrap: wrap(wsgi_upload)
        table[f"download_w2a_{impl}"] = lambda wrap=wrap: wrap(_big_wsgi_download())
        table[f"drip_w2a_{impl}"] = lambda wrap=wrap: wrap(wsgi_drip)
        table[f"concurrency_w2a_{impl}"] = lambda wrap=wrap: make_concurrency_app(wrap)
    # What one hop to a loop thread and back costs alone, with no ASGI app behind it.
    table["hello_a2w_floor"] = _handoff_floor
    # An ASGI app on a WSGI server.
    for impl, wrap in A2W_ADAPTERS.items():
        table[f"hello_a2w_{impl}"] = lambda wrap=wrap: wrap(asgi_hello)
        table[f"starlette_a2w_{impl}"] = lambda wrap=wrap: wrap(make_starlette())
        table[f"upload_a2w_{impl}"] = lambda wrap=wrap: wrap(asgi_upload)
        table[f"download_a2w_{impl}"] = lambda wrap=wrap: wrap(_big_asgi_download())
        table[f"drip_a2w_{impl}"] = lambda wrap=wrap: wrap(asgi_drip)
    return table


FACTORIES: dict[str, Callable[[], Any]] = _factories()
"""Every app a server can import from this module, by attribute name."""


def __getattr__(name: str) -> Any:
    factory = FACTORIES.get(name)
    if factory is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    app = factory()
    globals()[name] = app
    return app
