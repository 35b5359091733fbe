"""``WSGIToASGI`` driven in-process: a scripted ``receive()``, a recording ``send()``.

Each test asserts the exact ASGI messages where the order of events is under the
test's control (a gated app or a gated client), and the well-formedness of the
stream where the adapter is free to join chunks. Every wait is bounded.
"""

from __future__ import annotations

import io
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

import anyio
import anyio.lowlevel
import pytest

from bridge import (
    BadRequest,
    ClientDisconnected,
    FileWrapper,
    WSGIProtocolError,
    WSGIToASGI,
)
from bridge._wsgi_input import WSGIInput
from bridge.types import Environ, Message, Scope, StartResponse, WSGIApp

from .garbage import bridge_cycles
from .wsgi_apps import (
    HELLO,
    TEXT,
    TIMEOUT,
    Receiver,
    RecordingApp,
    TrackedBody,
    Transcript,
    body_headers,
    content_length_app,
    double_start_response_app,
    echo_app,
    echo_lines_app,
    exc_info_after_start_app,
    exc_info_app,
    hello_app,
    http_scope,
    no_start_response_app,
    raise_after_start_app,
    raise_before_start_app,
    raise_in_generator_before_body_app,
    str_body_app,
    str_chunk_app,
    thread_waits_in,
    tracked_app,
    validated,
    wait_in_thread,
    wait_until,
    write_app,
)

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["asyncio", "trio"], scope="module")
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return cast(str, request.param)


async def run(
    app: WSGIApp | WSGIToASGI,
    scope: Scope | None = None,
    receive: Receiver | None = None,
    transcript: Transcript | None = None,
) -> Transcript:
    """Serve one request; return what was sent."""
    adapter = app if isinstance(app, WSGIToASGI) else WSGIToASGI(app)
    transcript = Transcript() if transcript is None else transcript
    with anyio.fail_after(TIMEOUT):
        await adapter(http_scope() if scope is None else scope, receive or Receiver(), transcript)
    return transcript


def start(status: int = 200, headers: list[tuple[bytes, bytes]] | None = None) -> Message:
    return {
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"text/plain")] if headers is None else headers,
    }


def body(data: bytes, more: bool | None = None) -> Message:
    message: Message = {"type": "http.response.body", "body": data}
    if more is not None:
        message["more_body"] = more
    return message


def never_called(environ: Environ, start_response: StartResponse) -> list[bytes]:
    raise AssertionError("the app should not have been called")


async def limiter_released(adapter: WSGIToASGI) -> None:
    await wait_until(lambda: adapter.limiter.borrowed_tokens == 0, "the worker's token came back")


# Response shapes.


async def test_list_response_is_one_start_and_one_body() -> None:
    transcript = await run(hello_app)
    assert transcript.messages == [
        start(headers=[(b"content-type", b"text/plain"), (b"content-length", b"13")]),
        body(HELLO),
    ]


async def test_tuple_response_takes_the_same_fast_path() -> None:
    def app(environ: Environ, start_response: StartResponse) -> tuple[bytes, ...]:
        start_response("200 OK", TEXT)
        return (b"Hello, ", b"world")

    assert (await run(app)).messages == [start(), body(b"Hello, world")]


async def test_validated_hello() -> None:
    transcript = await run(validated(hello_app))
    assert transcript.start == start(
        headers=[(b"content-type", b"text/plain"), (b"content-length", b"13")]
    )
    assert transcript.assert_complete() == HELLO


@pytest.mark.parametrize(
    ("make_body", "wrap", "last"),
    [
        pytest.param(list, False, body(b""), id="empty-list"),
        pytest.param(tuple, False, body(b""), id="empty-tuple"),
        pytest.param(list, True, body(b"", more=False), id="empty-list-validated"),
        pytest.param(iter, True, body(b"", more=False), id="empty-iterator"),
        pytest.param(
            lambda _: iter([b"", b""]), True, body(b"", more=False), id="only-empty-chunks"
        ),
    ],
)
async def test_empty_body_still_sends_start_and_a_body_message(
    make_body: Any, wrap: bool, last: Message
) -> None:
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", TEXT)
        result: Iterable[bytes] = make_body(())
        return result

    transcript = await run(validated(app) if wrap else app)
    assert transcript.messages == [start(), last]


@pytest.mark.parametrize(
    ("method", "status"),
    [
        pytest.param("HEAD", "200 OK", id="head"),
        pytest.param("GET", "304 Not Modified", id="304"),
    ],
)
@pytest.mark.parametrize("as_list", [True, False], ids=["list", "iterator"])
async def test_declared_length_without_a_body_where_none_is_allowed(
    method: str, status: str, as_list: bool
) -> None:
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response(status, [("Content-Length", "5")])
        return [] if as_list else iter([])

    transcript = await run(app, http_scope(method))
    assert transcript.start == start(int(status[:3]), [(b"content-length", b"5")])
    assert transcript.assert_complete() == b""


async def test_204_with_empty_body() -> None:
    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("204 No Content", [])
        yield from ()

    transcript = await run(validated(app))
    assert transcript.messages == [start(204, []), body(b"", more=False)]


async def test_head_passes_the_app_body_on_for_the_server_to_drop() -> None:
    transcript = await run(hello_app, http_scope("HEAD"))
    assert transcript.messages[1] == body(HELLO)


async def test_write_callable() -> None:
    transcript = await run(validated(write_app))
    assert transcript.start == start()
    assert transcript.assert_complete() == b"Hello, world!"


