"""The pure parts of an ASGI app's WebSockets under ``ASGIToWSGI``: no socket, no loop.

The upgrade check and the ``websocket`` scope (``bridge._environ``), and the phase
check of every message the app sends (``bridge._websocket_a2w_phase``).
"""

from __future__ import annotations

from typing import Any

import pytest

from bridge import ASGIProtocolError, ClientDisconnected
from bridge._websocket_a2w_phase import (
    ACCEPT,
    CLOSE,
    DENY_BODY,
    DENY_START,
    FORBID,
    SEND,
    Phase,
    check,
    sendable_close_code,
)
from bridge._websocket_environ import (
    build_websocket_scope,
    wants_websocket,
    websocket_handshake_problem,
)

from .asgi_apps import make_environ

UPGRADE = {
    "HTTP_HOST": "example.org",
    "HTTP_UPGRADE": "websocket",
    "HTTP_CONNECTION": "keep-alive, Upgrade",
    "HTTP_SEC_WEBSOCKET_KEY": "dGhlIHNhbXBsZSBub25jZQ==",
    "HTTP_SEC_WEBSOCKET_VERSION": "13",
}


# The upgrade request.


@pytest.mark.parametrize(
    ("method", "headers", "wanted"),
    [
        ("GET", UPGRADE, True),
        ("GET", {**UPGRADE, "HTTP_UPGRADE": "WebSocket"}, True),
        ("GET", {**UPGRADE, "HTTP_CONNECTION": "upgrade"}, True),
        ("POST", UPGRADE, False),
        ("GET", {**UPGRADE, "HTTP_UPGRADE": "h2c"}, False),
        ("GET", {**UPGRADE, "HTTP_CONNECTION": "keep-alive"}, False),
        ("GET", {**UPGRADE, "HTTP_CONNECTION": "upgraded"}, False),
    ],
)
def test_wants_websocket(method: str, headers: dict[str, str], wanted: bool) -> None:
    assert wants_websocket(make_environ(method=method, headers=headers)) is wanted


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({}, None),
        ({"HTTP_SEC_WEBSOCKET_VERSION": "8"}, 426),
        ({"HTTP_SEC_WEBSOCKET_VERSION": ""}, 426),
        ({"HTTP_SEC_WEBSOCKET_KEY": ""}, 400),
        ({"HTTP_SEC_WEBSOCKET_KEY": "dGhlIHNhbXBsZQ=="}, 400),  # 10 bytes, not 16
        ({"HTTP_SEC_WEBSOCKET_KEY": "not base64 at all!!!!!!="}, 400),
        ({"HTTP_HOST": ""}, 400),
        ({"SERVER_PROTOCOL": "HTTP/1.0"}, 400),
    ],
)
def test_handshake_problems(change: dict[str, str], status: int | None) -> None:
    problem = websocket_handshake_problem(make_environ(headers={**UPGRADE, **change}))
    assert (problem.status_hint if problem else None) == status


# The websocket scope.


def test_the_scope_shares_build_scope_and_adds_the_websocket_keys() -> None:
    environ = make_environ(
        "/room",
        script_name="/chat",
        query="a=1",
        headers={**UPGRADE, "HTTP_SEC_WEBSOCKET_PROTOCOL": "chat.v2, ,chat.v1 "},
        extra={"wsgi.url_scheme": "https", "REMOTE_PORT": 40001},  # werkzeug: an int
    )
    scope = build_websocket_scope(environ, extensions={"websocket.http.response": {}})
    assert scope["type"] == "websocket"
    assert "method" not in scope
    assert scope["scheme"] == "wss"
    assert (scope["path"], scope["root_path"], scope["query_string"]) == (
        "/chat/room",
        "/chat",
        b"a=1",
    )
    assert scope["subprotocols"] == ["chat.v2", "chat.v1"]
    assert scope["client"] == ("127.0.0.1", 40001)
    assert (b"sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ==") in scope["headers"]
    assert scope["extensions"] == {"websocket.http.response": {}}
    assert scope["wsgi_environ"] is environ


def test_plain_http_scheme_is_ws() -> None:
    assert build_websocket_scope(make_environ(headers=UPGRADE))["scheme"] == "ws"


# The phase check.

OFFERED = ["chat.v1"]


def accept(**keys: Any) -> dict[str, Any]:
    return {"type": "websocket.accept", **keys}


