"""Property tests: whatever comes in, each adapter ends with a documented outcome.

Hypothesis generates the inputs a server or an app could hand an adapter:

* ``WSGIToASGI``: ASGI scopes (methods, any text as the path, raw query bytes,
  arbitrary header lists, HTTP versions, limits), request bodies cut into messages
  at any boundary, clients that disconnect after any message, and WSGI apps that
  read the body any way they like;
* ``WSGIToASGI``: buggy WSGI apps (any status, any header list, text or other
  non-bytes chunks, ``start_response`` called zero, one or two times, ``write()``,
  errors at any point, a ``close()`` that raises);
* ``ASGIToWSGI``: environs a sloppy WSGI server could build (keys removed, values of
  the wrong type, text outside latin-1, garbage ``CONTENT_LENGTH``), bodies read
  back in short reads of any size, uploads cut short;
* ``ASGIToWSGI``: any sequence of ``send()`` messages from a buggy ASGI app, valid
  or not, with the WSGI server closing the response early at any point.

The outcome must be one of: a response (the app's, or the adapter's own 400 or
413), or one of the documented exceptions: :class:`bridge.BadRequest`,
:class:`bridge.ProtocolError`, :class:`bridge.ClientDisconnected`, or the app's own
exception (:class:`AppError` here). Never a hang: every call is bounded. And the
invariants hold on every example: no header with CR, LF or NUL is ever passed on,
a body is never longer than its declared ``Content-Length``, a complete response
carries exactly the bytes the app produced, and the worker thread and limiter
token come back.

Inputs that once hit bugs are generated on purpose (scopes with missing keys or
values of the wrong type, non-ASCII digits in ``content-length``, differing
``Content-Length`` response headers, environs without ``wsgi.input`` or with an
input that returns text, ``send()`` of something that is not a dict); the fixes
are pinned one by one in ``test_guarantees.py``. What a property test cannot see
(a task left waiting after the call returned) is checked there too.
"""

from __future__ import annotations

import io
import os
import re
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import anyio
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from bridge import (
    ASGIToWSGI,
    BadRequest,
    ClientDisconnected,
    ProtocolError,
    WSGIToASGI,
)
from bridge._threads import pool
from bridge.types import Environ, Message, Receive, Scope, Send, StartResponse

from .wsgi_apps import TIMEOUT, Receiver, Transcript, wait_until

DOCUMENTED = (BadRequest, ProtocolError, ClientDisconnected)
"""Exceptions an adapter may raise on its own."""

SETTINGS = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FORBIDDEN = re.compile(rb"[\r\n\x00]")


class AppError(Exception):
    """The app's own exception: it may come out of an adapter as itself."""


@pytest.fixture(params=["asyncio", "trio"], scope="module")
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return cast(str, request.param)


def busy_workers() -> int:
    with pool._lock:
        return pool._threads - pool._idle


def outcome(transcript: Transcript) -> str:
    """A label for Hypothesis's statistics (``--hypothesis-show-statistics``)."""
    if not transcript.messages:
        return "nothing sent"
    bodies = transcript.bodies
    complete = bool(bodies) and bodies[-1].get("more_body", False) is False
    return f"{transcript.status} {'complete' if complete else 'cut'}"


def assert_clean_headers(headers: Iterable[tuple[bytes, bytes]]) -> None:
    """Header injection is never passed on: token names, no CR, LF or NUL in values,
    and never two differing Content-Lengths (response splitting)."""
    lengths = set()
    for name, value in headers:
        assert _TOKEN.fullmatch(name), name
        assert not _FORBIDDEN.search(value), value
        if name.lower() == b"content-length":
            lengths.add(value)
    assert len(lengths) <= 1, lengths


# WSGIToASGI: any request.

header_names = st.one_of(
    st.sampled_from(
        [b"host", b"content-type", b"cookie", b"x-forwarded-for", b"x_forwarded_for", b"accept"]
    ),
    st.binary(max_size=12),
)
header_values = st.binary(max_size=20)
garbage_lengths = st.sampled_from(
    [b"", b"-1", b"abc", b"1, 1", b" 7", b"0x10", b"+3", b"1e3", b"\xb2", b"\xb9\xb9"]
)
"""Content-Length values a server would have refused; the adapter passes them on."""


