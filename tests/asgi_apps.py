"""Reference raw ASGI apps for the ``ASGIToWSGI`` tests.

Every app here speaks the ASGI protocol by hand, so a test sees exactly which
messages crossed the bridge. Apps that a test synchronises with take
:class:`threading.Event` objects (the test runs in the WSGI thread, the app on the
adapter's loop thread) and wait on them through :func:`wait_event`, which never
blocks the loop and always has a timeout.

Every response carries a ``Content-Type`` because ``wsgiref.validate`` insists on
one, and the tests wrap the adapter in it.
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import anyio

from bridge.types import Environ, Message, Receive, Scope, Send

TIMEOUT = 5.0
"""Seconds any wait in an app or a test may take before the test fails."""

TEXT_PLAIN: list[tuple[bytes, bytes]] = [(b"content-type", b"text/plain; charset=utf-8")]
HELLO = b"Hello, world!"


async def wait_event(event: threading.Event, timeout: float = TIMEOUT) -> bool:
    """Wait for a thread-side ``event`` without blocking the event loop."""
    return await anyio.to_thread.run_sync(event.wait, timeout)


async def serve_lifespan(receive: Receive, send: Send) -> None:
    """The minimal lifespan protocol: acknowledge startup and shutdown."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def read_body(receive: Receive) -> tuple[bytes, list[Message]]:
    """Receive the request body; also returns every message, ``http.disconnect`` included."""
    messages: list[Message] = []
    chunks: list[bytes] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks), messages


async def respond(
    send: Send,
    body: bytes,
    status: int = 200,
    headers: Sequence[tuple[bytes, bytes]] = TEXT_PLAIN,
) -> None:
    """A complete response in two messages, with ``Content-Length``."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode("ascii"))],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    """``Hello, world!``; speaks lifespan."""
    if scope["type"] == "lifespan":
        await serve_lifespan(receive, send)
        return
    await respond(send, HELLO)


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    """The request body back; ``x-messages`` counts the ``http.request`` messages."""
    if scope["type"] == "lifespan":
        await serve_lifespan(receive, send)
        return
    body, messages = await read_body(receive)
    count = sum(message["type"] == "http.request" for message in messages)
    headers = [*TEXT_PLAIN, (b"x-messages", str(count).encode("ascii"))]
    await respond(send, body, headers=headers)


async def streaming(scope: Scope, receive: Receive, send: Send) -> None:
    """``n`` chunks (query ``n=...``, default 5) ``chunk <i>\\n``, then an empty last message."""
    if scope["type"] == "lifespan":
        await serve_lifespan(receive, send)
        return
    query: bytes = scope["query_string"]
    count = int(query.partition(b"n=")[2] or b"5")
    await send({"type": "http.response.start", "status": 200, "headers": TEXT_PLAIN})
    for index in range(count):
        chunk = f"chunk {index}\n".encode("ascii")
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


def streamed_body(count: int) -> bytes:
    """What :func:`streaming` sends for ``n=count``."""
    return b"".join(f"chunk {index}\n".encode("ascii") for index in range(count))


async def whoami(scope: Scope, receive: Receive, send: Send) -> None:
    """The process id of the loop serving the request, and of the loop thread."""
    if scope["type"] == "lifespan":
        await serve_lifespan(receive, send)
        return
    body = f"{os.getpid()} {threading.get_ident()}".encode("ascii")
    await respond(send, body)


class Asgi2Hello:
    """An ASGI 2 "double callable": ``await Asgi2Hello(scope)(receive, send)``."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    async def __call__(self, receive: Receive, send: Send) -> None:
        if self.scope["type"] == "lifespan":
            await serve_lifespan(receive, send)
            return
        await respond(send, b"asgi2 " + self.scope["path"].encode("utf-8"))