async def test_write_sends_before_the_app_returns() -> None:
    seen = threading.Event()

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        write = start_response("200 OK", TEXT)
        write(b"early")
        wait_in_thread(seen, "the client got the written chunk")
        return [b" late"]

    async def client(message: Message) -> None:
        if message.get("body") == b"early":
            seen.set()

    transcript = await run(validated(app), transcript=Transcript(client))
    assert transcript.messages[:2] == [start(), body(b"early", more=True)]
    assert transcript.assert_complete() == b"early late"


async def test_bytes_like_chunks_are_accepted() -> None:
    def app(environ: Environ, start_response: StartResponse) -> Iterator[Any]:
        start_response("200 OK", TEXT)
        yield bytearray(b"ab")
        yield memoryview(b"cd")

    assert (await run(app)).assert_complete() == b"abcd"


# Streaming.


def gated_stream(*parts: bytes) -> tuple[TrackedBody, Transcript]:
    """A streamed body whose every chunk after the first waits until the one before
    was sent, and the client that lets it go on."""
    sent = threading.Semaphore(0)

    def gate(index: int) -> None:
        if index and not sent.acquire(timeout=TIMEOUT):
            raise AssertionError(f"chunk {index - 1} was never sent")

    async def client(message: Message) -> None:
        if message["type"] == "http.response.body":
            sent.release()

    return TrackedBody(list(parts), gate=gate), Transcript(client)


async def test_each_chunk_is_sent_as_it_is_produced() -> None:
    chunks, client = gated_stream(b"one", b"two", b"three")
    transcript = await run(validated(tracked_app(chunks)), transcript=client)
    assert transcript.messages == [
        start(),
        body(b"one", more=True),
        body(b"two", more=True),
        body(b"three", more=True),
        body(b"", more=False),
    ]
    assert chunks.closed.is_set()


async def test_slow_generator_arrives_chunk_by_chunk() -> None:
    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", TEXT)
        for tick in range(3):
            yield b"tick %d" % tick
            time.sleep(0.1)  # the app is slow; the adapter must not wait for more

    transcript = await run(validated(app))
    assert transcript.messages == [
        start(),
        body(b"tick 0", more=True),
        body(b"tick 1", more=True),
        body(b"tick 2", more=True),
        body(b"", more=False),
    ]


async def test_small_chunks_produced_while_the_client_is_busy_are_joined() -> None:
    first_sent = threading.Event()

    def gate(index: int) -> None:
        if index == 1:
            wait_in_thread(first_sent, "the first chunk was sent")

    chunks = TrackedBody([b"a", *[b"b"] * 9, b"c" * 10], gate=gate)

    async def busy_client(message: Message) -> None:
        if message["type"] == "http.response.body" and not first_sent.is_set():
            first_sent.set()
            await wait_until(chunks.closed.is_set, "the app produced everything")

    adapter = WSGIToASGI(tracked_app(chunks), chunk_size=4)
    transcript = await run(adapter, transcript=Transcript(busy_client))
    assert transcript.messages == [
        start(),
        body(b"a", more=True),
        body(b"bbbb", more=True),
        body(b"bbbb", more=True),
        body(b"b", more=True),
        body(b"c" * 10, more=False),  # a chunk over chunk_size goes as it is
    ]


async def test_echo_streams_lines_back() -> None:
    scope = http_scope("POST", headers=[(b"transfer-encoding", b"chunked")])
    receive = Receiver.body(b"one\ntw", b"o\n", b"three")
    transcript = await run(validated(echo_lines_app), scope, receive)
    assert transcript.assert_complete() == b"one\ntwo\nthree"


# Back-pressure and concurrency.


async def test_slow_client_holds_the_app_back() -> None:
    high_water, size, count = 4000, 1000, 40
    chunks = TrackedBody([b"x" * size] * count)
    adapter = WSGIToASGI(tracked_app(chunks), high_water=high_water)
    delivered = 0
    leads: list[int] = []

    async def slow_client(message: Message) -> None:
        nonlocal delivered
        if message["type"] != "http.response.body":
            return
        # Hold send() until the app can go no further: blocked, or done.
        await wait_until(
            lambda: chunks.exhausted.is_set() or thread_waits_in(chunks.thread_id, "put"),
            "the app blocked or finished",
        )
        leads.append(chunks.produced_bytes - delivered)
        delivered += len(message["body"])

    transcript = await run(adapter, transcript=Transcript(slow_client))
    assert transcript.assert_complete() == b"x" * size * count
    # In flight: one batch being sent, a full channel, and the chunk the app holds.
    assert max(leads) <= 2 * high_water + 2 * size, leads
    assert len(leads) >= count * size // (2 * high_water + 2 * size)


