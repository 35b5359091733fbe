"""The in-process cases of :mod:`benchmarks.compare`: the adapters called directly.

* ``inprocess-w2a-hello``: an asyncio loop awaits ``WSGIToASGI(wsgi_hello)`` back to
  back, as an ASGI server would (:func:`benchmarks.inprocess._asgi_calls`);
* ``inprocess-a2w-hello``: this thread calls ``ASGIToWSGI(asgi_hello)``, iterates and
  closes the result, as a WSGI server's worker does
  (:func:`benchmarks.inprocess._wsgi_calls`).

Both versions live in this one process, each with its own threads. Each cycle runs
each version for ``seconds`` in turn, the order rotating, pinned to the client core
where the machine allows, as the full runner's in-process rows are.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import os
import time
from collections.abc import Callable
from typing import Any

from . import apps
from .inprocess import _asgi_calls, _wsgi_calls
from .servers import CLIENT_CPU, pinning_available

CASES = ("inprocess-w2a-hello", "inprocess-a2w-hello")
_BATCH = 200  # calls between two looks at the clock


def measure(
    case: str, packages: dict[str, str], cycles: int, seconds: float
) -> dict[str, list[float]]:
    """Calls per second of each variant (``{variant: package}``), one figure per cycle."""
    if pinning_available():
        os.sched_setaffinity(0, {CLIENT_CPU})
    # As the servers of the other cases run (BRIDGE_BATCH_SCHEDULING=0 measures the default).
    os.environ.setdefault("BRIDGE_BATCH_SCHEDULING", "1")
    run, close = _runner(case)
    built = {variant: _wrap(case, package) for variant, package in packages.items()}
    for app in built.values():
        run(app, 1000)  # warm-up: threads, loops, caches
    samples: dict[str, list[float]] = {variant: [] for variant in built}
    names = list(built)
    try:
        for cycle in range(cycles):
            shift = cycle % len(names)
            for variant in names[shift:] + names[:shift]:
                gc.collect()
                app = built[variant]
                count = 0
                start = time.perf_counter()
                deadline = start + seconds
                while True:
                    run(app, _BATCH)
                    count += _BATCH
                    now = time.perf_counter()
                    if now >= deadline:
                        break
                samples[variant].append(count / (now - start))
    finally:
        close(built.values())
    return samples


def _wrap(case: str, package: str) -> Any:
    module = importlib.import_module(package)
    if case == "inprocess-w2a-hello":
        return module.WSGIToASGI(apps.wsgi_hello)
    return module.ASGIToWSGI(apps.asgi_hello)


def _runner(case: str) -> tuple[Callable[[Any, int], object], Callable[[Any], None]]:
    if case == "inprocess-w2a-hello":
        loop = asyncio.new_event_loop()

        def run_w2a(app: Any, count: int) -> object:
            return loop.run_until_complete(_asgi_calls(app, count))

        def close_loop(_apps: Any) -> None:
            loop.close()

        return run_w2a, close_loop

    def run_a2w(app: Any, count: int) -> object:
        return _wsgi_calls(app, count)

    def close_adapters(adapters: Any) -> None:
        for adapter in adapters:
            adapter.close()

    return run_a2w, close_adapters
