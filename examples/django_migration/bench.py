"""Django's own ASGI handler against ``WSGIToASGI``, for a sync view that waits on I/O.

Run from the repository root::

    python examples/django_migration/bench.py                 # 64 concurrent, 5 rounds
    python examples/django_migration/bench.py --requests 128 --rounds 3

Each app serves the legacy project under uvicorn (a subprocess on 127.0.0.1, one
worker, no access log). ``GET /slow/`` is a sync view that sleeps 50 ms, standing for
a database query or an HTTP call. Per round, ``--requests`` GETs are sent at once,
one on each of as many keep-alive connections (a lean asyncio client: it shares the
CPUs with the server). After one warm-up round, the median wall time of the rounds
is reported with requests/s, latencies, the server's CPU time per request and its
peak thread count (both from ``/proc``) and the ratio, as a markdown table.

* ``django``: ``django.core.asgi.get_asgi_application()``. Each request runs in its
  own ``ThreadSensitiveContext``, so its sync middleware and view run through
  ``sync_to_async(thread_sensitive=True)`` on a thread of its own, created for it,
  with a hop between the event loop and that thread for each of them.
* ``bridge``: ``bridge.WSGIToASGI(get_wsgi_application())``. The whole WSGI handler
  runs in one hop, on a pool of up to 64 threads (``max_threads``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
SETTINGS = "examples.django_migration.legacy.settings"
STARTUP_TIMEOUT = 20.0
REQUEST_TIMEOUT = 60.0

CANDIDATES = {
    "django": ("Django `get_asgi_application()`", "django_asgi"),
    "bridge": ("`WSGIToASGI(get_wsgi_application())`", "bridge_wsgi"),
}
"""Name to (label, factory in this module)."""


def django_asgi() -> Any:
    """uvicorn ``--factory`` target: Django's own ASGI handler."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", SETTINGS)
    from django.core.asgi import get_asgi_application

    return get_asgi_application()


def bridge_wsgi() -> Any:
    """uvicorn ``--factory`` target: Django's WSGI handler through ``WSGIToASGI``."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", SETTINGS)
    from django.core.wsgi import get_wsgi_application

    from bridge import WSGIToASGI

    return WSGIToASGI(get_wsgi_application())


@dataclass
class Result:
    name: str
    totals: list[float]
    latencies: list[float]
    cpu_seconds: float | None = None
    """The server's CPU time (user + system, all threads) over the measured rounds."""
    peak_threads: int | None = None
    """The most threads the server process had, sampled every 5 ms during the rounds."""

    @property
    def total(self) -> float:
        return statistics.median(self.totals)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def start_server(factory: str, port: int, log: Any, db: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), NOTES_DB=str(db), DJANGO_SETTINGS_MODULE=SETTINGS)
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        f"examples.django_migration.bench:{factory}",
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        "1",
        "--no-access-log",
        "--log-level",
        "warning",
        "--timeout-graceful-shutdown",
        "5",
    ]
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
    )


def cpu_seconds(pid: int) -> float | None:
    """A process's CPU time so far, from ``/proc`` (None where there is none)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_count(pid: int) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"^Threads:\s+(\d+)$", status, re.MULTILINE)
    return int(match[1]) if match else None


async def sample_threads(pid: int, result: Result) -> None:
    """Keep ``result.peak_threads`` up to date until cancelled."""
    while True:
        count = thread_count(pid)
        if count is not None:
            result.peak_threads = max(count, result.peak_threads or 0)
        await asyncio.sleep(0.005)


def stop_server(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


class Connection:
    """One keep-alive HTTP/1.1 connection: a lean client, as it shares the machine's CPUs."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(HOST, port)
        return cls(reader, writer)

    async def get(self, path: str) -> bytes:
        """GET ``path``; the body, or :class:`RuntimeError` on a status other than 200."""
        request = f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n"
        self.writer.write(request.encode("ascii"))
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in header_lines if line)
        }
        body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        if status_line.split()[1] != "200":
            raise RuntimeError(f"GET {path} answered {status_line!r}: {body[:200]!r}")
        return body

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