async def test_max_threads_bounds_running_apps_and_the_loop_stays_free() -> None:
    release = threading.Event()
    lock = threading.Lock()
    running = started = peak = 0

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        nonlocal running, started, peak
        with lock:
            running += 1
            started += 1
            peak = max(peak, running)
        try:
            wait_in_thread(release, "the test released the apps")
        finally:
            with lock:
                running -= 1
        start_response("200 OK", TEXT)
        return [environ["PATH_INFO"].encode()]

    adapter = WSGIToASGI(app, max_threads=4)
    transcripts = [Transcript() for _ in range(8)]
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await anyio.sleep(0.001)
            ticks += 1

    try:
        with anyio.fail_after(TIMEOUT):
            async with anyio.create_task_group() as requests:
                for index, transcript in enumerate(transcripts):
                    requests.start_soon(
                        adapter, http_scope(path=f"/{index}"), Receiver(), transcript
                    )
                async with anyio.create_task_group() as background:
                    background.start_soon(ticker)
                    await wait_until(
                        lambda: started == 4 and adapter.limiter.statistics().tasks_waiting == 4,
                        "four apps run and four requests wait",
                    )
                    before = ticks
                    await wait_until(lambda: ticks >= before + 5, "another coroutine progressed")
                    assert (started, running) == (4, 4)
                    background.cancel_scope.cancel()
                release.set()
    finally:
        release.set()
    assert (started, peak) == (8, 4)
    for index, transcript in enumerate(transcripts):
        assert transcript.messages == [start(), body(f"/{index}".encode())]
    await limiter_released(adapter)


async def test_shared_capacity_limiter() -> None:
    limiter = anyio.CapacityLimiter(2)
    adapter = WSGIToASGI(hello_app, max_threads=limiter)
    assert adapter.limiter is limiter
    assert (await run(adapter)).messages[1] == body(HELLO)


request_id: ContextVar[str] = ContextVar("request_id")


async def test_contextvars_of_the_calling_task_are_visible_in_the_app() -> None:
    seen: list[str] = []

    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        seen.append(request_id.get("unset"))
        start_response("200 OK", TEXT)
        yield b"x"
        seen.append(request_id.get("unset"))  # iteration runs in the same context

    token = request_id.set("request-42")
    try:
        await run(validated(app))
    finally:
        request_id.reset(token)
    assert seen == ["request-42", "request-42"]


# Request body.


async def test_echo_body() -> None:
    data = b"hello " * 1000
    scope = http_scope("POST", headers=body_headers(data))
    receive = Receiver.body(data[:100], data[100:2000], data[2000:])
    transcript = await run(validated(echo_app), scope, receive)
    assert transcript.assert_complete() == data


async def test_request_body_streams_into_the_app_as_it_reads() -> None:
    got_first = threading.Event()
    read: list[bytes] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        stream = environ["wsgi.input"]
        read.append(stream.read(5))
        got_first.set()
        read.append(stream.read(-1))
        start_response("200 OK", TEXT)
        return [b"".join(read)]

    class Client(Receiver):
        async def __call__(self) -> Message:
            if self.calls == 1:
                # The second chunk comes only once the app has handled the first.
                await wait_until(got_first.is_set, "the app read the first chunk")
            return await super().__call__()

    scope = http_scope("POST", headers=body_headers(b"first second"))
    receive = Client.body(b"first", b" second")
    transcript = await run(validated(app), scope, receive)
    assert read == [b"first", b" second"]
    assert transcript.assert_complete() == b"first second"


async def test_a_body_in_one_message_is_received_once() -> None:
    app = RecordingApp()
    receive = Receiver.body(b"small")
    await run(validated(app), http_scope("POST", headers=body_headers(b"small")), receive)
    assert app.bodies == [b"small"]
    assert receive.calls == 1  # no read-ahead task was started for it


async def test_a_small_declared_body_is_received_before_the_app_starts() -> None:
    # As waitress does for every body: a small declared body is there when the app
    # starts, so its first read waits for no hop to the loop and back.
    receive = Receiver.body(b"small")
    calls_at_start: list[int] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        calls_at_start.append(receive.calls)
        body = environ["wsgi.input"].read(-1)
        start_response("200 OK", TEXT)
        return [body]

    scope = http_scope("POST", headers=body_headers(b"small"))
    transcript = await run(app, scope, receive)
    assert transcript.assert_complete() == b"small"
    assert calls_at_start == [1]
    assert receive.calls == 1  # a list response: no disconnect watch either


async def test_a_small_body_in_pieces_is_read_whole() -> None:
    receive = Receiver.body(b"hello ", b"world")
    scope = http_scope("POST", headers=body_headers(b"hello world"))
    transcript = await run(validated(echo_app), scope, receive)
    assert transcript.assert_complete() == b"hello world"


async def test_a_client_expecting_100_continue_waits_until_the_app_reads() -> None:
    # The client sends its body only when the server asks for it, which ASGI servers
    # do on the first receive(): an app that refuses without reading never asks.
    def refuse(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response("401 Unauthorized", TEXT)
        return [b"no"]

    events: list[str] = []

    class Watching(Receiver):
        async def __call__(self) -> Message:
            events.append("receive")
            return await super().__call__()

    async def record(message: Message) -> None:
        events.append(message["type"])

    receive = Watching.body(b"small")
    headers = [*body_headers(b"small"), (b"expect", b"100-continue")]
    transcript = Transcript(record)
    await run(validated(refuse), http_scope("POST", headers=headers), receive, transcript)
    assert transcript.status == 401
    # No receive() before the response started (ASGI servers send "100 Continue" on
    # the first); one after it only watches for a disconnect while the body streams.
    assert events[0] == "http.response.start"


async def test_an_iterable_that_fills_its_content_length_is_sent_whole() -> None:
    # Werkzeug and Django return iterables, not lists. Once the declared length is
    # there the response is complete: one body message, no read-ahead task, however
    # the worker and the loop interleave (so, many requests).
    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [*TEXT, ("Content-Length", "5")])
        yield b"hello"
        raise AssertionError("not iterated past the declared length")

    adapter = WSGIToASGI(app)
    for _ in range(1000):
        receive = Receiver()
        transcript = await run(adapter, receive=receive)
        assert transcript.types == ["http.response.start", "http.response.body"]
        assert transcript.assert_complete() == b"hello"
        assert receive.calls == 0


