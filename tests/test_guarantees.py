"""What each adapter guarantees under bad input and faults, in-process.

Every test here is a row of ``docs/guarantees.md``. The rows other suites already
pin (header injection, ``start_response`` misuse, the 504 ``response_timeout``, ...)
are referenced there rather than repeated; what is here is what they leave out:

* bad input: ambiguous request framing, malformed scopes and environs from a
  sloppy server, malformed messages from a buggy ASGI app, ``max_body_size`` on
  both adapters (refused without reading the rest of the body);
* faults: a client that goes away at each point of an exchange, and an app that
  raises at each point, checked the same way every time: ``close()`` ran once (or
  the ASGI app saw ``http.disconnect``), the capacity-limiter token came back, no
  pool thread is left busy, and the count of tasks returned to its baseline;
* lifespan startup and shutdown that raise or hang, and interpreter exit with a
  request stuck in the app (in a subprocess).

A missing protection is an ``xfail(strict=True)`` test whose reason names the
function at fault, so it turns into a failure the moment the bridge is fixed and
the marker should go.

``WSGIToASGI`` tests run on asyncio and trio (the module's ``anyio_backend``
fixture); ``ASGIToWSGI`` tests are plain functions, as a WSGI server's thread is.
Every wait is bounded.
"""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, cast

import anyio
import pytest

from bridge import (
    ASGIProtocolError,
    ASGIToWSGI,
    BadRequest,
    ClientDisconnected,
    LifespanFailed,
    WSGIProtocolError,
    WSGIToASGI,
)
from bridge._threads import pool
from bridge.types import Environ, Message, Receive, Scope, Send, StartResponse

from . import asgi_apps
from .asgi_apps import TEXT_PLAIN, make_environ
from .conftest import AdapterFactory
from .wsgi_apps import (
    TEXT,
    TIMEOUT,
    Receiver,
    TrackedBody,
    Transcript,
    body_headers,
    echo_app,
    http_scope,
    tracked_app,
    wait_in_thread,
    wait_until,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(params=["asyncio", "trio"], scope="module")
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return cast(str, request.param)


# WSGIToASGI helpers.


def never_called(environ: Environ, start_response: StartResponse) -> list[bytes]:
    raise AssertionError("the app should not have been called")


async def serve(
    adapter: WSGIToASGI,
    scope: Scope,
    receive: Receiver | None = None,
    send: Transcript | None = None,
) -> Transcript:
    """One request through ``adapter``; what it sent."""
    transcript = Transcript() if send is None else send
    with anyio.fail_after(TIMEOUT):
        await adapter(scope, Receiver() if receive is None else receive, transcript)
    return transcript


def busy_workers() -> int:
    """Pool threads running a request right now (the pool keeps idle ones for reuse)."""
    with pool._lock:
        return pool._threads - pool._idle


class Baseline:
    """Tasks, busy pool threads and limiter tokens before a request, to compare after it."""

    def __init__(self, adapter: WSGIToASGI) -> None:
        self.adapter = adapter
        self.tasks = len(anyio.get_running_tasks())
        self.busy = busy_workers()

    async def assert_restored(self) -> None:
        await wait_until(
            lambda: self.adapter.limiter.borrowed_tokens == 0, "the limiter token came back"
        )
        await wait_until(lambda: busy_workers() <= self.busy, "the pool thread went idle")
        assert len(anyio.get_running_tasks()) == self.tasks


def plain_refusal(transcript: Transcript, status: int) -> bytes:
    """The adapter's own answer: ``status``, plain text, ``Connection: close``, no traceback."""
    assert transcript.status == status, transcript.messages
    text = transcript.assert_complete()
    headers = dict(transcript.headers)
    assert headers[b"connection"] == b"close"
    assert headers[b"content-length"] == str(len(text)).encode()
    assert b"Traceback" not in text
    return text


# ASGIToWSGI helpers.


def environ(
    path: str = "/",
    *,
    method: str = "GET",
    body: bytes = b"",
    content_length: str | None = None,
    wsgi_input: object = None,
    **extra: Any,
) -> Environ:
    """A PEP 3333 environ as a WSGI server builds it; ``CONTENT_LENGTH`` from ``body``."""
    return make_environ(
        path,
        method=method,
        body=body,
        content_length=content_length,
        wsgi_input=wsgi_input,
        extra=extra,
    )


class Recorded:
    """A recording ``start_response``."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[tuple[str, str]]]] = []

    def __call__(
        self, status: str, headers: list[tuple[str, str]], exc_info: object = None
    ) -> Callable[[bytes], object]:
        self.calls.append((status, headers))
        return self.write

    def write(self, data: bytes) -> None:
        raise AssertionError("ASGIToWSGI must return an iterable, not call write().")

    @property
    def status(self) -> int:
        assert len(self.calls) == 1, self.calls
        return int(self.calls[0][0][:3])


def call_wsgi(adapter: ASGIToWSGI, env: Environ) -> tuple[Recorded, bytes]:
    """Serve one request as a WSGI server does: consume and close the result.

    It runs in a daemon thread joined with a timeout, so a hang fails the test
    instead of blocking it.
    """
    outcome: list[tuple[Recorded, bytes] | BaseException] = []

    def run() -> None:
        start_response = Recorded()
        try:
            result = adapter(env, start_response)
            try:
                outcome.append((start_response, b"".join(result)))
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(TIMEOUT)
    if thread.is_alive():
        raise AssertionError(f"The WSGI call did not return within {TIMEOUT} s.")
    (result,) = outcome
    if isinstance(result, BaseException):
        raise result
    return result


@pytest.fixture
def adapters(make_adapter: AdapterFactory) -> AdapterFactory:
    """``adapters(app, **options)``: conftest's ``make_adapter``, closed at test end."""
    return make_adapter


class CountingInput:
    """A ``wsgi.input`` of ``size`` bytes (None: endless) that counts what was read.

    After ``cut_at`` bytes the connection breaks: reads raise ``OSError``, or with
    ``eof=True`` return ``b""`` (the client closed cleanly, mid-body).
    """

    def __init__(self, size: int | None, cut_at: int | None = None, eof: bool = False) -> None:
        self.size = size
        self.cut_at = cut_at
        self.eof = eof
        self.read_bytes = 0

    def read(self, size: int = -1) -> bytes:
        if self.cut_at is not None and self.read_bytes >= self.cut_at:
            if self.eof:
                return b""
            raise OSError("Connection reset by peer")
        left = None if self.size is None else self.size - self.read_bytes
        if size is None or size < 0:
            size = 65536 if left is None else left
        if left is not None:
            size = min(size, left)
        if self.cut_at is not None:
            size = min(size, self.cut_at - self.read_bytes)
        self.read_bytes += size
        return b"x" * size


class WithTaskCount:
    """``app``, except that ``/tasks`` answers how many tasks run on the adapter's loop."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/tasks":
            count = len(anyio.get_running_tasks())
            await asgi_apps.respond(send, str(count).encode())
            return
        await self.app(scope, receive, send)


def loop_tasks(adapter: ASGIToWSGI) -> int:
    start_response, body = call_wsgi(adapter, environ("/tasks"))
    assert start_response.status == 200
    return int(body)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    """Poll ``condition`` from a plain thread, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"Timed out waiting until {what}.")
        time.sleep(0.005)


