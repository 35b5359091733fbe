"""In-process tests of ``bridge.ASGIToWSGI``: an ASGI app served as a WSGI app.

The adapter is always wrapped in :func:`wsgiref.validate.validator` when the
request is valid, so every test also checks PEP 3333 on both sides. Requests go
either through ``httpx.Client(transport=httpx.WSGITransport(...))`` or, for the
fine-grained cases (closing the iterable early, ``wsgi.input_terminated``, an input
that raises, ``wsgi.file_wrapper``), straight into the adapter with a hand-built
environ and a recording ``start_response``.

The app runs on the adapter's loop thread while the test runs in the WSGI thread:
they synchronise through :class:`threading.Event` and
:class:`threading.Condition` with a timeout on every wait, never by sleeping and
hoping (the one poll loop, for a forked child's exit, is bounded). Every adapter
is closed by the ``make_adapter`` fixture; a test that checks what the app's task
logged closes it first, since ``close()`` returns once the loop thread has ended.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import signal
import sys
import threading
import time
import wsgiref.handlers
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any, Literal
from wsgiref.validate import validator

import httpx
import pytest
from fastapi import FastAPI, Form, UploadFile
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.datastructures import UploadFile as StarletteUploadFile
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from bridge import ASGIProtocolError, ASGIToWSGI, ClientDisconnected, LifespanFailed
from bridge.types import ASGIApp, Environ, Message, Receive, Scope, Send
from tests import asgi_apps
from tests.asgi_apps import TEXT_PLAIN, TIMEOUT, make_environ
from tests.conftest import AdapterFactory
from tests.garbage import bridge_cycles

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

try:
    import uvloop  # noqa: F401
except ImportError:  # pragma: no cover - uvloop is not built for every platform
    HAVE_UVLOOP = False
else:
    HAVE_UVLOOP = True


# Helpers.


def validated(adapter: ASGIToWSGI) -> WSGIApplication:
    """The adapter behind ``wsgiref.validate``: PEP 3333 is checked on both sides."""
    return validator(adapter)


@contextlib.contextmanager
def client(adapter: ASGIToWSGI) -> Iterator[httpx.Client]:
    transport = httpx.WSGITransport(app=validated(adapter))
    with httpx.Client(transport=transport, base_url="http://testserver") as http:
        yield http


class StartResponse:
    """A recording ``start_response``."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[tuple[str, str]], object]] = []

    def __call__(
        self, status: str, headers: list[tuple[str, str]], exc_info: object = None, /
    ) -> Callable[[bytes], object]:
        self.calls.append((status, headers, exc_info))
        return self.write

    def write(self, data: bytes) -> None:
        raise AssertionError("ASGIToWSGI must return an iterable, not call write().")

    @property
    def status(self) -> str:
        assert len(self.calls) == 1, self.calls
        return self.calls[0][0]

    @property
    def headers(self) -> list[tuple[str, str]]:
        assert len(self.calls) == 1, self.calls
        return self.calls[0][1]


def call(adapter: ASGIToWSGI, environ: Environ) -> tuple[StartResponse, Iterable[bytes]]:
    """Call the validated adapter as a WSGI server would; the caller must close the result."""
    start_response = StartResponse()
    return start_response, validated(adapter)(environ, start_response)


def close(result: Iterable[bytes]) -> None:
    result_close = getattr(result, "close", None)
    if result_close is not None:
        result_close()


def run(adapter: ASGIToWSGI, environ: Environ) -> tuple[StartResponse, bytes]:
    """Call the validated adapter and consume and close its response."""
    start_response, result = call(adapter, environ)
    try:
        body = b"".join(result)
    finally:
        close(result)
    return start_response, body


def wait(event: threading.Event) -> None:
    assert event.wait(TIMEOUT), f"Timed out after {TIMEOUT} s waiting for the app."


def bridge_records(caplog: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "bridge" and r.levelno >= level]


# The scope.


def test_scope_from_environ(make_adapter: AdapterFactory) -> None:
    app = asgi_apps.Recorder()
    adapter = make_adapter(app)
    environ = make_environ(
        # PEP 3333 native strings: UTF-8 bytes decoded as latin-1.
        "/caf\xc3\xa9/x y",
        method="POST",
        script_name="/mount",
        query="a=1&b=%20&c=caf%C3%A9",
        body=b"hello",
        headers={
            "CONTENT_TYPE": "text/plain; charset=utf-8",
            "HTTP_HOST": "example.com:8443",
            "HTTP_X_CUSTOM_HEADER": "Some Value",
            "HTTP_COOKIE": "a=1; b=2",
        },
        extra={
            "SERVER_PROTOCOL": "HTTP/1.0",
            "SERVER_NAME": "example.com",
            "SERVER_PORT": "8443",
            "REMOTE_ADDR": "10.1.2.3",
            "REMOTE_PORT": "5555",
            "wsgi.url_scheme": "https",
            "RAW_URI": "/mount/caf%C3%A9/x%20y?a=1&b=%20&c=caf%C3%A9",
        },
    )
    start_response, body = run(adapter, environ)

    assert (start_response.status, body) == ("200 OK", b"ok")
    scope = app.scope
    assert scope["type"] == "http"
    assert scope["asgi"]["version"] == "3.0"
    assert scope["asgi"]["spec_version"].startswith("2.")
    assert scope["http_version"] == "1.0"
    assert scope["method"] == "POST"
    assert scope["scheme"] == "https"
    assert scope["path"] == "/mount/café/x y"  # includes root_path, decoded UTF-8
    assert scope["root_path"] == "/mount"
    assert scope["raw_path"] == b"/mount/caf%C3%A9/x%20y"  # no query string
    assert scope["query_string"] == b"a=1&b=%20&c=caf%C3%A9"
    assert sorted(scope["headers"]) == sorted(
        [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", b"5"),
            (b"host", b"example.com:8443"),
            (b"x-custom-header", b"Some Value"),
            (b"cookie", b"a=1; b=2"),
        ]
    )
    assert scope["client"] == ("10.1.2.3", 5555)
    assert scope["server"] == ("example.com", 8443)
    assert scope["wsgi_environ"] is environ
    assert "http.response.pathsend" in scope["extensions"]
    assert app.body == b"hello"


