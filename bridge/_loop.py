"""Event loops for the adapters: waking one from another thread, and owning one.

Theory of operation
-------------------
``WSGIToASGI`` runs on the ASGI server's loop and only needs to *post* callbacks to
it from its worker threads (:func:`current_loop`, :func:`post`): anyio's
``from_thread`` calls would block the calling thread until the loop ran them.

``ASGIToWSGI`` brings its own loop: a :class:`LoopThread` runs it in a daemon
thread, starts the app's lifespan there, and runs one task per request
(:meth:`LoopThread.spawn`). A :class:`ProcessLoop` owns the adapter's loop thread
for one process: it starts it lazily with the first request, forgets it in a child
after ``fork()`` (where the thread does not exist, e.g. under ``gunicorn
--preload``), and stops it, running lifespan shutdown, at interpreter exit and at
the end-of-process hooks of servers that end their workers without it
(:mod:`bridge._hosts`).
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import contextvars
import importlib.util
import logging
import os
import threading
import weakref
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

import anyio
from anyio.lowlevel import current_token

from . import _hosts
from ._lifespan import Lifespan, LifespanMode
from ._threads import HANDOFF_YIELDS, batch_scheduling, wake_without_preempting
from .types import ASGIApp

logger = logging.getLogger("bridge")

CallSoon = Callable[..., Any]
"""``call_soon(fn, *args)``: run ``fn(*args)`` on the loop; safe from any thread."""

SHUTDOWN_GRACE = 5.0
"""Seconds the tasks still running after lifespan shutdown get to end once cancelled."""

_last: tuple[asyncio.AbstractEventLoop | None, CallSoon | None] = (None, None)


def current_loop() -> tuple[CallSoon, asyncio.AbstractEventLoop | None]:
    """The running loop's thread-safe ``call_soon``, and the loop when it is asyncio's.

    One call per request: on Python 3.11 each ``asyncio.get_running_loop()`` costs a
    ``getpid`` system call. The last asyncio loop's bound ``call_soon_threadsafe`` is
    reused, so a request in flight holds one object fewer for the cyclic GC.
    """
    global _last
    try:
        loop = asyncio.get_running_loop()  # the fast, common case
    except RuntimeError:
        pass
    else:
        last_loop, call_soon = _last
        if last_loop is not loop or call_soon is None:
            call_soon = loop.call_soon_threadsafe
            _last = (loop, call_soon)
        return call_soon, loop
    native = current_token().native_token
    if isinstance(native, asyncio.AbstractEventLoop):
        return native.call_soon_threadsafe, native
    run_sync_soon: CallSoon = native.run_sync_soon  # type: ignore[attr-defined]  # trio's token
    return run_sync_soon, None


def post(call_soon: CallSoon, fn: Callable[..., object], *args: object) -> bool:
    """Post ``fn(*args)`` to a loop; False when the loop has already closed."""
    try:
        call_soon(fn, *args)
    except RuntimeError:
        # The loop is gone (interpreter or server shutting down): nobody is waiting.
        return False
    return True


try:
    from sniffio import current_async_library_cvar as _sniffio_library
except ImportError:  # pragma: no cover - anyio runs without sniffio too
    _sniffio_library = None  # type: ignore[assignment]


def _name_the_loop(library: str | None) -> None:
    """In the current context, name the running event loop as anyio reads it (sniffio)."""
    if _sniffio_library is not None and _sniffio_library.get() != library:
        _sniffio_library.set(library)


def uvloop_installed() -> bool:
    return importlib.util.find_spec("uvloop") is not None


class Job(Protocol):
    """Work for a :class:`LoopThread`: one request's app call."""

    task: asyncio.Task[None] | None
    """The job's task, set when the loop started it on asyncio (None elsewhere)."""

    def run(self) -> Coroutine[Any, Any, None]:
        """The coroutine to run as the job's task."""
        ...


