"""Small client-side helpers for real-server tests: a raw HTTP/1.1 connection and polling."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable
from types import TracebackType

import h11

SOCKET_TIMEOUT = 10.0
"""Seconds any single socket operation may block."""


class RawHTTP:
    """One HTTP/1.1 connection on a plain socket; h11 frames requests and parses responses.

    Every ``h11.Data`` sent on a request with ``Transfer-Encoding: chunked`` goes out
    as one chunk. Reads block at most :data:`SOCKET_TIMEOUT` seconds each.
    """

    def __init__(self, host: str, port: int, timeout: float = SOCKET_TIMEOUT) -> None:
        self.host = host
        self.port = port
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.conn = h11.Connection(h11.CLIENT)
        self._body = bytearray()
        self._ended = False

    def __enter__(self) -> RawHTTP:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.sock.close()

    def request(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]] | None = None,
        *,
        end: bool = False,
    ) -> None:
        """Send a request head; with ``end``, the end of its body in the same write, else
        add ``h11.EndOfMessage()`` with :meth:`send` to finish it."""
        all_headers = [("Host", f"{self.host}:{self.port}"), *(headers or [])]
        head = h11.Request(method=method, target=target, headers=all_headers)
        self.send(head, h11.EndOfMessage()) if end else self.send(head)

    def send(self, *events: h11.Event) -> None:
        """Send ``events`` in one write."""
        data = b"".join(self.conn.send(event) or b"" for event in events)
        if data:
            self.sock.sendall(data)

    def next_event(self) -> object:
        """The next event from the server, reading the socket as needed."""
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                self.conn.receive_data(self.sock.recv(65536))
                continue
            return event

    def read_response(self) -> h11.Response:
        event = self.next_event()
        if not isinstance(event, h11.Response):
            raise AssertionError(f"Expected a response head, but got {event!r}.")
        self._body.clear()
        self._ended = False
        return event

    def read_body(self, until: bytes | None = None) -> bytes:
        """Body bytes up to and including ``until``, or all of them up to the message's end."""
        while not self._ended and (until is None or until not in self._body):
            event = self.next_event()
            if isinstance(event, h11.Data):
                self._body += event.data
            elif isinstance(event, h11.EndOfMessage):
                self._ended = True
            else:
                raise AssertionError(f"Expected response body data, but got {event!r}.")
        end = len(self._body) if until is None else self._body.find(until) + len(until)
        if until is not None and end < len(until):
            raise AssertionError(f"The body ended without {until!r}: {bytes(self._body)!r}")
        data = bytes(self._body[:end])
        del self._body[:end]
        return data

    def next_cycle(self) -> None:
        """Reuse the connection for another request (keep-alive)."""
        self.conn.start_next_cycle()

    def reset(self) -> None:
        """Drop the connection abruptly: the close sends a TCP RST rather than a FIN."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


def wait_for(condition: Callable[[], bool], timeout: float, describe: Callable[[], str]) -> None:
    """Poll ``condition`` every 20 ms; fail with ``describe()`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"Gave up after {timeout} s: {describe()}")
        time.sleep(0.02)