class Recorder:
    """Records each http scope and the request messages; answers ``ok``.

    With ``receive_after=True`` it calls ``receive()`` once more after its response
    is complete and records that message in :attr:`after`.
    """

    def __init__(self, *, receive_after: bool = False) -> None:
        self.receive_after = receive_after
        self.scopes: list[Scope] = []
        self.messages: list[list[Message]] = []
        self.after: list[Message] = []
        self.done = threading.Event()

    @property
    def scope(self) -> Scope:
        assert len(self.scopes) == 1, self.scopes
        return self.scopes[0]

    @property
    def body(self) -> bytes:
        assert len(self.messages) == 1, self.messages
        return b"".join(m.get("body", b"") for m in self.messages[0] if m["type"] == "http.request")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send)
            return
        try:
            self.scopes.append(scope)
            _, messages = await read_body(receive)
            self.messages.append(messages)
            await respond(send, b"ok")
            if self.receive_after:
                self.after.append(await receive())
        finally:
            self.done.set()


class LifespanApp:
    """Speaks lifespan, counts startups and shutdowns, and serves requests.

    * ``state``: put into the lifespan ``state`` at startup.
    * ``fail``: answer ``lifespan.startup.failed`` with this message instead.

    A request records ``dict(scope.get("state"))``; to ``/mutate`` it then changes the
    request's state: sets ``counter`` to 99, adds ``added`` and appends to ``shared``.
    """

    def __init__(self, *, state: dict[str, Any] | None = None, fail: str | None = None) -> None:
        self.initial_state = state or {}
        self.fail = fail
        self.startups = 0
        self.shutdowns = 0
        self.scope_types: list[str] = []
        self.request_states: list[dict[str, Any] | None] = []
        self.startup_seen_by_request: list[int] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scope_types.append(scope["type"])
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    if self.fail is not None:
                        await send({"type": "lifespan.startup.failed", "message": self.fail})
                        return
                    self.startups += 1
                    scope["state"].update(self.initial_state)
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    self.shutdowns += 1
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        self.startup_seen_by_request.append(self.startups)
        state = scope.get("state")
        self.request_states.append(None if state is None else dict(state))
        if state is not None and scope["path"] == "/mutate":
            state["counter"] = 99
            state["added"] = True
            state["shared"].append(len(self.request_states))
        await respond(send, b"ok")


class NoLifespan:
    """Raises on the lifespan scope, as apps that predate the protocol do."""

    def __init__(self) -> None:
        self.scope_types: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scope_types.append(scope["type"])
        if scope["type"] != "http":
            raise RuntimeError(f"Unsupported scope type {scope['type']!r}.")
        await respond(send, HELLO)


class Scripted:
    """Sends ``messages`` in order; records what ``send()`` raised, then re-raises it."""

    def __init__(self, messages: Sequence[Message]) -> None:
        self.script = messages
        self.error: BaseException | None = None
        self.done = threading.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send)
            return
        try:
            for message in self.script:
                await send(message)
        except BaseException as exc:
            self.error = exc
            raise
        finally:
            self.done.set()


class Raising:
    """Raises ``RuntimeError("boom")`` before the response starts or after its first chunk."""

    def __init__(self, when: str) -> None:
        assert when in ("before", "after"), when
        self.when = when

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send)
            return
        if self.when == "after":
            await send({"type": "http.response.start", "status": 200, "headers": TEXT_PLAIN})
            await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise RuntimeError("boom")