async def wait_ready(port: int, path: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"The server exited with {process.returncode} before answering.")
        try:
            connection = await Connection.open(port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        try:
            await connection.get(path)
            return
        finally:
            await connection.close()
    raise RuntimeError(f"The server did not answer GET {path} within {STARTUP_TIMEOUT} s.")


async def one_round(connections: list[Connection], path: str) -> tuple[float, list[float]]:
    """One GET on every connection at once: the wall time and each request's latency."""

    async def get(connection: Connection) -> float:
        started = time.perf_counter()
        await connection.get(path)
        return time.perf_counter() - started

    started = time.perf_counter()
    latencies = await asyncio.wait_for(
        asyncio.gather(*(get(connection) for connection in connections)), REQUEST_TIMEOUT
    )
    return time.perf_counter() - started, list(latencies)


async def measure(name: str, path: str, count: int, rounds: int, db: Path, log: Any) -> Result:
    port = free_port()
    process = start_server(CANDIDATES[name][1], port, log, db)
    result = Result(name, [], [])
    connections: list[Connection] = []
    try:
        await wait_ready(port, path, process)
        connections = list(await asyncio.gather(*(Connection.open(port) for _ in range(count))))
        await one_round(connections, path)  # Warm-up: threads, imports, caches.
        cpu_before = cpu_seconds(process.pid)
        sampler = asyncio.create_task(sample_threads(process.pid, result))
        try:
            for _ in range(rounds):
                total, latencies = await one_round(connections, path)
                result.totals.append(total)
                result.latencies.extend(latencies)
        finally:
            sampler.cancel()
        cpu_after = cpu_seconds(process.pid)
        if cpu_before is not None and cpu_after is not None:
            result.cpu_seconds = cpu_after - cpu_before
    finally:
        for connection in connections:
            await connection.close()
        stop_server(process)
    return result


def table(results: list[Result], count: int) -> str:
    rows = [
        "| app | concurrent requests | total time (median) | requests/s "
        "| latency p50 | latency max | server CPU per request | server threads (peak) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        latencies = sorted(result.latencies)
        cpu = "n/a"
        if result.cpu_seconds is not None:
            cpu = f"{result.cpu_seconds / len(latencies) * 1000:.1f} ms"
        rows.append(
            f"| {CANDIDATES[result.name][0]} | {count} | {result.total * 1000:.0f} ms "
            f"| {count / result.total:.0f} | {statistics.median(latencies) * 1000:.0f} ms "
            f"| {latencies[-1] * 1000:.0f} ms | {cpu} | {result.peak_threads or 'n/a'} |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=64, help="concurrent requests per round")
    parser.add_argument("--rounds", type=int, default=5, help="measured rounds per app")
    parser.add_argument("--path", default="/slow/", help="the path to GET")
    args = parser.parse_args()
    if not 1 <= args.requests <= 1024 or not 1 <= args.rounds <= 100:
        parser.error("--requests must be 1..1024 and --rounds 1..100")

    with tempfile.TemporaryDirectory(prefix="django-bench-") as tmp:
        log_path = Path(tmp) / "servers.log"
        results: list[Result] = []
        with log_path.open("wb") as log:
            for name in CANDIDATES:
                try:
                    results.append(
                        asyncio.run(
                            measure(
                                name, args.path, args.requests, args.rounds, Path(tmp) / "db", log
                            )
                        )
                    )
                except Exception:
                    print(log_path.read_text("utf-8", errors="replace")[-4000:], file=sys.stderr)
                    raise

    django, bridge = results
    print(
        f"GET {args.path} (a sync view sleeping 50 ms), {args.requests} at once, "
        f"median of {args.rounds} rounds after a warm-up; uvicorn, one worker.\n"
        f"Python {platform.python_version()}, {platform.machine()}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end.\n"
    )
    print(table(results, args.requests))
    print(
        f"\n`WSGIToASGI` served {django.total / bridge.total:.1f}x the requests/s "
        "of Django's ASGI handler."
    )


if __name__ == "__main__":
    main()