async def test_body_is_read_ahead_of_the_app_at_most_high_water_bytes() -> None:
    high_water, size, count = 4096, 1000, 50
    app_paused = threading.Event()
    resume = threading.Event()
    read: list[bytes] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        stream = environ["wsgi.input"]
        read.append(stream.read(size))
        app_paused.set()
        assert resume.wait(TIMEOUT)
        read.append(stream.read(size * (count - 1)))
        start_response("200 OK", TEXT)
        return [b"%d" % sum(map(len, read))]

    chunks = [bytes([65 + index % 26]) * size for index in range(count)]
    receive = Receiver.body(*chunks)
    adapter = WSGIToASGI(validated(app), high_water=high_water)
    scope = http_scope("POST", headers=body_headers(b"".join(chunks)))
    async with anyio.create_task_group() as task_group:
        task_group.start_soon(run, adapter, scope, receive)
        await wait_until(app_paused.is_set, "the app read its first chunk")
        # Let the receiver run as far ahead as the bound allows while the app waits.
        await wait_until(lambda: receive.calls >= high_water // size, "the read-ahead")
        for _ in range(20):
            await anyio.lowlevel.checkpoint()
        ahead = (receive.calls - 1) * size  # the first message went to the app
        assert ahead <= high_water + size, ahead
        resume.set()
    assert b"".join(read) == b"".join(chunks)
    # After the body the receiver may have started waiting for a disconnect.
    assert receive.calls in (count, count + 1)


@pytest.mark.parametrize(
    "case", ["list", "streamed-response", "one-message-body", "several-message-body"]
)
async def test_a_finished_request_leaves_no_reference_cycle(case: str) -> None:
    # A cycle through the responder waits for the cyclic GC: under load that
    # collector ran every few requests and cost more than the rest of the bridge.
    adapter = WSGIToASGI(echo_app if case.endswith("body") else hello_app)
    request_bodies = {"one-message-body": (b"one",), "several-message-body": (b"one", b"two")}
    with bridge_cycles() as cycles:
        for _ in range(5):
            transcript = Transcript()
            if case == "streamed-response":
                stream, transcript = gated_stream(b"one", b"two")
                adapter.app = tracked_app(stream)
            parts = request_bodies.get(case, ())
            scope = http_scope("POST", headers=body_headers(b"".join(parts))) if parts else None
            await run(adapter, scope, Receiver.body(*parts) if parts else None, transcript)
            transcript.assert_complete()
            await limiter_released(adapter)
    assert cycles == []


async def test_receive_raising_while_reading_ahead_is_raised_as_itself() -> None:
    class BrokenServer(Receiver):
        async def __call__(self) -> Message:
            if self.calls == 1:
                self.calls += 1
                raise RuntimeError("the server's receive() broke")
            return await super().__call__()

    adapter = WSGIToASGI(echo_app)
    data = b"first second"
    receive = BrokenServer.body(b"first", b" second")
    transcript = Transcript()
    with pytest.raises(RuntimeError, match="receive\\(\\) broke") as caught:
        await run(adapter, http_scope("POST", headers=body_headers(data)), receive, transcript)
    assert type(caught.value) is RuntimeError  # not wrapped in an ExceptionGroup
    assert transcript.messages == []  # the server answers 500 for it
    await limiter_released(adapter)  # the worker did not wait for the rest


async def test_empty_request_body_is_not_received() -> None:
    app = RecordingApp()
    receive = Receiver()
    await run(validated(app), http_scope("POST", headers=[(b"content-length", b"0")]), receive)
    assert app.bodies == [b""]
    assert receive.calls == 0


@pytest.mark.parametrize("answer", [False, True], ids=["app-raises", "app-answers"])
@pytest.mark.parametrize(
    "sent",
    [
        pytest.param([{"type": "http.request", "body": b"part", "more_body": True}], id="mid-body"),
        pytest.param([], id="before-the-body"),  # received before the app starts
    ],
)
async def test_disconnect_mid_body_raises_client_disconnected_in_the_app(
    answer: bool, sent: list[Message]
) -> None:
    errors: list[BaseException] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        try:
            environ["wsgi.input"].read(-1)
        except OSError as exc:
            errors.append(exc)
            if not answer:
                raise
        start_response("200 OK", TEXT)
        return [b"too late"]

    gone = anyio.Event()
    gone.set()
    receive = Receiver(*sent, disconnect=gone)
    scope = http_scope("POST", headers=body_headers(b"x" * 100))
    adapter = WSGIToASGI(validated(app))
    transcript = await run(adapter, scope, receive)
    assert transcript.messages == []  # nobody to answer
    assert [type(error) for error in errors] == [ClientDisconnected]
    await limiter_released(adapter)


async def test_declared_body_over_the_limit_is_refused_before_the_app_runs() -> None:
    adapter = WSGIToASGI(never_called, max_body_size=10)
    receive = Receiver()
    transcript = await run(adapter, http_scope("POST", headers=body_headers(b"x" * 11)), receive)
    assert transcript.status == 413
    assert b"10 bytes" in transcript.assert_complete()
    assert receive.calls == 0


async def test_streamed_body_over_the_limit_answers_413() -> None:
    adapter = WSGIToASGI(validated(echo_app), max_body_size=10)
    scope = http_scope("POST", headers=[(b"transfer-encoding", b"chunked")])
    transcript = await run(adapter, scope, Receiver.body(b"123456", b"789012"))
    message = b"The request body is larger than the limit of 10 bytes."
    assert transcript.messages == [
        start(
            413,
            [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(message)).encode()),
                (b"connection", b"close"),
            ],
        ),
        body(message),
    ]


