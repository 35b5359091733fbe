"""Probable causes of the unexpected differences, recognized from what a failure shows.

Each cause names the part of ``bridge`` most likely at fault. The first cause whose
rule matches wins; a failure no rule knows is grouped by its exception type. The
rules describe symptoms seen in the suites: when the bridge changes, a failure may
move to "not yet classified", which is the cue to look at it again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .matching import Rule
from .results import TestResult


@dataclass(frozen=True)
class Cause:
    """A probable cause: how it shows, and where in ``bridge`` to look."""

    key: str
    title: str
    where: str
    rule: Rule = field(default_factory=Rule)


_AFTER_RESPONSE_LOG = "Exception in the ASGI app after its response was complete"

CAUSES: tuple[Cause, ...] = (
    Cause(
        "work-after-response",
        "Work after the response (background tasks) not finished when the request returns",
        "bridge/_asgi_to_wsgi_call.py: WSGICall.finish, the iterable's close(), waits for "
        "the app's task (_wait_for_the_app) unless after_response='detach'",
        Rule(
            tests=(
                "*background*",
                "starlette::tests/test_testclient.py::test_closing_response_inside_unrelated_except_*",
            ),
            # Not when the test waited for an exception instead: that is the next cause.
            failure=r"^(?![\s\S]*DID NOT RAISE)",
        ),
    ),
    Cause(
        "exception-after-response",
        "Exception raised by the ASGI app after its response was complete is swallowed",
        "bridge/_asgi_to_wsgi_call.py: WSGICall._wait_for_the_app raises the app's error "
        "from close(); WebSockets: _websocket_a2w_session.py Session.app_error and "
        "_websocket_wsgi_to_asgi.py _Session._conclude",
        Rule(failure=rf"DID NOT RAISE|{_AFTER_RESPONSE_LOG}"),
    ),
    Cause(
        "raw-path",
        "raw_path loses percent-encoding (%2F), REQUEST_URI/RAW_URI missing",
        "bridge/_environ.py: _request_uri sets REQUEST_URI and RAW_URI from "
        "scope['raw_path'], and build_scope takes raw_path back from them",
        Rule(failure=r"%2F|KeyError: '(REQUEST_URI|RAW_URI)'"),
    ),
    Cause(
        "shared-extensions",
        "scope['extensions'] shared by every request: one app's change leaks into the next",
        "bridge/_asgi_to_wsgi_call.py: WSGICall.respond gives each scope extensions of its own",
        Rule(failure=r"Send channel has not been made available"),
    ),
    Cause(
        "push-refused",
        "'http.response.push' / 'http.response.early_hint' refused with ASGIProtocolError",
        "bridge/_asgi_response.py: receive_message drops the HINTS messages",
        Rule(failure=r"got 'http\.response\.(push|early_hint)'"),
    ),
    Cause(
        "relative-pathsend",
        "'http.response.pathsend' with a relative path refused",
        "bridge/_asgi_response.py: receive_message (pathsend); the WSGI thread opens the "
        "file in _asgi_to_wsgi_call.py WSGICall._send_file",
        Rule(failure=r"Expected an absolute 'path'"),
    ),
    Cause(
        "status-range",
        "Status codes 600-999 refused",
        "bridge/_asgi_response.py: _head checks the status",
        Rule(failure=r"Expected an int HTTP status"),
    ),
    Cause(
        "header-container",
        "Response headers not given as a list of 2-tuples refused",
        "bridge/_headers.py: encode_headers and decode_headers take any sequence of pairs",
        Rule(failure=r"Expected the response headers as a list"),
    ),
    Cause(
        "lifespan-auto",
        "Lifespan 'auto' with an app that never finishes startup: a wait, then only 500s",
        "bridge/_lifespan.py: Lifespan.start waits lifespan_timeout for startup; an app "
        "that neither speaks lifespan nor answers it as a request (a middleware reading "
        "the body first) holds it, and every request is then answered 500",
        Rule(failure=r"Lifespan startup did not finish"),
    ),
    Cause(
        "relative-path-info",
        "A PATH_INFO without a leading '/' is glued to SCRIPT_NAME ('/app' + 'foo')",
        "bridge/_environ.py: build_scope puts the '/' back before a PATH_INFO without it",
        Rule(tests=("werkzeug::tests/test_utils.py::test_append_slash_redirect[*",)),
    ),
)


def cause_of(suite: str, result: TestResult) -> Cause:
    """The first cause whose rule matches ``result``, else one named by its exception."""
    for cause in CAUSES:
        if cause.rule.matches(suite, result):
            return cause
    kind = result.exception_type or result.outcome
    return Cause(key=f"other:{kind}", title=f"Not yet classified ({kind})", where="?")
