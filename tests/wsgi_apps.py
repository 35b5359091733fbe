"""Reference WSGI apps and tiny ASGI driving helpers for the WSGIToASGI tests.

The apps are plain PEP 3333 callables; tests wrap the valid ones in
``wsgiref.validate.validator``. The helpers script an ASGI server from inside the
test: :class:`Receiver` plays ``receive()``, :class:`Transcript` records what the
adapter ``send()``s, and :func:`wait_until` waits for a condition that another
thread makes true, always bounded by ``anyio.fail_after``.
"""

from __future__ import annotations

import itertools
import sys
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any
from urllib.parse import quote
from wsgiref.validate import validator

import anyio

from bridge.types import Environ, Message, Scope, StartResponse, WSGIApp

TIMEOUT = 5.0
"""Upper bound on every wait in these tests; a healthy run never comes close."""

TEXT = [("Content-Type", "text/plain")]
HELLO = b"Hello, world!"


def validated(app: WSGIApp) -> WSGIApp:
    """``app`` wrapped in ``wsgiref.validate.validator`` (PEP 3333 lint both ways)."""
    return validator(app)


# Reference apps.


def hello_app(environ: Environ, start_response: StartResponse) -> list[bytes]:
    start_response("200 OK", [*TEXT, ("Content-Length", str(len(HELLO)))])
    return [HELLO]


def echo_app(environ: Environ, start_response: StartResponse) -> list[bytes]:
    """Answers with the request body, read in one ``read(-1)``."""
    body: bytes = environ["wsgi.input"].read(-1)
    start_response(
        "200 OK",
        [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(body)))],
    )
    return [body]


def echo_lines_app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
    """Streams the request body back line by line, reading it by iteration."""
    start_response("200 OK", TEXT)
    yield from environ["wsgi.input"]


def streaming_app(*chunks: bytes) -> WSGIApp:
    """An app whose response is a generator yielding ``chunks``."""

    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", TEXT)
        yield from chunks

    return app


def raise_before_start_app(environ: Environ, start_response: StartResponse) -> list[bytes]:
    raise RuntimeError("raised before start_response")


def raise_in_generator_before_body_app(
    environ: Environ, start_response: StartResponse
) -> Iterator[bytes]:
    """Calls start_response, yields an empty chunk (headers must stay unsent), raises."""
    start_response("200 OK", TEXT)
    yield b""
    raise RuntimeError("raised before the first non-empty chunk")


def raise_after_start_app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
    start_response("200 OK", TEXT)
    yield b"partial"
    raise RuntimeError("raised after the headers were sent")


def exc_info_app(environ: Environ, start_response: StartResponse) -> list[bytes]:
    """Replaces its 200 with a 500 through exc_info before any body was produced."""
    start_response("200 OK", TEXT)
    try:
        raise ValueError("failed after start_response, before the body")
    except ValueError:
        start_response("500 Internal Server Error", TEXT, sys.exc_info())
    return [b"error page"]


def exc_info_after_start_app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
    """Tries to replace the headers after they were sent: start_response re-raises."""
    start_response("200 OK", TEXT)
    yield b"partial"
    try:
        raise ValueError("failed after the headers were sent")
    except ValueError:
        start_response("500 Internal Server Error", TEXT, sys.exc_info())
    yield b"never sent"


def write_app(environ: Environ, start_response: StartResponse) -> list[bytes]:
    """Uses the legacy write() callable, then returns the rest of the body."""
    write = start_response("200 OK", TEXT)
    write(b"Hello, ")
    write(b"world")
    return [b"!"]


def content_length_app(declared: int, *chunks: bytes, as_list: bool = False) -> WSGIApp:
    """Declares ``Content-Length: declared`` and sends ``chunks``."""

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [*TEXT, ("Content-Length", str(declared))])
        return list(chunks) if as_list else iter(chunks)

    return app


def str_body_app(environ: Environ, start_response: StartResponse) -> list[str]:
    """Broken: a text body instead of bytes."""
    start_response("200 OK", TEXT)
    return ["text is not bytes"]