@pytest.mark.parametrize(
    ("phase", "message", "after", "command", "size"),
    [
        (Phase.CONNECTING, accept(), Phase.OPEN, (ACCEPT, None, []), 0),
        (
            Phase.CONNECTING,
            accept(subprotocol="chat.v1", headers=[(b"X-A", b"1")]),
            Phase.OPEN,
            (ACCEPT, "chat.v1", [(b"x-a", b"1")]),
            0,
        ),
        (Phase.CONNECTING, {"type": "websocket.close"}, Phase.CLOSED, (FORBID,), 0),
        (
            Phase.CONNECTING,
            {"type": "websocket.http.response.start", "status": 401, "headers": []},
            Phase.DENYING,
            (DENY_START, 401, []),
            0,
        ),
        (
            Phase.DENYING,
            {"type": "websocket.http.response.body", "body": b"ab", "more_body": True},
            Phase.DENYING,
            (DENY_BODY, b"ab", True),
            2,
        ),
        (
            Phase.DENYING,
            {"type": "websocket.http.response.body"},
            Phase.CLOSED,
            (DENY_BODY, b"", False),
            0,
        ),
        (
            Phase.OPEN,
            {"type": "websocket.send", "text": "hé"},
            Phase.OPEN,
            (SEND, "hé".encode(), True),
            3,
        ),
        (
            Phase.OPEN,
            {"type": "websocket.send", "bytes": bytearray(b"abc"), "text": None},
            Phase.OPEN,
            (SEND, b"abc", False),
            3,
        ),
        (Phase.OPEN, {"type": "websocket.close"}, Phase.CLOSING, (CLOSE, 1000, ""), 0),
        (
            Phase.OPEN,
            {"type": "websocket.close", "code": 4000, "reason": None},
            Phase.CLOSING,
            (CLOSE, 4000, ""),
            0,
        ),
        (
            Phase.OPEN,
            {"type": "websocket.close", "code": 1001, "reason": "bye"},
            Phase.CLOSING,
            (CLOSE, 1001, "bye"),
            0,
        ),
        # Lenient as wsproto (uvicorn, hypercorn): a code that stands for what was not
        # sent goes out as 1000; a reason over 123 bytes is cut at a character boundary.
        *(
            (
                Phase.OPEN,
                {"type": "websocket.close", "code": code},
                Phase.CLOSING,
                (CLOSE, 1000, ""),
                0,
            )
            for code in (1005, 1006, 1015)
        ),
        (
            Phase.OPEN,
            {"type": "websocket.close", "reason": "é" * 62},
            Phase.CLOSING,
            (CLOSE, 1000, "é" * 61),
            0,
        ),
    ],
)
def test_allowed_messages(
    phase: Phase, message: dict[str, Any], after: Phase, command: tuple[Any, ...], size: int
) -> None:
    assert check(phase, message, OFFERED) == (after, command, size)


@pytest.mark.parametrize(
    ("phase", "message", "says"),
    [
        (Phase.CONNECTING, {"type": "websocket.send", "text": "early"}, "websocket.accept"),
        (Phase.CONNECTING, accept(subprotocol="chat.v9"), "offered"),
        (
            Phase.CONNECTING,
            accept(headers=[(b"sec-websocket-protocol", b"chat.v1")]),
            "subprotocol",
        ),
        (Phase.CONNECTING, accept(headers=[(b"x-a", b"1\r\nx-b: 2")]), "Invalid response header"),
        (
            Phase.CONNECTING,
            {"type": "websocket.http.response.start", "status": 101},
            "200 to 599",
        ),
        (Phase.CONNECTING, {"type": "websocket.http.response.body"}, "websocket.accept"),
        (Phase.DENYING, {"type": "websocket.send", "text": "x"}, "http.response.body"),
        (Phase.DENYING, {"type": "websocket.http.response.body", "body": "text"}, "bytes"),
        (Phase.OPEN, accept(), "websocket.send"),
        (Phase.OPEN, {"type": "websocket.send"}, "exactly one"),
        (Phase.OPEN, {"type": "websocket.send", "text": "a", "bytes": b"a"}, "exactly one"),
        (Phase.OPEN, {"type": "websocket.send", "text": b"a"}, "str"),
        (Phase.OPEN, {"type": "websocket.send", "text": "\ud800"}, "UTF-8"),
        (Phase.OPEN, {"type": "websocket.close", "code": 2000}, "close code"),
        (Phase.OPEN, {"type": "websocket.close", "code": "1000"}, "close code"),
        (Phase.OPEN, {"type": "websocket.close", "reason": "\ud800"}, "UTF-8"),
        (Phase.OPEN, {"type": "websocket.close", "reason": 5}, "str"),
        (Phase.OPEN, {"type": "http.response.start"}, "websocket.send"),
        (Phase.OPEN, ["websocket.send"], "dict"),
        (Phase.CLOSING, {"type": "websocket.send", "text": "late"}, "after 'websocket.close'"),
        (Phase.CLOSING, {"type": "websocket.close"}, "after 'websocket.close'"),
    ],
)
def test_refused_messages(phase: Phase, message: Any, says: str) -> None:
    with pytest.raises(ASGIProtocolError) as refused:
        check(phase, message, OFFERED)
    assert says in str(refused.value)


@pytest.mark.parametrize(
    "message", [{"type": "websocket.send", "text": "x"}, {"type": "websocket.close"}]
)
def test_a_closed_connection_raises_an_oserror(message: dict[str, Any]) -> None:
    with pytest.raises(ClientDisconnected) as refused:
        check(Phase.CLOSED, message, OFFERED)
    assert isinstance(refused.value, OSError)


@pytest.mark.parametrize(
    ("code", "sendable"),
    [
        (999, False),
        (1000, True),
        (1003, True),
        (1004, False),
        (1005, False),
        (1006, False),
        (1007, True),
        (1014, True),
        (1015, False),
        (2999, False),
        (3000, True),
        (4999, True),
        (5000, False),
        (True, False),
    ],
)
def test_sendable_close_codes(code: object, sendable: bool) -> None:
    assert sendable_close_code(code) is sendable
