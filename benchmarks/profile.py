"""Run one in-process case in a loop, for a profiler to look at.

``python -m benchmarks.profile CASE [--impl bridge] [--seconds 5] [--pyinstrument]``

CASE is ``w2a-hello``, ``a2w-hello``, ``w2a-stream`` or ``a2w-stream`` (the
in-process cases of :mod:`benchmarks.inprocess`). With ``--pyinstrument`` it prints
pyinstrument's profile of the loop; without, run it under a sampling profiler that
sees every thread, e.g. ``py-spy record --threads --idle -o prof.svg -- python -m
benchmarks.profile w2a-hello`` or ``py-spy top -- python -m benchmarks.profile ...``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import warnings
from typing import Any

from . import apps
from .inprocess import _asgi_calls, _close_a2w, _close_loop, _wsgi_calls

CASES = ("w2a-hello", "a2w-hello", "w2a-stream", "a2w-stream")


def _app(case: str, impl: str) -> Any:
    direction, kind = case.split("-")
    if direction == "w2a":
        inner = (
            apps.wsgi_hello
            if kind == "hello"
            else apps.make_wsgi_stream(apps.STREAM_SIZE, apps.STREAM_CHUNK)
        )
        return apps.W2A_ADAPTERS[impl](inner)
    inner = (
        apps.asgi_hello
        if kind == "hello"
        else apps.make_asgi_stream(apps.STREAM_SIZE, apps.STREAM_CHUNK)
    )
    return apps.A2W_ADAPTERS[impl](inner)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile")
    parser.add_argument("case", choices=CASES)
    parser.add_argument("--impl", default="bridge")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--pyinstrument", action="store_true")
    args = parser.parse_args()
    warnings.simplefilter("ignore", DeprecationWarning)
    app = _app(args.case, args.impl)
    batch = 200 if args.case.endswith("hello") else 5
    loop = asyncio.new_event_loop()

    def run_batch() -> int:
        if args.case.startswith("w2a"):
            loop.run_until_complete(_asgi_calls(app, batch))
        else:
            _wsgi_calls(app, batch)
        return batch

    run_batch()  # warm-up
    profiler: Any = None
    if args.pyinstrument:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0002, async_mode="disabled")
        profiler.start()
    count = 0
    start = time.perf_counter()
    deadline = start + args.seconds
    while time.perf_counter() < deadline:
        count += run_batch()
    elapsed = time.perf_counter() - start
    if profiler is not None:
        profiler.stop()
        print(profiler.output_text(unicode=True, color=False, show_all=False))
    print(f"{args.case} {args.impl}: {count} calls, {elapsed / count * 1e6:.1f} µs per call")
    _close_loop(loop)
    _close_a2w([app])


if __name__ == "__main__":
    main()