# Bad input: request framing and smuggling (WSGIToASGI).


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        pytest.param([(b"host", b"a.test"), (b"host", b"b.test")], b"Host", id="two-hosts"),
        pytest.param([(b"host", b"a.test"), (b"host", b"a.test")], b"Host", id="same-host-twice"),
        pytest.param(
            [(b"content-length", b"3"), (b"content-length", b"30")],
            b"conflicting Content-Length",
            id="conflicting-content-length",
        ),
        pytest.param(
            [(b"content-length", b"3"), (b"transfer-encoding", b"chunked")],
            b"Transfer-Encoding",
            id="content-length-and-chunked",
        ),
    ],
)
async def test_ambiguous_framing_is_refused_before_the_app_and_the_body(
    headers: list[tuple[bytes, bytes]], reason: bytes
) -> None:
    # The server and the app could disagree on where this request ends: the
    # adapter answers 400 and closes, without reading the body or calling the app.
    adapter = WSGIToASGI(never_called)
    receive = Receiver.body(b"abc")
    transcript = await serve(adapter, http_scope("POST", headers=headers), receive)
    assert reason in plain_refusal(transcript, 400)
    assert receive.calls == 0


@pytest.mark.anyio
async def test_repeated_equal_content_length_is_one_length() -> None:
    # RFC 9110 8.6 lets a recipient take identical repeated values as one.
    adapter = WSGIToASGI(echo_app)
    scope = http_scope("POST", headers=[(b"content-length", b"3"), (b"content-length", b"3")])
    transcript = await serve(adapter, scope, Receiver.body(b"abc"))
    assert transcript.status == 200
    assert transcript.assert_complete() == b"abc"


# Bad input: a malformed scope or message from a buggy ASGI server (WSGIToASGI).


def _without(key: str) -> Scope:
    scope = http_scope()
    del scope[key]
    return scope