async def test_body_within_the_limit() -> None:
    adapter = WSGIToASGI(validated(echo_app), max_body_size=10)
    scope = http_scope("POST", headers=body_headers(b"1234567890"))
    transcript = await run(adapter, scope, Receiver.body(b"12345", b"67890"))
    assert transcript.assert_complete() == b"1234567890"


async def test_repeated_header_over_the_cap_answers_400() -> None:
    adapter = WSGIToASGI(never_called, max_duplicate_headers=2)
    transcript = await run(adapter, http_scope(headers=[(b"x-a", b"1")] * 3))
    assert transcript.status == 400
    text = transcript.assert_complete()
    assert b"'x-a' is repeated" in text
    assert (b"content-length", str(len(text)).encode()) in transcript.headers


async def test_unencodable_path_answers_400() -> None:
    transcript = await run(never_called, http_scope(path="/\ud800"))
    assert transcript.status == 400


# The environ as the app sees it.


async def test_environ_seen_by_the_app() -> None:
    app = RecordingApp()
    scope = http_scope(
        "POST",
        "/app/x",
        root_path="/app",
        query_string=b"q=1",
        headers=[(b"content-type", b"text/plain"), *body_headers(b"data")],
    )
    await run(app, scope, Receiver.body(b"da", b"ta"))
    environ = app.environ
    assert (environ["SCRIPT_NAME"], environ["PATH_INFO"], environ["QUERY_STRING"]) == (
        "/app",
        "/x",
        "q=1",
    )
    assert type(environ["wsgi.input"]) is WSGIInput
    assert environ["wsgi.file_wrapper"] is FileWrapper
    assert environ["wsgi.input_terminated"] is True
    assert environ["wsgi.multithread"] is True
    assert environ["asgi.scope"] is scope
    assert app.bodies == [b"data"]


async def test_wsgi_errors_goes_to_logging(caplog: pytest.LogCaptureFixture) -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        environ["wsgi.errors"].write("something odd\n")
        start_response("200 OK", TEXT)
        return [b"ok"]

    with caplog.at_level(logging.ERROR, logger="bridge.wsgi"):
        await run(validated(app))
    assert [(r.name, r.getMessage()) for r in caplog.records] == [("bridge.wsgi", "something odd")]


# start_response.


async def test_exc_info_replaces_headers_not_yet_sent_then_is_raised() -> None:
    # The app handled the error and answered with its replacement; the server still
    # hears of the error (it logs it, reporters see it), once the response is out.
    transcript = Transcript()
    with pytest.raises(ValueError, match="failed after start_response, before the body"):
        await run(validated(exc_info_app), transcript=transcript)
    assert transcript.start == start(500)
    assert transcript.assert_complete() == b"error page"


async def test_exc_info_after_headers_were_sent_is_reraised() -> None:
    transcript = Transcript()
    with pytest.raises(ValueError, match="failed after the headers were sent"):
        await run(validated(exc_info_after_start_app), transcript=transcript)
    assert transcript.messages == [start(), body(b"partial", more=True)]


async def test_second_start_response_without_exc_info_is_an_error() -> None:
    transcript = Transcript()
    with pytest.raises(WSGIProtocolError, match="second time"):
        await run(validated(double_start_response_app), transcript=transcript)
    assert transcript.messages == []


@pytest.mark.parametrize(
    ("status", "headers"),
    [
        pytest.param("200", TEXT, id="status-without-reason"),
        pytest.param("OK", TEXT, id="status-without-code"),
        pytest.param("200 OK\r\nX-Injected: 1", TEXT, id="status-with-crlf"),
        pytest.param("200 OK", [("X-A", "1\r\nX-Injected: 1")], id="value-with-crlf"),
        pytest.param("200 OK", [("X-A", "1\n")], id="value-with-lf"),
        pytest.param("200 OK", [("X-A", "1\x00")], id="value-with-nul"),
        pytest.param("200 OK", [("X-A", "\u20ac")], id="value-not-latin1"),
        pytest.param("200 OK", [("X-\u20ac", "1")], id="name-not-latin1"),
        pytest.param("200 OK", [("X-A\r\n", "1")], id="name-with-crlf"),
        pytest.param("200 OK", [("X A", "1")], id="name-with-space"),
        pytest.param("200 OK", [("Content-Length", "-1")], id="negative-content-length"),
        pytest.param("200 OK", [("Content-Length", "ten")], id="text-content-length"),
    ],
)
async def test_invalid_status_or_headers_are_refused(
    status: str, headers: list[tuple[str, str]]
) -> None:
    raised: list[BaseException] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        try:
            start_response(status, headers)
        except Exception as exc:
            raised.append(exc)
            raise
        return [b"never sent"]

    transcript = Transcript()
    with pytest.raises(WSGIProtocolError):
        await run(app, transcript=transcript)
    assert [type(exc) for exc in raised] == [WSGIProtocolError]  # raised in start_response
    assert isinstance(raised[0], ValueError)
    assert transcript.messages == []