@pytest.mark.parametrize(
    ("protocol", "http_version"),
    [("HTTP/1.0", "1.0"), ("HTTP/1.1", "1.1"), ("HTTP/2", "2"), ("HTTP/2.0", "2")],
)
def test_scope_http_version(make_adapter: AdapterFactory, protocol: str, http_version: str) -> None:
    app = asgi_apps.Recorder()
    run(make_adapter(app), make_environ(extra={"SERVER_PROTOCOL": protocol}))
    assert app.scope["http_version"] == http_version


@pytest.mark.parametrize(
    ("extra", "raw_path"),
    [
        pytest.param({"RAW_URI": "/a%2Fb?q=1"}, b"/a%2Fb", id="RAW_URI"),
        pytest.param({"REQUEST_URI": "/a%2Fb?q=1"}, b"/a%2Fb", id="REQUEST_URI"),
        pytest.param({"RAW_URI": "/a%2Fb", "REQUEST_URI": "/other"}, b"/a%2Fb", id="RAW_URI-first"),
        pytest.param(
            {"REQUEST_URI": "http://example.com/a%2Fb?q=1"}, b"/a%2Fb", id="absolute-form"
        ),
    ],
)
def test_scope_raw_path(
    make_adapter: AdapterFactory, extra: dict[str, str], raw_path: bytes
) -> None:
    app = asgi_apps.Recorder()
    run(make_adapter(app), make_environ("/a/b", query="q=1", extra=extra))
    assert app.scope["raw_path"] == raw_path
    assert app.scope["path"] == "/a/b"


def test_scope_synthesised_raw_path_is_percent_encoded(make_adapter: AdapterFactory) -> None:
    from urllib.parse import unquote_to_bytes

    app = asgi_apps.Recorder()
    # The client asked for /100%2525 ("100%25" decoded once), or /what%3F.
    run(make_adapter(app), make_environ("/100%25/what?"))
    assert unquote_to_bytes(app.scope["raw_path"]) == app.scope["path"].encode("utf-8")


def test_scope_through_httpx(make_adapter: AdapterFactory) -> None:
    app = asgi_apps.Recorder()
    adapter = make_adapter(app)
    with client(adapter) as http:
        response = http.put(
            "/items/1?x=y",
            content=b"payload",
            headers={"Content-Type": "application/octet-stream", "X-Trace": "abc"},
        )
    assert response.status_code == 200
    scope = app.scope
    assert (scope["method"], scope["path"], scope["query_string"]) == ("PUT", "/items/1", b"x=y")
    headers = dict(scope["headers"])
    assert headers[b"content-type"] == b"application/octet-stream"
    assert headers[b"content-length"] == b"7"
    assert headers[b"x-trace"] == b"abc"
    assert all(name == name.lower() for name, _ in scope["headers"])
    assert scope["client"] == ("127.0.0.1", 0)
    assert scope["server"] == ("testserver", 80)
    assert app.body == b"payload"


def test_scope_state_is_a_shallow_copy_per_request(make_adapter: AdapterFactory) -> None:
    shared: list[int] = []
    app = asgi_apps.LifespanApp(state={"counter": 0, "shared": shared})
    with client(make_adapter(app)) as http:
        assert http.get("/mutate").status_code == 200
        assert http.get("/").status_code == 200
    first, second = app.request_states
    assert first is not None and second is not None
    # Top-level changes in one request do not leak into the next...
    assert second["counter"] == 0
    assert "added" not in second
    # ...but the copy is shallow, as the lifespan spec says: objects inside are shared.
    assert second["shared"] is shared
    assert shared == [1]


# receive()


def test_receive_large_body_in_several_messages(make_adapter: AdapterFactory) -> None:
    app = asgi_apps.Recorder(receive_after=True)
    body = os.urandom(200_000)
    with client(make_adapter(app)) as http:
        response = http.post("/", content=body)
    assert response.status_code == 200
    wait(app.done)
    messages = app.messages[0]
    assert len(messages) >= 2  # more than 64 KiB never arrives in one message
    assert all(m["type"] == "http.request" for m in messages)
    assert [m.get("more_body", False) for m in messages] == [True] * (len(messages) - 1) + [False]
    assert app.body == body
    assert app.after == [{"type": "http.disconnect"}]


@pytest.mark.parametrize(
    ("app", "body", "expected"),
    [
        (asgi_apps.hello, b"", asgi_apps.HELLO),
        (asgi_apps.streaming, b"", asgi_apps.streamed_body(5)),
        (asgi_apps.echo, b"x" * 200_000, b"x" * 200_000),
    ],
    ids=["hello", "streamed-response", "several-message-body"],
)
def test_a_finished_request_leaves_no_reference_cycle(
    make_adapter: AdapterFactory, app: ASGIApp, body: bytes, expected: bytes
) -> None:
    adapter = make_adapter(app)
    run(adapter, make_environ())  # the loop thread and the lifespan start outside the check
    with bridge_cycles() as cycles:
        for _ in range(5):
            start_response, got = run(adapter, make_environ(method="POST", body=body))
            assert (start_response.status, got) == ("200 OK", expected)
    assert cycles == []


def test_receive_chunked_upload_with_input_terminated(make_adapter: AdapterFactory) -> None:
    app = asgi_apps.Recorder(receive_after=True)
    body = os.urandom(150_000)
    environ = make_environ(
        method="POST",
        wsgi_input=io.BytesIO(body),
        headers={"HTTP_TRANSFER_ENCODING": "chunked"},
        extra={"wsgi.input_terminated": True},
    )
    assert "CONTENT_LENGTH" not in environ
    start_response, response_body = run(make_adapter(app), environ)
    assert (start_response.status, response_body) == ("200 OK", b"ok")
    wait(app.done)
    messages = app.messages[0]
    assert len(messages) >= 2
    assert messages[-1]["more_body"] is False
    assert app.body == body
    # Once the response is complete, receive() says the client is gone.
    assert app.after == [{"type": "http.disconnect"}]


