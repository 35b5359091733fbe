"""pytest plugin: every app a suite's test client runs goes through the double bridge.

Loaded into a framework's own test suite with ``-p compat._plugin``:

* ``--bridge-mode asgi`` (Starlette, FastAPI): ``starlette.testclient.TestClient``
  is given ``WSGIToASGI(ASGIToWSGI(app))`` instead of ``app``;
* ``--bridge-mode wsgi`` (Flask, Werkzeug): ``werkzeug.test.run_wsgi_app`` runs
  ``ASGIToWSGI(WSGIToASGI(app))`` instead of ``app``;
* ``--bridge-mode off`` (the native run): nothing is bridged.

See ``compat/_patches.py`` for where and how. Every inner adapter is closed at the
end of each test, so the event loop threads of ``ASGIToWSGI`` do not pile up.
"""

from __future__ import annotations

import ast
import functools
import threading
from collections.abc import Generator
from typing import Any

import pytest

from . import _patches


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


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--bridge-mode",
        choices=("off", "asgi", "wsgi"),
        default="off",
        help="asgi: bridge Starlette's TestClient apps; wsgi: bridge werkzeug's run_wsgi_app; "
        "off: the native run.",
    )


def pytest_configure(config: pytest.Config) -> None:
    _serialize_ast_parse()
    mode = config.getoption("--bridge-mode")
    if mode == "asgi":
        _patches.patch_starlette()
    elif mode == "wsgi":
        _patches.patch_werkzeug()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, None, None]:
    _patches.Current.item = item
    try:
        return (yield)
    finally:
        _patches.Current.item = None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    try:
        return (yield)
    finally:
        _patches.registry.end_of_test()


def pytest_report_header(config: pytest.Config) -> str:
    mode = config.getoption("--bridge-mode")
    if mode == "off":
        return "compat: native run"
    return f"compat: every test client app runs through the double bridge ({mode})"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _patches.registry.most_threads:
        terminalreporter.write_line(
            "compat: at most "
            f"{_patches.registry.most_threads} threads alive after a test's adapters were closed"
        )
