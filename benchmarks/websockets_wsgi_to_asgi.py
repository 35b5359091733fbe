"""A WSGI app's WebSockets: ``WSGIToASGI`` under uvicorn against the app served natively.

Run from the project root (``pip install -e '.[dev,bench]'``)::

    python -m benchmarks.websockets_wsgi_to_asgi            # 5 rounds of 3 s per figure
    python -m benchmarks.websockets_wsgi_to_asgi --quick    # 2 rounds of 1 s

Both servers serve the same flask-sock echo app (``/echo``) at once, pinned to the
server core: natively by gunicorn's gthread worker (the WSGI server that hands an
app its socket; 32 threads, since a socket holds one), and through ``WSGIToASGI``
by uvicorn (its default loop and WebSocket implementation). The client is the
asyncio ``websockets`` library in this process, on the client core, without
compression. Each round measures both in turn:

* round trips per second with 1 and with 16 sockets: each socket sends a 32-byte
  text message and waits for its echo, for the round's seconds;
* MiB/s of 1 MiB binary messages echoed on one socket (each MiB counted once);
* threads per open socket: the server process's thread count with 16 sockets open,
  less its count before the first socket, over 16;
* for information, the server process's CPU time (all threads, from ``/proc``) per
  round trip or message: the ratio a CPU-bound server would reach, steadier than
  the rates on a shared machine;
* for information, the ceiling: a third server, uvicorn echoing with a plain ASGI
  app (``plain``), measured in the same rounds, gives uvicorn's own CPU per message.
  Native CPU over the bridge's app threads (all but the loop's) plus that is the
  ratio a bridge whose relay cost nothing would reach; the bridge's loop thread less
  uvicorn's own is the relay's share.

Targets: round trips at least 0.5 of native, 1 MiB messages at least 0.8 of native,
at most one thread per open socket more than native. The figure is the median of
the rounds; the note gives the ratio round by round. It is not one of the main
runner's groups.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .report import (
    Check,
    Figures,
    at_least_ratio,
    checks_table,
    cpu_case,
    cpu_info,
    figures_table,
    fmt,
)
from .servers import CLIENT_CPU, Server, cpu_seconds, pin_prefix, pinning_available, running

GROUP = "websockets"
SMALL = "x" * 32
LARGE = os.urandom(1024 * 1024)
MANY = 16
NATIVE_THREADS = 32
_CASES = (
    ("echo round trips, 1 socket", "round trips/s"),
    (f"echo round trips, {MANY} sockets", "round trips/s"),
    ("1 MiB messages, 1 socket", "MiB/s"),
)
_IMPLS = (("native gthread", "native"), ("bridge", "bridged"))
_PLAIN = "uvicorn, plain ASGI echo"
_APP_THREADS = "bridge, app threads"


def _flask_app() -> Any:
    from flask import Flask
    from flask_sock import Sock

    app = Flask(__name__)
    sock = Sock(app)

    @app.get("/")
    def index() -> str:
        return "ok"

    def echo(ws: Any) -> None:
        while True:
            ws.send(ws.receive())

    sock.route("/echo")(echo)
    return app


async def plain(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """uvicorn's own cost: the same echo as a plain ASGI app (and ``ok`` for HTTP)."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
    elif scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
    elif (await receive())["type"] == "websocket.connect":
        await send({"type": "websocket.accept"})
        while (message := await receive())["type"] == "websocket.receive":
            await send({**message, "type": "websocket.send"})


def __getattr__(name: str) -> Any:
    """``native`` (the Flask app) and ``bridged`` (through ``WSGIToASGI``), built on use."""
    if name == "native":
        return _flask_app()
    if name == "bridged":
        from bridge import WSGIToASGI

        return WSGIToASGI(_flask_app())
    raise AttributeError(name)


class _GthreadServer(Server):
    """gunicorn gthread with enough threads for every socket of the benchmark."""

    def _command(self) -> list[str]:
        command = super()._command()
        command[command.index("--threads") + 1] = str(NATIVE_THREADS)
        return command


def _threads(server: Server) -> int:
    pid = server.worker_pid()
    assert pid is not None, server.name
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    raise RuntimeError(f"No thread count for {server.name}.")


async def _connect(url: str) -> Any:
    from websockets.asyncio.client import connect

    return await connect(url, compression=None, max_size=None, open_timeout=10)


async def _round_trips(url: str, sockets: int, seconds: float) -> tuple[int, float]:
    """Round trips of a small message on ``sockets`` sockets at once, and the seconds."""
    connections = [await _connect(url) for _ in range(sockets)]
    counts = [0] * sockets
    deadline = time.monotonic() + seconds

    async def loop(index: int) -> None:
        ws = connections[index]
        while time.monotonic() < deadline:
            await ws.send(SMALL)
            if await asyncio.wait_for(ws.recv(), 10) != SMALL:
                raise RuntimeError("the echo differs")
            counts[index] += 1

    started = time.monotonic()
    await asyncio.gather(*(loop(index) for index in range(sockets)))
    elapsed = time.monotonic() - started
    await asyncio.gather(*(ws.close() for ws in connections))
    return sum(counts), elapsed


async def _large(url: str, seconds: float) -> tuple[int, float]:
    """1 MiB messages echoed on one socket, and the seconds."""
    ws = await _connect(url)
    count = 0
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        await ws.send(LARGE)
        if await asyncio.wait_for(ws.recv(), 10) != LARGE:
            raise RuntimeError("the echo differs")
        count += 1
    elapsed = time.monotonic() - started
    await ws.close()
    return count, elapsed