class LoopThread:
    """An event loop in a daemon thread: the app's lifespan, then one task per job.

    The app's lifespan (in ``mode``) runs its startup before :meth:`start` returns;
    :meth:`stop` runs its shutdown, then cancels the jobs still running.
    """

    def __init__(
        self,
        app: ASGIApp,
        mode: LifespanMode,
        *,
        backend: str,
        backend_options: dict[str, Any] | None,
        lifespan_timeout: float,
    ) -> None:
        self._app = app
        self._mode = mode
        self.lifespan: Lifespan
        """The app's lifespan, made on the loop (its events belong to the loop's backend)."""
        self.pid = os.getpid()
        self._backend = backend
        self._backend_options = backend_options
        self._lifespan_timeout = lifespan_timeout
        self._ready = threading.Event()
        self._finished = threading.Event()
        self._startup_error: BaseException | None = None
        self.call_soon: CallSoon
        self._library: str | None = None  # the event loop's name, as sniffio says it
        self.cancelled: type[BaseException]
        """The backend's cancellation exception."""
        self._stop: anyio.Event
        self._pending: collections.deque[tuple[Job, contextvars.Context]] = collections.deque()
        self._spawn_wanted: anyio.Event
        # asyncio only: the loop, and the tasks started on it directly.
        self.asyncio_loop: asyncio.AbstractEventLoop | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        """The jobs' asyncio tasks, held: the loop keeps only weak references, and a job
        whose WSGI thread has left may be referenced by nothing else. A job discards its
        own when it ends (cheaper than a done callback, which costs the loop one more
        iteration per request)."""
        self.stopping = False
        """True once :meth:`stop` began: a cancelled job was not cancelled by its app."""
        self.handoff_yields = HANDOFF_YIELDS if batch_scheduling() else 0
        """How often a thread that handed this loop a job offers it its core before it
        sleeps (:data:`bridge._threads.HANDOFF_YIELDS`, with the opt-in)."""
        self._thread = threading.Thread(target=self._run, name="bridge-asgi-loop", daemon=True)

    def start(self, timeout: float) -> None:
        """Start the thread and wait until lifespan startup is over.

        :raises RuntimeError: when the loop does not start within ``timeout`` s.
        """
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError(f"The ASGI event loop did not start within {timeout} s.")
        if self._startup_error is not None:
            raise RuntimeError("The ASGI event loop failed to start.") from self._startup_error

    def spawn(self, job: Job) -> None:
        """Run ``job`` as a task on the loop; safe from any thread.

        The task runs in a copy of the calling thread's context, as code called by a WSGI
        server does natively (what a WSGI middleware set, an OpenTelemetry span or a
        Flask app context, reaches the app), save for the variable that names the event
        loop running (sniffio's): the caller may run under another loop.
        """
        if self.asyncio_loop is not None:
            # asyncio can start a task from a callback (which runs in a copy of the
            # caller's context): no spawner hop, no task group. The copy is named here,
            # in the caller's thread, when it names another loop: the loop's thread has
            # the app's work to do, and sniffio finds asyncio by itself where none is named.
            library = None if _sniffio_library is None else _sniffio_library.get()
            try:
                if library is None or library == self._library:
                    self.call_soon(self._create_task, job)
                else:
                    context = contextvars.copy_context()
                    context.run(_name_the_loop, self._library)
                    self.call_soon(self._create_task, job, context=context)
            except RuntimeError:
                pass  # the loop has closed (post(), inlined): the process is shutting down
            return
        self._pending.append((job, contextvars.copy_context()))
        post(self.call_soon, self._wake_spawner)

    def has_stopped(self) -> bool:
        """Whether the loop's thread has ended (or never started)."""
        return self._finished.is_set()

    def stop(self, timeout: float) -> None:
        """Run lifespan shutdown, then stop the loop; waits at most ``timeout`` s."""
        if not self._thread.is_alive():
            return
        post(self.call_soon, self._stop.set)
        if threading.current_thread() is not self._thread:  # an exit hook run on the loop
            self._finished.wait(timeout)

    def _create_task(self, job: Job) -> None:
        task = job.task = self.asyncio_loop.create_task(job.run())  # type: ignore[union-attr]
        self.tasks.add(task)

    def _wake_spawner(self) -> None:
        self._spawn_wanted.set()

    async def _spawner(self, task_group: anyio.abc.TaskGroup) -> None:
        # Other backends start tasks only from a task, not from a thread-safe callback.
        pending = self._pending
        while True:
            await self._spawn_wanted.wait()
            self._spawn_wanted = anyio.Event()
            while pending:
                job, context = pending.popleft()
                context.run(self._start_soon, task_group, job)

    def _start_soon(self, task_group: anyio.abc.TaskGroup, job: Job) -> None:
        _name_the_loop(self._library)
        task_group.start_soon(job.run)  # in a copy of the current context: the caller's

    def _run(self) -> None:
        wake_without_preempting()
        try:
            anyio.run(self._main, backend=self._backend, backend_options=self._backend_options)
        except BaseException as exc:
            self._startup_error = exc
            logger.exception("The ASGI event loop thread stopped with an error.")
        finally:
            self._ready.set()
            self._finished.set()

    async def _main(self) -> None:
        self.call_soon = current_loop()[0]
        self._library = None if _sniffio_library is None else _sniffio_library.get()
        self.cancelled = anyio.get_cancelled_exc_class()
        native = current_token().native_token
        if isinstance(native, asyncio.AbstractEventLoop):
            self.asyncio_loop = native
        self._stop = anyio.Event()
        self._spawn_wanted = anyio.Event()
        self.lifespan = Lifespan(self._app, self._mode)
        async with anyio.create_task_group() as task_group:
            if self.asyncio_loop is None:
                task_group.start_soon(self._spawner, task_group)
            await self.lifespan.start(task_group, self._lifespan_timeout)
            self._ready.set()
            await self._stop.wait()
            self.stopping = True
            await self.lifespan.stop(self._lifespan_timeout)
            if self.tasks:
                for task in self.tasks:
                    task.cancel()
                await asyncio.wait(list(self.tasks), timeout=SHUTDOWN_GRACE)
            task_group.cancel_scope.cancel()