@dataclass
class W2ARequest:
    scope: Scope
    chunks: list[bytes]
    disconnect_after: int | None
    reader: str
    options: dict[str, Any]
    malformed: bool

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)

    def receiver(self) -> Receiver:
        messages: list[Message] = [
            {"type": "http.request", "body": chunk, "more_body": index < len(self.chunks) - 1}
            for index, chunk in enumerate(self.chunks)
        ]
        if self.disconnect_after is None:
            return Receiver(*messages)
        gone = anyio.Event()
        gone.set()
        return Receiver(*messages[: self.disconnect_after], disconnect=gone)


@st.composite
def w2a_requests(draw: st.DrawFn) -> W2ARequest:
    headers: list[tuple[bytes, bytes]] = draw(
        st.lists(st.tuples(header_names, header_values), max_size=8)
    )
    framing = draw(st.sampled_from(["length", "chunked", "none", "both", "garbage"]))
    http_version = draw(st.sampled_from(["1.0", "1.1", "2", "3"]))
    chunks = draw(st.lists(st.binary(max_size=300), min_size=1, max_size=5))
    if framing == "none" and http_version.startswith("1"):
        chunks = [b""]  # HTTP/1 without framing headers: no body, one empty message
    length = str(len(b"".join(chunks))).encode()
    if framing in ("length", "both"):
        headers.append((b"content-length", length))
    if framing in ("chunked", "both"):
        headers.append((b"transfer-encoding", b"chunked"))
    if framing == "garbage":
        headers.append((b"content-length", draw(garbage_lengths)))
    headers = draw(st.permutations(headers))
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": http_version,
        "method": draw(
            st.one_of(
                st.sampled_from(["GET", "POST", "HEAD", "PUT"]),
                st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ-", min_size=1, max_size=8),
            )
        ),
        "scheme": draw(st.sampled_from(["http", "https"])),
        "path": "/" + draw(st.text(st.characters(codec=None), max_size=20)),
        "query_string": draw(st.binary(max_size=20)),
        "root_path": draw(st.sampled_from(["", "/app", "/app/", "/é"])),
        "headers": headers,
        "client": draw(st.sampled_from([None, ("127.0.0.1", 50000)])),
        "server": draw(st.sampled_from([None, ("testserver", 80), ("/tmp/s.sock", None)])),
        "extensions": {},
    }
    if draw(st.booleans()):
        scope["raw_path"] = draw(st.binary(max_size=30))
    options = {
        "max_body_size": draw(st.sampled_from([None, 0, 100, 10_000])),
        "max_duplicate_headers": draw(st.sampled_from([1, 3, 100])),
        "keep_underscore_headers": draw(st.booleans()),
        "chunk_size": draw(st.sampled_from([1, 64, 65536])),
        "high_water": draw(st.sampled_from([1, 256, 262144])),
    }
    disconnect_after = draw(st.one_of(st.none(), st.integers(0, len(chunks))))
    reader = draw(st.sampled_from(["read-all", "read-sized", "readline", "iterate", "ignore"]))
    # One request in eight comes from a buggy server: a key missing or of the wrong type.
    malformed = draw(st.integers(0, 7)) == 0
    if malformed:
        key, value = draw(st.sampled_from(SCOPE_DAMAGE))
        if value is _MISSING:
            del scope[key]
        elif key == "headers" and value == "append":
            scope["headers"] = [*headers, draw(st.sampled_from(BAD_HEADER_ITEMS))]
        else:
            scope[key] = value
    return W2ARequest(scope, chunks, disconnect_after, reader, options, malformed)


_MISSING = object()
SCOPE_DAMAGE: list[tuple[str, Any]] = [
    ("method", _MISSING),
    ("path", _MISSING),
    ("headers", _MISSING),
    ("headers", None),
    ("headers", "append"),
    ("path", b"/"),
    ("query_string", "a=1"),
    ("root_path", None),
    ("http_version", 1.1),
    ("server", ("testserver",)),
    ("client", ("127.0.0.1",)),
]
"""What a buggy server gets wrong in a scope: (key, value or _MISSING). A method that
is not a str is left out: it is served as it is (an xfail in ``test_guarantees.py``)."""
BAD_HEADER_ITEMS: list[Any] = [("x-a", "1"), (b"x-a", b"1", b"2"), (b"x-a",), b"x-a: 1", None]


