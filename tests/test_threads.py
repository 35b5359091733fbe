"""The scheduling policy of the bridge's own threads (Linux only)."""

from __future__ import annotations

import gc
import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import cast

import anyio
import pytest

from bridge import ASGIToWSGI
from bridge._threads import _WorkerPool, wake_without_preempting
from bridge.types import Receive, Scope, Send, StartResponse

from .asgi_apps import TIMEOUT, make_environ

pytestmark = pytest.mark.skipif(
    not hasattr(os, "sched_getscheduler"), reason="scheduling policies are Linux-only"
)


def policy_in_new_thread(setup: Callable[[], object]) -> int:
    """The policy a fresh thread has after ``setup()``."""
    seen: list[int] = []

    def run() -> None:
        setup()
        seen.append(os.sched_getscheduler(0))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(TIMEOUT)
    assert seen, "the thread did not finish"
    return seen[0]


def test_with_the_opt_in_a_bridge_thread_asks_not_to_preempt_its_waker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BRIDGE_BATCH_SCHEDULING", "1")
    assert policy_in_new_thread(wake_without_preempting) == os.SCHED_BATCH


@pytest.mark.parametrize("value", [None, "", "0"])
def test_by_default_the_policy_is_left_alone(
    monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    if value is None:
        monkeypatch.delenv("BRIDGE_BATCH_SCHEDULING", raising=False)
    else:
        monkeypatch.setenv("BRIDGE_BATCH_SCHEDULING", value)
    default = policy_in_new_thread(lambda: None)
    assert policy_in_new_thread(wake_without_preempting) == default


def policy_in_new_pool_thread() -> int:
    """The policy of a new pool thread (a fresh pool has no idle thread to reuse)."""
    seen: list[int] = []
    done = threading.Event()

    def job() -> None:
        seen.append(os.sched_getscheduler(0))
        done.set()

    _WorkerPool().submit(job)
    assert done.wait(TIMEOUT)
    return seen[0]


def test_by_default_pool_threads_keep_the_default_policy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("BRIDGE_BATCH_SCHEDULING", raising=False)
    default = policy_in_new_thread(lambda: None)
    assert policy_in_new_pool_thread() == default


def test_pool_threads_run_under_batch_and_the_caller_keeps_its_policy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BRIDGE_BATCH_SCHEDULING", "1")
    before = os.sched_getscheduler(0)
    assert policy_in_new_pool_thread() == os.SCHED_BATCH
    assert os.sched_getscheduler(0) == before


def test_the_asgi_loop_thread_runs_under_batch_and_the_wsgi_thread_does_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BRIDGE_BATCH_SCHEDULING", "1")
    seen: list[int] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(os.sched_getscheduler(0))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    adapter = ASGIToWSGI(app, lifespan="off")
    try:
        before = os.sched_getscheduler(0)
        statuses: list[str] = []

        def start_response(status: str, headers: object, exc_info: object = None) -> None:
            statuses.append(status)

        assert list(adapter(make_environ(), cast(StartResponse, start_response))) == [b""]
        assert statuses == ["204 No Content"]
        assert seen == [os.SCHED_BATCH]
        assert os.sched_getscheduler(0) == before
    finally:
        adapter.close()


def test_an_idle_pool_thread_holds_no_job_it_ran() -> None:
    # A request's objects (its environ, its error and traceback) go when it ends, not
    # when the thread that ran it does.
    class Job:
        def __init__(self) -> None:
            self.ran = threading.Event()

        def __call__(self) -> None:
            self.ran.set()

    pool = _WorkerPool()
    job = Job()
    ran = job.ran
    gone = weakref.ref(job)
    pool.submit(job)
    del job
    assert ran.wait(TIMEOUT)
    deadline = time.monotonic() + TIMEOUT
    while gone() is not None and time.monotonic() < deadline:
        gc.collect()
        time.sleep(0.01)  # the thread drops its reference right after the call
    assert gone() is None


@pytest.mark.parametrize("opt_in", [True, False])
def test_with_the_opt_in_the_wsgi_thread_offers_the_loop_its_core_before_it_sleeps(
    monkeypatch: pytest.MonkeyPatch, opt_in: bool
) -> None:
    if opt_in:
        monkeypatch.setenv("BRIDGE_BATCH_SCHEDULING", "1")
    else:
        monkeypatch.delenv("BRIDGE_BATCH_SCHEDULING", raising=False)
    caller = threading.get_ident()
    offers: list[int] = []
    offered = threading.Event()
    real_yield = os.sched_yield

    def sched_yield() -> None:
        if threading.get_ident() == caller:
            offers.append(1)
            offered.set()
        real_yield()

    monkeypatch.setattr(os, "sched_yield", sched_yield)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if opt_in:  # answer once the waiting thread has stood aside (bounded)
            await anyio.to_thread.run_sync(offered.wait, TIMEOUT)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    adapter = ASGIToWSGI(app, lifespan="off")
    try:
        statuses: list[str] = []

        def start_response(status: str, headers: object, exc_info: object = None) -> None:
            statuses.append(status)

        result = adapter(make_environ(), cast(StartResponse, start_response))
        assert list(result) == [b""]
        assert statuses == ["204 No Content"]
        assert (len(offers) > 0) is opt_in
        assert len(offers) <= 3
    finally:
        adapter.close()
