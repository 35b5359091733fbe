"""Nothing lost on the way: what an app does is what the server and the client see.

Errors after the response, work after the response, the exact request target,
per-request scopes and environs, hints the bridge cannot carry, and the leniency real
servers show, each checked through one adapter and, where it matters, through two
back to back (``WSGIToASGI(ASGIToWSGI(app))``, as a WSGI dispatcher in front of an
ASGI app under an ASGI server would).
"""

from __future__ import annotations

import contextvars
import io
import logging
import sys
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import anyio
import anyio.lowlevel
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from bridge import ASGIToWSGI, WSGIToASGI
from bridge.types import Environ, Message, Receive, Scope, Send, StartResponse
from tests import asgi_apps
from tests.asgi_apps import TEXT_PLAIN, TIMEOUT, make_environ, wait_event
from tests.conftest import AdapterFactory
from tests.test_asgi_to_wsgi import StartResponse as RecordingStartResponse
from tests.test_asgi_to_wsgi import bridge_records, call, close
from tests.test_asgi_to_wsgi import run as run_wsgi
from tests.test_guarantees import wait_for
from tests.test_wsgi_to_asgi import run as run_asgi
from tests.wsgi_apps import TEXT, Transcript, http_scope

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["asyncio", "trio"], scope="module")
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return cast(str, request.param)


class AppError(Exception):
    """Raised by the apps here; a test checks it arrives as itself."""


async def after_response(scope: Scope, receive: Receive, send: Send, work: Any) -> None:
    if scope["type"] == "lifespan":
        await asgi_apps.serve_lifespan(receive, send)
        return
    await asgi_apps.respond(send, b"done")
    await work()


def in_thread(fn: Any) -> threading.Thread:
    thread = threading.Thread(target=fn, daemon=True)
    thread.start()
    return thread


# 1. An exception after a complete response reaches the WSGI server from close().


def test_an_exception_after_the_response_is_raised_from_close(
    make_adapter: AdapterFactory,
) -> None:
    error = AppError("after the response")

    async def work() -> None:
        raise error

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await after_response(scope, receive, send, work)

    start_response, result = call(make_adapter(app), make_environ())
    assert b"".join(result) == b"done"
    assert start_response.status == "200 OK"
    with pytest.raises(AppError) as raised:
        close(result)
    assert raised.value is error


def test_starlette_server_error_middleware_reraises_through_close(
    make_adapter: AdapterFactory,
) -> None:
    # ServerErrorMiddleware sends its 500, then re-raises: reporters around the bridge
    # (and test clients) see the exception, as they do natively.
    async def fail(request: Request) -> PlainTextResponse:
        raise AppError("in the endpoint")

    app = Starlette(routes=[Route("/", fail)])
    with pytest.raises(AppError, match="in the endpoint"):
        run_wsgi(make_adapter(app), make_environ())


def test_work_after_the_response_has_finished_when_close_returns(
    make_adapter: AdapterFactory,
) -> None:
    finished = threading.Event()

    async def work() -> None:
        await anyio.sleep(0.05)  # real work takes a while: close() must wait for it
        finished.set()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await after_response(scope, receive, send, work)

    _start_response, body = run_wsgi(make_adapter(app), make_environ())
    assert body == b"done"
    assert finished.is_set()


def test_detached_work_frees_the_worker_and_logs_its_error(
    make_adapter: AdapterFactory, caplog: pytest.LogCaptureFixture
) -> None:
    release = threading.Event()
    error = AppError("detached")

    async def work() -> None:
        await wait_event(release)
        raise error

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await after_response(scope, receive, send, work)

    adapter = make_adapter(app, after_response="detach")
    assert run_wsgi(adapter, make_environ())[1] == b"done"  # close() did not wait
    with caplog.at_level(logging.ERROR, "bridge"):
        release.set()
        wait_for(
            lambda: any(r.exc_info and r.exc_info[1] is error for r in caplog.records),
            "the detached error was logged",
        )