async def _threads_per_socket(server: Server, url: str, before: int) -> float:
    connections = [await _connect(url) for _ in range(MANY)]
    for ws in connections:  # every handler is running
        await ws.send(SMALL)
        await asyncio.wait_for(ws.recv(), 10)
    during = _threads(server)
    await asyncio.gather(*(ws.close() for ws in connections))
    return (during - before) / MANY


def measure(rounds: int, seconds: float, log_dir: Path) -> tuple[Figures, list[Check]]:
    module = "benchmarks.websockets_wsgi_to_asgi"
    servers = {
        "native": _GthreadServer("gunicorn-gthread", "native", log_dir=log_dir, module=module),
        "bridged": Server("uvicorn", "bridged", log_dir=log_dir, module=module),
        "plain": Server("uvicorn", "plain", log_dir=log_dir, module=module),
    }
    figures = Figures()
    with running(list(servers.values())):
        before = {app: _threads(server) for app, server in servers.items()}
        urls = {app: f"ws://127.0.0.1:{server.port}/echo" for app, server in servers.items()}
        for impl, app in _IMPLS:
            per_socket = asyncio.run(_threads_per_socket(servers[app], urls[app], before[app]))
            figures.add(GROUP, "threads per open socket", impl, "threads", per_socket)
            asyncio.run(_round_trips(urls[app], MANY, min(seconds, 1.0)))  # warm-up
        workers = {app: server.worker_pid() for app, server in servers.items()}
        for _round in range(rounds):
            for impl, app in (*_IMPLS, (_PLAIN, "plain")):
                worker = workers[app]
                assert worker is not None, app
                for index, (case, unit) in enumerate(_CASES):
                    cpu = cpu_seconds(worker)
                    loop = cpu_seconds(worker, thread=worker)  # uvicorn's loop: the main thread
                    count, elapsed = asyncio.run(_case(index, urls[app], seconds))
                    cpu = cpu_seconds(worker) - cpu
                    loop = cpu_seconds(worker, thread=worker) - loop
                    if app != "plain":
                        figures.add(GROUP, case, impl, unit, count / elapsed)
                    figures.add(GROUP, cpu_case(case), impl, "s", cpu / count)
                    if app == "bridged":
                        figures.add(GROUP, cpu_case(case), _APP_THREADS, "s", (cpu - loop) / count)
    checks = [
        at_least_ratio(
            figures,
            GROUP,
            case,
            f"WSGI->ASGI WebSocket {case}",
            "native gthread",
            0.5,
            baseline_label="native gthread",
        )
        for case, _unit in _CASES[:2]
    ]
    checks.append(
        at_least_ratio(
            figures,
            GROUP,
            _CASES[2][0],
            f"WSGI->ASGI WebSocket {_CASES[2][0]}",
            "native gthread",
            0.8,
            baseline_label="native gthread",
        )
    )
    for case, _unit in _CASES:
        checks += cpu_info(figures, GROUP, cpu_case(case), "native gthread")
        checks += _ceiling(figures, cpu_case(case))
    mine = figures.find(GROUP, "threads per open socket", "bridge")
    base = figures.find(GROUP, "threads per open socket", "native gthread")
    if mine is not None and base is not None:
        extra = mine.median - base.median
        checks.append(
            Check(
                GROUP,
                "WSGI->ASGI threads per open WebSocket, beyond native",
                extra,
                "threads",
                "≤ 1",
                extra <= 1,
                baseline=base.median,
                baseline_label="native gthread",
                note=f"bridge {mine.median:g}",
            )
        )
    return figures, checks


def _ceiling(figures: Figures, case: str) -> list[Check]:
    """An info row: the ratio a bridge whose relay cost nothing would reach, by CPU.

    Native CPU over the bridge's app threads plus uvicorn echoing by itself: what
    any bridge under uvicorn pays at least. The note gives the relay's own share
    (the bridge's loop thread less uvicorn's echo).
    """
    native = figures.find(GROUP, case, "native gthread")
    bridge = figures.find(GROUP, case, "bridge")
    app_threads = figures.find(GROUP, case, _APP_THREADS)
    uvicorn = figures.find(GROUP, case, _PLAIN)
    if native is None or bridge is None or app_threads is None or uvicorn is None:
        return []
    floor = app_threads.median + uvicorn.median
    relay = fmt(bridge.median - floor, "s")
    return [
        Check(
            GROUP,
            f"{case}, ceiling: the bridge's app threads plus uvicorn's own echo (info)",
            floor,
            "s",
            "info",
            None,
            baseline=native.median,
            baseline_label="native gthread",
            ratio=native.median / floor,
            ratio_label="native / ceiling",
            note=f"the relay's share: {relay} of {fmt(bridge.median, 's')}",
        )
    ]


async def _case(index: int, url: str, seconds: float) -> tuple[int, float]:
    """The ``_CASES[index]`` figure's messages, and the seconds they took."""
    if index == 2:
        return await _large(url, seconds)
    return await _round_trips(url, 1 if index == 0 else MANY, seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="2 rounds of 1 s")
    parser.add_argument("--rounds", type=int, help="rounds (default 5)")
    parser.add_argument("--seconds", type=float, help="seconds per figure (default 3)")
    args = parser.parse_args(argv)
    rounds = args.rounds or (2 if args.quick else 5)
    seconds = args.seconds or (1.0 if args.quick else 3.0)
    if pinning_available():
        os.sched_setaffinity(0, {CLIENT_CPU})
    print(f"servers pinned: {' '.join(pin_prefix(0)) or 'no'}; {rounds} rounds of {seconds:g} s")
    with tempfile.TemporaryDirectory(prefix="bench-ws-") as logs:
        figures, checks = measure(rounds, seconds, Path(logs))
    print(checks_table(checks))
    print()
    print(figures_table(figures))
    return 0 if all(check.passed is not False for check in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
