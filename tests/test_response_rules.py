"""The pure rules both adapters follow: no event loop, no thread.

* ``bridge._content_length``: a declared Content-Length, clipped and checked;
* ``bridge._asgi_response``: an ASGI app's response messages, phase by phase;
* ``bridge._wsgi_response``: a WSGI app's ``start_response()`` calls and chunks.
"""

from __future__ import annotations

import sys
from typing import Any

import pytest

from bridge import ASGIProtocolError, ClientDisconnected, WSGIProtocolError
from bridge._asgi_response import Body, Head, PathSend, Phase, fit_to_length, receive_message
from bridge._content_length import DeclaredLength
from bridge._wsgi_response import Phase as WSGIPhase
from bridge._wsgi_response import WSGIResponse

START = {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]}


def body(data: bytes = b"", more: bool = False) -> dict[str, Any]:
    return {"type": "http.response.body", "body": data, "more_body": more}


# DeclaredLength.


def test_chunks_within_the_declared_length_pass_whole() -> None:
    length = DeclaredLength(10)
    assert length.clip(b"hello") == b"hello"
    assert (length.remaining, length.complete, length.dropped) == (5, False, 0)
    assert length.clip(b"world") == b"world"
    assert (length.remaining, length.complete, length.shortfall()) == (0, True, 0)


def test_what_goes_past_the_declared_length_is_clipped_and_counted() -> None:
    length = DeclaredLength(4)
    assert length.clip(b"hello") == b"hell"
    assert length.clip(b"!!") == b""
    assert (length.complete, length.dropped) == (True, 3)


def test_without_a_declared_length_nothing_is_clipped_or_missing() -> None:
    length = DeclaredLength(None)
    assert length.clip(b"x" * 100) == b"x" * 100
    assert (length.remaining, length.complete, length.shortfall(), length.dropped) == (
        None,
        False,
        0,
        0,
    )


@pytest.mark.parametrize(
    ("method", "status", "missing"),
    [("GET", 200, 7), ("HEAD", 200, 0), ("GET", 204, 0), ("GET", 304, 0), ("POST", 500, 7)],
)
def test_a_shortfall_counts_unless_no_body_is_expected(
    method: str, status: int, missing: int
) -> None:
    length = DeclaredLength(10, method=method, status=status)
    length.clip(b"abc")
    assert length.shortfall() == missing


# An ASGI app's response messages.


def test_a_response_moves_through_its_phases() -> None:
    phase, meaning = receive_message(Phase.AWAITING_START, START)
    assert phase is Phase.STARTED
    assert meaning == Head("200 OK", [("content-length", "5")], 200, 5)
    phase, meaning = receive_message(phase, body(b"hel", more=True))
    assert (phase, meaning) == (Phase.STREAMING, Body(b"hel", True))
    phase, meaning = receive_message(phase, body(b"lo"))
    assert (phase, meaning) == (Phase.COMPLETE, Body(b"lo", False))


def test_pathsend_completes_a_started_response() -> None:
    assert receive_message(Phase.STARTED, {"type": "http.response.pathsend", "path": "a.txt"}) == (
        Phase.COMPLETE,
        PathSend("a.txt"),
    )


@pytest.mark.parametrize("phase", list(Phase))
@pytest.mark.parametrize("kind", ["http.response.push", "http.response.early_hint"])
def test_hints_mean_nothing_in_any_phase(phase: Phase, kind: str) -> None:
    assert receive_message(phase, {"type": kind}) == (phase, None)


@pytest.mark.parametrize(
    ("phase", "message", "match"),
    [
        pytest.param(Phase.AWAITING_START, body(), "Expected ASGI message", id="body-first"),
        pytest.param(Phase.STARTED, START, "a second time", id="start-twice"),
        pytest.param(Phase.COMPLETE, body(), "after the response", id="body-after-end"),
        pytest.param(
            Phase.STREAMING,
            {"type": "http.response.pathsend", "path": "/x"},
            "only body message",
            id="pathsend-after-body",
        ),
        pytest.param(Phase.STARTED, {"type": "http.response.trailers"}, "trailers", id="trailers"),
        pytest.param(Phase.STARTED, {"type": "http.request"}, "http.request", id="unknown"),
        pytest.param(Phase.STARTED, body(b"x")["body"], "a dict", id="not-a-dict"),
        pytest.param(Phase.AWAITING_START, {**START, "status": 1000}, "status", id="status-1000"),
        pytest.param(Phase.AWAITING_START, {**START, "status": "200"}, "status", id="status-str"),
        pytest.param(Phase.STARTED, body("text"), "bytes", id="str-body"),  # type: ignore[arg-type]
    ],
)
def test_a_message_out_of_its_place_is_a_protocol_error(
    phase: Phase, message: Any, match: str
) -> None:
    with pytest.raises(ASGIProtocolError, match=match):
        receive_message(phase, message)