class ProcessLoop:
    """One :class:`LoopThread` per process, started by the first :meth:`get`.

    After ``fork()`` the child forgets its parent's loop and starts its own; at
    interpreter exit every loop is stopped, which runs lifespan shutdown.
    """

    def __init__(self, make: Callable[[], LoopThread], start_timeout: float) -> None:
        self._make = make
        self._start_timeout = start_timeout
        self._loop: LoopThread | None = None
        self._lock = threading.Lock()
        _owners.add(self)

    def get(self) -> LoopThread:
        """This process's loop thread, started (lifespan startup done) on first use.

        :raises RuntimeError: when the loop cannot start, or the server runs Python
            without threads.
        """
        loop = self._loop
        if loop is not None and loop.pid == (os.getpid() if _process.exact else _process.pid):
            return loop
        with self._lock:
            # A fork that bypassed Python's hooks (an embedding server's, in C) leaves
            # the cached pid stale: the kernel's is the one to trust here.
            pid = _process.pid = os.getpid()
            loop = self._loop
            if loop is None or loop.pid != pid:
                _hosts.require_threads()
                loop = self._make()
                loop.start(self._start_timeout)
                self._loop = loop
                _hosts.watch_exit(_close_all_at_exit)
        return loop

    def close(self, timeout: float) -> None:
        """Stop this process's loop thread, if it runs; the next :meth:`get` starts anew."""
        with self._lock:
            loop, self._loop = self._loop, None
        if loop is not None and loop.pid == os.getpid():
            loop.stop(timeout)

    def _forget_after_fork(self) -> None:
        self._loop = None
        self._lock = threading.Lock()


class _process:
    # os.getpid() is a system call; the fork hook below keeps this one current,
    # except where the server forks its workers behind Python's back (uWSGI): there
    # every check asks the kernel.
    pid = os.getpid()
    exact = _hosts.forks_unseen()


_owners: weakref.WeakSet[ProcessLoop] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    _process.pid = os.getpid()
    for owner in list(_owners):
        owner._forget_after_fork()


def _close_all_at_exit() -> None:
    for owner in list(_owners):
        owner.close(owner._start_timeout)


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_close_all_at_exit)
