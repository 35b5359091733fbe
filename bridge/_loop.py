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


def current_call_soon() -> CallSoon:
    """The thread-safe ``call_soon`` of the event loop running the current task."""
    try:
        return asyncio.get_running_loop().call_soon_threadsafe  # the fast, common case
    except RuntimeError:
        pass
    native = current_token().native_token
    if isinstance(native, asyncio.AbstractEventLoop):
        return native.call_soon_threadsafe
    run_sync_soon: CallSoon = native.run_sync_soon  # type: ignore[attr-defined]  # trio's token
    return run_sync_soon


def asyncio_loop() -> asyncio.AbstractEventLoop | None:
    """The running asyncio loop, or None on another backend."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def post(call_soon: CallSoon, fn: Callable[..., object], *args: object) -> None:
    """Post ``fn(*args)`` to a loop, ignoring a loop that has already closed."""
    try:
        call_soon(fn, *args)
    except RuntimeError:
        # The loop is gone (interpreter or server shutting down): nobody is waiting.
        pass
