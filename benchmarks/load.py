"""Load generation: wrk pinned to the client core, or a small Python fallback.

The fallback (asyncio, keep-alive connections) is much slower than wrk and becomes
the bottleneck for fast servers, so its figures understate every server alike; the
report says when it was used.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import client
from .servers import CLIENT_CPU, pin_prefix

_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


@dataclass
class LoadResult:
    rps: float
    requests: int
    p50_ms: float | None = None
    p99_ms: float | None = None
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


class LoadGenerator:
    """Runs one load measurement against a URL on 127.0.0.1."""

    def __init__(self, *, use_wrk: bool | None = None) -> None:
        self.use_wrk = wrk_available() if use_wrk is None else use_wrk
        self._tmp = Path(tempfile.mkdtemp(prefix="bridge-bench-wrk-"))
        self._scripts: dict[int, Path] = {}

    @property
    def description(self) -> str:
        if self.use_wrk:
            return "wrk (1 thread)"
        return "Python fallback load generator (wrk not found; figures are client-bound)"

    def _post_script(self, size: int) -> Path:
        script = self._scripts.get(size)
        if script is None:
            script = self._tmp / f"post-{size}.lua"
            script.write_text(
                'wrk.method = "POST"\n'
                f'wrk.body = string.rep("x", {size})\n'
                'wrk.headers["Content-Type"] = "application/octet-stream"\n'
            )
            self._scripts[size] = script
        return script

    def run(
        self,
        port: int,
        path: str = "/",
        *,
        connections: int,
        duration: float,
        post_size: int | None = None,
    ) -> LoadResult:
        if self.use_wrk:
            return self._wrk(port, path, connections, duration, post_size)
        return asyncio.run(_python_load(port, path, connections, duration, post_size))

    def _wrk(
        self, port: int, path: str, connections: int, duration: float, post_size: int | None
    ) -> LoadResult:
        command = [
            *pin_prefix(CLIENT_CPU),
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(duration))}s",
            "--timeout",
            "10s",
            "--latency",
        ]
        if post_size is not None:
            command += ["-s", str(self._post_script(post_size))]
        command.append(f"http://{client.HOST}:{port}{path}")
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=duration + 60, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
        return parse_wrk(done.stdout)


def _seconds(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"Unrecognised wrk duration {text!r}.")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(output: str) -> LoadResult:
    rps_match = re.search(r"Requests/sec:\s+([\d.]+)", output)
    count_match = re.search(r"(\d+) requests in", output)
    if rps_match is None or count_match is None:
        raise RuntimeError(f"Could not parse wrk output:\n{output}")
    percentiles: dict[str, float] = {}
    for pct, value in re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", output, re.MULTILINE):
        percentiles[pct] = _seconds(value) * 1000
    errors: dict[str, int] = {}
    socket_match = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if socket_match is not None:
        for name, value in zip(
            ("connect", "read", "write", "timeout"), socket_match.groups(), strict=True
        ):
            if int(value):
                errors[name] = int(value)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non2xx is not None:
        errors["non2xx"] = int(non2xx.group(1))
    return LoadResult(
        rps=float(rps_match.group(1)),
        requests=int(count_match.group(1)),
        p50_ms=percentiles.get("50"),
        p99_ms=percentiles.get("99"),
        errors=errors,
    )


async def _python_load(
    port: int, path: str, connections: int, duration: float, post_size: int | None
) -> LoadResult:
    method = "GET" if post_size is None else "POST"
    head = f"{method} {path} HTTP/1.1\r\nHost: {client.HOST}:{port}\r\n"
    if post_size is not None:
        head += f"Content-Length: {post_size}\r\n"
    request = (head + "\r\n").encode("ascii") + (b"x" * (post_size or 0))
    latencies: list[float] = []
    errors: dict[str, int] = {}
    deadline = time.perf_counter() + duration
    max_requests = 2_000_000

    async def worker() -> None:
        writer: asyncio.StreamWriter | None = None
        try:
            while time.perf_counter() < deadline and len(latencies) < max_requests:
                if writer is None:
                    reader, writer = await asyncio.open_connection(client.HOST, port)
                start = time.perf_counter()
                writer.write(request)
                try:
                    status, headers, _ = await asyncio.wait_for(
                        client.read_async_response(reader), 10
                    )
                except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError):
                    errors["read"] = errors.get("read", 0) + 1
                    writer.close()
                    writer = None
                    continue
                latencies.append(time.perf_counter() - start)
                if not 200 <= status < 400:
                    errors["non2xx"] = errors.get("non2xx", 0) + 1
                if headers.get("connection", "").lower() == "close":
                    writer.close()
                    writer = None
        finally:
            if writer is not None:
                writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    count = len(latencies)
    return LoadResult(
        rps=count / elapsed,
        requests=count,
        p50_ms=latencies[count // 2] * 1000 if count else None,
        p99_ms=latencies[min(count - 1, int(count * 0.99))] * 1000 if count else None,
        errors=errors,
    )
