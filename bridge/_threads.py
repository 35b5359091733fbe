"""A process-wide pool of daemon threads that run WSGI requests.

How many run at once is bounded by each adapter's :class:`anyio.CapacityLimiter`,
acquired on the event loop before a job is submitted; the pool itself only keeps
idle threads around for reuse. Compared with ``anyio.to_thread.run_sync`` it saves a
task group and a future per request and lets the job post its results to the loop
as it goes (measured in docs/performance.md).

Threads are daemons, so a request stuck in application code never blocks
interpreter exit, and the pool forgets its threads in a forked child, where they do
not exist.

With ``BRIDGE_BATCH_SCHEDULING=1`` in the environment, the bridge's own threads
(these and ``ASGIToWSGI``'s loop thread) ask the scheduler not to preempt the thread
that woke them (:func:`wake_without_preempting`), and a WSGI server's thread that hands
a request to ``ASGIToWSGI``'s loop offers it its core before it sleeps
(:data:`HANDOFF_YIELDS`). It is off by default: it changes the scheduling policy of
threads that run the user's code.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable

_IDLE_SECONDS = 10.0
_OPT_IN = "BRIDGE_BATCH_SCHEDULING"


def batch_scheduling() -> bool:
    """Whether the opt-in ``BRIDGE_BATCH_SCHEDULING=1`` is set (and the system has it)."""
    return hasattr(os, "sched_setscheduler") and os.environ.get(_OPT_IN, "") not in ("", "0")


HANDOFF_YIELDS = 3
"""With the opt-in, how many times a WSGI server's thread that has handed a request to
the loop's thread offers it its core (``sched_yield``) before it sleeps: on a core the
two share, the loop then answers without waking a sleeper that would preempt it only
to wait for the GIL. On another core each offer returns at once (a system call)."""


def wake_without_preempting() -> None:
    """With ``BRIDGE_BATCH_SCHEDULING=1``, put the calling thread under ``SCHED_BATCH``.

    A thread the bridge wakes cannot run Python code before the waker releases the
    GIL, which the waker does a few microseconds later when it blocks. Preempting the
    waker on its core only to wait for the GIL costs two context switches per hand-off
    (measured in docs/performance.md). Linux's ``SCHED_BATCH`` keeps the thread's share
    of the CPU and only turns off that wake-up preemption. Threads it creates inherit
    it, and it can raise their wake-up latency under load, so it is an opt-in.
    """
    if not batch_scheduling():
        return
    try:
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    except OSError:
        pass  # not permitted here (a sandbox's seccomp profile): keep the default


class _WorkerPool:
    __slots__ = ("_idle", "_jobs", "_lock", "_threads")

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], object]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0
        self._threads = 0

    def submit(self, job: Callable[[], object]) -> None:
        """Run ``job()`` in a pool thread; it must not raise."""
        with self._lock:
            if self._idle:
                self._idle -= 1
                self._jobs.put(job)
                return
            self._threads += 1
        # The first job goes in a box the thread empties: a Thread keeps its args for
        # its whole life, and the job (a request, its environ, its error) must not.
        box = [job]
        thread = threading.Thread(target=self._work, args=(box,), name="bridge-worker", daemon=True)
        thread.start()

    def _work(self, box: list[Callable[[], object]]) -> None:
        wake_without_preempting()
        job: Callable[[], object] | None = box.pop()
        jobs = self._jobs
        while True:
            if job is not None:
                job()
                job = None
            with self._lock:
                self._idle += 1
            try:
                job = jobs.get(timeout=_IDLE_SECONDS)
            except queue.Empty:
                with self._lock:
                    try:
                        # A submit may have counted on this thread just now.
                        job = jobs.get_nowait()
                    except queue.Empty:
                        self._idle -= 1
                        self._threads -= 1
                        return

    def _after_fork(self) -> None:
        self.__init__()  # type: ignore[misc]


pool = _WorkerPool()
os.register_at_fork(after_in_child=pool._after_fork)
