"""Soak test: many mixed requests through each adapter under a real server, watching
the server's memory and threads.

Run it from the project root::

    python -m benchmarks.soak                       # 200,000 requests through each adapter
    python -m benchmarks.soak --requests 10000 --adapter wsgi-to-asgi

* ``wsgi-to-asgi``: :data:`wsgi_app` through ``bridge.WSGIToASGI`` under uvicorn.
* ``asgi-to-wsgi``: :data:`asgi_app` through ``bridge.ASGIToWSGI`` under gunicorn
  (one ``gthread`` worker, 4 threads).

The traffic is a fixed mix, by request number: per 20 requests, 14 small GETs, 3
uploads (1 B to 64 KiB, one in three sent chunked), 2 streamed downloads (16 chunks
of 1 KiB) and 1 deliberate disconnect (the client resets the connection after the
first chunk of a long stream). :data:`CLIENTS` client threads keep their
connections alive. Every response is checked (status, length, checksum); anything
else is a failure, as is a stream the server still runs once the load is over.

The server's worker process is sampled from ``/proc/PID/status`` (``VmRSS``,
``Threads``) after warm-up and then every ``requests / 20`` requests. The slopes
are least-squares fits over the second half of the samples, once start-up growth
(allocator arenas, caches, the thread pool) is over. The run fails (exit status 1)
when a request failed, or when a slope is over its threshold:

* memory: :data:`RSS_SLOPE_KIB` KiB per 10,000 requests, that is about 26 bytes a
  request, less than the smallest object a leak could hold on to per request (an
  empty dict is 64 bytes). A short run's second half is too short for that
  resolution, so the threshold is never below :data:`RSS_NOISE_KIB` of growth over
  the second half: what the allocator's arenas move by on their own;
* threads: :data:`THREAD_NOISE` threads of growth over the second half.
  ``WSGIToASGI``'s pool holds a thread for each request in flight and lets idle
  ones go after 10 s, so the count at a sample moves with how many of the
  :data:`CLIENTS` requests (and disconnected streams) overlapped just before it;
  a leaked thread per N requests grows with every sample instead.

The memory threshold is about leaks that grow without bound. What the allocator
keeps after a burst of large bodies (uploads of up to 64 KiB from several
threads) grows the RSS early in a run and then stops; that is why only the
second half is fitted.

Servers listen on 127.0.0.1 only and are stopped by their own PID. Every loop is
bounded in count and in time.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bridge.types import Environ, Receive, Scope, Send, StartResponse

PROJECT_ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
CLIENTS = 8
"""Client threads, each with its own kept-alive connection."""
SAMPLES = 20
"""Samples per adapter after the warm-up one: every ``requests / SAMPLES`` requests."""
WARMUP = 500
"""Requests before the first sample, so start-up allocations are not counted."""
SOCKET_TIMEOUT = 10.0
STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
SETTLE_TIMEOUT = 10.0
"""Seconds for the server's streams to end once the load is over."""
RSS_SLOPE_KIB = 256.0
"""Threshold on the memory slope, KiB per 10,000 requests (see the module docstring)."""
RSS_NOISE_KIB = 2048.0
"""RSS growth over the second half that is allocator noise, not a leak."""
THREAD_NOISE = 4.0
"""Thread-count growth over the second half that is pool movement, not a leak."""
STREAM_CHUNKS = 16
STREAM_CHUNK = b"s" * 1024
LONG_STREAM_CHUNKS = 30_000
"""The stream the disconnecting client leaves: at 1 ms a chunk it would run for 30 s,
longer than :data:`SETTLE_TIMEOUT`, so one the server failed to stop is counted."""
SMALL = b"hello, soak\n"
MIX = "GGGGUGGSGGGUGGGSGUGD"
"""Per 20 requests: G small GET, U upload, S stream, D deliberate disconnect."""


# The apps the servers run.

_active_lock = threading.Lock()
_active = 0


def _enter() -> None:
    global _active
    with _active_lock:
        _active += 1


def _leave() -> None:
    global _active
    with _active_lock:
        _active -= 1


def _stats() -> bytes:
    return json.dumps({"pid": os.getpid(), "active": _active}).encode("ascii")


def _query_int(query: str, name: str, default: int) -> int:
    for part in query.split("&"):
        key, _, value = part.partition("=")
        if key == name and value.isdigit():
            return int(value)
    return default


def _digest(data: bytes) -> bytes:
    return b"%d %d" % (len(data), zlib.crc32(data))


class _Stream:
    """A WSGI response body of ``count`` chunks, ``delay`` seconds apart; counts as active."""

    def __init__(self, count: int, delay: float) -> None:
        self._count = count
        self._delay = delay
        self._sent = 0
        _enter()

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        if self._sent >= self._count:
            raise StopIteration
        if self._sent and self._delay:
            time.sleep(self._delay)
        self._sent += 1
        return STREAM_CHUNK

    def close(self) -> None:
        _leave()