def str_chunk_app(environ: Environ, start_response: StartResponse) -> Iterator[str]:
    """Broken: yields text instead of bytes."""
    start_response("200 OK", TEXT)
    yield "text is not bytes"


def no_start_response_app(environ: Environ, start_response: StartResponse) -> list[bytes]:
    """Broken: never calls start_response."""
    return [b"body without headers"]


def double_start_response_app(environ: Environ, start_response: StartResponse) -> list[bytes]:
    """Broken: calls start_response twice without exc_info."""
    start_response("200 OK", TEXT)
    start_response("404 Not Found", TEXT)
    return [b"never sent"]


class TrackedBody:
    """A response iterable that records how far it was consumed and whether it was closed.

    ``chunks`` is finite, or None for an endless stream of ``b"x" * chunk_size``.
    ``gate(i)``, when given, runs in the worker thread before chunk ``i`` is
    produced (``i == len(chunks)`` before the end), so a test can hold the app.
    ``fail_at=i`` raises RuntimeError instead of producing chunk ``i``.
    """

    def __init__(
        self,
        chunks: Iterable[bytes] | None = None,
        *,
        chunk_size: int = 1,
        gate: Callable[[int], None] | None = None,
        fail_at: int | None = None,
        close_error: BaseException | None = None,
    ) -> None:
        self._chunks: Iterator[bytes] = (
            itertools.repeat(b"x" * chunk_size) if chunks is None else iter(chunks)
        )
        self._gate = gate
        self._fail_at = fail_at
        self._close_error = close_error
        self.produced = 0
        self.produced_bytes = 0
        self.thread_id: int | None = None
        self.closed = threading.Event()
        self.exhausted = threading.Event()
        self.close_calls = 0

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        self.thread_id = threading.get_ident()
        if self.closed.is_set():
            raise AssertionError("Iterated after close().")
        if self._gate is not None:
            self._gate(self.produced)
        if self._fail_at == self.produced:
            raise RuntimeError(f"failed producing chunk {self.produced}")
        try:
            chunk = next(self._chunks)
        except StopIteration:
            self.exhausted.set()
            raise
        self.produced += 1
        self.produced_bytes += len(chunk)
        return chunk

    def close(self) -> None:
        self.close_calls += 1
        self.closed.set()
        if self._close_error is not None:
            raise self._close_error


def tracked_app(
    body: TrackedBody, headers: list[tuple[str, str]] | None = None, status: str = "200 OK"
) -> WSGIApp:
    """An app that answers with ``body`` (it is created per test, so one request)."""

    def app(environ: Environ, start_response: StartResponse) -> TrackedBody:
        start_response(status, TEXT if headers is None else headers)
        return body

    return app


class RecordingApp:
    """Records the environ (and the body it reads) of each request, answers 200 OK."""

    def __init__(self, *, read_body: bool = True) -> None:
        self.read_body = read_body
        self.environs: list[Environ] = []
        self.bodies: list[bytes] = []

    def __call__(self, environ: Environ, start_response: StartResponse) -> list[bytes]:
        self.environs.append(dict(environ))
        if self.read_body:
            self.bodies.append(environ["wsgi.input"].read(-1))
        start_response("200 OK", [*TEXT, ("Content-Length", "2")])
        return [b"ok"]

    @property
    def environ(self) -> Environ:
        (environ,) = self.environs
        return environ


# ASGI driving helpers.


def http_scope(
    method: str = "GET",
    path: str = "/",
    *,
    query_string: bytes = b"",
    headers: Iterable[tuple[bytes, bytes]] = (),
    root_path: str = "",
    http_version: str = "1.1",
    **extra: Any,
) -> Scope:
    """An ASGI ``http`` scope as a server would build it."""
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": http_version,
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": quote(path.encode("utf-8", "surrogatepass"), safe="/").encode("ascii"),
        "query_string": query_string,
        "root_path": root_path,
        "headers": list(headers),
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "extensions": {},
    }
    scope.update(extra)
    return scope


def body_headers(body: bytes) -> list[tuple[bytes, bytes]]:
    return [(b"content-length", str(len(body)).encode("ascii"))]