MALFORMED_SCOPES = [
    pytest.param(_without("method"), id="no-method"),
    pytest.param(_without("path"), id="no-path"),
    pytest.param(_without("headers"), id="no-headers"),
    pytest.param({**http_scope(), "headers": None}, id="headers-none"),
    pytest.param(http_scope(headers=cast(Any, [("x-a", "1")])), id="header-str"),
    pytest.param(http_scope(headers=cast(Any, [(b"x-a", b"1", b"2")])), id="header-triple"),
    pytest.param({**http_scope(), "path": b"/"}, id="path-bytes"),
    pytest.param({**http_scope(), "query_string": "a=1"}, id="query-str"),
    pytest.param({**http_scope(), "root_path": None}, id="root-path-none"),
    pytest.param({**http_scope(), "http_version": 1.1}, id="http-version-float"),
    pytest.param({**http_scope(), "server": ("testserver",)}, id="server-one-item"),
    pytest.param({**http_scope(), "client": ("127.0.0.1",)}, id="client-one-item"),
    *[
        pytest.param(
            {**http_scope(), "method": method},
            id=f"method-{type(method).__name__}",
        )
        for method in (b"GET", 71)
    ],
]


@pytest.mark.anyio
@pytest.mark.parametrize("scope", MALFORMED_SCOPES)
async def test_malformed_scope_gets_a_clear_error(scope: Scope) -> None:
    # A server bug, not the client's: ASGIProtocolError naming what is wrong, rather
    # than a bare KeyError or TypeError; the server answers 500 and logs it.
    adapter = WSGIToASGI(never_called)
    transcript = Transcript()
    with pytest.raises(ASGIProtocolError, match="scope is malformed"):
        await serve(adapter, scope, Receiver.body(b""), transcript)
    assert transcript.messages == []


@pytest.mark.anyio
async def test_non_ascii_digit_content_length_with_a_limit() -> None:
    adapter = WSGIToASGI(echo_app, max_body_size=10)
    scope = http_scope("POST", headers=[(b"content-length", b"\xb2")])
    # '\xb2' (superscript two) passes str.isdigit() but is no length: the limit
    # check must not crash on it. The body is what the server's messages carry.
    transcript = await serve(adapter, scope, Receiver.body(b"ab"))
    assert (transcript.status, transcript.assert_complete()) == (200, b"ab")


@pytest.mark.anyio
async def test_body_message_of_the_wrong_type_fails_the_read() -> None:
    # A server that sends text where ASGI says bytes: the app's read raises, and
    # the error reaches the server as the app's exception, before any response.
    errors: list[BaseException] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        try:
            environ["wsgi.input"].read()
        except Exception as exc:
            errors.append(exc)
            raise
        raise AssertionError("read a text body")

    adapter = WSGIToASGI(app)
    receive = Receiver({"type": "http.request", "body": "text", "more_body": False})
    scope = http_scope("POST", headers=[(b"transfer-encoding", b"chunked")])
    transcript = Transcript()
    with pytest.raises(TypeError):
        await serve(adapter, scope, receive, transcript)
    assert [type(error) for error in errors] == [TypeError]
    assert transcript.messages == []


# Bad input: a buggy WSGI app's response headers (WSGIToASGI).


@pytest.mark.anyio
async def test_conflicting_response_content_length_is_refused() -> None:
    raised: list[BaseException] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        try:
            start_response("200 OK", [*TEXT, ("Content-Length", "5"), ("Content-Length", "10")])
        except Exception as exc:
            raised.append(exc)
            raise
        return [b"0123456789"]

    # Never passed on: a server framing by the first would read the rest as the
    # next response on a kept-alive connection (response splitting).
    transcript = Transcript()
    with pytest.raises(WSGIProtocolError, match="conflicting"):
        await serve(WSGIToASGI(app), http_scope(), send=transcript)
    assert [type(exc) for exc in raised] == [WSGIProtocolError]  # from start_response
    assert transcript.messages == []


# max_body_size (WSGIToASGI).


