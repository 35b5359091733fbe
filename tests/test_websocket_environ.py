"""``build_websocket_environ``: the upgrade request's environ, from plain data."""

from __future__ import annotations

import base64

import pytest

from bridge import BadRequest
from bridge._environ import build_environ
from bridge._websocket_environ import build_websocket_environ
from bridge.types import Scope

from .websocket_harness import websocket_scope


def test_the_upgrade_request_of_a_websocket_scope() -> None:
    scope = websocket_scope("/app/chat/room", root_path="/app", subprotocols=("a", "b"))
    environ = build_websocket_environ(scope)
    assert environ["REQUEST_METHOD"] == "GET"
    assert environ["SCRIPT_NAME"] == "/app"
    assert environ["PATH_INFO"] == "/chat/room"
    assert environ["QUERY_STRING"] == "a=1"
    assert environ["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert environ["wsgi.url_scheme"] == "http"
    assert environ["HTTP_UPGRADE"] == "websocket"
    assert environ["HTTP_CONNECTION"] == "Upgrade"
    assert environ["HTTP_SEC_WEBSOCKET_VERSION"] == "13"
    assert environ["HTTP_SEC_WEBSOCKET_PROTOCOL"] == "a, b"
    assert environ["HTTP_HOST"] == "testserver"
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"]) == ("127.0.0.1", "8000")
    assert environ["asgi.scope"] is scope
    assert "wsgi.input" not in environ


def test_the_client_key_is_kept_and_extensions_are_dropped() -> None:
    scope = websocket_scope()
    key = dict(scope["headers"])[b"sec-websocket-key"].decode()
    environ = build_websocket_environ(scope)
    assert environ["HTTP_SEC_WEBSOCKET_KEY"] == key
    assert "HTTP_SEC_WEBSOCKET_EXTENSIONS" not in environ


@pytest.mark.parametrize("key", [None, b"", b"not base64!", base64.b64encode(b"short")])
def test_a_missing_or_invalid_key_is_replaced(key: bytes | None) -> None:
    scope = websocket_scope()
    scope["headers"] = [(n, v) for n, v in scope["headers"] if n != b"sec-websocket-key"]
    if key is not None:
        scope["headers"].append((b"sec-websocket-key", key))
    environ = build_websocket_environ(scope)
    assert len(base64.b64decode(environ["HTTP_SEC_WEBSOCKET_KEY"], validate=True)) == 16


def test_over_http2_the_upgrade_headers_are_made_up() -> None:
    scope: Scope = {
        "type": "websocket",
        "http_version": "2",
        "scheme": "wss",
        "path": "/ws",
        "query_string": b"",
        "headers": [(b"host", b"example.org")],
        "subprotocols": [],
    }
    environ = build_websocket_environ(scope)
    assert environ["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert environ["wsgi.url_scheme"] == "https"
    assert environ["SERVER_PORT"] == "443"
    assert environ["HTTP_UPGRADE"] == "websocket"
    assert "HTTP_SEC_WEBSOCKET_PROTOCOL" not in environ
    assert len(base64.b64decode(environ["HTTP_SEC_WEBSOCKET_KEY"])) == 16


def test_the_http_header_rules_apply() -> None:
    scope = websocket_scope(
        headers=((b"x_forwarded_for", b"evil"), (b"cookie", b"a=1"), (b"cookie", b"b=2"))
    )
    environ = build_websocket_environ(scope)
    assert "HTTP_X_FORWARDED_FOR" not in environ
    assert environ["HTTP_COOKIE"] == "a=1; b=2"
    assert "HTTP_X_FORWARDED_FOR" in build_websocket_environ(scope, keep_underscore_headers=True)
    with pytest.raises(BadRequest):
        build_websocket_environ(scope, max_duplicate_headers=1)
    as_http = build_environ({**scope, "type": "http", "method": "GET", "scheme": "http"})
    shared = {key for key in as_http if key.startswith(("HTTP_", "PATH", "SCRIPT", "QUERY"))}
    ws = build_websocket_environ(scope)
    assert {key: ws[key] for key in shared - {"HTTP_SEC_WEBSOCKET_EXTENSIONS"}} == {
        key: as_http[key] for key in shared - {"HTTP_SEC_WEBSOCKET_EXTENSIONS"}
    }