@pytest.mark.parametrize("message", [START, body(b"x")])
def test_once_disconnected_a_response_message_raises_client_disconnected(
    message: dict[str, Any],
) -> None:
    with pytest.raises(ClientDisconnected):
        receive_message(Phase.DISCONNECTED, message)


def test_the_message_that_fills_the_declared_length_ends_the_body() -> None:
    length = DeclaredLength(5)
    assert fit_to_length(length, Body(b"hel", True), head_sent=False) == Body(b"hel", True)
    assert fit_to_length(length, Body(b"lo", True), head_sent=True) == Body(b"lo", False)
    # The app's last, empty message means nothing to the thread any more.
    assert fit_to_length(length, Body(b"", False), head_sent=True) is None


def test_a_declared_length_of_zero_still_sends_the_head() -> None:
    length = DeclaredLength(0)
    assert fit_to_length(length, Body(b"", False), head_sent=False) == Body(b"", False)


@pytest.mark.parametrize(
    ("declared", "chunks", "match"),
    [
        pytest.param(3, [Body(b"hello", False)], "more than its declared", id="too-much"),
        pytest.param(10, [Body(b"hello", False)], "5 bytes short", id="too-little"),
        pytest.param(3, [Body(b"abc", True), Body(b"d", False)], "more than", id="past-the-end"),
    ],
)
def test_too_much_or_too_little_body_is_the_apps_error(
    declared: int, chunks: list[Body], match: str
) -> None:
    length = DeclaredLength(declared)
    with pytest.raises(ASGIProtocolError, match=match):
        for index, chunk in enumerate(chunks):
            fit_to_length(length, chunk, head_sent=index > 0)


# A WSGI app's response.


def test_headers_are_held_until_they_go_out() -> None:
    response = WSGIResponse("GET")
    assert [response.phase] == [WSGIPhase.AWAITING_START]
    response.start("200 OK", [("Content-Length", "5")], None)
    assert (response.phase, response.length.remaining) == (WSGIPhase.HEADERS_HELD, 5)
    assert response.send_headers() == (200, [(b"content-length", b"5")])
    assert response.phase is WSGIPhase.HEADERS_SENT


def test_exc_info_replaces_held_headers_and_is_kept() -> None:
    response = WSGIResponse("GET")
    response.start("200 OK", [], None)
    try:
        raise ValueError("handled")
    except ValueError:
        response.start("500 Internal Server Error", [("X-A", "1")], sys.exc_info())
    assert response.status == 500
    assert isinstance(response.handled, ValueError)


def test_exc_info_after_the_headers_went_out_is_raised() -> None:
    response = WSGIResponse("GET")
    response.start("200 OK", [], None)
    response.send_headers()
    try:
        raise ValueError("too late")
    except ValueError:
        with pytest.raises(ValueError, match="too late"):
            response.start("500 Internal Server Error", [], sys.exc_info())


def test_a_second_start_response_without_exc_info_is_an_error() -> None:
    response = WSGIResponse("GET")
    response.start("200 OK", [], None)
    with pytest.raises(WSGIProtocolError, match="second time"):
        response.start("200 OK", [], None)


@pytest.mark.parametrize("data", [b"x", bytearray(b"x"), memoryview(b"x")])
def test_a_chunk_is_bytes(data: Any) -> None:
    response = WSGIResponse("GET")
    response.start("200 OK", [], None)
    assert response.chunk(data) == b"x"


def test_a_text_chunk_or_one_before_start_response_is_an_error() -> None:
    response = WSGIResponse("GET")
    with pytest.raises(WSGIProtocolError, match="without calling start_response"):
        response.chunk(b"x")
    response.start("200 OK", [], None)
    with pytest.raises(WSGIProtocolError, match="encode text"):
        response.chunk("text")


def test_a_whole_body_is_clipped_or_refused_when_short() -> None:
    response = WSGIResponse("GET")
    response.start("200 OK", [("Content-Length", "3")], None)
    assert response.whole([b"ab", b"cd"]) == b"abc"
    assert (response.phase, response.length.dropped) == (WSGIPhase.HEADERS_SENT, 1)
    short = WSGIResponse("GET")
    short.start("200 OK", [("Content-Length", "9")], None)
    with pytest.raises(WSGIProtocolError, match="5 bytes short"):
        short.whole([b"abcd"])
    head = WSGIResponse("HEAD")
    head.start("200 OK", [("Content-Length", "9")], None)
    assert head.whole([]) == b""
