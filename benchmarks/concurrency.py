"""Blocking WSGI requests beside a native ASGI route, under uvicorn.

The server runs a router: ``/slow`` is a WSGI handler that blocks 100 ms
(``time.sleep``) behind the adapter with its default thread limit; everything else
is a native ASGI hello. The runner keeps 64 keep-alive connections open and, per
burst, sends ``GET /slow`` on all of them at once; the figure is the time until the
last of the 64 responses arrived. Meanwhile a probe subprocess (on the client core)
sends ``GET /fast`` back to back on its own connection; the second figure is the
99th percentile of the probe's latencies whose request started during a burst.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import time

from . import client, servers
from .report import Check, Figures, at_most_value
from .servers import CLIENT_CPU, Server, pin_prefix
from .settings import Settings

CONCURRENT = 64
BURST_LIMIT_S = 0.25
P99_LIMIT_MS = 20.0
BURST_TIMEOUT = 30.0


def run_concurrency(settings: Settings, figures: Figures) -> list[Check]:
    group = "concurrency"
    burst_case = f"{CONCURRENT} concurrent 100 ms blocking WSGI requests, uvicorn"
    probe_case = "native ASGI route p99 latency during the bursts"
    results = {impl: _measure(settings, f"concurrency_w2a_{impl}") for impl in ("bridge", "a2wsgi")}
    for impl, (bursts, latencies, count) in results.items():
        for seconds in bursts:
            figures.add(group, burst_case, impl, "s", seconds)
        figure = figures.add(group, probe_case, impl, "ms", _p99(latencies) * 1000)
        figure.note = f"{count} probe requests, median {statistics.median(latencies) * 1000:.1f} ms"
    return [
        at_most_value(
            figures,
            group,
            burst_case,
            f"{burst_case}: time for the burst (default thread limit)",
            BURST_LIMIT_S,
            reference_impl="a2wsgi",
            reference_label="a2wsgi",
        ),
        _p99_check(figures, group, probe_case),
    ]


def _p99_check(figures: Figures, group: str, case: str) -> Check:
    check = at_most_value(
        figures,
        group,
        case,
        f"{case}",
        P99_LIMIT_MS,
        reference_impl="a2wsgi",
        reference_label="a2wsgi",
    )
    # The target is strict: p99 < 20 ms.
    if check.value is not None:
        check.passed = check.value < P99_LIMIT_MS
        check.target = f"< {P99_LIMIT_MS:g} ms"
    return check


def _p99(values: list[float]) -> float:
    if not values:
        raise RuntimeError("The latency probe recorded no request during the bursts.")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def _measure(settings: Settings, app: str) -> tuple[list[float], list[float], int]:
    """(burst seconds, probe latencies during bursts, probe request count)."""
    server = Server("uvicorn", app, log_dir=settings.log_dir, uvicorn_http=settings.uvicorn_http)
    server.start()
    try:
        return _drive(server, settings.bursts)
    finally:
        server.stop()


def _drive(server: Server, bursts: int) -> tuple[list[float], list[float], int]:
    probe = subprocess.Popen(
        [
            *pin_prefix(CLIENT_CPU),
            sys.executable,
            "-m",
            "benchmarks.probe",
            str(server.port),
            "/fast",
            "--max-seconds",
            "120",
        ],
        cwd=servers.source_root,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert probe.stdout is not None
        if probe.stdout.readline().strip() != "ready":
            raise RuntimeError("The latency probe did not start.")
        windows, burst_times = asyncio.run(_bursts(server.port, bursts))
        output, _ = probe.communicate(timeout=30)
    finally:
        if probe.poll() is None:
            probe.kill()
            probe.wait(timeout=10)
    samples: list[tuple[float, float]] = json.loads(output.strip().splitlines()[-1])
    during = [
        latency for start, latency in samples if any(low <= start <= high for low, high in windows)
    ]
    return burst_times, during, len(samples)


async def _bursts(port: int, bursts: int) -> tuple[list[tuple[float, float]], list[float]]:
    connections = [await asyncio.open_connection(client.HOST, port) for _ in range(CONCURRENT)]
    request = client.get_request(port, "/slow")
    windows: list[tuple[float, float]] = []
    times: list[float] = []
    try:
        # One burst to warm up (the adapter's threads start here), then the measured ones.
        for index in range(bursts + 1):
            await asyncio.sleep(0.2)
            start = time.monotonic()
            for _, writer in connections:
                writer.write(request)
            answers = await asyncio.wait_for(
                asyncio.gather(*(client.read_async_response(r) for r, _ in connections)),
                BURST_TIMEOUT,
            )
            end = time.monotonic()
            if any(status != 200 for status, _, _ in answers):
                raise RuntimeError(f"A /slow request failed: {[a[0] for a in answers]}.")
            if index:
                windows.append((start, end))
                times.append(end - start)
    finally:
        for _, writer in connections:
            writer.close()
    return windows, times