@pytest.mark.parametrize(
    "app",
    [
        pytest.param(no_start_response_app, id="list"),
        pytest.param(lambda environ, start_response: iter([b"x"]), id="iterator"),
        pytest.param(lambda environ, start_response: iter([]), id="empty-iterator"),
    ],
)
async def test_body_without_start_response_is_an_error(app: WSGIApp) -> None:
    transcript = Transcript()
    with pytest.raises(WSGIProtocolError, match="start_response"):
        await run(app, transcript=transcript)
    assert transcript.messages == []


@pytest.mark.parametrize(
    "app",
    [pytest.param(str_body_app, id="list"), pytest.param(str_chunk_app, id="generator")],
)
async def test_text_body_is_an_error(app: Any) -> None:
    transcript = Transcript()
    with pytest.raises(WSGIProtocolError, match="encode"):
        await run(app, transcript=transcript)
    assert transcript.messages == []


# Errors and close().


async def test_error_before_start_propagates_and_sends_nothing() -> None:
    adapter = WSGIToASGI(validated(raise_before_start_app))
    transcript = Transcript()
    with pytest.raises(RuntimeError, match="before start_response"):
        await run(adapter, transcript=transcript)
    assert transcript.messages == []
    await limiter_released(adapter)


async def test_headers_wait_for_the_first_non_empty_chunk() -> None:
    """An empty first chunk does not send headers, so an error can still become a 500."""
    transcript = Transcript()
    with pytest.raises(RuntimeError, match="before the first non-empty chunk"):
        await run(validated(raise_in_generator_before_body_app), transcript=transcript)
    assert transcript.messages == []


async def test_nothing_is_sent_while_the_app_has_only_yielded_empty_chunks() -> None:
    at_gate = threading.Event()
    proceed = threading.Event()

    def gate(index: int) -> None:
        if index == 1:
            at_gate.set()
            wait_in_thread(proceed, "the test looked at the transcript")

    chunks = TrackedBody([b"", b"x"], gate=gate)
    transcript = Transcript()
    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(
                WSGIToASGI(tracked_app(chunks)), http_scope(), Receiver(), transcript
            )
            await wait_until(at_gate.is_set, "the app yielded an empty chunk")
            await anyio.wait_all_tasks_blocked()
            assert transcript.messages == []
            proceed.set()
    assert transcript.start == start()
    assert transcript.assert_complete() == b"x"


@pytest.mark.parametrize("gated", [False, True], ids=["first-batch", "while-streaming"])
async def test_error_after_start_is_raised_as_itself(gated: bool) -> None:
    sent = threading.Event()

    def gate(index: int) -> None:
        if gated and index == 1:
            wait_in_thread(sent, "the first chunk was sent")

    chunks = TrackedBody([b"partial", b"never"], gate=gate, fail_at=1)

    async def client(message: Message) -> None:
        if message["type"] == "http.response.body":
            sent.set()

    adapter = WSGIToASGI(validated(tracked_app(chunks)))
    transcript = Transcript(client)
    with pytest.raises(RuntimeError, match="failed producing chunk 1") as caught:
        await run(adapter, transcript=transcript)
    assert type(caught.value) is RuntimeError  # not wrapped in an ExceptionGroup
    assert transcript.messages == [start(), body(b"partial", more=True)]
    assert chunks.close_calls == 1
    await limiter_released(adapter)


async def test_reference_app_raising_after_start() -> None:
    transcript = Transcript()
    with pytest.raises(RuntimeError, match="after the headers were sent"):
        await run(validated(raise_after_start_app), transcript=transcript)
    assert transcript.messages == [start(), body(b"partial", more=True)]


@pytest.mark.parametrize(
    ("chunks", "fail_at"),
    [
        pytest.param([b"a", b"b"], None, id="normal-end"),
        pytest.param([], None, id="empty"),
        pytest.param([b"a", b"b"], 0, id="error-before-body"),
        pytest.param([b"a", b"b"], 1, id="error-mid-body"),
    ],
)
async def test_close_is_called_exactly_once(chunks: list[bytes], fail_at: int | None) -> None:
    tracked = TrackedBody(chunks, fail_at=fail_at)
    try:
        await run(validated(tracked_app(tracked)))
    except RuntimeError:
        assert fail_at is not None
    assert tracked.close_calls == 1


async def test_close_error_after_a_complete_response_propagates() -> None:
    tracked = TrackedBody([b"a"], close_error=OSError("close failed"))
    transcript = Transcript()
    with pytest.raises(OSError, match="close failed"):
        await run(tracked_app(tracked), transcript=transcript)
    assert transcript.body == b"a"


async def test_close_error_after_an_app_error_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tracked = TrackedBody([b"a"], fail_at=0, close_error=OSError("close failed"))
    with caplog.at_level(logging.ERROR, logger="bridge"), pytest.raises(RuntimeError):
        await run(tracked_app(tracked))
    assert "close() raised too" in caplog.text


async def test_disconnect_while_streaming_an_endless_response_closes_it() -> None:
    endless = TrackedBody(chunk_size=1024)
    gone = anyio.Event()

    async def client(message: Message) -> None:
        if message["type"] == "http.response.body":
            gone.set()  # the client goes away once the stream has started

    adapter = WSGIToASGI(tracked_app(endless), high_water=8192)
    receive = Receiver(disconnect=gone)
    transcript = await run(adapter, receive=receive, transcript=Transcript(client))
    assert endless.close_calls == 1
    assert receive.calls == 1
    assert transcript.types[0] == "http.response.start"
    assert all(m.get("more_body") is True for m in transcript.bodies)  # never "complete"
    await limiter_released(adapter)


