"""Find the bridge's objects that only the cyclic garbage collector would free."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def bridge_cycles() -> Iterator[list[str]]:
    """Collect the names of the bridge's types left in reference cycles by the block.

    The collector is off inside the block, so what it finds afterwards was freed by
    nobody else; objects of other libraries (the test's own, the event loop's) are
    ignored, so unrelated cycles cannot fail a test.
    """
    found: list[str] = []
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        yield found
        gc.collect()
        found.extend(
            sorted(
                {
                    type(item).__qualname__
                    for item in gc.garbage
                    if type(item).__module__.startswith("bridge")
                }
            )
        )
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        if enabled:
            gc.enable()
