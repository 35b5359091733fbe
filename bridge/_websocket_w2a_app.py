"""The WSGI app's call for one WebSocket, in a thread of its own for the socket's life.

The app finds its end of the connection in the environ, as under a WSGI server
with socket support, and talks HTTP/1.1 and then RFC 6455 on it by itself. When it
answers through ``start_response`` instead (a 404, a 401, an error page), the thread
writes that response on the same socket the way a WSGI server would, so the relay
reads every answer from one place. When the call is over, the thread shuts the
app's end for writing, as the server would close the connection, and tells the loop.
"""

from __future__ import annotations

import contextvars
import logging
import socket
import threading
from collections.abc import Callable, Iterable

import anyio

from ._loop import CallSoon, post
from ._threads import wake_without_preempting
from ._websocket_messages import shut
from ._websocket_w2a_wire import response_head
from ._wsgi_response import HEADERS_HELD, WSGIResponse, close_iterable
from .exceptions import ClientDisconnected
from .types import Environ, ExcInfo, WSGIApp

logger = logging.getLogger("bridge")


class AppCall:
    """Runs ``app(environ, start_response)`` in a daemon thread named ``bridge-websocket``.

    The loop awaits :attr:`done`; :attr:`error` then holds what the call raised, if
    anything. A loop that stops waiting early (it was cancelled) calls
    :meth:`abandon`, and the thread runs ``cleanup`` itself when it ends.
    """

    __slots__ = (
        "_abandoned",
        "_app",
        "_call_soon",
        "_cleanup",
        "_context",
        "_environ",
        "_finished",
        "_lock",
        "_reason",
        "_response",
        "_sock",
        "done",
        "error",
    )

    def __init__(
        self,
        app: WSGIApp,
        environ: Environ,
        sock: socket.socket,
        call_soon: CallSoon,
        cleanup: Callable[[], None],
    ) -> None:
        self._app = app
        self._environ = environ
        self._sock = sock  # the app's end of the socket pair
        self._call_soon = call_soon
        self._cleanup = cleanup
        self._context = contextvars.copy_context()
        self._response = WSGIResponse("GET")  # PEP 3333's rules, as for any response
        self._reason = ""  # the status line's reason phrase, written with the head
        self._lock = threading.Lock()
        self._finished = False
        self._abandoned = False
        self.done = anyio.Event()
        self.error: BaseException | None = None

    def start(self) -> None:
        threading.Thread(target=self._run, name="bridge-websocket", daemon=True).start()

    def abandon(self) -> bool:
        """The loop stops waiting; True when the thread has already finished."""
        with self._lock:
            self._abandoned = True
            return self._finished

    # The thread.

    def _run(self) -> None:
        wake_without_preempting()  # as the pool's threads: an opt-in (see _threads)
        try:
            self._context.run(self._call)
        finally:
            del self._environ  # the app's objects go with the call, not the session
            shut(self._sock, socket.SHUT_WR)  # as a WSGI server closes the connection
            with self._lock:
                self._finished = True
                abandoned = self._abandoned
            if abandoned:
                self._report_late()
                self._cleanup()
            else:
                post(self._call_soon, self.done.set)

    def _report_late(self) -> None:
        """Log what the call raised after the loop stopped waiting: no one else can."""
        error = self.error
        if error is None or isinstance(error, ClientDisconnected):
            return
        if isinstance(error, (StopIteration, ConnectionError)):
            return  # a library's word that it took the connection over, or the socket shut
        logger.error(
            "Exception in the WSGI app after its WebSocket session was cancelled.",
            exc_info=error,
        )

    def _call(self) -> None:
        iterable: Iterable[bytes] | None = None
        try:
            iterable = self._app(self._environ, self._start_response)
            for chunk in iterable:
                if chunk:  # PEP 3333: the head waits for the first non-empty chunk
                    self._write(chunk)
            if self._response.phase is HEADERS_HELD:
                self._write(b"")  # a response with no body still has its head
        except BaseException as exc:
            self.error = exc
        finally:
            self.error = close_iterable(iterable, self.error)

    def _start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
    ) -> Callable[[bytes], None]:
        self._response.start(status, headers, exc_info)
        self._reason = status[4:]
        return self._write

    def _write(self, data: bytes) -> None:
        """Write response bytes on the app's end, the head first (PEP 3333 ``write()``)."""
        response = self._response
        data = response.chunk(data)
        try:
            if response.phase is HEADERS_HELD:
                code, headers = response.send_headers()
                self._sock.sendall(response_head(code, self._reason, headers))
            if data:
                self._sock.sendall(data)
        except OSError:
            # The relay stopped reading: the denial was answered without its body
            # (no websocket.http.response extension), or the client went away.
            raise ClientDisconnected("The client is gone; the response was cut.") from None


def no_body() -> tuple[bytes, bool]:
    """``wsgi.input``'s source for the upgrade request, which has no body."""
    return b"", False