async def test_disconnect_after_reading_the_body_closes_a_streaming_response() -> None:
    endless = TrackedBody(chunk_size=1024)

    def app(environ: Environ, start_response: StartResponse) -> TrackedBody:
        environ["wsgi.input"].read(-1)
        start_response("200 OK", TEXT)
        return endless

    gone = anyio.Event()

    async def client(message: Message) -> None:
        if message["type"] == "http.response.body":
            gone.set()

    receive = Receiver.body(b"abc", disconnect=gone)
    scope = http_scope("POST", headers=body_headers(b"abc"))
    await run(app, scope, receive, Transcript(client))
    assert endless.close_calls == 1
    assert receive.calls == 2  # the body, then the watcher's disconnect


async def test_disconnect_on_http2_while_streaming_without_reading_the_body() -> None:
    endless = TrackedBody(chunk_size=1024)
    gone = anyio.Event()

    async def client(message: Message) -> None:
        if message["type"] == "http.response.body":
            gone.set()

    adapter = WSGIToASGI(tracked_app(endless), high_water=8192)
    receive = Receiver.body(b"", disconnect=gone)  # HTTP/2: END_STREAM with no body
    with anyio.fail_after(1):
        await adapter(http_scope(http_version="2"), receive, Transcript(client))
    assert endless.close_calls == 1


async def test_what_the_app_wrote_goes_out_before_it_waits_for_the_body() -> None:
    """A full-duplex app: it prompts, then reads the answer the client sends only then."""
    thread: list[int] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        thread.append(threading.get_ident())
        write = start_response("200 OK", TEXT)
        write(b"hello ")
        write(b"prompt> ")
        line: bytes = environ["wsgi.input"].readline()
        return [b"echo: " + line]

    transcript: Transcript

    async def client(message: Message) -> None:
        if message.get("body") == b"hello ":
            # Stay busy until the app waits for the body, so what it wrote meanwhile
            # reaches the adapter together with its request for more body.
            await wait_until(
                lambda: thread_waits_in(thread[0], "_fetch", blocked_in_c=True),
                "the app waits for the request body",
            )

    class Interactive(Receiver):
        async def __call__(self) -> Message:
            if self.calls == 0:
                await wait_until(
                    lambda: b"prompt> " in transcript.body, "the client saw the prompt"
                )
            return await super().__call__()

    transcript = Transcript(client)
    scope = http_scope("POST", headers=[(b"transfer-encoding", b"chunked")])
    await run(app, scope, Interactive.body(b"hi\n"), transcript)
    assert transcript.assert_complete() == b"hello prompt> echo: hi\n"


async def test_cancelled_request_closes_the_app_iterable() -> None:
    endless = TrackedBody(chunk_size=100)
    adapter = WSGIToASGI(tracked_app(endless), high_water=1000)
    stalled = anyio.Event()

    async def stalled_client(message: Message) -> None:
        if message["type"] == "http.response.body":
            stalled.set()
            await anyio.sleep_forever()

    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(adapter, http_scope(), Receiver(), Transcript(stalled_client))
            await stalled.wait()
            task_group.cancel_scope.cancel()
    await wait_until(endless.closed.is_set, "close() ran after the cancellation")
    await limiter_released(adapter)


async def test_send_failing_mid_stream_closes_the_app_iterable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A send() that fails with an OSError: the client has gone, which is no server
    # error (one debug line), and the app's iteration stops with its close().
    endless = TrackedBody(chunk_size=100)

    async def broken_client(message: Message) -> None:
        if message["type"] == "http.response.body":
            raise OSError("connection reset")

    adapter = WSGIToASGI(tracked_app(endless), high_water=1000)
    with caplog.at_level(logging.DEBUG, "bridge"):
        await run(adapter, transcript=Transcript(broken_client))
    await wait_until(endless.closed.is_set, "close() ran after send() failed")
    await limiter_released(adapter)
    assert [r.levelno for r in caplog.records if r.name == "bridge"] == [logging.DEBUG]


# Content-Length.


async def test_iteration_stops_at_the_declared_length() -> None:
    endless = TrackedBody(chunk_size=4)
    transcript = await run(
        validated(tracked_app(endless, [*TEXT, ("Content-Length", "10")])),
    )
    assert transcript.assert_complete() == b"x" * 10
    assert endless.produced == 3  # not consumed any further
    assert endless.close_calls == 1


@pytest.mark.parametrize("as_list", [True, False], ids=["list", "iterator"])
async def test_excess_over_the_declared_length_is_dropped(
    as_list: bool, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="bridge"):
        transcript = await run(content_length_app(3, b"abcdef", as_list=as_list))
    assert transcript.assert_complete() == b"abc"
    assert "more than its declared Content-Length" in caplog.text


async def test_write_past_the_declared_length_is_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        write = start_response("200 OK", [*TEXT, ("Content-Length", "5")])
        write(b"1234")
        write(b"5678")
        write(b"9")  # after the declared length: ignored
        return []

    with caplog.at_level(logging.WARNING, logger="bridge"):
        transcript = await run(validated(app))
    assert transcript.assert_complete() == b"12345"
    assert caplog.text.count("more than its declared Content-Length") == 1


@pytest.mark.parametrize("as_list", [True, False], ids=["list", "iterator"])
async def test_body_shorter_than_declared_fails_after_start(as_list: bool) -> None:
    transcript = Transcript()
    with pytest.raises(WSGIProtocolError, match="short"):
        await run(content_length_app(10, b"abc", as_list=as_list), transcript=transcript)
    assert transcript.messages == [
        start(headers=[(b"content-type", b"text/plain"), (b"content-length", b"10")]),
        body(b"abc", more=True),  # never completed: the server aborts the connection
    ]


