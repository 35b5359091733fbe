"""Differential test: a WSGI app sees through the bridge what ``wsgiref`` gives it.

Each example is one HTTP request, sent twice: as raw bytes over a socket to a
``wsgiref.simple_server`` on 127.0.0.1, and as the ASGI scope and messages
uvicorn would make of the same bytes, through ``WSGIToASGI``. The same recording
app serves both; the environ keys that carry the request, and the body it reads,
must match.

Intentional differences, excluded here and pinned by ``test_environ.py``:

* wsgiref defaults ``CONTENT_TYPE`` to ``text/plain``; the bridge leaves it out,
  as PEP 3333 allows ("may be empty or absent"). It is compared only when the
  request has a Content-Type.
* wsgiref sets ``CONTENT_LENGTH`` to ``""`` when there is none; the bridge leaves it
  out. Both mean "no length".
* wsgiref copies ``os.environ`` into every environ (``ServerHandler.os_environ``),
  so an ``HTTP_PROXY`` in the test's own environment would look like a header; the
  generated headers avoid those names and wsgiref's extra keys are dropped.
* wsgiref skips a header whose name maps onto one of its CGI variables (a
  ``Path-Info`` header never reaches the app); the bridge passes it on as
  ``HTTP_PATH_INFO``. Such names are not generated.
* wsgiref joins repeated Cookie headers with ``,``; the bridge joins them with
  ``"; "`` as the ASGI spec and RFC 6265 require. A repeated Cookie is checked
  against each joiner separately.
* The bridge drops header names with ``_`` by default (wsgiref merges them with
  the dashed name). Requests with such names are compared against
  ``keep_underscore_headers=True``, which behaves as wsgiref does.
* http.server collapses a leading ``//`` in the path (gh-87389); an ASGI server
  passes it on. Paths start with a single ``/``.

Both decode ``PATH_INFO`` the same way: percent-decoded bytes as latin-1, whatever
they are. uvicorn's ``path`` replaces undecodable UTF-8 with U+FFFD; the bridge
recovers the bytes from ``raw_path``, which these examples exercise with ``%FF``.
"""

from __future__ import annotations

import itertools
import queue
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import quote, unquote
from wsgiref.simple_server import ServerHandler, WSGIRequestHandler, WSGIServer, make_server

import anyio
import anyio.to_thread
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge import WSGIToASGI
from bridge.types import Environ, Message, StartResponse

from .wsgi_apps import TIMEOUT, Receiver, Transcript

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["asyncio", "trio"], scope="module")
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return cast(str, request.param)


# The recording app, shared by both servers.

CGI_KEYS = (
    "REQUEST_METHOD",
    "SCRIPT_NAME",
    "PATH_INFO",
    "QUERY_STRING",
    "CONTENT_TYPE",
    "CONTENT_LENGTH",
    "SERVER_PROTOCOL",
)


@dataclass(frozen=True)
class Seen:
    environ: dict[str, str]
    body: bytes


class Recorder:
    """Records the request part of each environ and reads exactly the body."""

    def __init__(self) -> None:
        self.seen: queue.SimpleQueue[Seen] = queue.SimpleQueue()

    def __call__(self, environ: Environ, start_response: StartResponse) -> list[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body: bytes = environ["wsgi.input"].read(length)
        request = {
            key: value
            for key, value in environ.items()
            if key in CGI_KEYS or key.startswith("HTTP_")
        }
        self.seen.put(Seen(request, body))
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]

    def take(self) -> Seen:
        return self.seen.get(timeout=TIMEOUT)


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class Wsgiref:
    server: WSGIServer
    recorder: Recorder

    @property
    def port(self) -> int:
        return self.server.server_port


@pytest.fixture(scope="module")
def wsgiref() -> Iterator[Wsgiref]:
    recorder = Recorder()
    server = make_server("127.0.0.1", 0, recorder, handler_class=QuietHandler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield Wsgiref(server, recorder)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(TIMEOUT)


# Requests.

TCHAR = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
PCHAR = "-._~!$&'()*+,;=:@0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
QCHAR = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "#")
VALUE_CHARS = (
    "".join(chr(c) for c in range(0x20, 0x7F)) + "\t" + bytes(range(0xA1, 0x100)).decode("latin-1")
)