def reading_app(reader: str, seen: list[bytes]) -> Callable[..., Iterable[bytes]]:
    """An app that reads the body as ``reader`` says and answers what it read."""

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        stream = environ["wsgi.input"]
        if reader == "read-all":
            data: bytes = stream.read()
        elif reader == "read-sized":
            data = b"".join(iter(lambda: stream.read(7), b""))
        elif reader == "readline":
            data = b"".join(iter(stream.readline, b""))
        elif reader == "iterate":
            data = b"".join(stream)
        else:
            data = b""
        seen.append(data)
        if reader == "readline":  # a streamed answer, no Content-Length
            start_response("200 OK", [("Content-Type", "application/octet-stream")])
            return iter([data[:3], data[3:]])
        start_response(
            "200 OK",
            [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(data)))],
        )
        return [data]

    return app


@pytest.mark.anyio
@SETTINGS
@given(request=w2a_requests())
async def test_w2a_any_request_ends_in_a_response_or_a_documented_error(
    request: W2ARequest,
) -> None:
    seen: list[bytes] = []
    adapter = WSGIToASGI(reading_app(request.reader, seen), **request.options)
    transcript = Transcript()
    try:
        with anyio.fail_after(TIMEOUT):
            await adapter(request.scope, request.receiver(), transcript)
    except DOCUMENTED as exc:
        event(f"raised {type(exc).__name__}")
        if request.malformed:
            assert isinstance(exc, ProtocolError), repr(exc)  # the server's bug, named
    else:
        if request.malformed:  # served only if refused for another reason found first
            assert transcript.messages and transcript.status in (400, 413), "served"
    event(outcome(transcript))
    if transcript.messages:
        assert transcript.types[0] == "http.response.start"
        assert_clean_headers(transcript.headers)
        complete = transcript.bodies and transcript.bodies[-1].get("more_body", False) is False
        status = transcript.status
        if complete and status == 200:
            assert seen
            assert transcript.body == seen[0]  # what the app answered, whole
        else:
            assert status in (400, 413) or not complete
    if seen and request.reader != "ignore":
        # A read that returned is the whole body: never a silently short one.
        assert seen[0] == request.body
    await wait_until(lambda: adapter.limiter.borrowed_tokens == 0, "the token came back")
    await wait_until(lambda: busy_workers() == 0, "the worker went idle")


# WSGIToASGI: any app behaviour.

valid_statuses = st.sampled_from(["200 OK", "204 No Content", "404 Not Found", "500 Oops", "299 "])
statuses = st.one_of(
    valid_statuses,
    valid_statuses,
    valid_statuses,
    st.text(max_size=12),
    st.sampled_from([cast(Any, b"200 OK"), 200, None, "200", "200 OK\r\nX-Injected: 1"]),
)
valid_headers = st.lists(
    st.tuples(
        st.sampled_from(["Content-Type", "X-A", "Set-Cookie", "Cache-Control"]),
        st.text(st.characters(codec="latin-1", exclude_characters="\r\n\x00"), max_size=10),
    ),
    max_size=3,
)
header_lists = st.one_of(
    valid_headers,
    valid_headers,
    valid_headers,
    st.lists(
        st.tuples(
            st.one_of(st.text(max_size=10), st.sampled_from(["X-A\r\nX-B", "X_A", "é", ""])),
            st.one_of(st.text(max_size=10), st.sampled_from(["1\r\nX-B: 2", "1\n", "\x00"])),
        ),
        min_size=1,
        max_size=3,
    ),
    st.sampled_from(
        [cast(Any, None), (("X-A", "1"),), [("X-A", "1", "2")], [(b"x-a", b"1")], [("X-A", 1)]]
    ),
)
chunk_values = st.one_of(
    st.binary(max_size=8),
    st.binary(max_size=8),
    st.binary(max_size=8),
    st.binary(max_size=8).map(bytearray),
    st.binary(max_size=8).map(lambda data: memoryview(data)),
    st.text(max_size=4),
    st.sampled_from([cast(Any, None), 7]),
)


@dataclass
class AppSpec:
    status: Any
    headers: Any
    declared: int | str | None
    start_calls: int
    chunks: list[Any]
    shape: str
    raise_at: int | None
    close_raises: bool
    closed: list[bool] = field(default_factory=list)
    returned_body: bool = False


