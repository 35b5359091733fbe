"""A small raw-socket HTTP/1.1 client for the measurements wrk cannot make.

It times the first body byte, streams large uploads from one reused buffer, counts
large downloads without keeping them, and talks only to 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass

HOST = "127.0.0.1"
TIMEOUT = 120.0
"""Seconds any single socket operation may take before the request fails."""
_RECV = 1 << 20


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body_bytes: int
    body: bytes
    """The body when it was small (up to 64 KiB) or chunked; else empty (only counted)."""
    sent_at: float
    """``time.perf_counter()`` when the request's last byte was handed to the kernel."""
    first_body_at: float | None
    """When the first byte after the response headers arrived (None: empty body)."""
    done_at: float


class HTTPError(RuntimeError):
    pass


def _request_head(method: str, path: str, port: int, body_size: int | None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{port}", "Connection: close"]
    if body_size is not None:
        lines += [f"Content-Length: {body_size}", "Content-Type: application/octet-stream"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise HTTPError(f"Not an HTTP response: {lines[0]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


def request(
    port: int,
    path: str = "/",
    *,
    method: str = "GET",
    upload_size: int | None = None,
    upload_chunk: int = 65536,
    timeout: float = TIMEOUT,
) -> Response:
    """One request on a fresh connection (``Connection: close``).

    ``upload_size``: send a body of that many bytes, from one reused chunk.
    """
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        head = _request_head(method, path, port, upload_size)
        if upload_size:
            sock.sendall(head)
            piece = memoryview(b"u" * upload_chunk)
            left = upload_size
            while left > 0:
                step = min(upload_chunk, left)
                sock.sendall(piece[:step])
                left -= step
        else:
            sock.sendall(head)
        sent_at = time.perf_counter()
        return _read_response(sock, sent_at)


def _read_response(sock: socket.socket, sent_at: float) -> Response:
    buffer = bytearray(_RECV)
    view = memoryview(buffer)
    pending = b""
    while b"\r\n\r\n" not in pending:
        count = sock.recv_into(buffer)
        if not count:
            raise HTTPError(f"Connection closed before the response headers ({pending[:80]!r}).")
        pending += bytes(view[:count])
        if len(pending) > 65536 and b"\r\n\r\n" not in pending:
            raise HTTPError("Response headers larger than 64 KiB.")
    now = time.perf_counter()
    head, _, rest = pending.partition(b"\r\n\r\n")
    status, headers = _parse_head(head)
    first_body_at: float | None = now if rest else None
    if "content-length" in headers:
        length = int(headers["content-length"])
        received = len(rest)
        keep = length <= 65536
        kept = [rest] if keep else []
        while received < length:
            count = sock.recv_into(buffer)
            if not count:
                raise HTTPError(f"Connection closed after {received} of {length} body bytes.")
            if first_body_at is None:
                first_body_at = time.perf_counter()
            received += count
            if keep:
                kept.append(bytes(view[:count]))
        body = b"".join(kept)
        return Response(
            status, headers, received, body, sent_at, first_body_at, time.perf_counter()
        )
    # Chunked or read-to-close: small responses only (the drip); keep everything.
    raw = bytearray(rest)
    while True:
        count = sock.recv_into(buffer)
        if not count:
            break
        if first_body_at is None:
            first_body_at = time.perf_counter()
        raw += view[:count]
        if "chunked" in headers.get("transfer-encoding", "") and raw.endswith(b"0\r\n\r\n"):
            break
    body = _dechunk(bytes(raw)) if "chunked" in headers.get("transfer-encoding", "") else bytes(raw)
    return Response(status, headers, len(body), body, sent_at, first_body_at, time.perf_counter())


def _dechunk(raw: bytes) -> bytes:
    out = []
    position = 0
    while True:
        end = raw.index(b"\r\n", position)
        size = int(raw[position:end].split(b";")[0], 16)
        if size == 0:
            return b"".join(out)
        out.append(raw[end + 2 : end + 2 + size])
        position = end + 2 + size + 2


def answers_http(port: int, path: str, timeout: float = 2.0) -> bool:
    """True when a GET to ``path`` gets an HTTP status line back (the rest is not read)."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            sock.sendall(_request_head("GET", path, port, None))
            received = b""
            while len(received) < 12:
                data = sock.recv(1024)
                if not data:
                    break
                received += data
    except OSError:
        return False
    return received.startswith(b"HTTP/1.")


# Async keep-alive requests, for the concurrency test.


async def read_async_response(
    reader: asyncio.StreamReader,
) -> tuple[int, dict[str, str], bytes]:
    """Read one Content-Length response from a keep-alive connection."""
    head = await reader.readuntil(b"\r\n\r\n")
    status, headers = _parse_head(head[:-4])
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers, body


def get_request(port: int, path: str) -> bytes:
    """A keep-alive GET request."""
    return f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n\r\n".encode("ascii")
