"""pytest plugin: every app a suite's test client runs goes through the double bridge.

Loaded with ``-p compat._plugin --bridge-mode asgi|wsgi`` into a framework's own
test suite.

* ``asgi`` (Starlette, FastAPI): ``starlette.testclient.TestClient`` is given
  ``WSGIToASGI(ASGIToWSGI(app))`` instead of ``app``. The wrap happens where the
  client takes the app, so its HTTP requests, its lifespan (``with
  TestClient(app)``) and its websockets all reach the outer ``WSGIToASGI``. The
  inner ``ASGIToWSGI`` runs on the same anyio backend as the client, and is closed
  when the client's ``with`` block ends (the app's lifespan shutdown), as a WSGI
  server's worker closes it at exit.
* ``wsgi`` (Flask, Werkzeug): ``werkzeug.test.run_wsgi_app``, which Werkzeug's
  ``Client`` (and so Flask's ``app.test_client()``) and ``Response.from_app`` call
  for every request, runs ``ASGIToWSGI(WSGIToASGI(app))`` instead of ``app``. A
  nested call on an environ that has already crossed the bridge (it holds
  ``asgi.scope``), such as ``Response.force_type`` turning an exception into a
  response inside the app, runs as it is.

An app is wrapped once: the same app given again gets the same wrapper, and a
wrapper is never wrapped. Every inner adapter is closed at the end of each test,
so the event loop threads of ``ASGIToWSGI`` do not pile up; the next request
starts a new loop.
"""

from __future__ import annotations

import ast
import functools
import inspect
import threading
from collections.abc import Callable, Generator
from typing import Any

import pytest

from bridge import ASGIToWSGI, WSGIToASGI

_MARK = "_compat_bridged"
"""Set on every wrapper the plugin makes, so a wrapper is never wrapped again."""


class _Registry:
    """The wrappers made so far, by the app they wrap, and the adapters to close."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # id(app) and the inner adapter's settings -> (app, wrapper); the app is held
        # so that its id is not reused while the wrapper is cached.
        self._wrappers: dict[tuple[int, str], tuple[object, Any]] = {}
        self.closers: list[Callable[[], None]] = []
        self.made = 0

    def get(self, app: object, key: str, make: Callable[[], Any]) -> Any:
        with self._lock:
            entry = self._wrappers.get((id(app), key))
            if entry is not None:
                return entry[1]
            wrapper = make()
            setattr(wrapper, _MARK, True)
            self._wrappers[(id(app), key)] = (app, wrapper)
            self.made += 1
            return wrapper

    def close_all(self) -> None:
        """Close every inner adapter (cheap for one that never started its loop)."""
        for close in list(self.closers):
            close()


_registry = _Registry()


class _Current:
    """The test running now, to note on it what crossed the bridge."""

    item: pytest.Item | None = None


def note(event: str) -> None:
    """Record on the running test that ``event`` happened (once per event).

    The notes reach the JUnit XML as ``compat`` properties: ``bridged`` when a
    request went through the double bridge, ``websocket`` when a websocket session
    was opened through it.
    """
    item = _Current.item
    if item is not None and ("compat", event) not in item.user_properties:
        item.user_properties.append(("compat", event))


def is_bridged(app: object) -> bool:
    """True for a wrapper this plugin made."""
    return bool(getattr(app, _MARK, False))


def bridge_asgi(app: Any, backend: str = "asyncio", options: dict[str, Any] | None = None) -> Any:
    """``WSGIToASGI(ASGIToWSGI(app))``, made once per app and backend."""
    if is_bridged(app):
        return app

    def make() -> Any:
        inner = ASGIToWSGI(app, backend=backend, backend_options=options)
        _registry.closers.append(inner.close)
        outer = WSGIToASGI(inner)
        outer._compat_inner = inner  # type: ignore[attr-defined]
        return outer

    return _registry.get(app, f"{backend}:{sorted((options or {}).items())!r}", make)


def bridge_wsgi(app: Any) -> Any:
    """``ASGIToWSGI(WSGIToASGI(app))``, made once per app."""
    if is_bridged(app):
        return app

    def make() -> Any:
        outer = ASGIToWSGI(WSGIToASGI(app))
        _registry.closers.append(outer.close)
        return outer

    return _registry.get(app, "wsgi", make)


def _serialize_ast_parse() -> None:
    """Let one thread at a time build a Python AST.

    CPython 3.11 keeps the AST constructor's recursion counter per interpreter, not
    per thread, so two threads in ``ast.parse`` at once can fail with ``SystemError:
    AST constructor recursion depth mismatch`` (python/cpython#106905). pytest parses
    source to show a failure while the bridge's threads may be formatting a
    traceback for a log record (which parses too, for its carets): the run would
    end in an INTERNALERROR. Both runs, native and bridged, get this lock.
    """
    original = ast.parse
    if getattr(original, "_compat_serialized", False):
        return
    lock = threading.RLock()

    @functools.wraps(original)
    def parse(*args: Any, **kwargs: Any) -> Any:
        with lock:
            return original(*args, **kwargs)

    parse._compat_serialized = True  # type: ignore[attr-defined]
    ast.parse = parse


def _patch_starlette() -> None:
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
                inner.close()  # the "server" stops: the app's lifespan shutdown runs

    transport_class: Any = testclient._TestClientTransport
    original_handle = transport_class.handle_request

    @functools.wraps(original_handle)
    def handle_request(self: Any, request: Any) -> Any:
        if is_bridged(self.app):
            note("bridged")
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


def _patch_werkzeug() -> None:
    from werkzeug import test

    original = test.run_wsgi_app

    @functools.wraps(original)
    def run_wsgi_app(app: Any, environ: Any, buffered: bool = False) -> Any:
        if not (isinstance(environ, dict) and "asgi.scope" in environ):
            app = bridge_wsgi(app)
            note("bridged")
        return original(app, environ, buffered)

    test.run_wsgi_app = run_wsgi_app


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--bridge-mode",
        choices=("off", "asgi", "wsgi"),
        default="off",
        help="asgi: bridge Starlette's TestClient apps; wsgi: bridge werkzeug's run_wsgi_app; "
        "off: the native run (only the AST lock).",
    )


def pytest_configure(config: pytest.Config) -> None:
    _serialize_ast_parse()
    mode = config.getoption("--bridge-mode")
    if mode == "asgi":
        _patch_starlette()
    elif mode == "wsgi":
        _patch_werkzeug()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, None, None]:
    _Current.item = item
    try:
        return (yield)
    finally:
        _Current.item = None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    try:
        return (yield)
    finally:
        _registry.close_all()


def pytest_report_header(config: pytest.Config) -> str:
    mode = config.getoption("--bridge-mode")
    if mode == "off":
        return "compat: native run"
    return f"compat: every test client app runs through the double bridge ({mode})"