async def test_a_list_holding_text_and_short_of_its_length_sends_nothing() -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[Any]:
        start_response("200 OK", [*TEXT, ("Content-Length", "5")])
        return [b"ab", "cd"]

    transcript = Transcript()
    with pytest.raises(WSGIProtocolError, match="hold bytes"):
        await run(app, transcript=transcript)
    assert transcript.messages == []  # the server answers 500 itself


async def test_body_of_the_declared_length_in_pieces() -> None:
    transcript = await run(validated(content_length_app(6, b"ab", b"cd", b"ef")))
    assert transcript.assert_complete() == b"abcdef"


# wsgi.file_wrapper.


@dataclass(frozen=True)
class DataFile:
    path: Path
    real_path: str
    data: bytes

    def open(self) -> IO[bytes]:
        return self.path.open("rb")


@pytest.fixture
def data_file(tmp_path: Path) -> DataFile:
    path = tmp_path / "data.bin"
    data = bytes(range(256)) * 300
    path.write_bytes(data)
    return DataFile(path, os.path.realpath(path), data)


def file_app(
    open_file: Callable[[], IO[bytes]], headers: list[tuple[str, str]] | None = None, skip: int = 0
) -> tuple[WSGIApp, list[IO[bytes]]]:
    """An app answering with ``wsgi.file_wrapper(open_file())``, after reading ``skip`` bytes."""
    opened: list[IO[bytes]] = []

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        file = open_file()
        opened.append(file)
        file.read(skip)
        start_response("200 OK", [("Content-Type", "application/octet-stream"), *(headers or [])])
        wrapper: Iterable[bytes] = environ["wsgi.file_wrapper"](file, 4096)
        return wrapper

    return app, opened


async def test_file_wrapper_is_sent_by_path_when_the_server_offers_it(data_file: DataFile) -> None:
    size = str(len(data_file.data))
    app, opened = file_app(data_file.open, [("Content-Length", size)])
    scope = http_scope(extensions={"http.response.pathsend": {}})
    transcript = await run(app, scope)
    assert transcript.messages == [
        start(
            headers=[
                (b"content-type", b"application/octet-stream"),
                (b"content-length", size.encode()),
            ]
        ),
        {"type": "http.response.pathsend", "path": data_file.real_path},
    ]
    assert opened[0].closed


@pytest.mark.parametrize(
    ("extensions", "skip", "declared", "expected"),
    [
        pytest.param({}, 0, None, slice(None), id="no-pathsend-extension"),
        pytest.param({"http.response.pathsend": {}}, 1000, None, slice(1000, None), id="moved"),
        pytest.param({"http.response.pathsend": {}}, 0, 100, slice(100), id="length-differs"),
    ],
)
async def test_file_wrapper_is_streamed_otherwise(
    data_file: DataFile,
    extensions: dict[str, Any],
    skip: int,
    declared: int | None,
    expected: slice,
) -> None:
    headers = [] if declared is None else [("Content-Length", str(declared))]
    app, opened = file_app(data_file.open, headers, skip)
    transcript = await run(app, http_scope(extensions=extensions))
    assert transcript.assert_complete() == data_file.data[expected]
    assert "http.response.pathsend" not in transcript.types
    assert opened[0].closed


async def test_file_wrapper_of_an_in_memory_file_is_streamed(data_file: DataFile) -> None:
    app, opened = file_app(lambda: io.BytesIO(data_file.data))
    transcript = await run(validated(app), http_scope(extensions={"http.response.pathsend": {}}))
    assert transcript.assert_complete() == data_file.data
    assert opened[0].closed


# Other scopes and configuration.


async def test_lifespan_startup_and_shutdown_complete() -> None:
    receive = Receiver({"type": "lifespan.startup"}, {"type": "lifespan.shutdown"})
    transcript = Transcript()
    scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}
    with anyio.fail_after(TIMEOUT):
        await WSGIToASGI(never_called)(scope, receive, transcript)
    assert transcript.messages == [
        {"type": "lifespan.startup.complete"},
        {"type": "lifespan.shutdown.complete"},
    ]


async def test_unknown_scope_type_is_refused() -> None:
    with pytest.raises(ValueError, match="'webtransport'"):
        await WSGIToASGI(never_called)({"type": "webtransport"}, Receiver(), Transcript())


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"max_threads": 0}, id="max_threads"),
        pytest.param({"chunk_size": 0}, id="chunk_size"),
        pytest.param({"high_water": 0}, id="high_water"),
        pytest.param({"max_duplicate_headers": 0}, id="max_duplicate_headers"),
        pytest.param({"max_body_size": -1}, id="max_body_size"),
    ],
)
def test_bad_configuration_is_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(options))):
        WSGIToASGI(hello_app, **options)


def test_app_must_be_callable() -> None:
    with pytest.raises(TypeError, match="callable"):
        WSGIToASGI(cast(WSGIApp, "module:app"))


def test_repr_and_defaults() -> None:
    adapter = WSGIToASGI(hello_app)
    assert repr(adapter) == f"WSGIToASGI({hello_app!r})"
    assert adapter.limiter.total_tokens == 64
    assert adapter.max_body_size is None
    assert BadRequest("x").status_hint == 400
