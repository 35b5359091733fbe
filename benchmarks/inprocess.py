"""In-process measurements: the adapters called directly, no server, no sockets.

* WSGI -> ASGI: an asyncio loop awaits ``app(scope, receive, send)`` back to back;
  ``receive`` hands over the (empty) request body, then waits until the response is
  complete and answers ``http.disconnect``, as servers do.
* ASGI -> WSGI: this thread calls ``app(environ, start_response)``, iterates and
  closes the result, as a WSGI server's worker does.

The figure is the mean wall time per request (or per 10 MiB response) of one
measurement; each round measures every implementation once, in turn.
"""

from __future__ import annotations

import asyncio
import gc
import io
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from . import apps
from .report import Check, Figures, at_most_ratio
from .settings import Settings

_DISCONNECT = {"type": "http.disconnect"}
_SCOPE: dict[str, Any] = {
    "type": "http",
    "asgi": {"version": "3.0", "spec_version": "2.3"},
    "http_version": "1.1",
    "method": "GET",
    "scheme": "http",
    "path": "/",
    "raw_path": b"/",
    "query_string": b"",
    "root_path": "",
    "headers": [
        (b"host", b"127.0.0.1:8000"),
        (b"user-agent", b"bridge-benchmarks"),
        (b"accept", b"*/*"),
    ],
    "client": ("127.0.0.1", 50000),
    "server": ("127.0.0.1", 8000),
}
_ENVIRON: dict[str, Any] = {
    "REQUEST_METHOD": "GET",
    "SCRIPT_NAME": "",
    "PATH_INFO": "/",
    "QUERY_STRING": "",
    "SERVER_NAME": "127.0.0.1",
    "SERVER_PORT": "8000",
    "SERVER_PROTOCOL": "HTTP/1.1",
    "REMOTE_ADDR": "127.0.0.1",
    "REMOTE_PORT": "50000",
    "HTTP_HOST": "127.0.0.1:8000",
    "HTTP_USER_AGENT": "bridge-benchmarks",
    "HTTP_ACCEPT": "*/*",
    "wsgi.version": (1, 0),
    "wsgi.url_scheme": "http",
    "wsgi.errors": sys.stderr,
    "wsgi.multithread": True,
    "wsgi.multiprocess": False,
    "wsgi.run_once": False,
}