class EndlessUpload:
    """``receive()`` for a client that never stops uploading, 1000 bytes a message."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self) -> Message:
        self.calls += 1
        return {"type": "http.request", "body": b"x" * 1000, "more_body": True}


@pytest.mark.anyio
async def test_endless_upload_over_the_limit_is_413_without_reading_the_rest() -> None:
    adapter = WSGIToASGI(echo_app, max_body_size=100_000)
    baseline = Baseline(adapter)
    upload = EndlessUpload()
    scope = http_scope("POST", headers=[(b"transfer-encoding", b"chunked")])
    transcript = await serve(adapter, scope, cast(Receiver, upload))
    assert b"100000 bytes" in plain_refusal(transcript, 413)
    assert upload.calls <= 100_000 // 1000 + 2  # stopped at the limit, not at the end
    await baseline.assert_restored()


@pytest.mark.anyio
async def test_limit_error_caught_by_the_app_is_its_own_answer() -> None:
    # An app may turn the 413 into its own response: the bridge does not override it.
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        try:
            environ["wsgi.input"].read()
        except BadRequest as exc:
            start_response(f"{exc.status_hint} Too Big", [*TEXT, ("Content-Length", "3")])
            return [b"big"]
        raise AssertionError("read an endless body")

    upload = EndlessUpload()
    scope = http_scope("POST", headers=[(b"transfer-encoding", b"chunked")])
    transcript = await serve(WSGIToASGI(app, max_body_size=5000), scope, cast(Receiver, upload))
    assert (transcript.status, transcript.assert_complete()) == (413, b"big")
    assert upload.calls <= 7


# Faults: the client goes away at each point (WSGIToASGI).


DISCONNECT = {"type": "http.disconnect"}


@pytest.mark.anyio
@pytest.mark.parametrize(
    "point",
    ["before-body", "mid-upload", "before-headers", "mid-stream", "server-cancels"],
)
async def test_client_gone_at_each_point_closes_and_frees_everything(point: str) -> None:
    read_errors: list[BaseException] = []
    in_gate = threading.Event()
    release = threading.Event()
    environs: list[Environ] = []

    def gate(index: int) -> None:
        if index:
            return
        if point in ("before-body", "mid-upload"):
            try:
                environs[0]["wsgi.input"].read()
            except ClientDisconnected as exc:
                read_errors.append(exc)
                raise
        elif point == "before-headers":
            in_gate.set()
            wait_in_thread(release, "the client has gone")

    endless = TrackedBody(chunk_size=512, gate=gate)
    inner = tracked_app(endless)

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        environs.append(environ)
        return inner(environ, start_response)

    gone = anyio.Event()
    upload = point in ("before-body", "mid-upload")
    if point == "before-body":
        receive = Receiver(DISCONNECT)
    elif point == "mid-upload":
        receive = Receiver(
            {"type": "http.request", "body": b"x" * 10, "more_body": True}, DISCONNECT
        )
    else:
        receive = Receiver(disconnect=gone)

    async def client(message: Message) -> None:
        if message["type"] == "http.response.body":
            if point == "mid-stream":
                gone.set()
            elif point == "server-cancels":
                await anyio.sleep_forever()  # a stalled client; the server gives up

    adapter = WSGIToASGI(app, high_water=4096)
    baseline = Baseline(adapter)
    headers = body_headers(b"x" * 1000) if upload else []
    scope = http_scope("POST" if upload else "GET", headers=headers)
    transcript = Transcript(client)
    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(adapter, scope, receive, transcript)
            if point == "before-headers":
                await wait_until(in_gate.is_set, "the app holds its response")
                gone.set()
                release.set()
            elif point == "server-cancels":
                await wait_until(lambda: bool(transcript.bodies), "the stream has started")
                task_group.cancel_scope.cancel()

    await wait_until(endless.closed.is_set, "close() ran")
    assert endless.close_calls == 1
    if upload:
        assert [type(error) for error in read_errors] == [ClientDisconnected]
        assert transcript.messages == []  # nobody left to answer
    else:
        assert transcript.types[0] == "http.response.start"
        assert all(m.get("more_body") is True for m in transcript.bodies)  # never "complete"
    await baseline.assert_restored()


# Faults: the app raises at each point (WSGIToASGI).


class AppError(Exception):
    """The app's own exception: it must come out as itself."""


@pytest.mark.anyio
@pytest.mark.parametrize(
    "point", ["in-the-call", "before-the-body", "mid-body", "in-close", "in-close-after-error"]
)
async def test_app_error_at_each_point_propagates_as_itself(
    point: str, caplog: pytest.LogCaptureFixture
) -> None:
    error = AppError(point)

    def gate(index: int) -> None:
        if index == 1 and point in ("before-the-body", "mid-body", "in-close-after-error"):
            raise error

    close_error = {"in-close": error, "in-close-after-error": AppError("close too")}.get(point)
    chunks = [b"", b"a", b"b"] if point == "before-the-body" else [b"a", b"b"]
    tracked = TrackedBody(chunks, gate=gate, close_error=close_error)
    inner = tracked_app(tracked)

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if point == "in-the-call":
            raise error
        return inner(environ, start_response)

    adapter = WSGIToASGI(app)
    baseline = Baseline(adapter)
    transcript = Transcript()
    with caplog.at_level(logging.ERROR, logger="bridge"), pytest.raises(AppError) as caught:
        await serve(adapter, http_scope(), send=transcript)
    assert caught.value is error  # as itself, not wrapped; the first of two wins
    if point == "in-close-after-error":
        assert "close() raised too" in caplog.text  # the second is logged
    if point == "in-the-call":
        assert tracked.close_calls == 0  # no iterable was ever returned
    else:
        assert tracked.close_calls == 1
    if point in ("in-the-call", "before-the-body"):
        assert transcript.messages == []  # the server answers 500 on its own
    elif point == "in-close":
        assert transcript.assert_complete() == b"ab"  # complete before close() raised
    else:
        assert transcript.bodies[-1].get("more_body") is True  # cut, never "complete"
    await baseline.assert_restored()


