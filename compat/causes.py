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
        "bridge/_asgi_to_wsgi.py: respond() returns [body] and the WSGI thread leaves once "
        "the body is complete; nothing waits for the app task (its background tasks)",
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
        "bridge/_asgi_to_wsgi.py: _Exchange._run_app logs the error when _complete is set "
        "and puts nothing in the inbox; respond() already returned a list, so neither the "
        "WSGI server nor WSGIToASGI (nor the TestClient) sees it",
        Rule(failure=rf"DID NOT RAISE|{_AFTER_RESPONSE_LOG}"),
    ),
    Cause(
        "raw-path",
        "raw_path loses percent-encoding (%2F), REQUEST_URI/RAW_URI missing",
        "bridge/_environ.py: build_environ sets neither REQUEST_URI nor RAW_URI from "
        "scope['raw_path'] (+ query string), so build_scope rebuilds raw_path from the "
        "decoded PATH_INFO",
        Rule(failure=r"%2F|KeyError: '(REQUEST_URI|RAW_URI)'"),
    ),
    Cause(
        "shared-extensions",
        "scope['extensions'] shared by every request: one app's change leaks into the next",
        "bridge/_asgi_to_wsgi.py: _EXTENSIONS is one module-level dict handed to every "
        "scope by build_scope(environ, extensions=_EXTENSIONS)",
        Rule(failure=r"Send channel has not been made available"),
    ),
    Cause(
        "push-refused",
        "'http.response.push' / 'http.response.early_hint' refused with ASGIProtocolError",
        "bridge/_asgi_to_wsgi.py: _Exchange._send raises on any message type it does not "
        "know, where a server without the extension should ignore it",
        Rule(failure=r"got 'http\.response\.(push|early_hint)'"),
    ),
    Cause(
        "relative-pathsend",
        "'http.response.pathsend' with a relative path refused",
        "bridge/_asgi_to_wsgi.py: _Exchange._send requires os.path.isabs(path)",
        Rule(failure=r"Expected an absolute 'path'"),
    ),
    Cause(
        "status-range",
        "Status codes 600-999 refused",
        "bridge/_asgi_to_wsgi.py: _Exchange._send accepts 100 <= status <= 599 only",
        Rule(failure=r"Expected an int HTTP status"),
    ),
    Cause(
        "header-container",
        "Response headers not given as a list of 2-tuples refused",
        "bridge/_environ.py: encode_headers requires type(headers) is list and each item a "
        "tuple (decode_headers on the ASGI side takes any pairs)",
        Rule(failure=r"Expected the response headers as a list"),
    ),
    Cause(
        "lifespan-auto",
        "Lifespan 'auto' with an app that never finishes startup: a wait, then only 500s",
        "bridge/_lifespan.py / _asgi_to_wsgi.py _LoopThread._main: an app that does not "
        "speak lifespan but awaits receive() again (a middleware reading the body first) "
        "holds startup until lifespan_timeout; every request is then answered 500",
        Rule(failure=r"Lifespan startup did not finish"),
    ),
    Cause(
        "relative-path-info",
        "A PATH_INFO without a leading '/' is glued to SCRIPT_NAME ('/app' + 'foo')",
        "bridge/_environ.py: build_scope sets path = root_path + path_info with no '/' "
        "between them",
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
