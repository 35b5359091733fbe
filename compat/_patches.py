"""The double bridge put in front of the apps the test clients run (see ``_plugin``).

Every wrapper is made once per app (and anyio backend) and marked so that it is
never wrapped again. At the end of each test every ``ASGIToWSGI`` still alive is
closed (its next request starts a new loop), and the wrappers made during the test
are forgotten (an app of that test must not outlive it: Werkzeug counts leaked
objects); wrappers made outside any test (a client created at import time) are
kept for the session.
"""

from __future__ import annotations

import functools
import inspect
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from bridge import ASGIToWSGI, WSGIToASGI

LIFESPAN_TIMEOUT = 10.0
"""The inner ``ASGIToWSGI``'s lifespan_timeout (60 s by default): an app whose startup
never ends (a middleware that consumes the lifespan messages) costs 10 s, not a minute
and the test's time limit."""

_MARK = "_compat_bridged"
"""Set on every wrapper made here, so that a wrapper is never wrapped again."""


class Current:
    """The test running now (set by the plugin's hooks), to note events on."""

    item: pytest.Item | None = None


def note(event: str) -> None:
    """Record on the running test that ``event`` happened (once per event).

    The notes reach the JUnit XML as ``compat`` properties: ``bridged`` (a request
    went through the double bridge), ``websocket`` (a websocket session was opened
    through it), ``underscore-header`` and ``repeated-header`` (a request had a
    header name with ``_``, or a header name twice).
    """
    item = Current.item
    if item is not None and ("compat", event) not in item.user_properties:
        item.user_properties.append(("compat", event))


@dataclass
class _Entry:
    app: object  # held so that its id is not reused while the wrapper is cached
    wrapper: Any
    in_test: bool


class _Registry:
    """The wrappers made so far, by the id of the app they wrap."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple[int, str], _Entry] = {}
        self._adapters: weakref.WeakSet[ASGIToWSGI] = weakref.WeakSet()
        self.most_threads = 0  # threads alive after a test's adapters were closed

    def get(self, app: object, key: str, make: Callable[[], tuple[Any, ASGIToWSGI]]) -> Any:
        with self._lock:
            entry = self._entries.get((id(app), key))
            if entry is None:
                wrapper, adapter = make()
                setattr(wrapper, _MARK, True)
                self._adapters.add(adapter)
                entry = _Entry(app, wrapper, in_test=Current.item is not None)
                self._entries[(id(app), key)] = entry
            return entry.wrapper

    def end_of_test(self) -> None:
        """Close every inner adapter alive, and forget the wrappers the test made."""
        with self._lock:
            self._entries = {
                key: entry for key, entry in self._entries.items() if not entry.in_test
            }
            adapters = list(self._adapters)
        for adapter in adapters:
            adapter.close()  # cheap for an adapter whose loop is not running
        self.most_threads = max(self.most_threads, threading.active_count())


registry = _Registry()


def is_bridged(app: object) -> bool:
    """True for a wrapper made here."""
    return bool(getattr(app, _MARK, False))


def bridge_asgi(app: Any, backend: str = "asyncio", options: dict[str, Any] | None = None) -> Any:
    """``WSGIToASGI(ASGIToWSGI(app))``, the inner adapter on the client's anyio backend."""
    if is_bridged(app):
        return app

    def make() -> tuple[Any, ASGIToWSGI]:
        inner = ASGIToWSGI(
            app, backend=backend, backend_options=options, lifespan_timeout=LIFESPAN_TIMEOUT
        )
        outer = WSGIToASGI(inner)
        outer._compat_inner = inner  # type: ignore[attr-defined]
        return outer, inner

    return registry.get(app, f"{backend}:{sorted((options or {}).items())!r}", make)


def bridge_wsgi(app: Any) -> Any:
    """``ASGIToWSGI(WSGIToASGI(app))``."""
    if is_bridged(app):
        return app

    def make() -> tuple[Any, ASGIToWSGI]:
        outer = ASGIToWSGI(WSGIToASGI(app), lifespan_timeout=LIFESPAN_TIMEOUT)
        return outer, outer

    return registry.get(app, "wsgi", make)


def _note_headers(request: Any) -> None:
    names = [name.lower() for name, _ in request.headers.multi_items()]
    if any("_" in name for name in names):
        note("underscore-header")
    if len(set(names)) < len(names):
        note("repeated-header")


def patch_starlette() -> None:
    """Bridge every app given to ``starlette.testclient.TestClient`` (FastAPI's too).

    The app is replaced where the client takes it, so its requests, its lifespan
    and its websockets all reach the outer ``WSGIToASGI``. When the client's
    ``with`` block ends, the inner adapter is closed: the app's lifespan shutdown
    runs then, as when a WSGI server's worker exits.
    """
    from starlette import testclient

    client_class: Any = testclient.TestClient
    original_init = client_class.__init__
    original_exit = client_class.__exit__
    signature = inspect.signature(original_init)

    @functools.wraps(original_init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        backend = bound.arguments.get("backend") or "asyncio"
        options = bound.arguments.get("backend_options")
        bound.arguments["app"] = bridge_asgi(bound.arguments["app"], backend, options)
        original_init(*bound.args, **bound.kwargs)

    @functools.wraps(original_exit)
    def __exit__(self: Any, *args: Any) -> Any:
        try:
            return original_exit(self, *args)
        finally:
            inner = getattr(self.app, "_compat_inner", None)
            if inner is not None:
                inner.close()

    transport_class: Any = testclient._TestClientTransport
    original_handle = transport_class.handle_request

    @functools.wraps(original_handle)
    def handle_request(self: Any, request: Any) -> Any:
        if is_bridged(self.app):
            note("bridged")
            _note_headers(request)
        return original_handle(self, request)

    session_class: Any = testclient.WebSocketTestSession
    original_enter = session_class.__enter__

    @functools.wraps(original_enter)
    def __enter__(self: Any) -> Any:
        if is_bridged(self.app):
            note("websocket")
        return original_enter(self)

    client_class.__init__ = __init__
    client_class.__exit__ = __exit__
    transport_class.handle_request = handle_request
    session_class.__enter__ = __enter__


def patch_werkzeug() -> None:
    """Bridge every app run by ``werkzeug.test.run_wsgi_app``.

    Werkzeug's ``Client`` (so Flask's ``app.test_client()``) and
    ``Response.from_app`` call it for every request. A nested call on an environ
    that already crossed the bridge (it holds ``asgi.scope``), such as
    ``Response.force_type`` running an exception as a WSGI app inside the app,
    runs as it is.
    """
    from werkzeug import test

    original = test.run_wsgi_app

    @functools.wraps(original)
    def run_wsgi_app(app: Any, environ: Any, buffered: bool = False) -> Any:
        if not (isinstance(environ, dict) and "asgi.scope" in environ):
            app = bridge_wsgi(app)
            note("bridged")
        return original(app, environ, buffered)

    test.run_wsgi_app = run_wsgi_app