class Handshake:
    """Sends ``first``, then waits until the test sets :attr:`release` before ``second``."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.released: bool | None = None
        self.done = threading.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send)
            return
        try:
            await send({"type": "http.response.start", "status": 200, "headers": TEXT_PLAIN})
            await send({"type": "http.response.body", "body": b"first", "more_body": True})
            self.released = await wait_event(self.release)
            await send({"type": "http.response.body", "body": b"second", "more_body": False})
        finally:
            self.done.set()


class Forever:
    """An endless response, ended only by the client going away.

    * ``mode="send"``: keeps sending chunks until ``send()`` raises (and re-raises it).
    * ``mode="receive"``: sends one chunk, then waits on ``receive()``.

    :attr:`outcome` records how it ended; :attr:`ended` is set in ``finally``.
    """

    def __init__(self, mode: str) -> None:
        assert mode in ("send", "receive"), mode
        self.mode = mode
        self.outcome: BaseException | Message | None = None
        self.ended = threading.Event()
        self.chunks_sent = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send)
            return
        try:
            await read_body(receive)
            await send({"type": "http.response.start", "status": 200, "headers": TEXT_PLAIN})
            chunk = {"type": "http.response.body", "body": b"tick\n" * 100, "more_body": True}
            if self.mode == "receive":
                await send(chunk)
                self.chunks_sent += 1
                self.outcome = await receive()
                return
            while True:
                await send(chunk)
                self.chunks_sent += 1
        except Exception as exc:
            self.outcome = exc
            raise
        finally:
            self.ended.set()


class NeverResponds:
    """Never starts a response; records the cancellation that ends it."""

    def __init__(self) -> None:
        self.cancelled = threading.Event()
        self.ended = threading.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send)
            return
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            self.cancelled.set()
            raise
        finally:
            self.ended.set()


class LateReceive:
    """Calls ``receive()`` after the body is complete but before the response is.

    The spec says that call returns ``http.disconnect`` once the response is
    complete. The receiving task records whether the final body message had been
    sent by then (:attr:`final_sent_before_disconnect`) and whether it was still
    waiting when every task was blocked mid-response (:attr:`waiting_mid_response`).
    """

    def __init__(self) -> None:
        self.final_sent = False
        self.message: Message | None = None
        self.final_sent_before_disconnect: bool | None = None
        self.waiting_mid_response: bool | None = None
        self.done = threading.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send)
            return
        try:
            await read_body(receive)

            async def listen() -> None:
                self.message = await receive()
                self.final_sent_before_disconnect = self.final_sent

            async with anyio.create_task_group() as task_group:
                task_group.start_soon(listen)
                await send({"type": "http.response.start", "status": 200, "headers": TEXT_PLAIN})
                await send({"type": "http.response.body", "body": b"part 1, ", "more_body": True})
                await anyio.wait_all_tasks_blocked()
                self.waiting_mid_response = self.message is None
                self.final_sent = True
                await send({"type": "http.response.body", "body": b"part 2"})
        finally:
            self.done.set()


class BackPressure:
    """Sends ``count`` chunks of ``size`` bytes, counting what ``send()`` accepted.

    :attr:`sent` (bytes whose ``send()`` returned) is read by the consumer under
    :attr:`condition`, which is notified after every send.
    """

    def __init__(self, count: int, size: int) -> None:
        self.count = count
        self.size = size
        self.condition = threading.Condition()
        self.sent = 0
        self.finished = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send)
            return
        try:
            await send({"type": "http.response.start", "status": 200, "headers": TEXT_PLAIN})
            chunk = b"x" * self.size
            for _ in range(self.count):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                with self.condition:
                    self.sent += len(chunk)
                    self.condition.notify_all()
            await send({"type": "http.response.body", "body": b""})
        finally:
            with self.condition:
                self.finished = True
                self.condition.notify_all()


class PathSend:
    """Answers with ``http.response.pathsend`` for ``path`` (when the scope offers it)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.extensions: dict[str, Any] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send)
            return
        self.extensions = scope.get("extensions")
        headers = [(b"content-type", b"application/octet-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.pathsend", "path": self.path})


# Environs, as a WSGI server builds them.


def make_environ(
    path_info: str = "/",
    *,
    method: str = "GET",
    script_name: str = "",
    query: str = "",
    body: bytes = b"",
    content_length: str | None = None,
    wsgi_input: object = None,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Environ:
    """A PEP 3333 environ as a WSGI server would build it.

    ``CONTENT_LENGTH`` is ``len(body)`` when there is a body, unless
    ``content_length`` overrides it (``""`` leaves it out).
    """
    environ: Environ = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": script_name,
        "PATH_INFO": path_info,
        "QUERY_STRING": query,
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "40000",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body) if wsgi_input is None else wsgi_input,
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    if content_length is None:
        content_length = str(len(body)) if body else ""
    if content_length:
        environ["CONTENT_LENGTH"] = content_length
    environ.update(headers or {})
    environ.update(extra or {})
    return environ
