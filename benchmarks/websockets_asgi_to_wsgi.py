"""An ASGI app's WebSockets through ``ASGIToWSGI`` under gunicorn gthread, against
the same FastAPI app served natively by uvicorn, side by side in one run.

``python -m benchmarks.websockets_asgi_to_wsgi [--quick] [--rounds N] [--duration S]``

Both servers run at once, pinned to the server core, one worker each (gthread with
enough threads for every socket); the client runs here, on the client core. Each
round measures every case on each server in turn, and the targets are checked on the
ratio of the medians:

* **echo round trips per second**, 1 socket and 16 sockets: each socket sends a
  5-byte text message and waits for its echo, back to back, for ``duration`` s.
  Target: the bridge reaches ≥ 0.5 of native uvicorn.
* **1 MiB binary messages**: one socket sends a 1 MiB message and waits for its
  echo, back to back; the figure is MiB/s of messages echoed. Target: ≥ 0.8.
* **threads**: the gunicorn worker's threads with 16 sockets open, minus its threads
  with none (after a warm-up). Target: no more than one per open socket.

The client is raw asyncio with frames built once (masked with a fixed random key),
so that it costs far less than either server per message.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, WebSocket
from fastapi.responses import PlainTextResponse

from .report import (
    Check,
    Figures,
    at_least_ratio,
    at_most_value,
    checks_table,
    cpu_case,
    cpu_info,
    figures_table,
)
from .servers import CLIENT_CPU, HOST, Server, cpu_seconds, pinning_available, running

GROUP = "websockets"
_MODULE = "benchmarks.websockets_asgi_to_wsgi"
"""The servers import the apps from here (``__name__`` is ``__main__`` under ``-m``)."""
SMALL = b"hello"
BIG = 1024 * 1024
SOCKETS = 16
THREADS = SOCKETS + 4
"""gthread threads: one per socket, and some to spare for the readiness probe."""
PATH = "/echo"
_MASK = os.urandom(4)
_CASES = (
    ("echo round trips, 1 socket", "rt/s"),
    (f"echo round trips, {SOCKETS} sockets", "rt/s"),
    ("1 MiB binary messages, 1 socket", "MiB/s"),
)


# The app, built when a server imports it.


def _echo_app() -> Any:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/", response_class=PlainTextResponse)
    async def index() -> str:
        return "ok"

    @app.websocket(PATH)
    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") is not None:
                await websocket.send_text(message["text"])
            else:
                await websocket.send_bytes(message["bytes"])

    return app


def _bridged() -> Any:
    from bridge import ASGIToWSGI

    return ASGIToWSGI(_echo_app())


_FACTORIES: dict[str, Callable[[], Any]] = {"ws_echo_asgi": _echo_app, "ws_echo_bridge": _bridged}


def __getattr__(name: str) -> Any:
    factory = _FACTORIES.get(name)
    if factory is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    app = globals()[name] = factory()
    return app


# The client.


def client_frame(opcode: int, payload: bytes) -> bytes:
    """A masked, unfragmented frame, as a client sends it."""
    length = len(payload)
    if length < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    key = (_MASK * (length // 4 + 1))[:length]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(length, "big")
    return head + _MASK + masked


def server_frame_size(length: int) -> int:
    """The bytes of an unmasked frame carrying ``length`` payload bytes."""
    return length + (2 if length < 126 else 4 if length < 65536 else 10)


async def _open(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(HOST, port, limit=4 * BIG)
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    writer.write(
        f"GET {PATH} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode("ascii")
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(f"The handshake failed: {head!r}")
    return reader, writer


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.write(client_frame(0x8, struct.pack("!H", 1000)))
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), 5)
    except (OSError, asyncio.TimeoutError):
        pass


async def _echoes(port: int, sockets: int, payload: bytes, opcode: int, seconds: float) -> int:
    """Echo round trips completed by ``sockets`` sockets in ``seconds``."""
    frame = client_frame(opcode, payload)
    answer = server_frame_size(len(payload))
    connections = [await _open(port) for _ in range(sockets)]
    deadline = time.monotonic() + seconds
    counts = [0] * sockets

    async def loop(index: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while time.monotonic() < deadline:
            writer.write(frame)
            await reader.readexactly(answer)
            counts[index] += 1

    started = time.monotonic()
    await asyncio.wait_for(
        asyncio.gather(*(loop(i, r, w) for i, (r, w) in enumerate(connections))),
        seconds + 30,
    )
    elapsed = time.monotonic() - started
    for _, writer in connections:
        await _close(writer)
    return round(sum(counts) * seconds / elapsed)


def measure(port: int, case: str, seconds: float) -> int:
    """Round trips of ``case`` against the server on ``port`` in ``seconds``."""
    if case.startswith("echo"):
        sockets = 1 if case.endswith("1 socket") else SOCKETS
        return asyncio.run(_echoes(port, sockets, SMALL, 0x1, seconds))
    return asyncio.run(_echoes(port, 1, os.urandom(BIG), 0x2, seconds))  # 1 MiB each


def threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


async def _hold(port: int, sockets: int, pid: int) -> int:
    """The worker's threads while ``sockets`` sockets are open (each echoed once)."""
    connections = [await _open(port) for _ in range(sockets)]
    for reader, writer in connections:
        writer.write(client_frame(0x1, SMALL))
        await reader.readexactly(server_frame_size(len(SMALL)))
    count = threads(pid)
    for _, writer in connections:
        await _close(writer)
    return count