class _Connection:
    """The server side of one in-process ASGI request."""

    __slots__ = ("_done", "_request", "received", "status")

    def __init__(self) -> None:
        self._request: dict[str, Any] | None = {
            "type": "http.request",
            "body": b"",
            "more_body": False,
        }
        self._done: asyncio.Future[None] | None = None
        self.received = 0
        self.status = 0

    async def receive(self) -> dict[str, Any]:
        request = self._request
        if request is not None:
            self._request = None
            return request
        if self._done is None:
            self._done = asyncio.get_running_loop().create_future()
        await self._done
        return _DISCONNECT

    async def send(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "http.response.body":
            self.received += len(message.get("body", b""))
            if not message.get("more_body", False):
                if self._done is None:
                    self._done = asyncio.get_running_loop().create_future()
                if not self._done.done():
                    self._done.set_result(None)
        elif kind == "http.response.start":
            self.status = message["status"]


async def _asgi_calls(app: Any, count: int) -> tuple[float, int, int]:
    """Call ``app`` ``count`` times; (seconds per call, last status, last body size)."""
    scope = _SCOPE
    connection = _Connection()
    start = time.perf_counter()
    for _ in range(count):
        connection = _Connection()
        await app(dict(scope), connection.receive, connection.send)
    elapsed = time.perf_counter() - start
    return elapsed / count, connection.status, connection.received


def _wsgi_calls(app: Any, count: int) -> tuple[float, str, int]:
    """Call ``app`` ``count`` times; (seconds per call, last status, last body size)."""
    template = _ENVIRON
    status: list[str] = []
    received = 0

    def start_response(line: str, headers: Any, exc_info: Any = None) -> Any:
        status.append(line)
        return None

    start = time.perf_counter()
    for _ in range(count):
        environ = dict(template)
        environ["wsgi.input"] = io.BytesIO(b"")
        status.clear()
        result = app(environ, start_response)
        received = 0
        try:
            for chunk in result:
                received += len(chunk)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
    elapsed = time.perf_counter() - start
    return elapsed / count, status[0] if status else "", received


def _measure_interleaved(
    figures: Figures,
    group: str,
    case: str,
    impls: dict[str, Any],
    run: Callable[[Any, int], tuple[float, object, int]],
    *,
    count: int,
    rounds: int,
    expect_size: int,
) -> None:
    # Warm up (threads, loops, caches) and check every implementation answers right.
    for impl, app in impls.items():
        _, status, size = run(app, max(3, count // 10))
        if status not in (200, "200 OK") or size != expect_size:
            raise RuntimeError(f"{case}/{impl}: got status {status!r} with {size} bytes.")
    for _round in range(rounds):
        for impl, app in impls.items():
            gc.collect()
            seconds, _, _ = run(app, count)
            figures.add(group, case, impl, "s", seconds)


def _w2a_runner(loop: asyncio.AbstractEventLoop) -> Callable[[Any, int], tuple[float, object, int]]:
    def run(app: Any, count: int) -> tuple[float, object, int]:
        return loop.run_until_complete(_asgi_calls(app, count))

    return run


def run_inprocess(settings: Settings, figures: Figures) -> list[Check]:
    """Added cost per request of a trivial app, both directions."""
    group = "inprocess"
    loop = asyncio.new_event_loop()
    try:
        w2a = {"native ASGI": apps.asgi_hello}
        w2a.update({impl: wrap(apps.wsgi_hello) for impl, wrap in apps.W2A_ADAPTERS.items()})
        _measure_interleaved(
            figures,
            group,
            "WSGI->ASGI hello",
            w2a,
            _w2a_runner(loop),
            count=settings.inprocess_requests,
            rounds=settings.rounds,
            expect_size=len(apps.HELLO),
        )
    finally:
        _close_loop(loop)
    a2w: dict[str, Any] = {"native WSGI": apps.wsgi_hello}
    a2w.update({impl: wrap(apps.asgi_hello) for impl, wrap in apps.A2W_ADAPTERS.items()})
    _measure_interleaved(
        figures,
        group,
        "ASGI->WSGI hello",
        a2w,
        _wsgi_calls,
        count=settings.inprocess_requests,
        rounds=settings.rounds,
        expect_size=len(apps.HELLO),
    )
    _close_a2w(a2w.values())
    checks = [
        at_most_ratio(
            figures,
            group,
            "WSGI->ASGI hello",
            "WSGI->ASGI trivial app, added cost per request",
            "a2wsgi",
            0.2,
            baseline_label="a2wsgi",
            native_impl="native ASGI",
        )
    ]
    for peer in ("asgiref", "uvicorn_old"):
        check = at_most_ratio(
            figures,
            group,
            "WSGI->ASGI hello",
            f"WSGI->ASGI trivial app, added cost vs {peer}",
            peer,
            1.0,
            baseline_label=peer,
            native_impl="native ASGI",
        )
        check.passed = None  # information only: the issue sets no target against it
        check.target = "(info)"
        checks.append(check)
    checks.append(
        at_most_ratio(
            figures,
            group,
            "ASGI->WSGI hello",
            "ASGI->WSGI trivial app, added cost per request",
            "a2wsgi",
            0.2,
            baseline_label="a2wsgi",
            native_impl="native WSGI",
        )
    )
    return checks


def run_streams_inprocess(settings: Settings, figures: Figures) -> list[Check]:
    """A 10 MiB response in 64 KiB chunks, both directions."""
    group = "streams"
    size, chunk = apps.STREAM_SIZE, apps.STREAM_CHUNK
    loop = asyncio.new_event_loop()
    try:
        w2a: dict[str, Any] = {"native ASGI": apps.make_asgi_stream(size, chunk)}
        wsgi_stream = apps.make_wsgi_stream(size, chunk)
        w2a.update({impl: wrap(wsgi_stream) for impl, wrap in apps.W2A_ADAPTERS.items()})
        _measure_interleaved(
            figures,
            group,
            "WSGI->ASGI 10 MiB response, in process",
            w2a,
            _w2a_runner(loop),
            count=settings.stream_repeats,
            rounds=settings.rounds,
            expect_size=size,
        )
    finally:
        _close_loop(loop)
    asgi_stream = apps.make_asgi_stream(size, chunk)
    a2w: dict[str, Any] = {"native WSGI": apps.make_wsgi_stream(size, chunk)}
    a2w.update({impl: wrap(asgi_stream) for impl, wrap in apps.A2W_ADAPTERS.items()})
    _measure_interleaved(
        figures,
        group,
        "ASGI->WSGI 10 MiB response, in process",
        a2w,
        _wsgi_calls,
        count=settings.stream_repeats,
        rounds=settings.rounds,
        expect_size=size,
    )
    _close_a2w(a2w.values())
    return [
        at_most_ratio(
            figures,
            group,
            f"{direction} 10 MiB response, in process",
            f"{direction} 10 MiB response in 64 KiB chunks, in process",
            "a2wsgi",
            0.2,
            baseline_label="a2wsgi",
        )
        for direction in ("WSGI->ASGI", "ASGI->WSGI")
    ]


def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
    try:
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        loop.close()


def _close_a2w(adapters: Sequence[Any] | Any) -> None:
    for adapter in adapters:
        close = getattr(adapter, "close", None)
        if close is not None and type(adapter).__module__.startswith("bridge"):
            close()