class _ReadBeforeTheApp(io.BytesIO):
    """An input that records, at each read, whether the app had started."""

    def __init__(self, body: bytes, app_started: threading.Event) -> None:
        super().__init__(body)
        self.app_started = app_started
        self.started_at_reads: list[bool] = []

    def read(self, size: int | None = -1) -> bytes:
        self.started_at_reads.append(self.app_started.is_set())
        return super().read(size)


def test_a_request_that_framing_says_has_no_body_is_read_before_the_app(
    make_adapter: AdapterFactory,
) -> None:
    # gunicorn marks every input as terminated; without Content-Length or
    # Transfer-Encoding an HTTP/1.1 request has no body (RFC 9112 6.3). The empty read
    # is made before the app starts, so its receive() costs no hop to the WSGI thread.
    app_started = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        app_started.set()
        assert await receive() == {"type": "http.request", "body": b"", "more_body": False}
        await asgi_apps.respond(send, b"ok")

    stream = _ReadBeforeTheApp(b"", app_started)
    environ = make_environ(wsgi_input=stream, extra={"wsgi.input_terminated": True})
    adapter = make_adapter(app, lifespan="off")
    assert run(adapter, environ)[1] == b"ok"
    assert stream.started_at_reads == [False]


def test_an_unannounced_body_on_a_terminated_input_is_still_read_whole(
    make_adapter: AdapterFactory,
) -> None:
    # A server that drops Transfer-Encoding from the environ while it de-chunks:
    # the first read comes back with data, and the rest streams as usual.
    app = asgi_apps.Recorder()
    body = os.urandom(150_000)
    environ = make_environ(
        method="POST", wsgi_input=io.BytesIO(body), extra={"wsgi.input_terminated": True}
    )
    assert "CONTENT_LENGTH" not in environ and "HTTP_TRANSFER_ENCODING" not in environ
    assert run(make_adapter(app), environ)[1] == b"ok"
    assert app.body == body


def test_receive_ignores_input_without_length_or_termination(
    make_adapter: AdapterFactory,
) -> None:
    # PEP 3333: without CONTENT_LENGTH (and without wsgi.input_terminated) there is
    # no body to read; reading would block on a keep-alive socket.
    app = asgi_apps.Recorder()
    stream = io.BytesIO(b"next request on the connection")
    run(make_adapter(app), make_environ(method="POST", wsgi_input=stream))
    assert app.messages == [[{"type": "http.request", "body": b"", "more_body": False}]]
    assert stream.tell() == 0


def test_receive_returns_disconnect_only_once_response_is_complete(
    make_adapter: AdapterFactory,
) -> None:
    app = asgi_apps.LateReceive()
    start_response, body = run(make_adapter(app), make_environ())
    wait(app.done)
    assert (start_response.status, body) == ("200 OK", b"part 1, part 2")
    assert app.waiting_mid_response is True
    assert app.message == {"type": "http.disconnect"}
    assert app.final_sent_before_disconnect is True


class FailingInput:
    """A ``wsgi.input`` whose connection breaks after ``good`` bytes."""

    def __init__(self, data: bytes, good: int) -> None:
        self._data = data
        self._good = good
        self._position = 0

    def read(self, size: int = -1) -> bytes:
        if self._position >= self._good:
            raise OSError("Connection reset by peer")
        end = self._good if size < 0 else min(self._position + size, self._good)
        chunk = self._data[self._position : end]
        self._position = end
        return chunk

    def readline(self, size: int = -1) -> bytes:
        raise NotImplementedError

    def readlines(self, hint: int = -1) -> list[bytes]:
        raise NotImplementedError

    def __iter__(self) -> Iterator[bytes]:
        raise NotImplementedError


@pytest.mark.parametrize(
    ("size", "good"),
    [pytest.param(1000, 0, id="small-body"), pytest.param(200_000, 65536, id="large-body")],
)
def test_receive_after_input_raises_is_disconnect(
    make_adapter: AdapterFactory, caplog: pytest.LogCaptureFixture, size: int, good: int
) -> None:
    caplog.set_level(logging.INFO, logger="bridge")
    app = asgi_apps.Recorder()
    environ = make_environ(
        method="POST", wsgi_input=FailingInput(os.urandom(size), good), content_length=str(size)
    )
    # The app answers anyway; its send() of the body then raises ClientDisconnected,
    # which reaches the WSGI server (an OSError, like its own socket errors).
    adapter = make_adapter(app)
    with pytest.raises(ClientDisconnected):
        run(adapter, environ)
    wait(app.done)
    messages = app.messages[0]
    assert messages[-1] == {"type": "http.disconnect"}
    assert sum(len(m.get("body", b"")) for m in messages) == good
    adapter.close()  # the app's task has ended, and anything it logged is logged
    assert any("Reading the request body failed" in r.getMessage() for r in caplog.records)
    assert not bridge_records(caplog, logging.ERROR)