# Header names wsgiref would skip or that would change the framing of the request.
WSGIREF_CGI = {
    "SERVER_NAME",
    "GATEWAY_INTERFACE",
    "SERVER_PORT",
    "REMOTE_HOST",
    "SCRIPT_NAME",
    "SERVER_PROTOCOL",
    "SERVER_SOFTWARE",
    "REQUEST_METHOD",
    "PATH_INFO",
    "QUERY_STRING",
    "REMOTE_ADDR",
}
FRAMING = {"host", "content-length", "content-type", "transfer-encoding", "expect", "connection"}
OS_ENVIRON: dict[str, str] = dict(ServerHandler.os_environ)


def environ_key(name: str) -> str:
    return name.upper().replace("-", "_")


def usable_name(name: str) -> bool:
    key = environ_key(name)
    return (
        name.lower() not in FRAMING
        and key not in WSGIREF_CGI
        and "HTTP_" + key not in OS_ENVIRON
        # wsgiref skips a header whose key is already in its environ, so "Http-Host"
        # (key HTTP_HOST, set by the Host header) vanishes there: a wsgiref quirk.
        and not key.startswith("HTTP_")
    )


header_names = st.one_of(
    st.sampled_from(
        [
            "Accept",
            "Cookie",
            "cookie",
            "User-Agent",
            "X-Forwarded-For",
            "X_Forwarded_For",
            "Authorization",
            "Accept-Language",
            "If-None-Match",
            "Content_Type",
        ]
    ),
    st.text(TCHAR, min_size=1, max_size=12),
).filter(usable_name)

header_values = st.text(VALUE_CHARS, max_size=30).map(lambda value: value.strip(" \t"))

path_pieces = st.one_of(
    st.text(PCHAR, min_size=1, max_size=4),
    st.integers(0, 255).map(lambda byte: f"%{byte:02X}"),  # any byte, valid UTF-8 or not
    st.integers(0, 255).map(lambda byte: f"%{byte:02x}"),
    st.text(min_size=1, max_size=3).map(lambda text: quote(text, safe="", errors="surrogatepass")),
    st.just("%2F"),
    st.just("%zz"),  # not an escape: kept as it is
)
segments = st.lists(st.lists(path_pieces, max_size=3).map("".join), max_size=4)
query_strings = st.lists(
    st.one_of(
        st.text(QCHAR, min_size=1, max_size=4),
        st.sampled_from(["+", "%20", "=", "&", "%C3%A9", "%FF", "?", "/", ";", "%26"]),
    ),
    max_size=6,
).map("".join)


@dataclass(frozen=True)
class Request:
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    content_type: str | None
    body: bytes
    send_zero_length: bool
    splits: list[int]

    @property
    def all_headers(self) -> list[tuple[str, str]]:
        headers = [("Host", "testserver"), *self.headers]
        if self.content_type is not None:
            headers.append(("Content-Type", self.content_type))
        if self.body or self.send_zero_length:
            headers.append(("Content-Length", str(len(self.body))))
        return headers

    def raw(self) -> bytes:
        lines = [f"{self.method} {self.target} HTTP/{self.version}"]
        lines += [f"{name}: {value}" for name, value in self.all_headers]
        return "\r\n".join([*lines, "", ""]).encode("latin-1") + self.body

    def scope(self, port: int) -> dict[str, Any]:
        """The scope uvicorn (h11) builds for ``raw()``."""
        raw_path, _, query_string = self.target.encode("ascii").partition(b"?")
        return {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": self.version,
            "server": ("127.0.0.1", port),
            "client": ("127.0.0.1", 50000),
            "scheme": "http",
            "method": self.method,
            "root_path": "",
            "path": unquote(raw_path.decode("ascii")),
            "raw_path": raw_path,
            "query_string": query_string,
            "headers": [
                (name.lower().encode("latin-1"), value.encode("latin-1"))
                for name, value in self.all_headers
            ],
        }

    def messages(self) -> list[Message]:
        """The body as ``http.request`` messages, cut at ``splits``."""
        cuts = sorted({0, len(self.body), *(cut % (len(self.body) + 1) for cut in self.splits)})
        chunks = [self.body[start:end] for start, end in itertools.pairwise(cuts)] or [b""]
        return [
            {"type": "http.request", "body": chunk, "more_body": index < len(chunks) - 1}
            for index, chunk in enumerate(chunks)
        ]