def run(rounds: int, seconds: float, log_dir: Path) -> tuple[Figures, list[Check]]:
    figures = Figures()
    native = Server("uvicorn", "ws_echo_asgi", log_dir=log_dir, module=_MODULE, uvicorn_http="auto")
    bridged = Server(
        "gunicorn-gthread", "ws_echo_bridge", log_dir=log_dir, module=_MODULE, threads=THREADS
    )
    impls = (("native uvicorn", native), ("bridge", bridged))
    with running([native, bridged]):
        # Threads before any WebSocket (the readiness probe has started the loop thread
        # and a worker thread), then with 16 open: gthread starts its threads on demand.
        pid = bridged.worker_pid()
        assert pid is not None
        idle = threads(pid)
        held = asyncio.run(_hold(bridged.port, SOCKETS, pid))
        figures.add(GROUP, "extra threads, 16 sockets open", "bridge", "threads", held - idle)
        for _, server in impls:  # warm-up: loops, threads, imports
            for case, _ in _CASES:
                measure(server.port, case, 0.3)
        workers = {impl: server.worker_pid() for impl, server in impls}
        for _round in range(rounds):
            for case, unit in _CASES:
                for impl, server in impls:
                    worker = workers[impl]
                    assert worker is not None
                    cpu = cpu_seconds(worker)
                    count = measure(server.port, case, seconds)
                    cpu = cpu_seconds(worker) - cpu
                    figures.add(GROUP, case, impl, unit, count / seconds)
                    figures.add(GROUP, cpu_case(case), impl, "s", cpu / count)
    checks = [
        at_least_ratio(
            figures,
            GROUP,
            case,
            f"{case}, vs native uvicorn",
            "native uvicorn",
            target,
            baseline_label="native uvicorn",
        )
        for (case, _), target in zip(_CASES, (0.5, 0.5, 0.8), strict=True)
    ]
    for case, _ in _CASES:
        checks += cpu_info(figures, GROUP, cpu_case(case), "native uvicorn")
    checks.append(
        at_most_value(
            figures,
            GROUP,
            "extra threads, 16 sockets open",
            "gunicorn worker threads added by 16 open sockets",
            SOCKETS,
        )
    )
    return figures, checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.websockets_asgi_to_wsgi")
    parser.add_argument("--quick", action="store_true", help="2 rounds of 1 s")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--duration", type=float, default=None, help="seconds per figure")
    arguments = parser.parse_args(argv)
    rounds = arguments.rounds or (2 if arguments.quick else 5)
    seconds = arguments.duration or (1.0 if arguments.quick else 3.0)
    if pinning_available():
        os.sched_setaffinity(0, {CLIENT_CPU})
    with tempfile.TemporaryDirectory(prefix="bench-ws-") as log_dir:
        figures, checks = run(rounds, seconds, Path(log_dir))
    print(f"{rounds} rounds of {seconds:g} s; load average {os.getloadavg()[0]:.2f}")
    print(checks_table(checks))
    print()
    print(figures_table(figures))
    return 0 if all(check.passed for check in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