APP_DEFECTS = [
    "none",
    "two-lengths",
    "none",
    "none",
    "status",
    "header-name",
    "header-value",
    "header-list",
    "chunk-type",
    "start-calls",
    "return-type",
    "raise",
    "close-raises",
    "declared-length",
    "anything",
]
"""What is wrong with a generated app: one thing at most, or anything at all.
(Hypothesis favours the front of the list; the rarer cases come first.)"""

bad_header_names = st.one_of(
    st.sampled_from(["X-A\r\nX-B", "X A", "", "\u00e9", "X:A", "X-A\n", "\u20ac"]),
    st.text(min_size=1, max_size=6),
)
bad_header_values = st.one_of(
    st.sampled_from(["1\r\nX-Injected: 1", "1\n", "1\r", "a\x00b", "\u20ac"]),
    st.text(max_size=6).map(lambda text: text + "\r\n" + text),
)


@st.composite
def app_specs(draw: st.DrawFn) -> AppSpec:
    defect = draw(st.sampled_from(APP_DEFECTS))
    anything = defect == "anything"
    chunks: list[Any] = draw(st.lists(st.binary(max_size=8), max_size=5))
    if defect == "chunk-type" or anything:
        chunks = draw(st.lists(chunk_values, min_size=1, max_size=5))
    total = sum(len(chunk) for chunk in chunks if isinstance(chunk, bytes))
    headers: Any = draw(valid_headers)
    if defect == "header-name":
        headers = [*headers, (draw(bad_header_names), "1")]
    elif defect == "header-value":
        headers = [*headers, ("X-A", draw(bad_header_values))]
    elif defect == "header-list" or anything:
        headers = draw(header_lists)
    elif defect == "two-lengths":  # differing: refused (equal ones would be tolerated)
        headers = [*headers, ("Content-Length", str(total + 1))]
    declared: int | str | None
    if defect == "declared-length" or anything:
        declared = draw(
            st.one_of(
                st.sampled_from([max(0, total - 1), total + 1, 0]),
                st.integers(0, 40),
                st.sampled_from(["x", "-1", "1.5"]),
            )
        )
    elif defect == "two-lengths":
        declared = total
    else:  # off by one is a common mistake, and one a server cannot see
        declared = draw(st.sampled_from([None, total, total + 1, max(0, total - 1)]))
    return AppSpec(
        status=draw(statuses if defect == "status" or anything else valid_statuses),
        headers=headers,
        declared=declared,
        start_calls=draw(
            st.sampled_from([0, 2, 3] if defect == "start-calls" or anything else [1])
        ),
        chunks=chunks,
        shape=draw(
            st.sampled_from(
                ["str", "bytes"]
                if defect == "return-type" or anything
                else ["list", "tuple", "generator", "write"]
            )
        ),
        raise_at=draw(st.integers(0, 5)) if defect == "raise" or anything else None,
        close_raises=defect == "close-raises" or (anything and draw(st.booleans())),
    )


class SpecBody:
    """The response iterable of :func:`spec_app`: raises where told; records close()."""

    def __init__(self, spec: AppSpec) -> None:
        self.spec = spec
        self.index = 0

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        if self.spec.raise_at == self.index:
            raise AppError("in the body")
        if self.index >= len(self.spec.chunks):
            raise StopIteration
        self.index += 1
        return self.spec.chunks[self.index - 1]

    def close(self) -> None:
        self.spec.closed.append(True)
        if self.spec.close_raises:
            raise AppError("in close()")


def spec_app(spec: AppSpec) -> Callable[..., Any]:
    def app(environ: Environ, start_response: StartResponse) -> Any:
        headers = spec.headers
        if spec.declared is not None and isinstance(headers, list):
            headers = [*headers, ("Content-Length", str(spec.declared))]
        write: Callable[[Any], object] | None = None
        for call in range(spec.start_calls):
            try:
                raise AppError("replaced")
            except AppError:
                exc_info = None if call == 0 else sys.exc_info()
                write = start_response(spec.status, headers, exc_info)
        if spec.shape == "write" and write is not None:
            for chunk in spec.chunks:
                write(chunk)
            return []
        if spec.shape == "list":
            return list(spec.chunks)
        if spec.shape == "tuple":
            return tuple(spec.chunks)
        if spec.shape == "str":
            return "text"
        if spec.shape == "bytes":
            return b"bytes"
        spec.returned_body = True
        return SpecBody(spec)

    return app


