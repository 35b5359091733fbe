"""What cannot cross a WSGI hop at all: tests that differ for these reasons are expected.

Each entry was added after the tests it names were seen failing for that reason,
through ``WSGIToASGI(ASGIToWSGI(app))`` or ``ASGIToWSGI(WSGIToASGI(app))``; every
other difference is a bug to report. An entry names its tests by id (``*`` is the
only wildcard), by what the failure shows, or by what the plugin noted on the test
(see ``compat.matching.Rule``).
"""

from __future__ import annotations

from dataclasses import dataclass

from .matching import Rule
from .results import TestResult


@dataclass(frozen=True)
class KnownDifference:
    """One reason a test cannot pass through the double bridge."""

    category: str
    reason: str
    rule: Rule

    def matches(self, suite: str, result: TestResult) -> bool:
        """True when ``result`` (a differing test of ``suite``) is this difference."""
        return self.rule.matches(suite, result)


def _ids(suite: str, *tests: str) -> tuple[str, ...]:
    return tuple(f"{suite}::{test}" for test in tests)


KNOWN_DIFFERENCES: tuple[KnownDifference, ...] = (
    KnownDifference(
        "websocket-cancel",
        "A WSGI hop cannot carry a cancellation. The TestClient cancels the app the moment "
        "the test leaves its websocket block; behind the bridge the app sees its connection "
        "end (1006) instead, and what it sent or raised just before (its close, an error, "
        "the WebSocketDisconnect it raises on the client's close) crosses a socket and a "
        "thread, so it can arrive after the cancellation. Servers do not cancel an app on a "
        "client's close; they deliver websocket.disconnect and wait.",
        Rule(
            tests=(
                *_ids(
                    "starlette",
                    "tests/test_endpoints.py::test_websocket_endpoint_on_receive_*",
                    "tests/test_endpoints.py::test_websocket_endpoint_on_disconnect[*",
                    "tests/test_websockets.py::test_send_wrong_message_type[*",
                    "tests/test_websockets.py::test_receive_before_accept[*",
                    "tests/test_websockets.py::test_receive_wrong_message_type[*",
                    "tests/test_websockets.py::test_send_json_invalid_mode[*",
                    "tests/test_websockets.py::test_receive_json_invalid_mode[*",
                    "tests/test_websockets.py::test_duplicate_close[*",
                    "tests/test_websockets.py::test_duplicate_disconnect[*",
                    "tests/test_websockets.py::test_application_close[*",
                    "tests/test_websockets.py::test_websocket_concurrency_pattern[*",
                    "tests/test_testclient.py::test_websocket_not_block_on_close[*",
                ),
                *_ids(
                    "fastapi",
                    "tests/test_telemetry/test_websockets.py::test_client_disconnect[*",
                    "tests/test_telemetry/test_websockets.py::test_unexpected_exception[*",
                    "tests/test_dependency_after_yield_websockets.py::test_websocket_dependency_after_yield_broken",
                    "tests/test_tutorial/test_websockets/test_tutorial001.py::test_websocket",
                    "tests/test_tutorial/test_websockets/test_tutorial002.py::test_websocket_with_*",
                ),
            )
        ),
    ),
    KnownDifference(
        "websocket-denial",
        "A close before accepting is a 403 response on the wire (ASGI spec): the ASGI server "
        "in front of the WSGI hop receives that denial response, not a close code, so the "
        "TestClient raises WebSocketDenialResponse where it raised WebSocketDisconnect. A "
        "real client sees the same 403 either way.",
        Rule(failure=r"'WebSocketDenialResponse' object has no attribute 'code'"),
    ),
    KnownDifference(
        "websocket-handshake",
        "The upgrade crosses as a real HTTP/1.1 handshake: the app sees 'upgrade: websocket' "
        "and a valid Sec-WebSocket-Key (the TestClient's scope has neither), and the accept "
        "headers come back with lower-case names.",
        Rule(
            tests=_ids(
                "starlette",
                "tests/test_websockets.py::test_websocket_headers[*",
                "tests/test_routing.py::test_websocket_route_middleware[*",
            )
        ),
    ),
    KnownDifference(
        "testclient-only",
        "The TestClient takes messages no server can put on the wire: a close reason that "
        "is not a str (FastAPI's validation handler sends its error list), refused by the "
        "bridge as wsproto and websockets refuse it under uvicorn.",
        Rule(failure=r"Expected 'reason' to be a str, but got list"),
    ),
    KnownDifference(
        "repeated-header",
        "PEP 3333 holds one environ value per header: a repeated request header reaches "
        "the ASGI app as one comma-joined line.",
        Rule(note="repeated-header"),
    ),
    KnownDifference(
        "underscore-header",
        "'X_Foo' and 'X-Foo' share one environ key, so WSGIToASGI drops request header "
        "names with '_' (as nginx and gunicorn do).",
        Rule(note="underscore-header"),
    ),
    KnownDifference(
        "reason-phrase",
        "ASGI carries the status code only: a custom reason phrase ('404 NOT FOUND') comes "
        "back as the standard one.",
        Rule(failure=r"'(\d{3}) [^'\n]*' == '\1 "),
    ),
    KnownDifference(
        "header-case",
        "ASGI header names are lower-case: a response header's spelling ('Content-Type') "
        "does not survive the hop (HTTP names are case-insensitive).",
        Rule(
            tests=_ids(
                "werkzeug", "tests/middleware/test_shared_data.py::test_shared_data_middleware"
            )
        ),
    ),
    KnownDifference(
        "testclient-debug",
        "'http.response.debug' (the template and context on a response) is the TestClient's "
        "own extension; no server offers it.",
        Rule(failure=r"http\.response\.debug|has no attribute '(template|context)'"),
    ),
    KnownDifference(
        "trailers",
        "WSGI has no response trailers: the bridge does not offer 'http.response.trailers', "
        "and the TestClient's checks of trailer messages never see them.",
        Rule(tests=("starlette::*trailer*",)),
    ),
    KnownDifference(
        "lifespan-in-inner-adapter",
        "A WSGI server has no startup event: the app's lifespan runs in the inner ASGIToWSGI, "
        "started by the first request and stopped by close(), while the TestClient's own "
        "lifespan is answered by WSGIToASGI. Entering the client runs no startup, startup "
        "and shutdown errors are not raised there, and the client's app_state stays empty.",
        Rule(
            tests=(
                *_ids(
                    "starlette",
                    "tests/test_applications.py::test_app_async_cm_lifespan[*",
                    "tests/test_applications.py::test_app_async_gen_lifespan[*",
                    "tests/test_applications.py::test_app_sync_gen_lifespan[*",
                    "tests/test_applications.py::test_middleware_stack_init[*",
                    "tests/test_applications.py::test_middleware_args[*",
                    "tests/test_applications.py::test_middleware_factory[*",
                    "tests/test_routing.py::test_lifespan_state_unsupported[*",
                    "tests/test_routing.py::test_lifespan_state_async_cm[*",
                    "tests/test_routing.py::test_raise_on_startup[*",
                    "tests/test_routing.py::test_raise_on_shutdown[*",
                    "tests/test_testclient.py::test_error_on_startup[*",
                    "tests/test_testclient.py::test_exception_in_middleware[*",
                ),
                *_ids(
                    "fastapi",
                    "tests/test_router_events.py::*",
                    "tests/test_tutorial/test_events/test_tutorial003.py::test_events",
                    "tests/test_tutorial/test_testing/test_tutorial004.py::test_main",
                    "docs_src/app_testing/tutorial004.py::test_read_items",
                    "tests/test_telemetry/test_runtime.py::test_application_lifespan_errors_still_propagate[*",
                ),
            )
        ),
    ),
    KnownDifference(
        "lifespan-always-runs",
        "Like a server in lifespan 'auto', the inner ASGIToWSGI calls the app with a "
        "lifespan scope before its first request, also when the test never enters the "
        "client: an app that records every message it sends records one more, and one that "
        "waits for a request body in lifespan never finishes startup (uvicorn would wait "
        "for ever; the bridge answers 500 after lifespan_timeout).",
        Rule(
            tests=_ids(
                "starlette",
                "tests/middleware/test_gzip.py::test_gzip_streaming_compression_in_thread[*",
                "tests/middleware/test_gzip.py::test_gzip_streaming_response_emits_output_per_chunk[*",
                "tests/middleware/test_body_limit.py::test_starlette_limit_applies_before_user_middleware[*",
            )
        ),
    ),
    KnownDifference(
        "app-loop",
        "The app runs on the inner adapter's event loop thread, not on the TestClient's: the "
        "loop, task and contextvars the test set up are not the app's.",
        Rule(
            tests=_ids(
                "starlette",
                "tests/test_testclient.py::test_use_testclient_as_contextmanager[*",
                "tests/test_concurrency.py::test_accessing_context_from_threaded_sync_endpoint[*",
            )
        ),
    ),
    KnownDifference(
        "headers-with-first-body",
        "PEP 3333 sends the headers with the first body bytes: a streamed response is not "
        "available before its first chunk, and an app that fails before any body answers "
        "500 where an ASGI server had already sent its 200.",
        Rule(
            tests=(
                *_ids(
                    "starlette",
                    "tests/test_testclient.py::test_streaming_response_is_available_before_first_chunk[*",
                    "tests/test_testclient.py::test_streaming_response_skips_empty_and_head_bodies[*",
                ),
                *_ids(
                    "fastapi",
                    "tests/test_dependency_after_yield_streaming.py::test_broken_session_stream_no_raise",
                ),
            )
        ),
    ),
    KnownDifference(
        "buffering",
        "Each adapter buffers up to high_water bytes and joins chunks waiting for a busy "
        "client, where the TestClient hands over one message at a time: back-pressure per "
        "message and chunk boundaries cannot be observed through it (an empty body is one "
        "empty chunk).",
        Rule(
            tests=(
                *_ids(
                    "starlette",
                    "tests/test_testclient.py::test_streaming_response_applies_backpressure[*",
                    "tests/test_testclient.py::test_streaming_response_copies_mutable_chunks[*",
                ),
                *_ids("werkzeug", "tests/test_wrappers.py::test_base_response"),
            )
        ),
    ),
    KnownDifference(
        "close-after-complete",
        "Once the response is complete, a WSGI server's close() is how every request ends, "
        "so closing the client cannot cancel the work the app still does (the TestClient "
        "cancels its task).",
        Rule(
            tests=_ids(
                "starlette",
                "tests/test_testclient.py::test_closing_client_cancels_unclosed_response[*-close]",
                # With "trailers" the TestClient waits for trailers the bridge does not
                # offer: for the bridge the response is complete with its body.
                "tests/test_testclient.py::test_closing_unfinished_response_cancels_application[*-True]",
            )
        ),
    ),
    KnownDifference(
        "content-length-framing",
        "A WSGI server frames the body by CONTENT_LENGTH: a body longer than its "
        "Content-Length header (only an in-process client can send one) is cut to it, and an "
        "invalid Content-Length is refused.",
        Rule(
            tests=_ids(
                "starlette",
                "tests/middleware/test_body_limit.py::test_received_bytes_are_counted_with_unreliable_content_length[*",
            )
        ),
    ),
    KnownDifference(
        "environ-does-not-cross",
        "Only the HTTP request crosses: the environ is built anew on the far side, so keys "
        "the test client sets (werkzeug.debug.preserve_context for Flask's 'with client:', "
        "wsgi.errors, wsgi.version, custom keys) are not the app's.",
        Rule(
            tests=(
                *_ids(
                    "flask",
                    "tests/test_basic.py::test_session_accessed",
                    "tests/test_basic.py::test_session_special_types",
                    "tests/test_testing.py::test_environ_base_default",
                    "tests/test_testing.py::test_environ_base_modified",
                    "tests/test_testing.py::test_redirect_session",
                    "tests/test_testing.py::test_test_client_context_binding",
                    "tests/test_testing.py::test_full_url_request",
                    "tests/test_testing.py::test_json_request_and_response",
                    "tests/test_logging.py::test_wsgi_errors_stream",
                    "tests/test_logging.py::test_log_view_exception",
                ),
                *_ids(
                    "werkzeug",
                    "tests/test_test.py::test_correct_open_invocation_on_redirect",
                    "tests/middleware/test_lint.py::test_lint_middleware_check_environ[wsgi.version-*",
                ),
            )
        ),
    ),
    KnownDifference(
        "input-stream-reused",
        "Werkzeug's client re-sends the request's own input stream on a 307/308 redirect "
        "(and the test reads response.request.form from it), but the bridge has already read "
        "it to carry the body across.",
        Rule(
            tests=(
                *_ids(
                    "werkzeug",
                    "tests/test_test.py::test_follow_redirect_body[*",
                    "tests/test_wrappers.py::test_base_request",
                ),
                *_ids("flask", "tests/test_basic.py::test_routing_redirect_debugging"),
            )
        ),
    ),
    KnownDifference(
        "empty-query",
        "ASGI's query_string cannot tell '/path?' from '/path': a request target ending in "
        "an empty query comes back without its '?'.",
        Rule(tests=_ids("werkzeug", "tests/test_test.py::test_raw_request_uri")),
    ),
    KnownDifference(
        "not-wsgi",
        "The test runs what no WSGI server accepts or sends on purpose (an empty environ, a "
        "str body, a malformed status or header item): each adapter is a server to the "
        "other and refuses it.",
        Rule(
            tests=_ids(
                "werkzeug",
                "tests/test_test.py::test_run_wsgi_apps[*",
                "tests/test_test.py::test_lazy_start_response_empty_response_app[*",
                "tests/test_test.py::test_run_wsgi_app_closing_iterator",
                "tests/test_test.py::test_path_info_script_name_unquoting",
                "tests/test_wrappers.py::test_type_forcing",
                "tests/test_wsgi.py::test_closing_iterator",
                "tests/middleware/test_lint.py::test_lint_middleware_invalid_status",
                "tests/middleware/test_lint.py::test_lint_middleware_http_headers[headers1-*",
                # A PATH_INFO without its slash is taken, as servers do; Lint would warn.
                "tests/middleware/test_lint.py::test_lint_middleware_check_environ[PATH_INFO-*",
            )
        ),
    ),
)


def known_difference(suite: str, result: TestResult) -> KnownDifference | None:
    """The first known difference that explains ``result``, if any."""
    for difference in KNOWN_DIFFERENCES:
        if difference.matches(suite, result):
            return difference
    return None
