"""The behaviour every app under test shares; each framework only routes to it.

The test process and a server subprocess talk through marker files in the
directory named by ``$BRIDGE_TEST_MARKER_DIR``:

* ``<token>.seen``: written by the test once it has read the first chunk of
  ``/stream``; :func:`ack_stream` ends only after it appears.
* ``<token>.closed``: written by :meth:`Ticker.close`, so the test can tell that the
  server called ``close()`` on the response iterable after the client went away.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

MARKER_DIR_ENV = "BRIDGE_TEST_MARKER_DIR"
TICK_SECONDS = 0.1
ACK_TICKS = 100
"""Ticks :func:`ack_stream` waits for the client's acknowledgement (10 s) before giving up."""
FOREVER_TICKS = 600
"""An "infinite" :class:`Ticker` still stops after 60 s, so a lost ``close()`` cannot spin."""
SECRET = "secret-4f1d9c: must never reach a client"
"""The message of the exception ``/error`` raises; it belongs in server logs only."""
TEXT = b"hello from the bridge\n"

_TOKEN = re.compile(r"[0-9a-f]{8,64}")


class BinaryReader(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...
    def readline(self, size: int = ..., /) -> bytes: ...


def marker_path(token: str, suffix: str) -> Path:
    """``$BRIDGE_TEST_MARKER_DIR/<token>.<suffix>``; the token must be hex."""
    if not _TOKEN.fullmatch(token):
        raise ValueError(f"Expected a hex token, but got {token!r}.")
    return Path(os.environ[MARKER_DIR_ENV]) / f"{token}.{suffix}"


def ack_stream(token: str) -> Iterator[bytes]:
    """``chunk 0``, then a tick every 100 ms until ``<token>.seen`` exists, then ``last``.

    The last line says whether the acknowledgement came (``acked=yes``): it can only
    come if the client read ``chunk 0`` while this stream was still running.
    """
    seen = marker_path(token, "seen")
    yield b"chunk 0\n"
    for tick in range(1, ACK_TICKS + 1):
        time.sleep(TICK_SECONDS)
        if seen.exists():
            yield b"last acked=yes ticks=%d\n" % tick
            return
        yield b"tick %d\n" % tick
    yield b"last acked=no ticks=%d\n" % ACK_TICKS


class Ticker:
    """An endless response body (a tick every 100 ms) whose ``close()`` leaves a marker.

    A class rather than a generator: a generator's cleanup also runs when it is
    garbage-collected, which would hide a missing ``close()`` call.
    """

    def __init__(self, token: str) -> None:
        self._closed_marker = marker_path(token, "closed")
        self._count = 0

    def __iter__(self) -> Ticker:
        return self

    def __next__(self) -> bytes:
        if self._count >= FOREVER_TICKS:
            raise StopIteration
        if self._count:
            time.sleep(TICK_SECONDS)
        self._count += 1
        return b"tick %d\n" % self._count

    def close(self) -> None:
        self._closed_marker.write_text(f"{self._count}\n", "ascii")


def upload_report(body: BinaryReader) -> Iterator[bytes]:
    """Report the first line of the body at once, then the whole body's length and sha256.

    The first report goes out while the client may still be sending the rest, which
    is how the test sees that the body streams into the app.
    """
    first = body.readline()
    yield b"first %d\n" % len(first)
    digest = hashlib.sha256(first)
    total = len(first)
    while chunk := body.read(65536):
        digest.update(chunk)
        total += len(chunk)
    yield b"total %d %s\n" % (total, digest.hexdigest().encode("ascii"))


_inflight_lock = threading.Lock()
_inflight = 0


def slow() -> bytes:
    """Sleep 100 ms; return the most requests seen in flight at once meanwhile."""
    global _inflight
    with _inflight_lock:
        _inflight += 1
        peak = _inflight
    try:
        time.sleep(TICK_SECONDS)
    finally:
        with _inflight_lock:
            peak = max(peak, _inflight)
            _inflight -= 1
    return b"%d" % peak


def describe(app: str, method: str, path: str, query: str) -> dict[str, str]:
    """The ``/json`` document."""
    return {"app": app, "method": method, "path": path, "query": query}