def wsgi_app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """The WSGI side of the soak: ``/small``, ``/upload``, ``/stream``, ``/stats``, ``/pid``."""
    path = environ["PATH_INFO"]
    query = environ.get("QUERY_STRING", "")
    if path == "/upload":
        body = _digest(environ["wsgi.input"].read())
    elif path == "/stream":
        count = _query_int(query, "n", STREAM_CHUNKS)
        delay = _query_int(query, "delay_ms", 0) / 1000
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return _Stream(count, delay)
    elif path == "/stats":
        body = _stats()
    elif path == "/pid":
        body = str(os.getpid()).encode("ascii")
    else:
        body = SMALL
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


async def asgi_app(scope: Scope, receive: Receive, send: Send) -> None:
    """The ASGI side of the soak: the same routes as :func:`wsgi_app`."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            kind = message["type"].rpartition(".")[2]
            await send({"type": f"{message['type']}.complete"})
            if kind == "shutdown":
                return
    path = scope["path"]
    query = scope["query_string"].decode("latin-1")
    if path == "/stream":
        import anyio

        count = _query_int(query, "n", STREAM_CHUNKS)
        delay = _query_int(query, "delay_ms", 0) / 1000
        _enter()
        try:
            start = {"type": "http.response.start", "status": 200, "headers": []}
            await send(start)
            for index in range(count):
                if index and delay:
                    await anyio.sleep(delay)
                await send({"type": "http.response.body", "body": STREAM_CHUNK, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        except OSError:
            pass  # bridge.ClientDisconnected: the client went away
        finally:
            _leave()
        return
    if path == "/upload":
        chunks: list[bytes] = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = _digest(b"".join(chunks))
    elif path == "/stats":
        body = _stats()
    elif path == "/pid":
        body = str(os.getpid()).encode("ascii")
    else:
        body = SMALL
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _build(name: str) -> Any:
    from bridge import ASGIToWSGI, WSGIToASGI

    if name == "w2a_app":
        return WSGIToASGI(wsgi_app)
    return ASGIToWSGI(asgi_app)


def __getattr__(name: str) -> Any:
    # Built on first access, so the soak client never starts an adapter itself.
    if name in ("w2a_app", "a2w_app"):
        app = _build(name)
        globals()[name] = app
        return app
    raise AttributeError(name)


# Servers.


@dataclass
class Adapter:
    name: str
    server: str
    app: str
    args: Sequence[str]


ADAPTERS = {
    "wsgi-to-asgi": Adapter(
        "wsgi-to-asgi",
        "uvicorn",
        "benchmarks.soak:w2a_app",
        ["--no-access-log", "--log-level", "warning", "--timeout-graceful-shutdown", "5"],
    ),
    "asgi-to-wsgi": Adapter(
        "asgi-to-wsgi",
        "gunicorn",
        "benchmarks.soak:a2w_app",
        [
            "--workers",
            "1",
            "--worker-class",
            "gthread",
            "--threads",
            "4",
            "--graceful-timeout",
            "5",
            "--log-level",
            "warning",
            "--no-control-socket",
        ],
    ),
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _command(adapter: Adapter, port: int) -> list[str]:
    if adapter.server == "uvicorn":
        bind = ["--host", HOST, "--port", str(port)]
    else:
        bind = ["--bind", f"{HOST}:{port}"]
    return [sys.executable, "-m", adapter.server, adapter.app, *bind, *adapter.args]


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server by its PID, wait, then SIGKILL that PID."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT)
            return
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
    process.wait(timeout=STOP_TIMEOUT)


@contextlib.contextmanager
def running(adapter: Adapter, log_path: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """The server on a free port of 127.0.0.1 until the block exits; yields (port, process)."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "PYTHONUNBUFFERED": "1"}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            _command(adapter, port),
            cwd=PROJECT_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{adapter.server} exited at start; see {log_path}")
            try:
                _get(port, "/pid")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{adapter.server} did not start; see {log_path}") from None
                time.sleep(0.05)
        yield port, process
    finally:
        _stop(process)


def _get(port: int, path: str) -> bytes:
    connection = http.client.HTTPConnection(HOST, port, timeout=SOCKET_TIMEOUT)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise OSError(f"GET {path} answered {response.status}")
        return body
    finally:
        connection.close()


def proc_status(pid: int) -> tuple[int, int]:
    """``(VmRSS in KiB, Threads)`` of ``pid`` from ``/proc/PID/status``."""
    rss = threads = -1
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
        elif line.startswith("Threads:"):
            threads = int(line.split()[1])
    return rss, threads


def parent_pid(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rpartition(")")[2].split()[1])


# The load.


