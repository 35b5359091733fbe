"""Latency probe, run as a subprocess: ``python -m benchmarks.probe PORT PATH``.

It sends GET requests one after another on one keep-alive connection to
127.0.0.1:PORT, pausing ``--interval`` seconds between them, until its standard
input closes or ``--max-seconds`` pass. It then prints one JSON list of
``[start, latency]`` pairs in seconds (``start`` on ``time.monotonic()``, which is
system-wide on Linux, so the parent can match samples to its own time windows).
"""

from __future__ import annotations

import argparse
import json
import select
import socket
import sys
import time

HOST = "127.0.0.1"
MAX_SAMPLES = 200_000


def _read_response(sock: socket.socket, pending: bytes) -> bytes:
    """Read one Content-Length response; returns the bytes after it."""
    while b"\r\n\r\n" not in pending:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("server closed the connection")
        pending += data
    head, _, rest = pending.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(rest) < length:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("server closed the connection")
        rest += data
    if not head.startswith(b"HTTP/1.1 200"):
        raise ConnectionError(f"unexpected response {head[:40]!r}")
    return rest[length:]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("path")
    parser.add_argument("--interval", type=float, default=0.002)
    parser.add_argument("--max-seconds", type=float, default=120.0)
    args = parser.parse_args()
    request = f"GET {args.path} HTTP/1.1\r\nHost: {HOST}:{args.port}\r\n\r\n".encode("ascii")
    samples: list[tuple[float, float]] = []
    deadline = time.monotonic() + args.max_seconds
    with socket.create_connection((HOST, args.port), timeout=30) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pending = b""
        print("ready", flush=True)
        while time.monotonic() < deadline and len(samples) < MAX_SAMPLES:
            readable, _, _ = select.select([sys.stdin], [], [], 0)
            if readable:
                break  # stdin closed (or written to): stop
            start = time.monotonic()
            sock.sendall(request)
            pending = _read_response(sock, pending)
            samples.append((start, time.monotonic() - start))
            time.sleep(args.interval)
    print(json.dumps(samples), flush=True)


if __name__ == "__main__":
    main()
