"""Pure translation for WebSockets: the upgrade request's environ, its scope, its checks.

The WebSocket counterparts of :mod:`bridge._environ`'s builders, on the same rules
(path, query, headers), plus the RFC 6455 section 4.2.1 checks of an upgrade
request that a WSGI server hands over.
"""

from __future__ import annotations

import base64
import os
from typing import Any

from ._environ import build_environ, build_scope
from .exceptions import BadRequest
from .types import Environ, Scope

_WS_SCHEMES = {"ws": "http", "wss": "https"}
# Hop-by-hop and negotiation headers of the upgrade, set by build_websocket_environ.
_WS_DROPPED = ("HTTP_SEC_WEBSOCKET_EXTENSIONS", "HTTP_SEC_WEBSOCKET_PROTOCOL")


def build_websocket_environ(
    scope: Scope,
    *,
    keep_underscore_headers: bool = False,
    max_duplicate_headers: int | None = 100,
) -> Environ:
    """Build the PEP 3333 environ of the upgrade request for an ASGI ``websocket`` scope.

    The same path, query, ``root_path`` and header rules as :func:`build_environ`,
    for the HTTP/1.1 request a WSGI server would have received: ``GET`` with
    ``Upgrade: websocket``, ``Connection: Upgrade``, ``Sec-WebSocket-Version: 13``, the
    client's ``Sec-WebSocket-Key`` (a fresh one when the scope has none, as over
    HTTP/2) and ``Sec-WebSocket-Protocol`` from the scope's ``subprotocols``.
    ``Sec-WebSocket-Extensions`` is removed: the ASGI server negotiated none on the
    app's behalf, so the app must not negotiate compression either. The scheme is
    ``http`` or ``https`` (PEP 3333's ``wsgi.url_scheme``), and ``asgi.scope`` is the
    websocket scope itself. No ``wsgi.input``, no socket: the caller adds them.

    :raises BadRequest: as :func:`build_environ`.
    :raises ASGIProtocolError: when the scope itself is malformed (a server bug).
    """
    scheme = scope.get("scheme") or "ws"
    as_http = dict(scope)
    as_http["method"] = "GET"
    as_http["scheme"] = _WS_SCHEMES.get(scheme, scheme)
    as_http["http_version"] = "1.1"  # what the app speaks on the handed-over socket
    environ = build_environ(
        as_http,
        keep_underscore_headers=keep_underscore_headers,
        max_duplicate_headers=max_duplicate_headers,
    )
    environ["asgi.scope"] = scope
    for key in _WS_DROPPED:
        environ.pop(key, None)
    environ["HTTP_UPGRADE"] = "websocket"
    environ["HTTP_CONNECTION"] = "Upgrade"
    environ["HTTP_SEC_WEBSOCKET_VERSION"] = "13"
    if not _valid_key(environ.get("HTTP_SEC_WEBSOCKET_KEY", "")):
        environ["HTTP_SEC_WEBSOCKET_KEY"] = base64.b64encode(os.urandom(16)).decode("ascii")
    subprotocols = scope.get("subprotocols") or ()
    if subprotocols:
        environ["HTTP_SEC_WEBSOCKET_PROTOCOL"] = ", ".join(subprotocols)
    return environ


def _tokens(value: str) -> list[str]:
    """The comma-separated elements of a header value, trimmed and lower-cased."""
    return [token.strip(" \t").lower() for token in value.split(",")]


def wants_websocket(environ: Environ) -> bool:
    """Whether the request asks to become a WebSocket (RFC 6455 section 4.2.1).

    ``GET`` with ``Upgrade: websocket`` and ``Connection`` naming ``upgrade``:
    :func:`websocket_handshake_problem` then checks the rest of the handshake.
    """
    return (
        environ.get("REQUEST_METHOD") == "GET"
        and "websocket" in _tokens(environ.get("HTTP_UPGRADE", ""))
        and "upgrade" in _tokens(environ.get("HTTP_CONNECTION", ""))
    )


def websocket_handshake_problem(environ: Environ) -> BadRequest | None:
    """What makes an upgrade request (:func:`wants_websocket`) an invalid handshake.

    RFC 6455 section 4.2.1: HTTP/1.1, a ``Host``, a ``Sec-WebSocket-Key`` that is
    16 bytes in base64, and ``Sec-WebSocket-Version: 13``; section 4.2.2 answers an
    unknown version with 426 (the caller adds ``Sec-WebSocket-Version: 13``).
    None when the handshake is valid.
    """
    if environ.get("SERVER_PROTOCOL") != "HTTP/1.1":
        return BadRequest("A WebSocket handshake needs HTTP/1.1.")
    if not environ.get("HTTP_HOST"):
        return BadRequest("The WebSocket handshake has no Host header.")
    key = environ.get("HTTP_SEC_WEBSOCKET_KEY", "").strip(" \t")
    if not _valid_key(key):
        return BadRequest(f"Invalid Sec-WebSocket-Key {key!r}: expected 16 bytes in base64.")
    version = environ.get("HTTP_SEC_WEBSOCKET_VERSION", "").strip(" \t")
    if version != "13":
        return BadRequest(
            f"Unsupported Sec-WebSocket-Version {version!r}; this server speaks 13.", 426
        )
    return None


def build_websocket_scope(environ: Environ, *, extensions: dict[str, Any] | None = None) -> Scope:
    """Build the ASGI ``websocket`` scope for a PEP 3333 environ of an upgrade request.

    The path, headers, client and server come from :func:`build_scope`; ``scheme``
    is ``ws`` or ``wss``, and ``subprotocols`` lists ``Sec-WebSocket-Protocol``.

    :raises BadRequest: as :func:`build_scope` does.
    """
    scope = build_scope(environ, extensions=extensions)
    del scope["method"]  # an http-only key
    scope["type"] = "websocket"
    scope["scheme"] = "wss" if scope["scheme"] == "https" else "ws"
    offered = environ.get("HTTP_SEC_WEBSOCKET_PROTOCOL", "")
    scope["subprotocols"] = [name for name in (p.strip(" \t") for p in offered.split(",")) if name]
    return scope


def _valid_key(key: str) -> bool:
    """Whether ``key`` is a Sec-WebSocket-Key: 16 bytes in base64 (RFC 6455 4.1)."""
    try:
        return len(base64.b64decode(key.encode("ascii"), validate=True)) == 16
    except (ValueError, UnicodeError):
        return False
