"""One app of each interface, for the importer, detection and CLI tests."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bridge import ASGIToWSGI, Mount
from bridge.types import Receive, Scope, Send, StartResponse


def wsgi_app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"wsgi"]


async def asgi_app(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"asgi"})


class ASGI2App:
    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    async def __call__(self, receive: Receive, send: Send) -> None:
        await asgi_app(self.scope, receive, send)


bridged = ASGIToWSGI(asgi_app)
mounted = Mount({"/asgi": asgi_app}, default=wsgi_app)
not_an_app = 42


class Nested:
    app = asgi_app