def test_the_wait_in_close_is_bounded_by_after_response_timeout(
    make_adapter: AdapterFactory, caplog: pytest.LogCaptureFixture
) -> None:
    async def work() -> None:
        await anyio.sleep_forever()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await after_response(scope, receive, send, work)

    adapter = make_adapter(app, after_response_timeout=0.1)
    results: list[bytes] = []
    thread = in_thread(lambda: results.append(run_wsgi(adapter, make_environ())[1]))
    thread.join(TIMEOUT)
    assert not thread.is_alive(), "close() waited past after_response_timeout"
    assert results == [b"done"]
    assert any("after_response_timeout" in r.getMessage() for r in bridge_records(caplog, 30))


def test_close_after_the_client_left_raises_nothing_and_logs_one_debug_line(
    make_adapter: AdapterFactory, caplog: pytest.LogCaptureFixture
) -> None:
    # The WSGI server closes the response early: the client went away. Starlette's
    # StreamingResponse then raises (its ClientDisconnect, or the bridge's
    # ClientDisconnected from send): a client that leaves is not a server error.
    left = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await asgi_apps.serve_lifespan(receive, send)
            return
        await send({"type": "http.response.start", "status": 200, "headers": TEXT_PLAIN})
        while True:
            await send({"type": "http.response.body", "body": b"tick\n", "more_body": True})
            await wait_event(left, 0.01)

    adapter = make_adapter(app)
    with caplog.at_level(logging.DEBUG, "bridge"):
        _start_response, result = call(adapter, make_environ())
        assert next(iter(result)) == b"tick\n"
        close(result)  # raises nothing
        left.set()
        wait_for(
            lambda: any(
                r.levelno == logging.DEBUG and "client" in r.getMessage().lower()
                for r in caplog.records
            ),
            "the app's end was logged",
        )
    assert not bridge_records(caplog, logging.WARNING)
    client_lines = [r for r in caplog.records if "client" in r.getMessage().lower()]
    assert all(r.exc_info is None for r in client_lines), "one line, no traceback"


# 9c. A close once the declared Content-Length was delivered is not a disconnect.


def test_close_after_the_declared_length_lets_the_app_finish(
    make_adapter: AdapterFactory,
) -> None:
    seen: list[str] = []
    finished = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await asgi_apps.serve_lifespan(receive, send)
            return
        headers = [*TEXT_PLAIN, (b"content-length", b"5")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"hello", "more_body": True})
        await anyio.sleep(0.02)  # cleanup before the last message
        with anyio.move_on_after(0.05):
            seen.append((await receive())["type"])
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        finished.set()

    _start_response, result = call(make_adapter(app), make_environ())
    iterator = iter(result)
    assert next(iterator) == b"hello"  # all 5 declared bytes: the server stops here
    close(result)
    assert finished.is_set(), "close() returned before the app finished"
    assert "http.disconnect" not in seen