@st.composite
def requests(draw: st.DrawFn) -> Request:
    path = "/" + "/".join(draw(segments))
    if path.startswith("//"):
        path = "/x" + path[1:]
    query = draw(st.one_of(st.none(), query_strings))
    return Request(
        method=draw(
            st.one_of(
                st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]),
                st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ-", min_size=1, max_size=10),
            )
        ),
        target=path if query is None else f"{path}?{query}",
        version=draw(st.sampled_from(["1.0", "1.1"])),
        headers=draw(st.lists(st.tuples(header_names, header_values), max_size=8)),
        content_type=draw(st.one_of(st.none(), header_values)),
        body=draw(st.binary(max_size=3000)),
        send_zero_length=draw(st.booleans()),
        splits=draw(st.lists(st.integers(0, 3000), max_size=4)),
    )


# Sending it both ways.


def send_to_wsgiref(port: int, raw: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(raw)
        response = b""
        while chunk := sock.recv(65536):
            response += chunk
    return response


async def via_wsgiref(server: Wsgiref, request: Request) -> Seen:
    response = await anyio.to_thread.run_sync(send_to_wsgiref, server.port, request.raw())
    assert response.startswith(b"HTTP/1.0 200 OK\r\n"), response
    return server.recorder.take()


async def via_bridge(request: Request, port: int) -> Seen:
    recorder = Recorder()
    keep = any("_" in name for name, _ in request.headers)
    adapter = WSGIToASGI(recorder, keep_underscore_headers=keep)
    transcript = Transcript()
    with anyio.fail_after(TIMEOUT):
        await adapter(request.scope(port), Receiver(*request.messages()), transcript)
    assert transcript.status == 200
    assert transcript.body == b"ok"
    return recorder.take()


def comparable(seen: Seen, request: Request, *, from_wsgiref: bool) -> dict[str, str]:
    environ = dict(seen.environ)
    if environ.get("CONTENT_LENGTH") == "":
        del environ["CONTENT_LENGTH"]
    if request.content_type is None:
        environ.pop("CONTENT_TYPE", None)
    if from_wsgiref:
        sent = {"HTTP_" + environ_key(name) for name, _ in request.all_headers}
        for key in OS_ENVIRON.keys() - sent:
            environ.pop(key, None)
    return environ


@settings(max_examples=50, deadline=None)
@given(request=requests())
async def test_app_sees_what_wsgiref_gives_it(wsgiref: Wsgiref, request: Request) -> None:
    expected = await via_wsgiref(wsgiref, request)
    actual = await via_bridge(request, wsgiref.port)
    assert actual.body == expected.body == request.body

    wanted = comparable(expected, request, from_wsgiref=True)
    got = comparable(actual, request, from_wsgiref=False)
    cookies = [value for name, value in request.headers if name.lower() == "cookie"]
    if len(cookies) > 1:
        assert wanted.pop("HTTP_COOKIE") == ",".join(cookies)
        assert got.pop("HTTP_COOKIE") == "; ".join(cookies)
    assert got == wanted


async def test_a_known_tricky_request(wsgiref: Wsgiref) -> None:
    """One fixed example of everything at once, so a failure here reads easily."""
    request = Request(
        method="POST",
        target="/caf%C3%A9/%FF%2Fx/%zz?q=%C3%A9&a=b?c",
        version="1.1",
        headers=[("Cookie", "a=1"), ("Cookie", "b=2"), ("X-Latin", "caf\xe9"), ("X-A", "")],
        content_type="text/csv",
        body=b"a,b\r\n1,2\r\n",
        send_zero_length=False,
        splits=[3, 5],
    )
    expected = await via_wsgiref(wsgiref, request)
    actual = await via_bridge(request, wsgiref.port)
    assert actual.environ["PATH_INFO"] == expected.environ["PATH_INFO"] == "/caf\xc3\xa9/\xff/x/%zz"
    assert actual.environ["HTTP_COOKIE"] == "a=1; b=2"
    assert expected.environ["HTTP_COOKIE"] == "a=1,b=2"
    assert actual.body == expected.body == request.body