@pytest.mark.anyio
async def test_app_returning_a_non_iterable_fails_like_an_app_error() -> None:
    def app(environ: Environ, start_response: StartResponse) -> Any:
        start_response("200 OK", TEXT)
        return None

    adapter = WSGIToASGI(app)
    baseline = Baseline(adapter)
    transcript = Transcript()
    with pytest.raises(TypeError, match="not iterable"):
        await serve(adapter, http_scope(), send=transcript)
    assert transcript.messages == []  # the server answers 500
    await baseline.assert_restored()


# Faults: nothing blocks interpreter exit.


def run_script(script: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in a fresh interpreter from the project root; bounded by ``timeout``."""
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_a_wsgi_app_stuck_forever_does_not_block_exit() -> None:
    # The server gave up on the request (cancelled it); the app's thread is still
    # inside the app and never comes back. The interpreter must exit anyway.
    result = run_script(
        """
        import threading, anyio
        from bridge import WSGIToASGI
        from tests.wsgi_apps import Receiver, Transcript, http_scope

        inside = threading.Event()

        def stuck(environ, start_response):
            inside.set()
            threading.Event().wait()  # forever

        async def main():
            async with anyio.create_task_group() as tg:
                tg.start_soon(WSGIToASGI(stuck), http_scope(), Receiver(), Transcript())
                while not inside.is_set():
                    await anyio.sleep(0.01)
                tg.cancel_scope.cancel()
            print("request cancelled", flush=True)

        anyio.run(main)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "request cancelled\n"


def test_an_asgi_app_never_answering_does_not_block_exit_and_shuts_down_once() -> None:
    # A WSGI server thread waits on an app that never answers (no response_timeout).
    # At exit the adapter runs lifespan shutdown once and the interpreter leaves.
    result = run_script(
        """
        import io, threading, anyio
        from bridge import ASGIToWSGI

        entered = threading.Event()

        async def app(scope, receive, send):
            if scope["type"] == "lifespan":
                while True:
                    message = await receive()
                    if message["type"] == "lifespan.startup":
                        await send({"type": "lifespan.startup.complete"})
                    else:
                        print("shutdown", flush=True)
                        await send({"type": "lifespan.shutdown.complete"})
                        return
            entered.set()
            await anyio.sleep_forever()

        adapter = ASGIToWSGI(app, lifespan_timeout=5)
        environ = {
            "REQUEST_METHOD": "GET", "PATH_INFO": "/", "SERVER_NAME": "t", "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.input": io.BytesIO(), "wsgi.url_scheme": "http",
        }
        threading.Thread(target=adapter, args=(environ, print), daemon=True).start()
        assert entered.wait(5)
        print("in flight", flush=True)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "in flight\nshutdown\n"


def test_close_then_exit_runs_lifespan_shutdown_once() -> None:
    result = run_script(
        """
        import io
        from bridge import ASGIToWSGI

        async def app(scope, receive, send):
            if scope["type"] == "lifespan":
                while True:
                    message = await receive()
                    print(message["type"], flush=True)
                    await send({"type": message["type"] + ".complete"})
                    if message["type"] == "lifespan.shutdown":
                        return
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

        adapter = ASGIToWSGI(app, lifespan_timeout=5)
        environ = {
            "REQUEST_METHOD": "GET", "PATH_INFO": "/", "SERVER_NAME": "t", "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.input": io.BytesIO(), "wsgi.url_scheme": "http",
        }
        assert b"".join(adapter(environ, lambda status, headers: None)) == b"ok"
        adapter.close()
        adapter.close()
        print("closed", flush=True)
        """
    )
    assert result.returncode == 0, result.stderr
    # Not again on the second close(), nor at exit.
    assert result.stdout == "lifespan.startup\nlifespan.shutdown\nclosed\n"


# Bad input: malformed messages from a buggy ASGI app (ASGIToWSGI).

_START: Message = {"type": "http.response.start", "status": 200, "headers": TEXT_PLAIN}


@pytest.mark.parametrize(
    "script",
    [
        pytest.param([{**_START, "status": True}], id="status-bool"),
        pytest.param([{**_START, "status": None}], id="status-none"),
        pytest.param([{**_START, "status": 99}], id="status-99"),
        pytest.param([{"type": "http.response.start", "headers": []}], id="status-missing"),
        pytest.param([{**_START, "headers": None}], id="headers-none"),
        pytest.param([{**_START, "headers": [(b"", b"1")]}], id="header-name-empty"),
        pytest.param([{**_START, "headers": [(b"x-a", b"1\x00")]}], id="header-nul"),
        pytest.param([{**_START, "headers": [(b"x-a:", b"1")]}], id="header-name-colon"),
        pytest.param([_START, {"type": "http.response.body", "body": None}], id="body-none"),
        pytest.param([_START, {"type": "http.response.body", "body": 7}], id="body-int"),
        pytest.param([{"status": 200}], id="no-type"),
        pytest.param([_START, {"type": "http.response.pathsend", "path": 7}], id="pathsend-int"),
    ],
)
def test_malformed_message_is_a_protocol_error_before_any_response(
    adapters: Callable[..., ASGIToWSGI], script: list[Message]
) -> None:
    app = asgi_apps.Scripted(script)
    start_response = Recorded()
    with pytest.raises(ASGIProtocolError) as caught:
        adapters(app)(environ(), start_response)
    assert start_response.calls == []
    assert caught.value is app.error


@pytest.mark.parametrize("message", [None, "http.response.start", [("type", "x")]])
def test_a_message_that_is_not_a_dict_is_a_protocol_error(
    adapters: Callable[..., ASGIToWSGI], message: object
) -> None:
    app = asgi_apps.Scripted([cast(Message, message)])
    with pytest.raises(ASGIProtocolError):
        adapters(app)(environ(), Recorded())


def test_conflicting_response_content_length_from_the_asgi_app_is_refused(
    adapters: Callable[..., ASGIToWSGI],
) -> None:
    headers = [*TEXT_PLAIN, (b"content-length", b"1"), (b"content-length", b"2")]
    app = asgi_apps.Scripted(
        [{**_START, "headers": headers}, {"type": "http.response.body", "body": b"ab"}]
    )
    start_response = Recorded()
    with pytest.raises(ASGIProtocolError):
        adapters(app)(environ(), start_response)
    assert start_response.calls == []


def test_response_headers_given_as_a_one_shot_iterable_are_all_checked(
    adapters: Callable[..., ASGIToWSGI],
) -> None:
    # The spec allows any iterable of pairs: a generator can be read only once, and
    # the Content-Length check must see it too.
    def headers(*lengths: bytes) -> Iterator[tuple[bytes, bytes]]:
        yield from TEXT_PLAIN
        for length in lengths:
            yield (b"content-length", length)

    body = {"type": "http.response.body", "body": b"ab"}
    conflicting = asgi_apps.Scripted([{**_START, "headers": headers(b"1", b"2")}, body])
    start_response = Recorded()
    with pytest.raises(ASGIProtocolError, match="conflicting Content-Length"):
        adapters(conflicting)(environ(), start_response)
    assert start_response.calls == []

    valid = asgi_apps.Scripted([{**_START, "headers": headers(b"2")}, body])
    start_response = Recorded()
    assert b"".join(adapters(valid)(environ(), start_response)) == b"ab"
    assert ("content-length", "2") in start_response.calls[0][1]


# Bad input: a sloppy WSGI server's environ (ASGIToWSGI).


def _environ_without(key: str) -> Environ:
    result = environ()
    del result[key]
    return result


SLOPPY_ENVIRONS = [
    pytest.param(_environ_without("REQUEST_METHOD"), id="no-method"),
    pytest.param(environ(method=cast(str, 5)), id="method-int"),
    pytest.param(environ(cast(str, b"/")), id="path-bytes"),
    pytest.param(environ("/\u20ac"), id="path-not-latin1"),
    pytest.param(environ(HTTP_X_A="\u20ac"), id="header-not-latin1"),
    pytest.param(environ(HTTP_X_A=7), id="header-int"),
    pytest.param(environ(QUERY_STRING=None), id="query-none"),
    pytest.param(environ(SERVER_PROTOCOL=11), id="protocol-int"),
    pytest.param({**environ(), cast(str, 7): "x"}, id="key-int"),
    pytest.param(environ(content_length="abc"), id="content-length-text"),
    pytest.param(environ(content_length="-5"), id="content-length-negative"),
    pytest.param(environ(content_length="1.5"), id="content-length-fraction"),
    pytest.param(environ(content_length="\uff15"), id="content-length-fullwidth"),
    pytest.param(environ(content_length=" 5"), id="content-length-space"),
]


@pytest.mark.parametrize("env", SLOPPY_ENVIRONS)
def test_sloppy_environ_is_400_before_the_app(
    adapters: Callable[..., ASGIToWSGI], env: Environ
) -> None:
    app = asgi_apps.Recorder()
    start_response, body = call_wsgi(adapters(app), env)
    assert start_response.status == 400
    assert b"Traceback" not in body
    assert app.scopes == []


class TextInput:
    """A broken ``wsgi.input`` whose ``read`` returns ``str``."""

    def read(self, size: int = -1) -> str:
        return "abc"


@pytest.mark.parametrize(
    "env",
    [
        pytest.param(
            {k: v for k, v in environ(body=b"abc").items() if k != "wsgi.input"}, id="no-input"
        ),
        pytest.param(environ(wsgi_input=TextInput(), content_length="3"), id="input-reads-str"),
    ],
)
def test_broken_wsgi_input_is_400_before_the_app(
    adapters: Callable[..., ASGIToWSGI], env: Environ
) -> None:
    app = asgi_apps.Recorder()
    start_response, body = call_wsgi(adapters(app), env)
    assert start_response.status == 400
    assert b"wsgi.input" in body
    assert app.scopes == []


class TextChunks:
    """A broken ``wsgi.input`` whose ``read`` returns ``str``, for a large body."""

    def read(self, size: int = -1) -> str:
        return "x" * 1000


@pytest.mark.parametrize(
    "env",
    [
        pytest.param(
            {k: v for k, v in environ(content_length="200000").items() if k != "wsgi.input"},
            id="no-input",
        ),
        pytest.param(
            environ(wsgi_input=TextChunks(), content_length="200000"), id="input-reads-str"
        ),
    ],
)
def test_broken_wsgi_input_for_a_large_body_ends_the_app_task(
    adapters: Callable[..., ASGIToWSGI], env: Environ
) -> None:
    env["REQUEST_METHOD"] = "POST"
    adapter = adapters(WithTaskCount(asgi_apps.echo))
    baseline = loop_tasks(adapter)
    try:
        start_response, _ = call_wsgi(adapter, env)
    except (BadRequest, ClientDisconnected):
        pass  # a clear error for the server
    else:
        assert start_response.status == 400
    wait_for(lambda: loop_tasks(adapter) == baseline, "the app's task ended", timeout=2.0)


def test_body_is_never_read_past_content_length(adapters: Callable[..., ASGIToWSGI]) -> None:
    # Whatever else the headers say (Transfer-Encoding here), the adapter reads the
    # CONTENT_LENGTH the server framed and not a byte more: what follows on the
    # connection (a smuggled request) is never consumed as this request's body.
    # Refusing Content-Length with Transfer-Encoding is the WSGI server's job.
    wire = io.BytesIO(b"abc" + b"GET /smuggled HTTP/1.1\r\n\r\n")
    env = environ(
        method="POST", wsgi_input=wire, content_length="3", HTTP_TRANSFER_ENCODING="chunked"
    )
    start_response, body = call_wsgi(adapters(asgi_apps.echo), env)
    assert (start_response.status, body) == (200, b"abc")
    assert wire.tell() == 3


# max_body_size (ASGIToWSGI).


def test_declared_body_over_the_limit_is_413_without_reading_it(
    adapters: Callable[..., ASGIToWSGI],
) -> None:
    app = asgi_apps.Recorder()
    upload = CountingInput(200_000)
    env = environ(method="POST", wsgi_input=upload, content_length="200000")
    start_response, body = call_wsgi(adapters(app, max_body_size=1000), env)
    assert start_response.status == 413
    assert b"1000 bytes" in body
    assert upload.read_bytes == 0
    assert app.scopes == []


def test_endless_chunked_body_over_the_limit_is_413_and_reading_stops(
    adapters: Callable[..., ASGIToWSGI],
) -> None:
    app = asgi_apps.Recorder()
    upload = CountingInput(None)
    env = environ(method="POST", wsgi_input=upload)
    env["wsgi.input_terminated"] = True  # a chunked upload, read to its end
    start_response, body = call_wsgi(adapters(app, max_body_size=100_000), env)
    assert start_response.status == 413
    assert b"100000 bytes" in body
    assert upload.read_bytes <= 100_000 + 65536  # one read past the limit at most
    wait_for(app.done.is_set, "the app ended")
    assert app.messages[0][-1] == DISCONNECT  # the app is told the client is gone


def test_body_at_the_limit_passes(adapters: Callable[..., ASGIToWSGI]) -> None:
    env = environ(method="POST", wsgi_input=CountingInput(100_000), content_length="100000")
    start_response, body = call_wsgi(adapters(asgi_apps.echo, max_body_size=100_000), env)
    assert (start_response.status, len(body)) == (200, 100_000)


# Faults: the client goes away at each point (ASGIToWSGI).


class Uploader:
    """Reads the whole body, then streams 1 KiB chunks until ``send()`` raises.

    :attr:`exchange_send` is the adapter's ``send``, kept so a test can see when it
    waits for the WSGI server (back-pressure).
    """

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.outcome: BaseException | None = None
        self.ended = threading.Event()
        self.exchange_send: Send | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await asgi_apps.serve_lifespan(receive, send)
            return
        self.exchange_send = send
        try:
            _, self.messages = await asgi_apps.read_body(receive)
            if self.messages[-1]["type"] == "http.disconnect":
                return  # nobody to answer
            await send(_START)
            while True:
                await send({"type": "http.response.body", "body": b"x" * 1024, "more_body": True})
        except ClientDisconnected as exc:
            self.outcome = exc
            raise
        finally:
            self.ended.set()

    def waits_for_the_server(self) -> bool:
        # The bridge's private exchange, read only to know the moment send() waits.
        exchange = getattr(self.exchange_send, "__self__", None)
        return getattr(exchange, "_drained", None) is not None


LOOPS = ["asyncio", "trio"]
"""The backends of ``ASGIToWSGI``'s own loop (asyncio starts request tasks natively,
trio through a task group: two cancellation paths)."""


@pytest.mark.parametrize("backend", LOOPS)
@pytest.mark.parametrize(
    "point", ["before-body", "mid-upload", "upload-cut-short", "mid-stream", "on-back-pressure"]
)
def test_client_gone_at_each_point_ends_the_app_task(
    adapters: Callable[..., ASGIToWSGI], point: str, backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    uploader = Uploader()
    adapter = adapters(WithTaskCount(uploader), high_water=4096, backend=backend)
    baseline = loop_tasks(adapter)
    if point in ("before-body", "mid-upload", "upload-cut-short"):
        good = 0 if point == "before-body" else 70_000
        upload = CountingInput(200_000, cut_at=good, eof=point == "upload-cut-short")
        env = environ(method="POST", wsgi_input=upload, content_length="200000")
        with pytest.raises(ClientDisconnected):
            call_wsgi(adapter, env)
        wait_for(uploader.ended.is_set, "the app ended")
        assert uploader.messages[-1] == DISCONNECT
        received = sum(len(m.get("body", b"")) for m in uploader.messages)
        assert received == good  # never a silently short body
    else:
        result = adapter(environ(), Recorded())
        try:
            assert next(iter(result)) == b"x" * 1024
            if point == "on-back-pressure":
                wait_for(uploader.waits_for_the_server, "the app's send() waits for the server")
        finally:
            cast(Any, result).close()  # the server's write failed: it closes early
        wait_for(uploader.ended.is_set, "the app ended")
        assert isinstance(uploader.outcome, ClientDisconnected)
    wait_for(lambda: loop_tasks(adapter) == baseline, "the app's task is gone")
    bridge_warnings = [r for r in caplog.records if r.name == "bridge" and r.levelno >= 30]
    assert not bridge_warnings  # a disconnect is no error


# Faults: lifespan startup and shutdown that raise or hang (ASGIToWSGI).


class Lifespan:
    """Startup and shutdown each ``"ok"``, ``"raise"`` or ``"hang"``; counts shutdowns."""

    def __init__(self, startup: str = "ok", shutdown: str = "ok") -> None:
        self.startup = startup
        self.shutdown = shutdown
        self.shutdowns = 0

    async def _act(self, how: str, where: str) -> None:
        if how == "raise":
            raise AppError(f"{where} failed")
        if how == "hang":
            await anyio.sleep_forever()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await asgi_apps.respond(send, b"ok")
            return
        assert (await receive())["type"] == "lifespan.startup"
        await self._act(self.startup, "startup")
        await send({"type": "lifespan.startup.complete"})
        assert (await receive())["type"] == "lifespan.shutdown"
        self.shutdowns += 1
        await self._act(self.shutdown, "shutdown")
        await send({"type": "lifespan.shutdown.complete"})


@pytest.mark.parametrize("backend", LOOPS)
@pytest.mark.parametrize("how", ["raise", "hang"])
def test_lifespan_startup_that_fails_fails_every_request(
    adapters: Callable[..., ASGIToWSGI], how: str, backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Raised to the WSGI server, which answers a plain 500 and logs it.
    adapter = adapters(Lifespan(startup=how), lifespan="on", lifespan_timeout=0.5, backend=backend)
    for _ in range(2):  # every request, not only the first
        with pytest.raises(LifespanFailed, match="startup"):
            call_wsgi(adapter, environ())
    assert "startup" in caplog.text


@pytest.mark.parametrize("backend", LOOPS)
@pytest.mark.parametrize("how", ["raise", "hang"])
def test_lifespan_shutdown_that_fails_is_logged_and_bounded(
    adapters: Callable[..., ASGIToWSGI], how: str, backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = Lifespan(shutdown=how)
    adapter = adapters(app, lifespan_timeout=0.5, backend=backend)
    assert call_wsgi(adapter, environ())[1] == b"ok"
    started = time.monotonic()
    adapter.close()
    assert time.monotonic() - started < TIMEOUT  # bounded by lifespan_timeout
    adapter.close()
    assert app.shutdowns == 1
    if how == "raise":
        assert "lifespan after startup" in caplog.text
