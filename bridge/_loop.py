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


def current_loop() -> tuple[CallSoon, asyncio.AbstractEventLoop | None]:
    """The running loop's thread-safe ``call_soon``, and the loop when it is asyncio's.

    One call per request: on Python 3.11 each ``asyncio.get_running_loop()`` costs a
    ``getpid`` system call.
    """
    try:
        loop = asyncio.get_running_loop()  # the fast, common case
    except RuntimeError:
        pass
    else:
        return loop.call_soon_threadsafe, loop
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