@dataclass
class Outcome:
    requests: int = 0
    failures: int = 0
    disconnects: int = 0
    errors: list[str] = field(default_factory=list)

    def fail(self, what: str) -> None:
        self.failures += 1
        if len(self.errors) < 10:
            self.errors.append(what)


def _upload_body(index: int) -> bytes:
    """1 B to 64 KiB, different for every request."""
    size = 1 + (index * 7919) % 65536
    pattern = bytes((index + offset) % 251 for offset in range(min(size, 251)))
    return (pattern * (size // len(pattern) + 1))[:size]


class Client:
    """One client thread's kept-alive connection."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.connection: http.client.HTTPConnection | None = None

    def _conn(self) -> http.client.HTTPConnection:
        if self.connection is None:
            self.connection = http.client.HTTPConnection(HOST, self.port, timeout=SOCKET_TIMEOUT)
        return self.connection

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None

    def exchange(
        self, method: str, path: str, body: bytes | Iterable[bytes] | None = None, **kw: Any
    ) -> tuple[int, bytes]:
        connection = self._conn()
        try:
            connection.request(method, path, body=body, **kw)
            response = connection.getresponse()
            data = response.read()
            if response.will_close:
                self.close()
            return response.status, data
        except BaseException:
            self.close()
            raise

    def one(self, index: int, outcome: Outcome) -> None:
        kind = MIX[index % len(MIX)]
        try:
            if kind == "G":
                status, data = self.exchange("GET", "/small")
                expected = SMALL
            elif kind == "U":
                payload = _upload_body(index)
                expected = _digest(payload)
                if index % 3 == 0:
                    pieces = [payload[i : i + 8192] for i in range(0, len(payload), 8192)]
                    status, data = self.exchange(
                        "POST",
                        "/upload",
                        pieces,
                        encode_chunked=True,
                        headers={"Transfer-Encoding": "chunked"},
                    )
                else:
                    status, data = self.exchange("POST", "/upload", payload)
            elif kind == "S":
                status, data = self.exchange("GET", f"/stream?n={STREAM_CHUNKS}")
                expected = STREAM_CHUNK * STREAM_CHUNKS
            else:
                _disconnect(self.port)
                outcome.disconnects += 1
                return
        except (OSError, http.client.HTTPException) as exc:
            outcome.fail(f"request {index} ({kind}): {exc!r}")
            return
        if status != 200 or data != expected:
            outcome.fail(f"request {index} ({kind}): {status}, {len(data)} bytes")


def _disconnect(port: int) -> None:
    """Start a long stream, read its first chunk, and reset the connection."""
    with socket.create_connection((HOST, port), timeout=SOCKET_TIMEOUT) as sock:
        path = f"/stream?n={LONG_STREAM_CHUNKS}&delay_ms=1"
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode("ascii"))
        received = b""
        while len(received) < 1024 + 200:  # the head and the first chunk
            data = sock.recv(65536)
            if not data:
                raise OSError("the stream ended before its first chunk")
            received += data
        if not received.startswith(b"HTTP/1.1 200"):
            raise OSError(f"the stream answered {received[:40]!r}")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def _run_batch(port: int, start: int, stop: int, outcome: Outcome, deadline: float) -> None:
    """Requests ``start`` to ``stop - 1`` over :data:`CLIENTS` kept-alive connections."""
    lock = threading.Lock()
    numbers = iter(range(start, stop))

    def work() -> None:
        client = Client(port)
        try:
            while time.monotonic() < deadline:
                with lock:
                    index = next(numbers, None)
                if index is None:
                    return
                client.one(index, outcome)
                with lock:
                    outcome.requests += 1
        finally:
            client.close()

    threads = [threading.Thread(target=work, daemon=True) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()) + SOCKET_TIMEOUT)


# Samples and slopes.


@dataclass
class Sample:
    requests: int
    seconds: float
    rss_kib: int
    threads: int


def slope_per_10k(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of ``y`` over ``x``, scaled to 10,000 units of ``x``."""
    count = len(points)
    if count < 2:
        return 0.0
    mean_x = sum(x for x, _ in points) / count
    mean_y = sum(y for _, y in points) / count
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    if spread == 0:
        return 0.0
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / spread
    return slope * 10_000


@dataclass
class Report:
    adapter: str
    requests: int
    samples: list[Sample]
    outcome: Outcome
    leftover_streams: int
    seconds: float

    @property
    def second_half(self) -> list[Sample]:
        return self.samples[len(self.samples) // 2 :]

    @property
    def span_10k(self) -> float:
        half = self.second_half
        return max(1.0, half[-1].requests - half[0].requests) / 10_000

    @property
    def rss_slope(self) -> float:
        return slope_per_10k([(s.requests, s.rss_kib) for s in self.second_half])

    @property
    def thread_slope(self) -> float:
        return slope_per_10k([(s.requests, s.threads) for s in self.second_half])

    @property
    def rss_threshold(self) -> float:
        return max(RSS_SLOPE_KIB, RSS_NOISE_KIB / self.span_10k)

    @property
    def thread_threshold(self) -> float:
        return THREAD_NOISE / self.span_10k

    @property
    def failures(self) -> int:
        return self.outcome.failures + self.leftover_streams

    @property
    def ok(self) -> bool:
        return (
            self.failures == 0
            and self.rss_slope <= self.rss_threshold
            and self.thread_slope <= self.thread_threshold
        )

    def table(self) -> str:
        lines = [
            f"## {self.adapter}: {self.outcome.requests} requests in {self.seconds:.1f} s "
            f"({self.outcome.requests / max(self.seconds, 1e-9):.0f}/s)",
            "",
            "| requests | seconds | RSS MiB | threads |",
            "|---:|---:|---:|---:|",
        ]
        for sample in self.samples:
            lines.append(
                f"| {sample.requests} | {sample.seconds:.1f} | "
                f"{sample.rss_kib / 1024:.2f} | {sample.threads} |"
            )
        lines += [
            "",
            f"RSS slope (second half): {self.rss_slope:+.1f} KiB per 10k requests "
            f"(threshold {self.rss_threshold:.0f})",
            f"Thread slope (second half): {self.thread_slope:+.2f} per 10k requests "
            f"(threshold {self.thread_threshold:.2f})",
            f"Failures: {self.failures} ({self.outcome.failures} requests, "
            f"{self.leftover_streams} streams still running); "
            f"deliberate disconnects: {self.outcome.disconnects}",
        ]
        lines += [f"  {error}" for error in self.outcome.errors]
        lines.append(f"Result: {'PASS' if self.ok else 'FAIL'}")
        return "\n".join(lines)


def soak_one(
    adapter: Adapter, requests: int, log_dir: Path, echo: Callable[[str], None] = print
) -> Report:
    """Serve ``adapter`` and drive ``requests`` requests through it, sampling the worker."""
    requests = max(requests, SAMPLES)
    step = requests // SAMPLES
    outcome = Outcome()
    samples: list[Sample] = []
    # A generous bound on the whole run: 100 requests a second at the very least.
    deadline = time.monotonic() + 60 + requests / 100
    with running(adapter, log_dir / f"soak-{adapter.name}.log") as (port, process):
        worker = int(_get(port, "/pid"))
        if worker != process.pid and parent_pid(worker) != process.pid:
            raise RuntimeError(f"pid {worker} is not a worker of server {process.pid}")
        _run_batch(port, -WARMUP, 0, Outcome(), deadline)  # warm-up, not counted
        started = time.monotonic()
        samples.append(Sample(0, 0.0, *proc_status(worker)))
        for number in range(1, SAMPLES + 1):
            end = requests if number == SAMPLES else number * step
            _run_batch(port, samples[-1].requests, end, outcome, deadline)
            samples.append(Sample(end, time.monotonic() - started, *proc_status(worker)))
            echo(
                f"  {adapter.name}: {end} requests, RSS {samples[-1].rss_kib / 1024:.1f} MiB, "
                f"{samples[-1].threads} threads"
            )
            if time.monotonic() > deadline:
                outcome.fail(f"gave up at {end} requests: the run took too long")
                break
        seconds = time.monotonic() - started
        leftover = _wait_for_streams(port)
    return Report(adapter.name, requests, samples, outcome, leftover, seconds)


def _wait_for_streams(port: int) -> int:
    """Streams the server still runs once the load is over (bounded wait): 0 when none."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        active = int(json.loads(_get(port, "/stats"))["active"])
        if active == 0 or time.monotonic() > deadline:
            return active
        time.sleep(0.05)


def run(
    requests: int, adapters: Sequence[str], log_dir: Path, echo: Callable[[str], None] = print
) -> list[Report]:
    """Soak each named adapter with ``requests`` requests; one report each."""
    return [soak_one(ADAPTERS[name], requests, log_dir, echo) for name in adapters]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__)
    parser.add_argument("--requests", type=int, default=200_000, help="per adapter")
    parser.add_argument(
        "--adapter", choices=[*ADAPTERS, "both"], default="both", help="which adapter to soak"
    )
    parser.add_argument("--log-dir", type=Path, default=None, help="where server logs go")
    options = parser.parse_args(argv)
    names = list(ADAPTERS) if options.adapter == "both" else [options.adapter]
    log_dir = options.log_dir or Path(os.environ.get("TMPDIR", "/tmp"))
    log_dir.mkdir(parents=True, exist_ok=True)
    reports = run(options.requests, names, log_dir)
    for report in reports:
        print()
        print(report.table())
    print(f"\nServer logs: {log_dir}/soak-*.log")
    return 0 if all(report.ok for report in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