def _declared_length(headers: Iterable[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            return int(value)
    return None


@pytest.mark.anyio
@SETTINGS
@given(spec=app_specs(), method=st.sampled_from(["GET", "HEAD"]))
async def test_w2a_any_app_behaviour_ends_in_a_response_or_a_documented_error(
    spec: AppSpec, method: str
) -> None:
    adapter = WSGIToASGI(spec_app(spec), chunk_size=4, high_water=4)
    transcript = Transcript()
    try:
        with anyio.fail_after(TIMEOUT):
            await adapter(
                {"type": "http", "method": method, "path": "/", "headers": []},
                Receiver(),
                transcript,
            )
    except (*DOCUMENTED, AppError) as exc:
        event(f"raised {type(exc).__name__}")
    event(outcome(transcript))
    if transcript.messages:
        assert transcript.types[0] == "http.response.start"
        assert_clean_headers(transcript.headers)
        declared = _declared_length(transcript.headers)
        if declared is not None:
            assert len(transcript.body) <= declared  # never more than declared
        complete = transcript.bodies and transcript.bodies[-1].get("more_body", False) is False
        if complete and declared is not None and method == "GET":
            assert len(transcript.body) == declared or transcript.status in (204, 304)
    assert spec.closed == ([True] if spec.returned_body else [])  # close() exactly once
    await wait_until(lambda: adapter.limiter.borrowed_tokens == 0, "the token came back")
    await wait_until(lambda: busy_workers() == 0, "the worker went idle")


# ASGIToWSGI: shared adapters and a bounded WSGI call.


class EchoApp:
    """Reads the body (raising nothing) and answers with it; reports every message."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        spec: A2WScript | None = scope["wsgi_environ"].get("fuzz.script")
        if spec is not None:
            await spec.run(receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # nobody to answer
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        headers = [(b"content-type", b"application/octet-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body[:10], "more_body": True})
        await send({"type": "http.response.body", "body": body[10:]})


@pytest.fixture(scope="module")
def a2w() -> Iterator[dict[str, ASGIToWSGI]]:
    """Two adapters for the whole module: without and with a 1000-byte body limit."""
    adapters = {
        "unlimited": ASGIToWSGI(EchoApp(), lifespan="off", response_timeout=TIMEOUT),
        "limited": ASGIToWSGI(
            EchoApp(), lifespan="off", response_timeout=TIMEOUT, max_body_size=1000
        ),
    }
    yield adapters
    for adapter in adapters.values():
        adapter.close()


@dataclass
class WSGIOutcome:
    calls: list[tuple[Any, Any]]
    body: bytes
    error: BaseException | None

    @property
    def label(self) -> str:
        """A label for Hypothesis's statistics."""
        status = self.calls[0][0][:3] if self.calls else "no status"
        error = f", raised {type(self.error).__name__}" if self.error is not None else ""
        return f"{status}{error}"


def call_wsgi(adapter: ASGIToWSGI, environ: Environ, close_after: int | None = None) -> WSGIOutcome:
    """Call ``adapter`` as a WSGI server does, in a daemon thread joined with a timeout.

    ``close_after=n`` closes the response after ``n`` chunks, as a server does when
    the client has gone.
    """
    calls: list[tuple[Any, Any]] = []
    chunks: list[bytes] = []
    errors: list[BaseException] = []

    def start_response(status: Any, headers: Any, exc_info: Any = None) -> Callable[..., Any]:
        calls.append((status, headers))
        return lambda data: None

    def run() -> None:
        try:
            result = adapter(environ, start_response)
            try:
                for chunk in result:
                    if close_after is not None and len(chunks) >= close_after:
                        break
                    chunks.append(chunk)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(TIMEOUT)
    assert not thread.is_alive(), "The WSGI call hung."
    return WSGIOutcome(calls, b"".join(chunks), errors[0] if errors else None)


def assert_wsgi_response_is_sane(outcome: WSGIOutcome) -> None:
    assert len(outcome.calls) <= 1
    for status, headers in outcome.calls:
        assert isinstance(status, str) and re.fullmatch(r"[1-9][0-9]{2} [^\r\n]*", status)
        for name, value in headers:
            assert isinstance(name, str) and isinstance(value, str)
            assert_clean_headers([(name.encode("latin-1"), value.encode("latin-1"))])


# ASGIToWSGI: any environ.

ENVIRON_KEYS = [
    "REQUEST_METHOD",
    "SCRIPT_NAME",
    "PATH_INFO",
    "QUERY_STRING",
    "SERVER_NAME",
    "SERVER_PORT",
    "SERVER_PROTOCOL",
    "REMOTE_ADDR",
    "REMOTE_PORT",
    "CONTENT_TYPE",
    "CONTENT_LENGTH",
    "HTTP_HOST",
    "HTTP_X_A",
    "HTTP_TRANSFER_ENCODING",
    "RAW_URI",
    "wsgi.url_scheme",
]
odd_values = st.one_of(
    st.text(max_size=10),
    st.text(st.characters(codec="ascii"), max_size=6),
    st.text(st.characters(codec="latin-1"), max_size=10),
    st.sampled_from(["", "-1", "abc", "\uff15", "1.5", " 5", "99999999999999999999", "\u20ac"]),
    st.integers(-5, 70000),
    st.none(),
    st.binary(max_size=5),
)


length_values = st.one_of(
    st.integers(0, 4000).map(str),
    st.text(st.characters(codec="ascii"), min_size=1, max_size=6),
    st.sampled_from(
        ["-1", "-0", "+5", "1.5", "0x10", "1e3", " 5", "5 ", "\uff15", "\u00b2", "1,1"]
    ),
)
"""CONTENT_LENGTH as a sloppy server might pass it on."""


class ShortReads:
    """A ``wsgi.input`` that returns at most the next of ``sizes`` bytes per read.

    After ``cut`` bytes, reads return ``b""`` (``mode="eof"``) or raise
    (``mode="reset"``).
    """

    def __init__(self, data: bytes, sizes: list[int], cut: int | None, mode: str) -> None:
        self.data = data
        self.sizes = sizes or [1 << 30]
        self.cut = len(data) if cut is None else cut
        self.mode = mode
        self.position = 0
        self.reads = 0

    def read(self, size: int = -1) -> bytes:
        if self.position >= self.cut and self.position < len(self.data):
            if self.mode == "reset":
                raise OSError("Connection reset by peer")
            return b""
        step = self.sizes[self.reads % len(self.sizes)]
        self.reads += 1
        if size is not None and size >= 0:
            step = min(step, size)
        end = min(self.position + step, self.cut, len(self.data))
        chunk = self.data[self.position : end]
        self.position = end
        return chunk


class TextReads:
    """A broken ``wsgi.input`` whose ``read`` returns text."""

    def read(self, size: int = -1) -> str:
        return "text"


@dataclass
class A2WRequest:
    environ: Environ
    body: bytes
    wire: ShortReads
    adapter: str
    intact_length: bool
    bad_length: bool


@st.composite
def a2w_requests(draw: st.DrawFn) -> A2WRequest:
    body = draw(st.binary(max_size=3000))
    cut = draw(st.one_of(st.none(), st.integers(0, max(0, len(body) - 1))))
    wire = ShortReads(
        body,
        draw(st.lists(st.integers(1, 2000), max_size=4)),
        cut if body else None,
        draw(st.sampled_from(["eof", "reset"])),
    )
    environ: Environ = {
        "REQUEST_METHOD": draw(st.sampled_from(["GET", "POST", "PUT"])),
        "SCRIPT_NAME": draw(st.sampled_from(["", "/app"])),
        "PATH_INFO": "/" + draw(st.text(st.characters(codec="latin-1"), max_size=10)),
        "QUERY_STRING": draw(st.text(st.characters(codec="latin-1"), max_size=10)),
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": draw(st.sampled_from(["HTTP/1.0", "HTTP/1.1", "HTTP/2"])),
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "40000",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": wire,
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    framing = draw(st.sampled_from(["length", "terminated", "none"]))
    if framing == "length" and body:
        environ["CONTENT_LENGTH"] = str(len(body))
    if framing == "terminated":
        environ["wsgi.input_terminated"] = True
    # Mostly one mistake, so that it is not hidden behind another.
    keys = draw(st.lists(st.sampled_from(ENVIRON_KEYS), unique=True, max_size=2))
    if draw(st.booleans()):
        keys = ["CONTENT_LENGTH", *keys]
    for key in keys:
        if draw(st.integers(0, 4)) == 0:
            environ.pop(key, None)
        elif key == "CONTENT_LENGTH":
            environ[key] = draw(st.one_of(length_values, odd_values))
        else:
            environ[key] = draw(odd_values)
    broken_input = draw(st.sampled_from([None] * 8 + ["missing", "text"]))
    if broken_input == "missing":
        del environ["wsgi.input"]
    elif broken_input == "text":
        environ["wsgi.input"] = TextReads()
    intact = framing == "length" and bool(body) and not keys and broken_input is None
    length = environ.get("CONTENT_LENGTH")
    bad_length = bool(length) and not (
        isinstance(length, str) and length.isascii() and length.isdigit()
    )
    adapter = draw(st.sampled_from(["unlimited", "limited"]))
    return A2WRequest(environ, body, wire, adapter, intact, bad_length)


@SETTINGS
@given(request=a2w_requests())
def test_a2w_any_environ_ends_in_a_response_or_a_documented_error(
    a2w: dict[str, ASGIToWSGI], request: A2WRequest
) -> None:
    outcome = call_wsgi(a2w[request.adapter], request.environ)
    event(outcome.label)
    if outcome.error is not None:
        assert isinstance(outcome.error, DOCUMENTED), repr(outcome.error)
        return
    assert_wsgi_response_is_sane(outcome)
    ((status, _),) = outcome.calls
    if request.bad_length:
        assert status.startswith("400"), status  # never guessed at
    if status.startswith("200"):
        # What the app answered is exactly what the adapter read from the wire.
        assert outcome.body == request.body[: request.wire.position]
        if request.intact_length:
            assert outcome.body == request.body  # whole: never a silently short body
    else:
        assert status[:3] in ("400", "413"), status


# ASGIToWSGI: any message sequence.

EXISTING_FILE = os.path.abspath(__file__)

valid_start = st.builds(
    lambda status, headers: {"type": "http.response.start", "status": status, "headers": headers},
    st.sampled_from([200, 204, 404, 599]),
    st.lists(
        st.tuples(
            st.sampled_from([b"content-type", b"x-a", b"set-cookie"]),
            st.binary(max_size=8).map(lambda value: re.sub(rb"[\r\n\x00]", b"", value)),
        ),
        max_size=3,
    ),
)
bad_start = st.builds(
    lambda status, headers: {"type": "http.response.start", "status": status, "headers": headers},
    st.sampled_from([cast(Any, "200"), 99, 600, True, None, 200.0, 200]),
    st.one_of(
        st.lists(
            st.tuples(st.sampled_from([b"x-a", b"x a", b"", b"x:a"]), st.binary(max_size=8)),
            min_size=1,
            max_size=3,
        ),
        st.sampled_from([cast(Any, None), [("x-a", "1")], [(b"x-a",)], b"x-a: 1"]),
    ),
)
valid_body = st.builds(
    lambda body, more: {"type": "http.response.body", "body": body, "more_body": more},
    st.binary(max_size=8),
    st.sampled_from([True, True, False]),
)
body_messages = st.one_of(
    valid_body,
    valid_body,
    st.builds(
        lambda body: {"type": "http.response.body", "body": body},
        st.one_of(
            st.binary(max_size=8),
            st.binary(max_size=8).map(bytearray),
            st.sampled_from([cast(Any, "text"), None, 7]),
        ),
    ),
)
other_messages = st.sampled_from(
    [
        {"type": "http.response.pathsend", "path": EXISTING_FILE},
        {"type": "http.response.pathsend", "path": "relative.txt"},
        {"type": "http.response.pathsend", "path": 7},
        {"type": "http.response.trailers", "headers": [], "more_trailers": False},
        {"type": "http.response.bogus"},
        {"type": "websocket.send", "text": "x"},
        {"status": 200},
        cast(Any, None),
        "http.response.start",
        [("type", "http.response.start")],
    ]
)
actions = st.one_of(
    body_messages,
    body_messages,
    body_messages,
    body_messages,
    body_messages,
    valid_start,
    bad_start,
    other_messages,
    st.sampled_from(["raise", "checkpoint"]),
)
SCRIPT_DEFECTS = [
    "none",
    "two-lengths",
    "not-a-dict",
    "none",
    "none",
    "status",
    "header",
    "header-list",
    "insert",
    "no-final",
    "raise",
    "after-final",
    "anything",
]
"""What is wrong with a generated app's messages: one thing at most, or anything."""

bad_statuses = st.sampled_from([cast(Any, "200"), 99, 600, True, None, 200.0, -1, 10**6])
bad_headers = st.one_of(
    st.tuples(st.sampled_from([b"x a", b"", b"x:a", b"x\r\ny", b"\xe9"]), st.binary(max_size=4)),
    st.tuples(st.just(b"x-a"), st.sampled_from([b"1\r\nx-injected: 1", b"1\n", b"1\r", b"a\x00b"])),
    st.sampled_from([cast(Any, ("x-a", "1")), (b"x-a",), (b"x-a", "1"), (b"x-a", b"1", b"2")]),
)


@st.composite
def scripts(draw: st.DrawFn) -> list[Any]:
    defect = draw(st.sampled_from(SCRIPT_DEFECTS))
    if defect == "anything":
        return draw(st.lists(actions, max_size=6))
    start: Message = dict(draw(valid_start))
    if defect == "status":
        start["status"] = draw(bad_statuses)
    elif defect == "header":
        start["headers"] = [*start["headers"], draw(bad_headers)]
    elif defect == "header-list":
        start["headers"] = draw(st.sampled_from([None, b"x-a: 1", 7, [b"x-a"]]))
    elif defect == "two-lengths":  # differing: refused; equal: tolerated
        second = draw(st.sampled_from([b"1", b"2"]))
        start["headers"] = [
            *start["headers"],
            (b"content-length", b"1"),
            (b"content-length", second),
        ]
    chunks = draw(st.lists(st.binary(max_size=8), max_size=4))
    script: list[Any] = [start]
    script += [{"type": "http.response.body", "body": c, "more_body": True} for c in chunks]
    if defect != "no-final":
        script.append({"type": "http.response.body", "body": draw(st.binary(max_size=8))})
    if defect == "insert":
        wrong = draw(st.one_of(other_messages, bad_start, body_messages))
        script.insert(draw(st.integers(0, len(script))), wrong)
    elif defect == "raise":
        script.insert(draw(st.integers(0, len(script))), "raise")
    elif defect == "not-a-dict":
        wrong = draw(st.sampled_from([None, "http.response.body", [("type", "x")], 7]))
        script.insert(draw(st.integers(0, len(script))), wrong)
    elif defect == "after-final":
        script.append(draw(st.one_of(valid_body, valid_start, st.just("raise"))))
    return script


@dataclass
class A2WScript:
    """The app's part: its actions, and what its ``send()`` accepted."""

    actions: list[Any]
    receive_first: bool
    swallow_errors: bool
    accepted: list[Message] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)

    async def run(self, receive: Receive, send: Send) -> None:
        if self.receive_first:
            await receive()
        for action in self.actions:
            if action == "raise":
                raise AppError("in the app")
            if action == "checkpoint":
                await anyio.lowlevel.checkpoint()
                continue
            try:
                await send(action)
            except (ProtocolError, ClientDisconnected) as exc:
                self.errors.append(exc)
                if not self.swallow_errors:
                    raise
            else:
                self.accepted.append(action)

    def expected_body(self) -> bytes:
        """The bytes a complete response carries: accepted bodies up to the end."""
        parts: list[bytes] = []
        for message in self.accepted:
            if message["type"] == "http.response.pathsend":
                try:
                    with open(message["path"], "rb") as file:
                        parts.append(file.read())
                except OSError:
                    pass  # a path that cannot be read: the bridge answers nothing of it
                break
            if message["type"] == "http.response.body":
                parts.append(bytes(message.get("body", b"")))
                if not message.get("more_body", False):
                    break
        return b"".join(parts)


@SETTINGS
@given(
    script=st.builds(A2WScript, scripts(), st.booleans(), st.booleans()),
    close_after=st.one_of(st.none(), st.integers(0, 3)),
)
def test_a2w_any_message_sequence_ends_in_a_response_or_a_documented_error(
    a2w: dict[str, ASGIToWSGI], script: A2WScript, close_after: int | None
) -> None:
    environ: Environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.input": io.BytesIO(),
        "wsgi.url_scheme": "http",
        "fuzz.script": script,
    }
    outcome = call_wsgi(a2w["unlimited"], environ, close_after)
    event(outcome.label)
    assert_wsgi_response_is_sane(outcome)
    if outcome.error is not None:
        assert isinstance(outcome.error, (*DOCUMENTED, AppError)), repr(outcome.error)
    expected = script.expected_body()
    if outcome.error is None and close_after is None:
        assert outcome.body == expected
    else:
        assert expected.startswith(outcome.body)
