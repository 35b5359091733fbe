"""The floor under the ASGI -> WSGI figures: one hop to a loop thread and back, alone.

``HandoffFloor`` is a WSGI app that does only what the design of ``ASGIToWSGI``
cannot avoid: the WSGI thread posts to an event loop in a thread of its own, a new
task on that loop answers, and the WSGI thread waits for the answer. There is no
scope, no ASGI app, no message and no checking: the answer is built in advance. Its
loop is set up as the bridge sets up its own (uvloop when installed, ``SCHED_BATCH``
with the bridge's ``BRIDGE_BATCH_SCHEDULING`` opt-in, which the benchmarks turn on,
so a wake-up does not preempt the waker), so its figure under a WSGI server is the
best any adapter of this design could reach there (see docs/performance.md).
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import queue
import threading
from collections.abc import Callable, Iterable
from typing import Any

from bridge._threads import wake_without_preempting

_Answer = tuple[str, list[tuple[str, str]], bytes]


class HandoffFloor:
    """A WSGI app answering ``body`` through a hop to an event loop thread and back."""

    def __init__(self, body: bytes, headers: list[tuple[str, str]]) -> None:
        self._answer: _Answer = ("200 OK", headers, body)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        loop = self._loop if self._pid == os.getpid() else self._start_loop()
        assert loop is not None
        reply: queue.SimpleQueue[_Answer] = queue.SimpleQueue()
        loop.call_soon_threadsafe(self._spawn, loop, reply)
        status, headers, body = reply.get()
        start_response(status, headers)
        return [body]

    def _spawn(self, loop: asyncio.AbstractEventLoop, reply: queue.SimpleQueue[_Answer]) -> None:
        loop.create_task(self._answer_from_task(reply))

    async def _answer_from_task(self, reply: queue.SimpleQueue[_Answer]) -> None:
        reply.put(self._answer)

    def _start_loop(self) -> asyncio.AbstractEventLoop:
        # Lazily, once per process: a loop thread does not survive a fork.
        with self._lock:
            if self._pid != os.getpid():
                if importlib.util.find_spec("uvloop") is not None:
                    import uvloop

                    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
                else:
                    loop = asyncio.new_event_loop()
                started = threading.Event()
                thread = threading.Thread(
                    target=_run_forever, args=(loop, started), name="floor-loop", daemon=True
                )
                thread.start()
                started.wait(10)
                self._loop, self._pid = loop, os.getpid()
        assert self._loop is not None
        return self._loop


def _run_forever(loop: asyncio.AbstractEventLoop, started: threading.Event) -> None:
    wake_without_preempting()  # the bridge's own call, so the floor stays in step with it
    asyncio.set_event_loop(loop)
    loop.call_soon(started.set)
    loop.run_forever()
