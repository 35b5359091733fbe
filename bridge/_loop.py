"""Waking an event loop from another thread, on whichever backend is running.

anyio's ``from_thread`` calls block the calling thread until the loop has run the
function; the adapters only need to *post* a callback (set an event, release a
limiter token) and carry on, which each backend offers natively and cheaply.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from anyio.lowlevel import current_token

CallSoon = Callable[..., Any]
"""``call_soon(fn, *args)``: run ``fn(*args)`` on the loop; safe from any thread."""


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


def post(call_soon: CallSoon, fn: Callable[..., object], *args: object) -> None:
    """Post ``fn(*args)`` to a loop, ignoring a loop that has already closed."""
    try:
        call_soon(fn, *args)
    except RuntimeError:
        # The loop is gone (interpreter or server shutting down): nobody is waiting.
        pass