async def test_through_two_bridges_a_length_delimited_response_ends_cleanly() -> None:
    # WSGIToASGI stops iterating at the declared Content-Length and closes the
    # iterable at once; the inner ASGI app must still be able to finish its response.
    finished = threading.Event()
    errors: list[BaseException] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await asgi_apps.serve_lifespan(receive, send)
            return
        try:
            headers = [*TEXT_PLAIN, (b"content-length", b"5")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": b"hello", "more_body": True})
            await anyio.sleep(0.02)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            finished.set()
        except BaseException as exc:
            errors.append(exc)
            raise

    inner = ASGIToWSGI(app, lifespan="off")
    try:
        transcript = await run_asgi(WSGIToASGI(inner))
        assert transcript.assert_complete() == b"hello"
        await anyio.to_thread.run_sync(finished.wait, TIMEOUT)
        assert finished.is_set() and not errors
    finally:
        inner.close()


# 2. exc_info: the handled error is answered, then raised to the ASGI server.


async def test_exc_info_replacement_is_sent_then_the_error_raised() -> None:
    error = AppError("handled")

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", TEXT)
        try:
            raise error
        except AppError:
            start_response("500 Internal Server Error", TEXT, sys.exc_info())
        return [b"replaced"]

    transcript = Transcript()
    with pytest.raises(AppError) as raised:
        await run_asgi(app, transcript=transcript)
    assert raised.value is error
    assert transcript.status == 500
    assert transcript.assert_complete() == b"replaced"


# 3. The exact request target crosses.


@pytest.mark.parametrize(
    ("raw_path", "query", "expected"),
    [
        pytest.param(b"/he%2Fllo", b"a=1", "/he%2Fllo?a=1", id="encoded-slash-and-query"),
        pytest.param(b"/caf%C3%A9", b"", "/caf%C3%A9", id="no-query"),
        pytest.param(None, b"x=%20", "/he/llo?x=%20", id="no-raw-path"),
    ],
)
async def test_request_uri_and_raw_uri_are_the_request_target(
    raw_path: bytes | None, query: bytes, expected: str
) -> None:
    seen: list[tuple[str, str]] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        seen.append((environ["REQUEST_URI"], environ["RAW_URI"]))
        start_response("200 OK", TEXT)
        return [b""]

    scope = http_scope(path="/he/llo", query_string=query)
    if raw_path is None:
        del scope["raw_path"]
    else:
        scope["raw_path"] = raw_path
    await run_asgi(app, scope)
    assert seen == [(expected, expected)]


async def test_raw_path_survives_two_bridges() -> None:
    seen: list[tuple[bytes, str]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append((scope["raw_path"], scope["path"]))
        await asgi_apps.respond(send, b"")

    inner = ASGIToWSGI(app, lifespan="off")
    try:
        scope = http_scope(path="/he/llo")
        scope["raw_path"] = b"/he%2Fllo"
        await run_asgi(WSGIToASGI(inner), scope)
    finally:
        inner.close()
    assert seen == [(b"/he%2Fllo", "/he/llo")]


# 4. Each request's scope and environ are its own.


def test_each_request_gets_a_scope_of_its_own(make_adapter: AdapterFactory) -> None:
    seen: list[dict[str, Any]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await receive()
            scope["state"]["shared"] = {"kept": True}
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        seen.append(
            {
                "extensions": {k: dict(v) for k, v in scope["extensions"].items()},
                "state": sorted(scope["state"]),
                "asgi": dict(scope["asgi"]),
                "headers": list(scope["headers"]),
            }
        )
        # Mutate every mutable part, as Starlette's own tests do.
        scope["extensions"]["x-added"] = {}
        for value in scope["extensions"].values():
            value["touched"] = True
        scope["state"]["added"] = 1
        scope["asgi"]["touched"] = True
        scope["headers"].append((b"x-added", b"1"))
        await asgi_apps.respond(send, b"ok")

    adapter = make_adapter(app)
    for _ in range(2):
        assert run_wsgi(adapter, make_environ(headers={"HTTP_X_TEST": "1"}))[1] == b"ok"
    assert seen[0] == seen[1]
    assert seen[0]["extensions"] == {"http.response.pathsend": {}}
    assert seen[0]["state"] == ["shared"]


async def test_each_request_gets_an_environ_of_its_own() -> None:
    seen: list[dict[str, Any]] = []
    kept: list[list[object]] = []  # alive, so that no two can share an id()

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        seen.append({key: environ[key] for key in ("HTTP_X_TEST", "wsgi.version")})
        kept.append([environ, environ["wsgi.errors"], environ["wsgi.input"]])
        environ["HTTP_X_TEST"] = "changed"
        environ["wsgi.errors"].write("x")
        start_response("200 OK", TEXT)
        return [b""]

    adapter = WSGIToASGI(app)
    for _ in range(2):
        await run_asgi(adapter, http_scope(headers=[(b"x-test", b"1")]))
    assert seen[0] == seen[1] == {"HTTP_X_TEST": "1", "wsgi.version": (1, 0)}
    assert {id(part) for part in kept[0]}.isdisjoint(id(part) for part in kept[1])


# 5. Hints the bridge cannot carry are dropped, not refused.


@pytest.mark.parametrize(
    "hint",
    [
        pytest.param(
            {"type": "http.response.push", "path": "/style.css", "headers": []}, id="push"
        ),
        pytest.param(
            {"type": "http.response.early_hint", "links": [b"</style.css>; rel=preload"]},
            id="early-hint",
        ),
    ],
)
@pytest.mark.parametrize("when", ["before-start", "after-start"])
def test_hints_are_dropped_with_a_debug_line(
    make_adapter: AdapterFactory, caplog: pytest.LogCaptureFixture, hint: Message, when: str
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if when == "before-start":
            await send(hint)
        await send({"type": "http.response.start", "status": 200, "headers": TEXT_PLAIN})
        if when == "after-start":
            await send(hint)
        await send({"type": "http.response.body", "body": b"ok"})

    with caplog.at_level(logging.DEBUG, "bridge"):
        start_response, body = run_wsgi(make_adapter(app, lifespan="off"), make_environ())
    assert (start_response.status, body) == ("200 OK", b"ok")
    assert any(hint["type"] in r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG)


# 6. Lenient where real servers are lenient.


def test_a_relative_pathsend_path_is_read_from_the_working_directory(
    make_adapter: AdapterFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "image.png").write_bytes(b"\x89PNG data")
    monkeypatch.chdir(tmp_path)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"image/png")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.pathsend", "path": "image.png"})

    assert run_wsgi(make_adapter(app, lifespan="off"), make_environ())[1] == b"\x89PNG data"


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param((("Content-Type", "text/plain"),), id="tuple-of-tuples"),
        pytest.param([["Content-Type", "text/plain"]], id="list-of-lists"),
        pytest.param((["Content-Type", "text/plain"],), id="tuple-of-lists"),
    ],
)
async def test_response_headers_as_any_sequence_of_pairs(headers: Any) -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", headers)
        return [b"ok"]

    transcript = await run_asgi(app)
    assert transcript.headers == [(b"content-type", b"text/plain")]
    assert transcript.assert_complete() == b"ok"


async def test_max_duplicate_headers_none_turns_the_limit_off() -> None:
    seen: list[str] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        seen.append(environ["HTTP_X_MANY"])
        start_response("200 OK", TEXT)
        return [b""]

    headers = [(b"x-many", b"v")] * 300
    await run_asgi(WSGIToASGI(app, max_duplicate_headers=None), http_scope(headers=headers))
    assert seen == [",".join(["v"] * 300)]


# 7. Lifespan "auto" with an app that answers lifespan as if it were a request.


@pytest.mark.timeout(30)
def test_an_http_only_app_is_served_at_once_in_auto_mode(
    make_adapter: AdapterFactory, caplog: pytest.LogCaptureFixture
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        # Written for http only: answers any scope, then waits for a disconnect.
        await send({"type": "http.response.start", "status": 200, "headers": TEXT_PLAIN})
        await send({"type": "http.response.body", "body": b"ok"})
        while (await receive())["type"] != "http.disconnect":
            pass

    # A lifespan_timeout longer than the test's own timeout: waiting for it fails.
    adapter = make_adapter(app, lifespan_timeout=600)
    for _ in range(2):
        start_response, body = run_wsgi(adapter, make_environ())
        assert (start_response.status, body) == ("200 OK", b"ok")
    warnings = [r.getMessage() for r in bridge_records(caplog, logging.WARNING)]
    assert len(warnings) == 1 and "lifespan" in warnings[0]


def test_an_http_only_app_with_a_one_shot_body_keeps_it_for_the_request(
    make_adapter: AdapterFactory,
) -> None:
    # Starlette's StreamingResponse used as the app itself: it answers the lifespan
    # scope too, and its iterator can be read once. The lifespan's send() refuses the
    # first message that is not lifespan's, before the app reads the iterator.
    chunks = iter([b"one", b"two"])

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": TEXT_PLAIN})
        for chunk in chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    start_response, body = run_wsgi(make_adapter(app), make_environ())
    assert (start_response.status, body) == ("200 OK", b"onetwo")


# 8. Expect: 100-continue is honoured: the body is read only when the app asks.


class CountingInput(io.BytesIO):
    reads = 0

    def read(self, size: int | None = -1) -> bytes:
        self.reads += 1
        return super().read(size)


@pytest.mark.parametrize("expect", ["100-continue", None])
def test_a_body_behind_100_continue_is_read_only_when_the_app_asks(
    make_adapter: AdapterFactory, expect: str | None
) -> None:
    async def refuse(scope: Scope, receive: Receive, send: Send) -> None:
        await asgi_apps.respond(send, b"no", status=401)

    body = CountingInput(b"0123456789")
    headers = {} if expect is None else {"HTTP_EXPECT": expect}
    environ = make_environ(method="POST", body=b"x" * 10, wsgi_input=body, headers=headers)
    start_response, response = run_wsgi(make_adapter(refuse, lifespan="off"), environ)
    assert (start_response.status, response) == ("401 Unauthorized", b"no")
    assert body.reads == (0 if expect else 1)


# 9. Scope parts as one-shot iterables; status codes 600-999.


async def test_scope_headers_client_and_server_may_be_one_shot_iterators() -> None:
    seen: list[tuple[str, str, str, str]] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        seen.append(
            (
                environ["HTTP_X_ONE"],
                environ["REMOTE_ADDR"],
                environ["SERVER_NAME"],
                environ["SERVER_PORT"],
            )
        )
        start_response("200 OK", TEXT)
        return [b""]

    scope = http_scope()
    scope["headers"] = iter([iter([b"x-one", b"1"]), (b"host", b"h")])
    scope["client"] = iter(["10.0.0.1", 1234])
    scope["server"] = iter(["example.org", 8080])
    await run_asgi(app, scope)
    assert seen == [("1", "10.0.0.1", "example.org", "8080")]


@pytest.mark.parametrize("status", [600, 723, 999])
def test_status_codes_up_to_999_pass_through(make_adapter: AdapterFactory, status: int) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await asgi_apps.respond(send, b"odd", status=status)

    start_response, body = run_wsgi(make_adapter(app, lifespan="off"), make_environ())
    assert start_response.status.split(" ")[0] == str(status)
    assert body == b"odd"


@pytest.mark.parametrize(
    ("script_name", "path_info", "path"),
    [
        pytest.param("/app", "foo", "/app/foo", id="no-leading-slash"),
        pytest.param("/app", "", "/app", id="empty"),
        pytest.param("/app", "/foo", "/app/foo", id="usual"),
    ],
)
def test_a_path_info_without_its_slash_is_not_glued_to_script_name(
    make_adapter: AdapterFactory, script_name: str, path_info: str, path: str
) -> None:
    seen: list[tuple[str, str]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append((scope["root_path"], scope["path"]))
        await asgi_apps.respond(send, b"")

    environ = make_environ(path_info, script_name=script_name)
    # Not through wsgiref.validate, which refuses such a PATH_INFO: werkzeug's test
    # client sends it.
    result = make_adapter(app, lifespan="off")(environ, RecordingStartResponse())
    assert b"".join(result) == b""
    result.close()
    assert seen == [(script_name, path)]


REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="unset")


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_what_a_wsgi_middleware_sets_in_the_context_reaches_the_app(
    make_adapter: AdapterFactory, backend: str
) -> None:
    # As natively under a WSGI server, where the app runs in the server's thread: a
    # tracing span or a request id set around the app is the app's. The app's task
    # still knows which event loop runs it (anyio works there).
    seen: list[tuple[str, str]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await anyio.lowlevel.checkpoint()
        seen.append((REQUEST_ID.get(), anyio.get_current_task().name or ""))
        await asgi_apps.respond(send, b"")

    adapter = make_adapter(app, lifespan="off", backend=backend)

    def middleware(environ: Environ, start_response: StartResponse) -> Any:
        token = REQUEST_ID.set(environ["PATH_INFO"])
        try:
            return adapter(environ, start_response)
        finally:
            REQUEST_ID.reset(token)

    for path in ("/one", "/two"):
        run_wsgi(middleware, make_environ(path))  # type: ignore[arg-type]
    assert [request_id for request_id, _ in seen] == ["/one", "/two"]
    assert REQUEST_ID.get() == "unset"


@pytest.mark.parametrize("caller", ["trio", "asyncio", None])
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_the_apps_task_names_its_own_loop_whatever_the_caller_names(
    make_adapter: AdapterFactory, backend: str, caller: str | None
) -> None:
    # A WSGI server's thread whose context names another event loop (a thread started
    # from a trio task: the double bridge under trio): the app's task is still told
    # which loop runs it, so anyio and sniffio work there.
    import sniffio

    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await anyio.lowlevel.checkpoint()
        seen.append(sniffio.current_async_library())
        await asgi_apps.respond(send, b"")

    adapter = make_adapter(app, lifespan="off", backend=backend)
    context = contextvars.copy_context()
    context.run(sniffio.current_async_library_cvar.set, caller)
    context.run(run_wsgi, adapter, make_environ("/"))
    assert seen == [backend]
    assert sniffio.current_async_library_cvar.get() is None  # this thread's own: untouched


def detached_after_response(
    make_adapter: AdapterFactory, backend: str, after: Callable[[], Awaitable[None]]
) -> ASGIToWSGI:
    """An adapter whose app answers, then runs ``after()`` detached from the request;
    returned once ``after()`` has started."""
    started = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await asgi_apps.serve_lifespan(receive, send)
            return
        await asgi_apps.respond(send, b"")
        started.set()
        await after()

    adapter = make_adapter(app, after_response="detach", backend=backend)
    run_wsgi(adapter, make_environ("/"))
    assert started.wait(TIMEOUT)
    return adapter


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_close_cancels_the_tasks_still_running_within_a_grace_period(
    make_adapter: AdapterFactory,
    backend: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Work an app goes on with after its response (detached) is cancelled when the
    # adapter closes, after lifespan shutdown. An app that shrugs the cancellation off
    # gets the grace period, then is cancelled again as the loop ends.
    import bridge._loop

    monkeypatch.setattr(bridge._loop, "SHUTDOWN_GRACE", 0.2)
    outcome: list[str] = []

    async def after() -> None:
        try:
            await anyio.sleep(TIMEOUT * 10)
        except anyio.get_cancelled_exc_class():
            outcome.append("cancelled")
        try:
            await anyio.sleep(TIMEOUT * 10)
        except anyio.get_cancelled_exc_class():
            outcome.append("cancelled again")
            raise

    adapter = detached_after_response(make_adapter, backend, after)
    with caplog.at_level(logging.ERROR, logger="bridge"):
        adapter.close()
    assert outcome == ["cancelled", "cancelled again"]
    assert not caplog.records


def test_a_detached_task_that_only_waits_is_not_collected(
    make_adapter: AdapterFactory, caplog: pytest.LogCaptureFixture
) -> None:
    # asyncio keeps weak references to tasks: a detached task whose wait nothing else
    # references would be collected mid-flight ("Task was destroyed but it is pending")
    # unless the bridge holds it. It runs until close() cancels it.
    import asyncio
    import gc

    outcome: list[str] = []

    async def after() -> None:
        try:
            await asyncio.get_running_loop().create_future()  # referenced by this frame only
        except asyncio.CancelledError:
            outcome.append("cancelled")
            raise

    adapter = detached_after_response(make_adapter, "asyncio", after)
    with caplog.at_level(logging.ERROR):
        for _ in range(3):
            gc.collect()
        adapter.close()
    assert outcome == ["cancelled"]
    assert not any("destroyed" in record.getMessage() for record in caplog.records)


async def _raises_before(scope: Scope, receive: Receive, send: Send) -> None:
    raise ValueError("boom")


async def _raises_during(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"a", "more_body": True})
    raise ValueError("boom")


async def _raises_after(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"a"})
    raise ValueError("boom")


def _wsgi_raises_before(environ: Environ, start_response: StartResponse) -> list[bytes]:
    raise ValueError("boom")


def _wsgi_raises_during(environ: Environ, start_response: StartResponse) -> Any:
    start_response("200 OK", [])
    yield b"a"
    raise ValueError("boom")


@pytest.mark.parametrize(
    "inner",
    [
        pytest.param(_raises_before, id="a2w-before-the-response"),
        pytest.param(_raises_during, id="a2w-during-the-response"),
        pytest.param(_raises_after, id="a2w-after-the-response"),
        pytest.param(WSGIToASGI(_wsgi_raises_before), id="double-before-the-response"),
        pytest.param(WSGIToASGI(_wsgi_raises_during), id="double-during-the-response"),
    ],
)
def test_an_apps_error_leaves_no_reference_cycle(make_adapter: AdapterFactory, inner: Any) -> None:
    # The error raised to the WSGI server keeps the frames it left in its traceback;
    # none may still hold it, or the request's objects (the environ, the app's own)
    # would wait for the cyclic GC instead of going with the request, as natively.
    import gc

    adapter = make_adapter(inner, lifespan="off")

    def call() -> None:
        try:
            result = adapter(make_environ("/"), RecordingStartResponse())
            try:
                for _ in result:
                    pass
            finally:
                result.close()
        except ValueError:
            pass

    call()  # warm-up: the loop, the pool threads, the caches
    gc.collect()
    gc.disable()
    try:
        call()
        unreachable = gc.collect()
    finally:
        gc.enable()
    assert unreachable == 0