class Receiver:
    """A scripted ``receive()``.

    Hands out ``messages`` in order; after that, waits until ``disconnect`` is set
    (forever when it is None, as a live client would) and returns ``http.disconnect``.
    """

    def __init__(self, *messages: Message, disconnect: anyio.Event | None = None) -> None:
        self.messages = list(messages)
        self.disconnect = disconnect
        self.calls = 0

    @classmethod
    def body(cls, *chunks: bytes, disconnect: anyio.Event | None = None) -> Receiver:
        """``http.request`` messages for ``chunks``, the last with ``more_body`` False."""
        messages: list[Message] = [
            {"type": "http.request", "body": chunk, "more_body": index < len(chunks) - 1}
            for index, chunk in enumerate(chunks)
        ]
        return cls(*messages, disconnect=disconnect)

    async def __call__(self) -> Message:
        self.calls += 1
        if self.messages:
            return self.messages.pop(0)
        if self.disconnect is None:
            await anyio.sleep_forever()
        else:
            await self.disconnect.wait()
        return {"type": "http.disconnect"}


class Transcript:
    """A recording ``send()``: every message the adapter sent, in order.

    ``hook(message)``, when given, is awaited after each message is recorded: it
    plays a client that is slow, gone, or that the test wants to watch.
    """

    def __init__(self, hook: Callable[[Message], Awaitable[None]] | None = None) -> None:
        self.messages: list[Message] = []
        self._hook = hook

    async def __call__(self, message: Message) -> None:
        self.messages.append(dict(message))
        if self._hook is not None:
            await self._hook(message)

    @property
    def types(self) -> list[str]:
        return [message["type"] for message in self.messages]

    @property
    def start(self) -> Message:
        starts = [m for m in self.messages if m["type"] == "http.response.start"]
        assert len(starts) == 1, self.messages
        assert self.messages[0] is starts[0], "http.response.start must come first"
        return starts[0]

    @property
    def status(self) -> int:
        status: int = self.start["status"]
        return status

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        headers: list[tuple[bytes, bytes]] = self.start["headers"]
        return headers

    @property
    def bodies(self) -> list[Message]:
        return [m for m in self.messages if m["type"] == "http.response.body"]

    @property
    def body(self) -> bytes:
        return b"".join(m["body"] for m in self.bodies)

    def assert_complete(self) -> bytes:
        """Check the response is one start, then body messages ending the stream."""
        assert self.types[0] == "http.response.start", self.messages
        bodies = self.bodies
        assert bodies, "a response needs at least one body message"
        assert len(bodies) == len(self.messages) - 1, self.messages
        assert all(m.get("more_body") is True for m in bodies[:-1]), self.messages
        assert bodies[-1].get("more_body", False) is False, self.messages
        return self.body


async def wait_until(condition: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    """Poll ``condition`` (made true by another thread) without blocking the loop."""
    try:
        with anyio.fail_after(timeout):
            # Another thread makes it true: there is no loop-side Event to await.
            while not condition():  # noqa: ASYNC110
                await anyio.sleep(0.001)
    except TimeoutError:
        raise AssertionError(f"Timed out waiting until {what}.") from None


def wait_in_thread(event: threading.Event, what: str, timeout: float = TIMEOUT) -> None:
    """Block a worker thread on ``event``, failing the request if it never comes."""
    if not event.wait(timeout):
        raise AssertionError(f"Timed out in the app waiting until {what}.")


def thread_waits_in(thread_id: int | None, function: str, *, blocked_in_c: bool = False) -> bool:
    """True when ``thread_id`` is blocked inside ``function``.

    Blocked means waiting in ``threading``'s ``wait()`` (a condition or event), or,
    with ``blocked_in_c``, in a C call made directly from ``function`` (such as
    ``queue.SimpleQueue.get``), which leaves ``function`` as the innermost frame.
    """
    if thread_id is None:
        return False
    frame = sys._current_frames().get(thread_id)
    if frame is None:
        return False
    if blocked_in_c:
        return frame.f_code.co_name == function
    if frame.f_code.co_name != "wait":
        return False
    while frame is not None:
        if frame.f_code.co_name == function:
            return True
        frame = frame.f_back
    return False
