"""``Mount``: WSGI and ASGI apps side by side in one ASGI app, by path prefix."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import anyio

from ._interface import to_asgi
from ._lifespan import Lifespan
from ._wsgi_to_asgi import WSGIToASGI
from .types import ASGIApp, Receive, Scope, Send


class Mount:
    """An ASGI app that dispatches requests by path prefix to WSGI and ASGI apps.

    The strangler-fig way to migrate: mount new ASGI apps at their prefixes and
    send everything else to the legacy app as ``default``::

        app = Mount({"/api": fastapi_app, "/admin": django_wsgi_app}, default=flask_app)

    WSGI apps are wrapped once in :class:`WSGIToASGI` (``wsgi_options`` are passed to
    it). The longest matching prefix wins, on a path-segment boundary (``/api``
    matches ``/api`` and ``/api/users``, never ``/apikeys``). The mounted app sees
    the prefix moved into ``root_path`` (``SCRIPT_NAME``) with ``path`` unchanged, so
    its own ``PATH_INFO`` starts after the prefix, and URLs it builds include it.
    A request for the bare prefix reaches the app with an empty ``PATH_INFO``, so
    the app decides whether to redirect to ``/prefix/``, as it would behind any
    WSGI dispatcher; ``redirect_slashes=True`` makes the mount redirect instead.
    Unmatched paths go to ``default``, or get a 404.

    Lifespan fans out: startup runs for every mounted ASGI app, in order (a failure
    names the mount), each app keeps its own lifespan state for its requests, and
    shutdown runs in reverse order. Websockets are routed by the same prefixes: an
    ASGI mount gets the scope as it is, a WSGI mount the upgrade request and its
    connection's socket through :class:`WSGIToASGI` (see docs/websockets.md).

    :raises ValueError: on a prefix that does not start with ``/`` or is mounted twice.
    :raises TypeError: when a mounted object is not a WSGI or ASGI app.
    """

    def __init__(
        self,
        routes: Mapping[str, Any] | Iterable[tuple[str, Any]],
        *,
        default: Any = None,
        redirect_slashes: bool = False,
        **wsgi_options: Any,
    ) -> None:
        items = routes.items() if isinstance(routes, Mapping) else routes
        mounts: dict[str, ASGIApp] = {}
        for prefix, app in items:
            if not isinstance(prefix, str) or not prefix.startswith("/"):
                raise ValueError(f"Mount prefixes must start with '/', but got {prefix!r}.")
            normalized = prefix.rstrip("/")
            if normalized in mounts:
                raise ValueError(f"Prefix {prefix!r} is mounted twice.")
            mounts[normalized] = to_asgi(app, **wsgi_options)
        self.routes: list[tuple[str, ASGIApp]] = sorted(
            mounts.items(), key=lambda item: len(item[0]), reverse=True
        )
        self.default: ASGIApp | None = None if default is None else to_asgi(default, **wsgi_options)
        self.redirect_slashes = redirect_slashes
        # Each mounted app's own lifespan state, by id() of the (wrapped) app.
        self._states: dict[int, dict[str, Any]] = {}

    def __repr__(self) -> str:
        routes = ", ".join(f"{prefix or '/'!r}: {app!r}" for prefix, app in self.routes)
        return f"Mount({{{routes}}}, default={self.default!r})"

    def _match(self, relative: str) -> tuple[str, ASGIApp | None]:
        for prefix, app in self.routes:
            if not prefix or relative == prefix or relative.startswith(prefix + "/"):
                return prefix, app
        return "", self.default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        root_path: str = scope.get("root_path", "")
        path: str = scope["path"]
        relative = path
        if root_path and (path == root_path or path.startswith(root_path + "/")):
            relative = path[len(root_path) :]
        prefix, app = self._match(relative)
        if app is None:
            await _not_found(kind, receive, send)
            return
        if prefix and relative == prefix and self.redirect_slashes and kind == "http":
            await _redirect(scope, send, path + "/")
            return
        child = dict(scope)
        if prefix:
            child["root_path"] = root_path + prefix
        state = self._states.get(id(app))
        if state is not None:
            child["state"] = state.copy()
        await app(child, receive, send)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        apps: list[tuple[str, ASGIApp]] = [
            (prefix, app) for prefix, app in self.routes if not isinstance(app, WSGIToASGI)
        ]
        if self.default is not None and not isinstance(self.default, WSGIToASGI):
            apps.append(("", self.default))
        message = await receive()
        if message["type"] != "lifespan.startup":
            return
        async with anyio.create_task_group() as task_group:
            started: list[Lifespan] = []
            failure: str | None = None
            for prefix, app in apps:
                state: dict[str, Any] = {}
                lifespan = Lifespan(app, "auto", state)
                task_group.start_soon(lifespan.run)
                await lifespan.wait_started()
                if lifespan.error is not None:
                    where = prefix or "/"
                    failure = f"Startup of the app mounted at {where!r} failed: {lifespan.error}"
                    break
                started.append(lifespan)
                if lifespan.supported:
                    self._states[id(app)] = state
            if failure is not None:
                for lifespan in reversed(started):
                    if lifespan.supported:
                        await lifespan.shutdown()
                task_group.cancel_scope.cancel()
                await send({"type": "lifespan.startup.failed", "message": failure})
                return
            await send({"type": "lifespan.startup.complete"})
            message = await receive()
            for lifespan in reversed(started):
                if lifespan.supported:
                    await lifespan.shutdown()
            task_group.cancel_scope.cancel()
        await send({"type": "lifespan.shutdown.complete"})


async def _not_found(kind: str, receive: Receive, send: Send) -> None:
    if kind == "websocket":
        await receive()
        await send({"type": "websocket.close", "code": 1000, "reason": ""})
        return
    body = b"Not Found"
    await send(
        {
            "type": "http.response.start",
            "status": 404,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", b"9"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _redirect(scope: Scope, send: Send, location: str) -> None:
    query = scope.get("query_string", b"")
    target = location.encode("utf-8") + (b"?" + query if query else b"")
    await send(
        {
            "type": "http.response.start",
            "status": 307,
            "headers": [(b"location", target), (b"content-length", b"0")],
        }
    )
    await send({"type": "http.response.body", "body": b""})
