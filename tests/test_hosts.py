"""``bridge._hosts``: what the per-process loop learns from the server hosting it.

The real servers are tested in ``tests/integration``; here a stand-in for uWSGI's
embedded module shows the cases those servers cannot be made to show on demand
(current uWSGI always runs with Python threads).
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator

import pytest

from bridge import _hosts
from bridge.types import Receive, Scope, Send
from tests.asgi_apps import TIMEOUT
from tests.conftest import AdapterFactory


class FakeUWSGI(types.ModuleType):
    """The attributes of uWSGI's embedded module that the bridge reads and sets."""

    def __init__(self, has_threads: int) -> None:
        super().__init__("uwsgi")
        self.has_threads = has_threads
        self.atexit_calls: list[str] = []

    def masterpid(self) -> int:
        return 1


@pytest.fixture
def fake_uwsgi(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeUWSGI]:
    module = FakeUWSGI(has_threads=1)
    monkeypatch.setitem(sys.modules, "uwsgi", module)
    monkeypatch.setattr(_hosts, "_watched_pid", None)
    yield module


async def _plain_app(scope: Scope, receive: Receive, send: Send) -> None:
    raise AssertionError("never called")


def test_uwsgi_without_threads_fails_the_first_request_naming_the_flag(
    fake_uwsgi: FakeUWSGI, make_adapter: AdapterFactory
) -> None:
    fake_uwsgi.has_threads = 0
    adapter = make_adapter(_plain_app, lifespan_timeout=TIMEOUT)
    environ = {"REQUEST_METHOD": "GET", "wsgi.input": None}

    with pytest.raises(RuntimeError, match="--enable-threads"):
        adapter(environ, lambda *args: lambda data: None)


def test_uwsgi_is_a_server_that_forks_unseen(fake_uwsgi: FakeUWSGI) -> None:
    assert _hosts.forks_unseen()
    del sys.modules["uwsgi"]
    assert not _hosts.forks_unseen()


def test_uwsgi_atexit_closes_the_loops_then_calls_the_hook_it_replaced(
    fake_uwsgi: FakeUWSGI,
) -> None:
    calls: list[str] = []
    fake_uwsgi.atexit = lambda: calls.append("previous")  # type: ignore[attr-defined]

    _hosts.watch_exit(lambda: calls.append("close"))
    _hosts.watch_exit(lambda: calls.append("a second hook"))  # once per process
    fake_uwsgi.atexit()

    assert calls == ["close", "previous"]


def test_a_process_loop_watches_the_servers_exit_hooks(
    fake_uwsgi: FakeUWSGI, make_adapter: AdapterFactory
) -> None:
    adapter = make_adapter(_plain_app, lifespan="off")
    loop = adapter._loops.get()

    assert callable(getattr(fake_uwsgi, "atexit", None))
    fake_uwsgi.atexit()
    assert not loop._thread.is_alive(), "uwsgi.atexit did not stop the loop"


def test_no_multiprocessing_finalizer_outside_a_multiprocessing_child(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_hosts, "_watched_pid", None)
    util = sys.modules.get("multiprocessing.util")
    registry = dict(getattr(util, "_finalizer_registry", {}))

    _hosts.watch_exit(lambda: None)

    assert dict(getattr(util, "_finalizer_registry", {})) == registry
