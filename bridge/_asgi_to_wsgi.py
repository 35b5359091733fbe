"""``ASGIToWSGI``: serve an ASGI app from a WSGI server.

How a request crosses, in three modules:

* here, the adapter: its options, one event loop per process
  (:class:`bridge._loop.ProcessLoop`, which runs the app's lifespan), and the WSGI
  entry point;
* :mod:`bridge._asgi_to_wsgi_call`: the request in the WSGI server's thread (the
  request body, ``start_response``, the response iterable and its ``close()``);
* :mod:`bridge._asgi_to_wsgi_task`: the request on the loop (the app's task and its
  ``receive()`` and ``send()``), checked message by message by
  :mod:`bridge._asgi_response`.
"""

from __future__ import annotations

import inspect
from typing import Any, Literal

from asgiref.compatibility import guarantee_single_callable

from ._asgi_to_wsgi_call import WSGICall
from ._lifespan import LifespanMode
from ._loop import LoopThread, ProcessLoop, uvloop_installed
from ._websocket_asgi_to_wsgi import serve_websocket
from .exceptions import LifespanFailed
from .types import ASGIApp, Environ, StartResponse

AfterResponse = Literal["wait", "detach"]


def as_asgi3(app: Any) -> ASGIApp:
    """``app`` as an ASGI 3 callable.

    A class whose instances are awaitable (Starlette's ``HTTPEndpoint`` and
    ``WebSocketEndpoint``) is ASGI 3 as it is: ``await cls(scope, receive, send)``, as
    Starlette's own router and test client call it. Any other class, or a callable
    returning a coroutine function, is an ASGI 2 double callable, adapted.
    """
    if inspect.isclass(app) and hasattr(app, "__await__"):
        return app  # type: ignore[return-value]
    return guarantee_single_callable(app)  # type: ignore[no-any-return,no-untyped-call]


class ASGIToWSGI:
    """Serve an ASGI application from a WSGI server.

    ``ASGIToWSGI(asgi_app)`` is a WSGI application. The ASGI app runs on one event
    loop per process, in a daemon thread started with the first request (and
    started again in a child process after ``fork()``). Its lifespan startup runs
    before the first request is handled; shutdown runs on :meth:`close` and at
    interpreter exit.

    Arguments:

    * ``app``: the ASGI 3 application (an ASGI 2 double callable is adapted).
    * ``backend``: the event loop, ``"asyncio"`` or ``"trio"``; ``backend_options``
      are passed to :func:`anyio.run`. asyncio runs on uvloop when it is installed,
      as uvicorn's ``--loop auto`` does; ``{"use_uvloop": False}`` opts out.
    * ``lifespan``: ``"auto"`` (run it, tolerate apps without it), ``"on"`` or ``"off"``.
    * ``lifespan_timeout``: seconds to wait for startup and for shutdown.
    * ``response_timeout``: seconds to wait for the response to start before
      answering 504 and cancelling the app (``None``: wait as long as it takes).
    * ``after_response``: what the response iterable's ``close()``, which the WSGI
      server calls once it has sent the response, does about the app's work after
      its response (background tasks): ``"wait"`` until the app returns and raise
      its exception there, as natively under a WSGI server; ``"detach"`` returns at
      once, freeing the server's thread, and the app's later errors are only logged.
    * ``after_response_timeout``: seconds ``close()`` waits at most; the app then goes
      on as if detached (``None``: as long as it takes).
    * ``high_water``: response bytes the app may send ahead of the WSGI server
      before its ``send()`` waits (back-pressure).
    * ``max_body_size``: answer 413 when the request body is larger (``None``: no limit).
    * ``websocket_max_size``: the largest WebSocket message the app receives; a larger
      one closes the connection with 1009 (WebSockets need a server that offers its
      socket: gunicorn, werkzeug).

    :raises TypeError: when ``app`` is not callable.
    :raises ValueError: on an unknown mode or a non-positive size.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        backend: str = "asyncio",
        backend_options: dict[str, Any] | None = None,
        lifespan: LifespanMode = "auto",
        lifespan_timeout: float = 60.0,
        response_timeout: float | None = None,
        after_response: AfterResponse = "wait",
        after_response_timeout: float | None = 60.0,
        high_water: int = 1048576,
        max_body_size: int | None = None,
        websocket_max_size: int = 16777216,
    ) -> None:
        if not callable(app):
            raise TypeError(f"Expected an ASGI application (a callable), but got {app!r}.")
        if lifespan not in ("auto", "on", "off"):
            raise ValueError(f"Expected lifespan 'auto', 'on' or 'off', but got {lifespan!r}.")
        if after_response not in ("wait", "detach"):
            raise ValueError(
                f"Expected after_response 'wait' or 'detach', but got {after_response!r}."
            )
        if high_water < 1:
            raise ValueError(f"Expected 'high_water' to be at least 1, but got {high_water}.")
        if websocket_max_size < 1:
            raise ValueError(f"Expected 'websocket_max_size' >= 1, but got {websocket_max_size}.")
        if max_body_size is not None and max_body_size < 0:
            raise ValueError(f"Expected 'max_body_size' >= 0 or None, but got {max_body_size}.")
        self.app: ASGIApp = as_asgi3(app)
        self.backend = backend
        if backend_options is None and backend == "asyncio" and uvloop_installed():
            # As uvicorn's --loop auto: uvloop's C event loop costs less per request.
            backend_options = {"use_uvloop": True}
        self.backend_options = backend_options
        self.lifespan: LifespanMode = lifespan
        self.lifespan_timeout = lifespan_timeout
        self.response_timeout = response_timeout
        self.after_response: AfterResponse = after_response
        self.after_response_timeout = after_response_timeout
        self.high_water = high_water
        self.max_body_size = max_body_size
        self.websocket_max_size = websocket_max_size
        self._loops = ProcessLoop(self._new_loop, lifespan_timeout + 5)

    def __repr__(self) -> str:
        return f"ASGIToWSGI({self.app!r})"

    def _new_loop(self) -> LoopThread:
        return LoopThread(
            self.app,
            self.lifespan,
            backend=self.backend,
            backend_options=self.backend_options,
            lifespan_timeout=self.lifespan_timeout,
        )

    def close(self) -> None:
        """Run the app's lifespan shutdown and stop the event loop thread.

        The next request starts a new loop (and runs startup again).
        """
        self._loops.close(self.lifespan_timeout + 5)

    def __call__(self, environ: Environ, start_response: StartResponse) -> Any:
        loop = self._loops.get()
        if loop.lifespan.error is not None:
            raise LifespanFailed(f"The ASGI app's lifespan startup failed: {loop.lifespan.error}")
        if "HTTP_UPGRADE" in environ:
            answer = serve_websocket(self, loop, environ, start_response)
            if answer is not None:
                return answer
        return WSGICall(self, loop, environ, start_response).respond()