class ReturnsOnDisconnect:
    """Reads the body and returns without answering once the client is gone."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            _, self.messages = await asgi_apps.read_body(receive)


def test_app_returning_after_disconnect_is_not_a_protocol_error(
    make_adapter: AdapterFactory,
) -> None:
    # A disconnect is a legal reason not to answer (uvicorn logs nothing then); the
    # WSGI server gets ClientDisconnected, not an error blaming the app.
    app = ReturnsOnDisconnect()
    environ = make_environ(
        method="POST", wsgi_input=FailingInput(b"x" * 100, 0), content_length="100"
    )
    with pytest.raises(ClientDisconnected):
        run(make_adapter(app, lifespan="off"), environ)
    assert app.messages == [{"type": "http.disconnect"}]


# send()


def test_response_start_maps_to_start_response(make_adapter: AdapterFactory) -> None:
    headers = [
        (b"content-type", b"text/plain"),
        (b"X-Mixed-Case", b"kept"),
        (b"set-cookie", b"a=1"),
        (b"set-cookie", b"b=2"),
    ]
    app = asgi_apps.Scripted(
        [
            {"type": "http.response.start", "status": 201, "headers": headers},
            {"type": "http.response.body", "body": b"created"},
        ]
    )
    start_response, body = run(make_adapter(app), make_environ())
    assert start_response.status == "201 Created"
    assert start_response.headers == [
        ("content-type", "text/plain"),
        ("X-Mixed-Case", "kept"),
        ("set-cookie", "a=1"),
        ("set-cookie", "b=2"),
    ]
    assert start_response.calls[0][2] is None
    assert body == b"created"


@pytest.mark.parametrize(
    ("status", "line"), [(200, "200 OK"), (404, "404 Not Found"), (299, "299 "), (599, "599 ")]
)
def test_response_status_line(make_adapter: AdapterFactory, status: int, line: str) -> None:
    app = asgi_apps.Scripted(
        [
            {"type": "http.response.start", "status": status, "headers": TEXT_PLAIN},
            {"type": "http.response.body", "body": b"x"},
        ]
    )
    start_response, _ = run(make_adapter(app), make_environ())
    assert start_response.status == line


def test_streamed_chunks_are_yielded_as_sent(make_adapter: AdapterFactory) -> None:
    app = asgi_apps.Handshake()
    start_response, result = call(make_adapter(app), make_environ())
    try:
        # start_response was called and the first chunk arrives while the app is
        # still blocked before sending the second: it cannot send it until we set
        # `release`.
        assert start_response.status == "200 OK"
        chunks = iter(result)
        assert next(chunks) == b"first"
        assert not app.done.is_set()
        app.release.set()
        assert next(chunks) == b"second"
        assert list(chunks) == []
    finally:
        close(result)
    wait(app.done)
    assert app.released is True


def test_streamed_chunks_through_httpx(make_adapter: AdapterFactory) -> None:
    app = asgi_apps.Handshake()
    with client(make_adapter(app)) as http, http.stream("GET", "/") as response:
        raw = response.iter_raw()
        assert next(raw) == b"first"
        app.release.set()
        assert b"".join(raw) == b"second"
    wait(app.done)


_START: Message = {"type": "http.response.start", "status": 200, "headers": TEXT_PLAIN}
_CHUNK: Message = {"type": "http.response.body", "body": b"a", "more_body": True}

PROTOCOL_ERRORS = [
    pytest.param([_START, _START], id="start-twice"),
    pytest.param([{"type": "http.response.body", "body": b"x"}], id="body-before-start"),
    pytest.param([{**_START, "status": "200"}], id="status-str"),
    pytest.param([{**_START, "status": 200.0}], id="status-float"),
    pytest.param([{**_START, "status": 1000}], id="status-out-of-range"),
    pytest.param([{**_START, "headers": [(b"bad name", b"v")]}], id="header-name-space"),
    pytest.param([{**_START, "headers": [(b"x-a", b"1\r\nx-b: 2")]}], id="header-crlf"),
    pytest.param([{**_START, "headers": [("x-a", "str")]}], id="header-str"),
    pytest.param([{**_START, "headers": [(b"x-a",)]}], id="header-not-pair"),
    pytest.param([{**_START, "headers": b"x-a: 1"}], id="headers-bytes"),
    pytest.param([_START, {"type": "http.response.bogus"}], id="unknown-type"),
    pytest.param([{"type": "websocket.accept"}], id="websocket-message"),
    pytest.param(
        [
            {**_START, "trailers": True},
            {"type": "http.response.trailers", "headers": [], "more_trailers": False},
        ],
        id="trailers",
    ),
    pytest.param([_START, {"type": "http.response.body", "body": "text"}], id="body-str"),
    pytest.param(
        [{"type": "http.response.pathsend", "path": os.path.abspath(__file__)}],
        id="pathsend-before-start",
    ),
    pytest.param([_START, {"type": "http.response.pathsend", "path": ""}], id="pathsend-empty"),
]


@pytest.mark.parametrize("script", PROTOCOL_ERRORS)
def test_protocol_error_before_response_raises_from_call(
    make_adapter: AdapterFactory, script: list[Message]
) -> None:
    app = asgi_apps.Scripted(script)
    start_response = StartResponse()
    with pytest.raises(ASGIProtocolError) as excinfo:
        validated(make_adapter(app))(make_environ(), start_response)
    assert start_response.calls == []
    wait(app.done)
    assert excinfo.value is app.error  # the app's send() raised it first


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(_START, id="start-again"),
        pytest.param({"type": "http.response.trailers", "headers": []}, id="trailers"),
        pytest.param({"type": "lifespan.startup.complete"}, id="unknown-type"),
        pytest.param({"type": "http.response.pathsend", "path": "/etc/hosts"}, id="pathsend"),
    ],
)
def test_protocol_error_mid_stream_raises_from_next(
    make_adapter: AdapterFactory, bad: Message
) -> None:
    app = asgi_apps.Scripted([_START, _CHUNK, bad])
    start_response, result = call(make_adapter(app), make_environ())
    try:
        chunks = iter(result)
        assert next(chunks) == b"a"
        with pytest.raises(ASGIProtocolError) as excinfo:
            next(chunks)
    finally:
        close(result)
    wait(app.done)
    assert excinfo.value is app.error
    assert start_response.status == "200 OK"


def test_message_after_response_complete_raises_from_close(
    make_adapter: AdapterFactory,
) -> None:
    app = asgi_apps.Scripted([_START, {"type": "http.response.body", "body": b"done"}, _CHUNK])
    start_response, result = call(make_adapter(app), make_environ())
    assert (start_response.status, b"".join(result)) == ("200 OK", b"done")
    with pytest.raises(ASGIProtocolError, match="after the response was complete") as raised:
        close(result)
    assert raised.value is app.error


def test_message_after_response_complete_is_logged_when_detached(
    make_adapter: AdapterFactory, caplog: pytest.LogCaptureFixture
) -> None:
    app = asgi_apps.Scripted([_START, {"type": "http.response.body", "body": b"done"}, _CHUNK])
    adapter = make_adapter(app, after_response="detach")
    start_response, body = run(adapter, make_environ())
    assert (start_response.status, body) == ("200 OK", b"done")
    wait(app.done)
    assert isinstance(app.error, ASGIProtocolError)
    adapter.close()  # the loop thread has finished, and logged, when it returns
    records = [r for r in bridge_records(caplog, logging.ERROR) if r.exc_info]
    assert any(r.exc_info and r.exc_info[1] is app.error for r in records)


def test_app_returning_without_response_is_an_error(make_adapter: AdapterFactory) -> None:
    app = asgi_apps.Scripted([])
    with pytest.raises(ASGIProtocolError, match="without starting a response"):
        run(make_adapter(app), make_environ())


def test_app_returning_mid_stream_is_an_error(make_adapter: AdapterFactory) -> None:
    app = asgi_apps.Scripted([_START, _CHUNK])
    _, result = call(make_adapter(app), make_environ())
    try:
        chunks = iter(result)
        assert next(chunks) == b"a"
        with pytest.raises(ASGIProtocolError, match="before completing its response"):
            next(chunks)
    finally:
        close(result)


# Errors.


def test_exception_before_start_propagates_from_call(make_adapter: AdapterFactory) -> None:
    adapter = make_adapter(asgi_apps.Raising("before"))
    with pytest.raises(RuntimeError, match="boom"):
        run(adapter, make_environ())
    with client(adapter) as http, pytest.raises(RuntimeError, match="boom"):
        http.get("/")


def test_exception_before_start_makes_wsgi_server_answer_500(
    make_adapter: AdapterFactory,
) -> None:
    adapter = make_adapter(asgi_apps.Raising("before"))
    stdout, stderr = io.BytesIO(), io.StringIO()
    base = make_environ()
    handler = wsgiref.handlers.SimpleHandler(
        io.BytesIO(), stdout, stderr, {k: v for k, v in base.items() if "." not in k}
    )
    handler.os_environ = {}  # keep the test process's env vars out
    handler.run(validated(adapter))
    assert stdout.getvalue().startswith(b"HTTP/1.0 500 Internal Server Error\r\n")
    assert "RuntimeError: boom" in stderr.getvalue()


def test_exception_after_start_raises_from_next(make_adapter: AdapterFactory) -> None:
    start_response, result = call(make_adapter(asgi_apps.Raising("after")), make_environ())
    try:
        assert start_response.status == "200 OK"
        chunks = iter(result)
        assert next(chunks) == b"partial"
        with pytest.raises(RuntimeError, match="boom"):
            next(chunks)
    finally:
        close(result)


@pytest.mark.parametrize(
    "timeout",
    [
        pytest.param(0.5, id="app-waiting"),
        # The deadline passes before the app's task has even started.
        pytest.param(1e-9, id="app-not-started"),
    ],
)
def test_response_timeout_answers_504_and_cancels_app(
    make_adapter: AdapterFactory, caplog: pytest.LogCaptureFixture, timeout: float
) -> None:
    app = asgi_apps.NeverResponds()
    adapter = make_adapter(app, response_timeout=timeout)
    start_response, body = run(adapter, make_environ())
    assert start_response.status == "504 Gateway Timeout"
    assert body == b"Gateway Timeout"
    assert any("504" in r.getMessage() for r in bridge_records(caplog, logging.ERROR))
    if timeout > 0.1:
        wait(app.ended)  # the bridge cancelled the app, long before shutdown would
        assert app.cancelled.is_set()
    else:
        adapter.close()  # every task on the loop has ended
        # Cancelled before its task started, the app may never have been called at all.
        assert app.cancelled.is_set() == app.ended.is_set()


# Closing early.


def test_close_after_first_chunk_makes_send_raise(
    make_adapter: AdapterFactory, caplog: pytest.LogCaptureFixture
) -> None:
    app = asgi_apps.Forever("send")
    adapter = make_adapter(app)
    _, result = call(adapter, make_environ())
    try:
        assert next(iter(result)).startswith(b"tick\n")
    finally:
        close(result)
    wait(app.ended)
    assert isinstance(app.outcome, ClientDisconnected)
    adapter.close()  # the app's task has ended, and anything it logged is logged
    assert not bridge_records(caplog, logging.WARNING)  # a disconnect is no error


def test_close_after_first_chunk_makes_receive_disconnect(
    make_adapter: AdapterFactory,
) -> None:
    app = asgi_apps.Forever("receive")
    with client(make_adapter(app)) as http, http.stream("GET", "/") as response:
        assert next(response.iter_raw()).startswith(b"tick\n")
    wait(app.ended)
    assert app.outcome == {"type": "http.disconnect"}


def test_close_while_app_waits_for_upload(make_adapter: AdapterFactory) -> None:
    # The app streams its answer before reading the (large) upload; closing the
    # response wakes its pending receive() with http.disconnect.
    class Streamer:
        def __init__(self) -> None:
            self.messages: list[Message] = []
            self.ended = threading.Event()

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                return await asgi_apps.serve_lifespan(receive, send)
            try:
                await send(_START)
                await send({**_CHUNK, "body": b"first"})
                while True:
                    message = await receive()
                    self.messages.append(message)
                    if message["type"] == "http.disconnect":
                        return
            finally:
                self.ended.set()

    app = Streamer()
    environ = make_environ(method="POST", body=b"x" * 100_000)
    _, result = call(make_adapter(app), environ)
    try:
        assert next(iter(result)) == b"first"
    finally:
        close(result)
    wait(app.ended)
    assert app.messages[-1] == {"type": "http.disconnect"}


# Back-pressure.


def test_back_pressure_bounds_bytes_in_flight(make_adapter: AdapterFactory) -> None:
    high_water, size, count = 4096, 512, 200
    app = asgi_apps.BackPressure(count=count, size=size)
    _, result = call(make_adapter(app, high_water=high_water), make_environ())
    consumed = 0
    furthest_ahead = 0

    low_water = high_water // 2  # where the adapter wakes the app again

    def window_full() -> bool:
        return app.finished or app.sent - consumed >= low_water

    try:
        for chunk in result:
            consumed += len(chunk)
            with app.condition:
                # Let the app run as far ahead as the adapter allows: once what it
                # has queued falls to the low-water mark, it must refill the window.
                assert app.condition.wait_for(window_full, TIMEOUT), (app.sent, consumed)
                furthest_ahead = max(furthest_ahead, app.sent - consumed)
    finally:
        close(result)
    assert consumed == count * size
    assert furthest_ahead <= high_water + size
    assert furthest_ahead >= high_water - size  # the window was used, not trivially small


# Lifespan.


def test_lifespan_startup_runs_once_before_first_request(make_adapter: AdapterFactory) -> None:
    app = asgi_apps.LifespanApp()
    with client(make_adapter(app)) as http:
        for _ in range(3):
            assert http.get("/").status_code == 200
    assert app.startups == 1
    assert app.startup_seen_by_request == [1, 1, 1]
    assert app.scope_types == ["lifespan", "http", "http", "http"]


def test_lifespan_startup_runs_once_for_concurrent_first_requests(
    make_adapter: AdapterFactory,
) -> None:
    app = asgi_apps.LifespanApp()
    adapter = make_adapter(app)
    barrier = threading.Barrier(4, timeout=TIMEOUT)
    statuses: list[str] = []

    def first_request() -> None:
        barrier.wait()
        start_response, _ = run(adapter, make_environ())
        statuses.append(start_response.status)

    threads = [threading.Thread(target=first_request) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    assert not any(thread.is_alive() for thread in threads)
    assert statuses == ["200 OK"] * 4
    assert app.startups == 1
    assert app.startup_seen_by_request == [1] * 4


def test_lifespan_state_reaches_request_scope(make_adapter: AdapterFactory) -> None:
    app = asgi_apps.LifespanApp(state={"db": "connected"})
    with client(make_adapter(app)) as http:
        assert http.get("/").status_code == 200
    assert app.request_states == [{"db": "connected"}]


def test_lifespan_unsupported_is_tolerated_in_auto(
    make_adapter: AdapterFactory, caplog: pytest.LogCaptureFixture
) -> None:
    app = asgi_apps.NoLifespan()
    with client(make_adapter(app)) as http:
        response = http.get("/")
    assert (response.status_code, response.content) == (200, asgi_apps.HELLO)
    assert app.scope_types == ["lifespan", "http"]
    assert not bridge_records(caplog, logging.ERROR)


def test_lifespan_unsupported_fails_requests_in_on_mode(
    make_adapter: AdapterFactory, caplog: pytest.LogCaptureFixture
) -> None:
    app = asgi_apps.NoLifespan()
    adapter = make_adapter(app, lifespan="on")
    with pytest.raises(LifespanFailed, match="Unsupported scope type"):
        run(adapter, make_environ())
    assert app.scope_types == ["lifespan"]
    assert any("Unsupported scope type" in r.getMessage() for r in caplog.records)


def test_lifespan_startup_failed_raises_to_the_server_for_each_request(
    make_adapter: AdapterFactory, caplog: pytest.LogCaptureFixture
) -> None:
    # The server answers 500 and logs it, as for any exception the app raises before
    # its response; reporters wrapped around the bridge see every refused request.
    app = asgi_apps.LifespanApp(fail="database unreachable")
    adapter = make_adapter(app)
    for _ in range(2):
        with pytest.raises(LifespanFailed, match="database unreachable"):
            run(adapter, make_environ())
    assert app.scope_types == ["lifespan"]  # requests never reach the app
    messages = [r.getMessage() for r in bridge_records(caplog, logging.ERROR)]
    assert sum("database unreachable" in m for m in messages) == 1  # logged once, at startup


def test_lifespan_exception_in_starlette_fails_requests(
    make_adapter: AdapterFactory, caplog: pytest.LogCaptureFixture
) -> None:
    # Starlette sends lifespan.startup.failed with the traceback, then re-raises.
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        raise RuntimeError("cannot reach the database")
        yield  # pragma: no cover

    app = Starlette(lifespan=lifespan)
    with pytest.raises(LifespanFailed, match="cannot reach the database"):
        run(make_adapter(app), make_environ())
    messages = [r.getMessage() for r in bridge_records(caplog, logging.ERROR)]
    assert any("cannot reach the database" in m for m in messages)


def test_lifespan_shutdown_runs_on_close(make_adapter: AdapterFactory) -> None:
    app = asgi_apps.LifespanApp()
    adapter = make_adapter(app)
    with client(adapter) as http:
        assert http.get("/").status_code == 200
        assert app.shutdowns == 0
        adapter.close()
        assert (app.startups, app.shutdowns) == (1, 1)
        # The next request starts a new loop, and startup runs again.
        assert http.get("/").status_code == 200
    assert app.startups == 2


def test_lifespan_off_never_calls_app_with_lifespan(make_adapter: AdapterFactory) -> None:
    app = asgi_apps.LifespanApp(state={"db": "connected"})
    adapter = make_adapter(app, lifespan="off")
    with client(adapter) as http:
        assert http.get("/").status_code == 200
    adapter.close()
    assert app.scope_types == ["http"]
    assert (app.startups, app.shutdowns) == (0, 0)
    assert app.request_states == [None]


# Work after the response.


@pytest.mark.parametrize("after_response", ["wait", "detach"])
def test_background_task_and_the_wsgi_call(
    make_adapter: AdapterFactory, after_response: Literal["wait", "detach"]
) -> None:
    release = threading.Event()
    finished = threading.Event()
    outcome: list[bool] = []

    async def work() -> None:
        outcome.append(await asgi_apps.wait_event(release))
        finished.set()

    async def endpoint(request: Request) -> Response:
        return PlainTextResponse("accepted", background=BackgroundTask(work))

    app = Starlette(routes=[Route("/", endpoint)])
    if after_response == "wait":
        release.set()
    with client(make_adapter(app, after_response=after_response)) as http:
        response = http.get("/")
    assert (response.status_code, response.text) == (200, "accepted")
    if after_response == "wait":
        # close() returned once the background task had finished, as natively.
        assert finished.is_set()
    else:
        # The WSGI call has returned and the body was consumed; the task still waits.
        assert not finished.is_set()
        release.set()
        wait(finished)
    assert outcome == [True]


# pathsend.


class RecordingFileWrapper:
    """A ``wsgi.file_wrapper`` that records its use."""

    def __init__(self, filelike: IO[bytes], block_size: int = 8192) -> None:
        self.filelike = filelike
        self.block_size = block_size

    def __iter__(self) -> Iterator[bytes]:
        while block := self.filelike.read(self.block_size):
            yield block

    def close(self) -> None:
        self.filelike.close()


def recording_file_wrapper(
    used: list[RecordingFileWrapper],
) -> Callable[..., RecordingFileWrapper]:
    def file_wrapper(filelike: IO[bytes], block_size: int = 8192) -> RecordingFileWrapper:
        wrapper = RecordingFileWrapper(filelike, block_size)
        used.append(wrapper)
        return wrapper

    return file_wrapper


@pytest.fixture
def data_file(tmp_path: Path) -> tuple[Path, bytes]:
    content = os.urandom(150_000)
    path = tmp_path / "data.bin"
    path.write_bytes(content)
    return path, content


def test_pathsend_uses_file_wrapper(
    make_adapter: AdapterFactory, data_file: tuple[Path, bytes]
) -> None:
    path, content = data_file
    app = asgi_apps.PathSend(str(path))
    used: list[RecordingFileWrapper] = []
    environ = make_environ(extra={"wsgi.file_wrapper": recording_file_wrapper(used)})
    start_response, body = run(make_adapter(app), environ)
    assert app.extensions is not None and "http.response.pathsend" in app.extensions
    assert start_response.status == "200 OK"
    assert body == content
    assert len(used) == 1
    assert used[0].filelike.name == str(path)
    assert used[0].filelike.closed


def test_pathsend_without_file_wrapper(
    make_adapter: AdapterFactory, data_file: tuple[Path, bytes]
) -> None:
    path, content = data_file
    app = asgi_apps.PathSend(str(path))
    with client(make_adapter(app)) as http:
        response = http.get("/")
    assert (response.status_code, response.content) == (200, content)
    _, body = run(make_adapter(app), make_environ())
    assert body == content


def test_starlette_file_response_uses_pathsend(
    make_adapter: AdapterFactory, data_file: tuple[Path, bytes]
) -> None:
    path, content = data_file

    async def endpoint(request: Request) -> Response:
        return FileResponse(path, media_type="application/octet-stream")

    app = Starlette(routes=[Route("/file", endpoint)])
    used: list[RecordingFileWrapper] = []
    environ = make_environ("/file", extra={"wsgi.file_wrapper": recording_file_wrapper(used)})
    start_response, body = run(make_adapter(app), environ)
    assert start_response.status == "200 OK"
    assert ("content-length", str(len(content))) in start_response.headers
    assert body == content
    assert len(used) == 1


# WebSocket upgrade requests stay HTTP.


WEBSOCKET_HEADERS = {
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version": "13",
}


def test_websocket_upgrade_arrives_as_http_scope(make_adapter: AdapterFactory) -> None:
    # WSGI has no way to hand over the socket, so ASGIToWSGI never produces a
    # 'websocket' scope: an upgrade request is an ordinary http request.
    app = asgi_apps.Recorder()
    with client(make_adapter(app)) as http:
        response = http.get("/ws", headers=WEBSOCKET_HEADERS)
    assert response.status_code == 200
    assert app.scope["type"] == "http"
    assert (b"upgrade", b"websocket") in app.scope["headers"]


def test_websocket_only_starlette_app_answers_without_hanging(
    make_adapter: AdapterFactory,
) -> None:
    async def endpoint(websocket: WebSocket) -> None:  # pragma: no cover - never reached
        await websocket.accept()
        await websocket.close()

    app = Starlette(routes=[WebSocketRoute("/ws", endpoint)])
    with client(make_adapter(app)) as http:
        response = http.get("/ws", headers=WEBSOCKET_HEADERS)
    assert response.status_code == 404


# ASGI 2.


def test_asgi2_double_callable(make_adapter: AdapterFactory) -> None:
    adapter = make_adapter(asgi_apps.Asgi2Hello)  # type: ignore[arg-type]
    with client(adapter) as http:
        response = http.get("/two")
    assert (response.status_code, response.content) == (200, b"asgi2 /two")


# Starlette and FastAPI.


def make_starlette_app() -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        yield {"greeting": "hello from lifespan"}

    async def as_json(request: Request) -> Response:
        return JSONResponse({"path": request.url.path, "query": dict(request.query_params)})

    async def form(request: Request) -> Response:
        async with request.form() as data:
            upload = data["upload"]
            assert isinstance(upload, StarletteUploadFile)
            content = await upload.read()
            return JSONResponse(
                {
                    "field": data["field"],
                    "filename": upload.filename,
                    "content_type": upload.content_type,
                    "size": len(content),
                    "sha": content[:4].hex(),
                }
            )

    async def stream(request: Request) -> Response:
        async def parts() -> AsyncIterator[bytes]:
            for index in range(3):
                yield f"part {index}\n".encode()

        return StreamingResponse(parts(), media_type="text/plain")

    async def state(request: Request) -> Response:
        return PlainTextResponse(request.state.greeting)

    return Starlette(
        routes=[
            Route("/json", as_json),
            Route("/form", form, methods=["POST"]),
            Route("/stream", stream),
            Route("/state", state),
        ],
        lifespan=lifespan,
    )


def test_starlette_app(make_adapter: AdapterFactory) -> None:
    upload = os.urandom(100_000)
    with client(make_adapter(make_starlette_app())) as http:
        response = http.get("/json?a=1")
        assert (response.status_code, response.json()) == (
            200,
            {"path": "/json", "query": {"a": "1"}},
        )
        response = http.post(
            "/form",
            data={"field": "value"},
            files={"upload": ("data.bin", upload, "application/octet-stream")},
        )
        assert response.status_code == 200, response.text
        assert response.json() == {
            "field": "value",
            "filename": "data.bin",
            "content_type": "application/octet-stream",
            "size": len(upload),
            "sha": upload[:4].hex(),
        }
        response = http.get("/stream")
        assert (response.status_code, response.text) == (200, "part 0\npart 1\npart 2\n")
        response = http.get("/state")
        assert (response.status_code, response.text) == (200, "hello from lifespan")


def make_fastapi_app() -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        yield {"db": "fake-db"}

    app = FastAPI(lifespan=lifespan)

    @app.get("/items/{item_id}")
    async def read_item(item_id: int, q: str | None = None) -> dict[str, Any]:
        return {"item_id": item_id, "q": q}

    @app.post("/upload")
    async def upload(file: UploadFile, note: Annotated[str, Form()]) -> dict[str, Any]:
        content = await file.read()
        return {"filename": file.filename, "size": len(content), "note": note}

    @app.get("/state")
    async def state(request: Request) -> dict[str, Any]:
        return {"db": request.state.db}

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def parts() -> AsyncIterator[bytes]:
            for index in range(3):
                yield f"{index},".encode()

        return StreamingResponse(parts(), media_type="text/csv")

    return app


def test_fastapi_app(make_adapter: AdapterFactory) -> None:
    with client(make_adapter(make_fastapi_app())) as http:
        response = http.get("/items/42?q=x")
        assert (response.status_code, response.json()) == (200, {"item_id": 42, "q": "x"})
        response = http.get("/items/not-a-number")
        assert response.status_code == 422
        response = http.post(
            "/upload", data={"note": "hi"}, files={"file": ("a.txt", b"abc" * 1000, "text/plain")}
        )
        assert (response.status_code, response.json()) == (
            200,
            {"filename": "a.txt", "size": 3000, "note": "hi"},
        )
        response = http.get("/state")
        assert (response.status_code, response.json()) == (200, {"db": "fake-db"})
        response = http.get("/stream")
        assert (response.status_code, response.text) == (200, "0,1,2,")


# Resources.


def test_no_thread_per_request(make_adapter: AdapterFactory) -> None:
    with client(make_adapter(asgi_apps.hello)) as http:
        for _ in range(10):
            assert http.get("/").status_code == 200
        after_ten = threading.active_count()
        for _ in range(490):
            assert http.get("/").status_code == 200
        after_five_hundred = threading.active_count()
    assert after_five_hundred <= after_ten


# Event loop backends.


BACKENDS = [
    pytest.param({"backend": "asyncio"}, id="asyncio"),
    pytest.param({"backend": "trio"}, id="trio"),
    pytest.param(
        {"backend": "asyncio", "backend_options": {"use_uvloop": True}},
        id="uvloop",
        marks=pytest.mark.skipif(not HAVE_UVLOOP, reason="uvloop is not installed"),
    ),
]


@pytest.mark.parametrize("backend", BACKENDS)
def test_backend_hello_stream_upload(make_adapter: AdapterFactory, backend: dict[str, Any]) -> None:
    body = os.urandom(200_000)
    hello = make_adapter(asgi_apps.hello, **backend)
    streaming = make_adapter(asgi_apps.streaming, **backend)
    echo = make_adapter(asgi_apps.echo, **backend)
    with client(hello) as http:
        assert http.get("/").content == asgi_apps.HELLO
    with client(streaming) as http:
        assert http.get("/?n=50").content == asgi_apps.streamed_body(50)
    with client(echo) as http:
        response = http.post("/", content=body)
        assert response.content == body
        assert int(response.headers["x-messages"]) >= 2
    app = asgi_apps.Handshake()
    _, result = call(make_adapter(app, **backend), make_environ())
    try:
        chunks = iter(result)
        assert next(chunks) == b"first"
        app.release.set()
        assert b"".join(chunks) == b"second"
    finally:
        close(result)


# fork()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork() is tested on Linux")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_fork_restarts_loop_in_child(make_adapter: AdapterFactory) -> None:
    adapter = make_adapter(asgi_apps.whoami)

    def serve_one() -> tuple[str, bytes]:
        start_response, body = run(adapter, make_environ())
        return start_response.status, body

    status, body = serve_one()
    assert (status, body.split()[0]) == ("200 OK", str(os.getpid()).encode())

    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit status
        code = 1
        try:
            status, body = serve_one()
            if status == "200 OK" and body.split()[0] == str(os.getpid()).encode():
                code = 0
        finally:
            os._exit(code)

    deadline = time.monotonic() + 10
    status_code: int | None = None
    while time.monotonic() < deadline:
        done, wait_status = os.waitpid(pid, os.WNOHANG)
        if done:
            status_code = os.waitstatus_to_exitcode(wait_status)
            break
        time.sleep(0.02)
    if status_code is None:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("The forked child did not serve its request within 10 s.")
    assert status_code == 0
    # The parent's loop is untouched by the child.
    status, body = serve_one()
    assert (status, body.split()[0]) == ("200 OK", str(os.getpid()).encode())
