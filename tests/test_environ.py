"""Pure translation rules of ``bridge._environ``: no event loop, no threads."""

from __future__ import annotations

import logging
from typing import Any
from wsgiref.validate import check_environ  # type: ignore[attr-defined]  # not in typeshed

import pytest

from bridge import ASGIProtocolError, BadRequest, WSGIProtocolError
from bridge._environ import build_environ, build_scope, content_length
from bridge._headers import decode_headers, encode_headers, parse_status, status_line
from bridge._wsgi_input import WSGIInput
from bridge.types import Environ, Scope

from .wsgi_apps import http_scope

Headers = list[tuple[bytes, bytes]]


def cgi(environ: Environ) -> dict[str, str]:
    """The CGI part of an environ: every key without a dot."""
    return {key: value for key, value in environ.items() if "." not in key}


def no_body() -> tuple[bytes, bool]:
    raise AssertionError("nothing should read this body")


# build_environ: the whole environ at once.


def test_every_cgi_variable_and_wsgi_key() -> None:
    scope = http_scope(
        "POST",
        "/app/items",
        root_path="/app",
        query_string=b"a=1&b=2",
        headers=[
            (b"host", b"example.org"),
            (b"content-type", b"application/json"),
            (b"content-length", b"2"),
            (b"x-custom", b"yes"),
        ],
        scheme="https",
        server=("example.org", 8443),
        client=("10.0.0.1", 51515),
    )
    environ = build_environ(scope)
    assert cgi(environ) == {
        "REQUEST_METHOD": "POST",
        "SCRIPT_NAME": "/app",
        "PATH_INFO": "/items",
        "QUERY_STRING": "a=1&b=2",
        "REQUEST_URI": "/app/items?a=1&b=2",
        "RAW_URI": "/app/items?a=1&b=2",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": "2",
        "SERVER_NAME": "example.org",
        "SERVER_PORT": "8443",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "10.0.0.1",
        "REMOTE_PORT": "51515",
        "HTTP_HOST": "example.org",
        "HTTP_X_CUSTOM": "yes",
    }
    assert environ["wsgi.version"] == (1, 0)
    assert environ["wsgi.url_scheme"] == "https"
    assert environ["wsgi.multithread"] is True
    assert environ["wsgi.multiprocess"] is True
    assert environ["wsgi.run_once"] is False
    assert environ["wsgi.input_terminated"] is True
    assert environ["asgi.scope"] is scope
    assert "wsgi.input" not in environ  # the adapter adds it
    check_environ({**environ, "wsgi.input": WSGIInput(no_body, more=False)})


@pytest.mark.parametrize(
    "scope",
    [
        pytest.param(http_scope(), id="minimal"),
        pytest.param(
            http_scope(
                "PUT",
                "/ç/é/😀",
                root_path="/ç",
                query_string=b"q=\xc3\xa9",
                headers=[(b"x-latin", b"caf\xe9"), (b"host", b"h\xe9st:8080")],
                server=None,
                client=None,
            ),
            id="non-ascii-everywhere",
        ),
        pytest.param(
            {"type": "http", "method": "GET", "path": "/", "headers": []},
            id="only-required-scope-keys",
        ),
    ],
)
def test_environ_is_pep3333_native_strings(scope: Scope) -> None:
    environ = build_environ(scope)
    for key, value in cgi(environ).items():
        assert type(value) is str, key
        value.encode("latin-1")  # "Unicode Issues": only latin-1 code points
    assert type(environ["SERVER_PORT"]) is str
    check_environ({**environ, "wsgi.input": WSGIInput(no_body, more=False)})


# SCRIPT_NAME and PATH_INFO.


@pytest.mark.parametrize(
    ("root_path", "path", "script_name", "path_info"),
    [
        pytest.param("", "/items", "", "/items", id="no-root"),
        pytest.param("", "/", "", "/", id="no-root-slash"),
        pytest.param("/app", "/app/items", "/app", "/items", id="root-stripped"),
        pytest.param("/app", "/app", "/app", "", id="root-is-whole-path"),
        pytest.param("/app", "/app/", "/app", "/", id="root-with-slash"),
        pytest.param("/app/", "/app/items", "/app", "/items", id="root-trailing-slash-dropped"),
        pytest.param("/", "/items", "", "/items", id="root-slash-is-empty"),
        pytest.param("/app", "/application", "/app", "/application", id="not-segment-boundary"),
        pytest.param("/app", "/other/app", "/app", "/other/app", id="root-not-a-prefix"),
        pytest.param("/a/b", "/a/b/c/d", "/a/b", "/c/d", id="nested-root"),
        pytest.param("", "/café", "", "/caf\xc3\xa9", id="utf8-as-latin1"),
        pytest.param("", "/😀", "", "/\xf0\x9f\x98\x80", id="emoji-as-latin1"),
        pytest.param("/ç", "/ç/é", "/\xc3\xa7", "/\xc3\xa9", id="utf8-root"),
        pytest.param("", "/a b/%41", "", "/a b/%41", id="already-unquoted"),
    ],
)
def test_script_name_and_path_info(
    root_path: str, path: str, script_name: str, path_info: str
) -> None:
    environ = build_environ(http_scope(path=path, root_path=root_path))
    assert (environ["SCRIPT_NAME"], environ["PATH_INFO"]) == (script_name, path_info)


@pytest.mark.parametrize(
    ("root_path", "path", "raw_path", "path_info"),
    [
        pytest.param("", "/caf\ufffd", b"/caf%E9", "/caf\xe9", id="latin1-byte"),
        pytest.param("", "/\ufffd", b"/%FF?x=1", "/\xff", id="raw-path-with-query"),
        pytest.param("/app", "/app/\ufffd", b"/app/%FF", "/\xff", id="root-stripped-from-raw"),
        pytest.param("", "/\ufffd", b"/%EF%BF%BD", "/\xef\xbf\xbd", id="real-replacement-char"),
        pytest.param("", "/\ufffd", None, "/\xef\xbf\xbd", id="no-raw-path"),
    ],
)
def test_undecodable_path_bytes_come_from_raw_path(
    root_path: str, path: str, raw_path: bytes | None, path_info: str
) -> None:
    """Servers decode paths as UTF-8 with replacement; the raw bytes are still there."""
    scope = http_scope(path=path, root_path=root_path, raw_path=raw_path)
    assert build_environ(scope)["PATH_INFO"] == path_info


def test_surrogate_escaped_path_is_its_bytes() -> None:
    assert build_environ(http_scope(path="/\udcff"))["PATH_INFO"] == "/\xff"


def test_path_that_cannot_be_encoded_is_a_bad_request() -> None:
    with pytest.raises(BadRequest) as caught:
        build_environ(http_scope(path="/\ud800"))
    assert caught.value.status_hint == 400


# QUERY_STRING, SERVER_PROTOCOL, url_scheme.


@pytest.mark.parametrize(
    ("query_string", "expected"),
    [
        pytest.param(b"", "", id="empty"),
        pytest.param(b"a=1&b=2", "a=1&b=2", id="plain"),
        pytest.param(b"q=%20%C3%A9&x", "q=%20%C3%A9&x", id="percent-encoded-kept"),
        pytest.param(b"q=\xc3\xa9", "q=\xc3\xa9", id="raw-utf8-as-latin1"),
        pytest.param(None, "", id="missing"),
    ],
)
def test_query_string(query_string: bytes | None, expected: str) -> None:
    scope = http_scope(query_string=b"")
    if query_string is None:
        del scope["query_string"]
    else:
        scope["query_string"] = query_string
    assert build_environ(scope)["QUERY_STRING"] == expected


@pytest.mark.parametrize(
    ("http_version", "protocol"),
    [
        pytest.param("1.0", "HTTP/1.0", id="1.0"),
        pytest.param("1.1", "HTTP/1.1", id="1.1"),
        pytest.param("2", "HTTP/2", id="2"),
        pytest.param(None, "HTTP/1.1", id="missing"),
    ],
)
def test_server_protocol(http_version: str | None, protocol: str) -> None:
    scope = http_scope()
    if http_version is None:
        del scope["http_version"]
    else:
        scope["http_version"] = http_version
    assert build_environ(scope)["SERVER_PROTOCOL"] == protocol


@pytest.mark.parametrize(
    ("scheme", "url_scheme"),
    [
        pytest.param("http", "http", id="http"),
        pytest.param("https", "https", id="https"),
        pytest.param(None, "http", id="missing"),
    ],
)
def test_url_scheme(scheme: str | None, url_scheme: str) -> None:
    scope = http_scope()
    if scheme is None:
        del scope["scheme"]
    else:
        scope["scheme"] = scheme
    assert build_environ(scope)["wsgi.url_scheme"] == url_scheme


# SERVER_NAME, SERVER_PORT, REMOTE_ADDR, REMOTE_PORT.


@pytest.mark.parametrize(
    ("server", "host", "scheme", "name", "port"),
    [
        pytest.param(("example.org", 8080), b"other:1", "http", "example.org", "8080", id="server"),
        pytest.param(None, b"host.test:81", "http", "host.test", "81", id="host-with-port"),
        pytest.param(None, b"host.test", "http", "host.test", "80", id="host-default-http"),
        pytest.param(None, b"host.test", "https", "host.test", "443", id="host-default-https"),
        pytest.param(None, None, "http", "localhost", "80", id="no-server-no-host"),
        pytest.param(("/tmp/s.sock", None), b"h:5", "http", "h", "5", id="unix-socket-uses-host"),
        pytest.param(None, b"[::1]:8000", "http", "[::1]", "8000", id="ipv6-host-with-port"),
        pytest.param(None, b"[::1]", "https", "[::1]", "443", id="ipv6-host"),
        pytest.param(None, b"host.test:x", "http", "host.test:x", "80", id="host-bad-port"),
    ],
)
def test_server_name_and_port(
    server: tuple[str, int | None] | None, host: bytes | None, scheme: str, name: str, port: str
) -> None:
    headers = [] if host is None else [(b"host", host)]
    environ = build_environ(http_scope(headers=headers, server=server, scheme=scheme))
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"]) == (name, port)


@pytest.mark.parametrize(
    ("client", "expected"),
    [
        pytest.param(("10.1.2.3", 40000), {"REMOTE_ADDR": "10.1.2.3", "REMOTE_PORT": "40000"}),
        pytest.param(("::1", 1), {"REMOTE_ADDR": "::1", "REMOTE_PORT": "1"}, id="ipv6"),
        pytest.param(None, {}, id="unknown-client"),
    ],
)
def test_remote_addr_and_port(client: tuple[str, int] | None, expected: dict[str, str]) -> None:
    environ = build_environ(http_scope(client=client))
    remote = {key: environ[key] for key in ("REMOTE_ADDR", "REMOTE_PORT") if key in environ}
    assert remote == expected


# Request headers.


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param(
            [(b"content-type", b"text/csv"), (b"content-length", b"12")],
            {"CONTENT_TYPE": "text/csv", "CONTENT_LENGTH": "12"},
            id="content-headers-have-no-http-prefix",
        ),
        pytest.param([], {}, id="no-content-headers"),
        pytest.param(
            [(b"accept", b"text/html"), (b"accept", b"application/json")],
            {"HTTP_ACCEPT": "text/html,application/json"},
            id="repeated-joined-with-comma",
        ),
        pytest.param(
            [(b"x-forwarded-for", b"1"), (b"x-forwarded-for", b"2"), (b"x-forwarded-for", b"3")],
            {"HTTP_X_FORWARDED_FOR": "1,2,3"},
            id="repeated-three-times-in-order",
        ),
        pytest.param(
            [(b"cookie", b"a=1"), (b"cookie", b"b=2")],
            {"HTTP_COOKIE": "a=1; b=2"},
            id="cookies-joined-with-semicolon",
        ),
        pytest.param(
            [(b"cookie", b"a=1; b=2")], {"HTTP_COOKIE": "a=1; b=2"}, id="single-cookie-kept"
        ),
        pytest.param(
            [(b"x-latin", b"caf\xe9"), (b"x-empty", b"")],
            {"HTTP_X_LATIN": "caf\xe9", "HTTP_X_EMPTY": ""},
            id="values-latin1-decoded",
        ),
        pytest.param(
            [(b"x-forwarded-for", b"real"), (b"x_forwarded_for", b"spoofed")],
            {"HTTP_X_FORWARDED_FOR": "real"},
            id="underscore-header-dropped",
        ),
        pytest.param([(b"x_only_underscores", b"1")], {}, id="underscore-only-header-dropped"),
    ],
)
def test_request_headers(headers: Headers, expected: dict[str, str]) -> None:
    environ = build_environ(http_scope(headers=headers))
    found = {
        key: value for key, value in cgi(environ).items() if key.startswith(("HTTP_", "CONTENT_"))
    }
    assert found == expected


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param(
            [(b"x-forwarded-for", b"real"), (b"x_forwarded_for", b"other")],
            {"HTTP_X_FORWARDED_FOR": "real,other"},
            id="merged-with-dashed-header",
        ),
        pytest.param([(b"x_custom", b"1")], {"HTTP_X_CUSTOM": "1"}, id="kept"),
        pytest.param(
            [(b"content_length", b"999"), (b"content_type", b"text/evil")],
            {},
            id="never-poses-as-content-headers",
        ),
    ],
)
def test_underscore_headers_kept_on_request(headers: Headers, expected: dict[str, str]) -> None:
    environ = build_environ(http_scope(headers=headers), keep_underscore_headers=True)
    found = {
        key: value for key, value in cgi(environ).items() if key.startswith(("HTTP_", "CONTENT_"))
    }
    assert found == expected
    check_environ({**environ, "wsgi.input": WSGIInput(no_body, more=False)})


def test_underscore_headers_follow_each_adapters_setting_in_any_order() -> None:
    # Header names are cached across requests: one adapter keeping "x_token" must not
    # make another adapter, which drops it, keep it (or the other way round).
    headers: Headers = [(b"x_token", b"1"), (b"content_length", b"9"), (b"x-seen", b"2")]
    for keep in (True, False, True, False):
        environ = build_environ(http_scope(headers=headers), keep_underscore_headers=keep)
        assert environ.get("HTTP_X_TOKEN") == ("1" if keep else None)
        assert "HTTP_CONTENT_LENGTH" not in environ
        assert "CONTENT_LENGTH" not in environ
        assert environ["HTTP_X_SEEN"] == "2"


@pytest.mark.parametrize("limit", [1, 2, 5])
def test_duplicate_header_limit(limit: int) -> None:
    """``max_duplicate_headers=n`` allows a header n times and refuses it n + 1 times."""
    allowed = [(b"x-dup", b"v")] * limit + [(b"x-other", b"v")] * limit
    environ = build_environ(http_scope(headers=allowed), max_duplicate_headers=limit)
    assert environ["HTTP_X_DUP"] == ",".join(["v"] * limit)
    with pytest.raises(BadRequest, match="'x-dup' is repeated more than") as caught:
        build_environ(http_scope(headers=[*allowed, (b"x-dup", b"v")]), max_duplicate_headers=limit)
    assert caught.value.status_hint == 400


def test_duplicate_header_default_limit_is_100() -> None:
    build_environ(http_scope(headers=[(b"cookie", b"a=1")] * 100))
    with pytest.raises(BadRequest):
        build_environ(http_scope(headers=[(b"cookie", b"a=1")] * 101))


# wsgi.errors.


def test_wsgi_errors_lines_go_to_logging(caplog: pytest.LogCaptureFixture) -> None:
    errors: Any = build_environ(http_scope())["wsgi.errors"]
    with caplog.at_level(logging.DEBUG, logger="bridge.wsgi"):
        assert errors.write("line one\nline two\npart") == len("line one\nline two\npart")
        assert [r.getMessage() for r in caplog.records] == ["line one", "line two"]
        errors.write("ial")
        errors.flush()
        errors.writelines(["a\n", "b\n"])
        errors.flush()  # nothing pending: logs nothing
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [
        ("bridge.wsgi", logging.ERROR, "line one"),
        ("bridge.wsgi", logging.ERROR, "line two"),
        ("bridge.wsgi", logging.ERROR, "partial"),
        ("bridge.wsgi", logging.ERROR, "a"),
        ("bridge.wsgi", logging.ERROR, "b"),
    ]


def test_each_environ_has_its_own_error_stream() -> None:
    assert (
        build_environ(http_scope())["wsgi.errors"] is not build_environ(http_scope())["wsgi.errors"]
    )


# parse_status.


@pytest.mark.parametrize(
    ("status", "code"),
    [
        pytest.param("200 OK", 200, id="200"),
        pytest.param("404 Not Found", 404, id="404"),
        pytest.param("599 Whatever You Like", 599, id="custom-reason"),
        pytest.param("204 ", 204, id="empty-reason"),
        pytest.param("200 caf\xe9", 200, id="latin1-reason"),
    ],
)
def test_parse_status(status: str, code: int) -> None:
    assert parse_status(status) == code


@pytest.mark.parametrize(
    "status",
    [
        pytest.param("200", id="no-reason"),
        pytest.param("OK", id="no-code"),
        pytest.param("OK 200", id="reversed"),
        pytest.param("2000 OK", id="four-digits"),
        pytest.param("20 OK", id="two-digits"),
        pytest.param("099 Low", id="leading-zero"),
        pytest.param(" 200 OK", id="leading-space"),
        pytest.param("200\tOK", id="tab"),
        pytest.param("200 OK\r\nX-Injected: 1", id="crlf"),
        pytest.param("200 OK\n", id="lf"),
        pytest.param("200 O\x00K", id="nul"),
        pytest.param(b"200 OK", id="bytes"),
        pytest.param(200, id="int"),
        pytest.param(None, id="none"),
    ],
)
def test_parse_status_refuses(status: object) -> None:
    with pytest.raises(WSGIProtocolError):
        parse_status(status)


# encode_headers.


@pytest.mark.parametrize(
    ("headers", "encoded"),
    [
        pytest.param([], [], id="none"),
        pytest.param(
            [("Content-Type", "text/plain"), ("X-A", "1")],
            [(b"content-type", b"text/plain"), (b"x-a", b"1")],
            id="names-lower-cased",
        ),
        pytest.param(
            [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")],
            [(b"set-cookie", b"a=1"), (b"set-cookie", b"b=2")],
            id="repeats-kept-in-order",
        ),
        pytest.param([("X-A", " \tpadded\t ")], [(b"x-a", b"padded")], id="value-stripped"),
        pytest.param([("X-A", "caf\xe9")], [(b"x-a", b"caf\xe9")], id="latin1-value"),
        pytest.param([("X-A", "")], [(b"x-a", b"")], id="empty-value"),
        pytest.param([("X-!#$%&'*+.^_`|~", "1")], [(b"x-!#$%&'*+.^_`|~", b"1")], id="token"),
    ],
)
def test_encode_headers(headers: list[tuple[str, str]], encoded: Headers) -> None:
    assert encode_headers(headers) == encoded


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"X-A": "1"}, id="dict"),
        pytest.param([{"X-A": "1"}], id="dict-pair"),
        pytest.param([["X-A", "1", "2"]], id="three-list"),
        pytest.param([("X-A", "1", "2")], id="three-tuple"),
        pytest.param([("X-A",)], id="one-tuple"),
        pytest.param([(b"X-A", "1")], id="bytes-name"),
        pytest.param([("X-A", b"1")], id="bytes-value"),
        pytest.param([("X-A", 1)], id="int-value"),
        pytest.param([("X-A", "1\r\nX-Injected: 1")], id="crlf-in-value"),
        pytest.param([("X-A", "1\n")], id="lf-in-value"),
        pytest.param([("X-A", "1\r")], id="cr-in-value"),
        pytest.param([("X-A", "1\x00")], id="nul-in-value"),
        pytest.param([("X-A", "\u20ac")], id="non-latin1-value"),
        pytest.param([("X-\u20ac", "1")], id="non-latin1-name"),
        pytest.param([("X-\xe9", "1")], id="latin1-but-not-token-name"),
        pytest.param([("X A", "1")], id="space-in-name"),
        pytest.param([("X-A:", "1")], id="colon-in-name"),
        pytest.param([("X-A\r\n", "1")], id="crlf-in-name"),
        pytest.param([("", "1")], id="empty-name"),
    ],
)
def test_encode_headers_refuses(headers: object) -> None:
    with pytest.raises(WSGIProtocolError):
        encode_headers(headers)
    with pytest.raises(WSGIProtocolError):
        encode_headers(headers)  # the same again: nothing refused is remembered


def test_encode_headers_remembers_only_short_descriptive_pairs() -> None:
    from bridge import _headers

    headers = [
        ("Content-Type", "text/html"),
        ("Set-Cookie", "session=secret"),
        ("Location", "/next?token=secret"),
        ("Cache-Control", "x" * 65),
    ]
    first = encode_headers(headers)
    assert encode_headers(headers) == first
    assert ("Content-Type", "text/html") in _headers._ENCODED
    # No cookie, URL or long value stays in the process after its response.
    assert not any("secret" in value or len(value) > 64 for _name, value in _headers._ENCODED)


def test_the_encoded_headers_cache_starts_over_when_full(monkeypatch: pytest.MonkeyPatch) -> None:
    from bridge import _headers

    monkeypatch.setattr(_headers, "_ENCODED", {})
    for size in range(_headers._CACHE_MAX + 10):
        assert encode_headers([("Content-Length", str(size))]) == [
            (b"content-length", str(size).encode())
        ]
        assert len(_headers._ENCODED) <= _headers._CACHE_MAX
    assert len(_headers._ENCODED) == 10


# build_scope (the other direction), content_length, status_line, decode_headers.


def wsgi_environ(**overrides: Any) -> Environ:
    environ: Environ = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/",
        "QUERY_STRING": "",
        "SERVER_NAME": "example.org",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
    }
    environ.update(overrides)
    return environ


def test_build_scope() -> None:
    environ = wsgi_environ(
        REQUEST_METHOD="post",
        SCRIPT_NAME="/app",
        PATH_INFO="/caf\xc3\xa9",
        QUERY_STRING="a=1&b=%20",
        SERVER_PORT="8443",
        SERVER_PROTOCOL="HTTP/1.0",
        REMOTE_ADDR="10.0.0.1",
        REMOTE_PORT="5000",
        CONTENT_TYPE="text/plain",
        CONTENT_LENGTH="3",
        HTTP_X_A="caf\xe9",
        HTTP_ACCEPT_ENCODING="gzip",
        **{"wsgi.url_scheme": "https"},
    )
    scope = build_scope(environ, extensions={"x": {}})
    assert scope == {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.0",
        "method": "POST",
        "scheme": "https",
        "path": "/app/café",
        "raw_path": b"/app/caf%C3%A9",  # synthesised: percent-encoded, as clients send it
        "query_string": b"a=1&b=%20",
        "root_path": "/app",
        "headers": [
            (b"content-type", b"text/plain"),
            (b"content-length", b"3"),
            (b"x-a", b"caf\xe9"),
            (b"accept-encoding", b"gzip"),
        ],
        "client": ("10.0.0.1", 5000),
        "server": ("example.org", 8443),
        "extensions": {"x": {}},
        "wsgi_environ": environ,
    }
    assert scope["wsgi_environ"] is environ


@pytest.mark.parametrize(
    ("protocol", "http_version"),
    [
        pytest.param("HTTP/1.0", "1.0"),
        pytest.param("HTTP/1.1", "1.1"),
        pytest.param("HTTP/2", "2"),
        pytest.param("HTTP/2.0", "2"),
        pytest.param("HTTP/3", "3"),
        pytest.param("nonsense", "1.1"),
    ],
)
def test_build_scope_http_version(protocol: str, http_version: str) -> None:
    assert build_scope(wsgi_environ(SERVER_PROTOCOL=protocol))["http_version"] == http_version


@pytest.mark.parametrize(
    ("extra", "raw_path"),
    [
        pytest.param({"RAW_URI": "/a%20b?x=1"}, b"/a%20b", id="raw-uri"),
        pytest.param({"REQUEST_URI": "/c%2Fd"}, b"/c%2Fd", id="request-uri"),
        pytest.param({"RAW_URI": "http://host/p/q?x"}, b"/p/q", id="absolute-form"),
        pytest.param({"RAW_URI": "https://host"}, b"/", id="absolute-form-no-path"),
        pytest.param({"SCRIPT_NAME": "/s", "PATH_INFO": "/p"}, b"/s/p", id="from-environ"),
    ],
)
def test_build_scope_raw_path(extra: dict[str, str], raw_path: bytes) -> None:
    assert build_scope(wsgi_environ(**extra))["raw_path"] == raw_path


@pytest.mark.parametrize(
    ("extra", "client", "server"),
    [
        pytest.param({}, None, ("example.org", 80), id="no-remote"),
        pytest.param({"REMOTE_ADDR": "1.2.3.4"}, ("1.2.3.4", 0), ("example.org", 80), id="no-port"),
        pytest.param({"SERVER_PORT": "http"}, None, None, id="bad-server-port"),
    ],
)
def test_build_scope_client_and_server(
    extra: dict[str, str], client: tuple[str, int] | None, server: tuple[str, int] | None
) -> None:
    scope = build_scope(wsgi_environ(**extra))
    assert (scope["client"], scope["server"]) == (client, server)


def test_build_scope_skips_empty_content_headers_and_replaces_bad_utf8() -> None:
    environ = wsgi_environ(CONTENT_TYPE="", CONTENT_LENGTH="", HTTP_X_EMPTY="", PATH_INFO="/\xff")
    for _ in range(2):  # the second time from the cache of header names
        scope = build_scope(environ)
        assert scope["headers"] == [(b"x-empty", b"")]  # an empty header field is kept
    assert scope["path"] == "/\ufffd"
    assert scope["extensions"] == {}


@pytest.mark.parametrize(
    "environ",
    [
        pytest.param({"PATH_INFO": "/"}, id="no-method"),
        pytest.param(wsgi_environ(PATH_INFO=7), id="int-path"),
        pytest.param(wsgi_environ(HTTP_X_A="\u20ac"), id="non-latin1-header"),
        pytest.param(wsgi_environ(QUERY_STRING=None), id="none-query"),
    ],
)
def test_build_scope_refuses_sloppy_environ(environ: Environ) -> None:
    with pytest.raises(BadRequest) as caught:
        build_scope(environ)
    assert caught.value.status_hint == 400


def test_scope_environ_round_trip() -> None:
    scope = http_scope(
        "PATCH",
        "/app/ç/x",
        root_path="/app",
        query_string=b"a=%C3%A9",
        headers=[(b"content-type", b"text/plain"), (b"x-a", b"1")],
    )
    back = build_scope(build_environ(scope))
    for key in ("method", "path", "root_path", "query_string", "headers", "http_version"):
        assert back[key] == scope[key], key


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(None, None, id="absent"),
        pytest.param("", None, id="empty"),
        pytest.param("0", 0, id="zero"),
        pytest.param("1234", 1234, id="number"),
    ],
)
def test_content_length(value: str | None, expected: int | None) -> None:
    environ = {} if value is None else {"CONTENT_LENGTH": value}
    assert content_length(environ) == expected


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("-1", id="negative"),
        pytest.param("1.5", id="fraction"),
        pytest.param(" 1", id="space"),
        pytest.param("\uff11\uff12", id="fullwidth-digits"),
        pytest.param(12, id="int"),
    ],
)
def test_content_length_refuses(value: object) -> None:
    with pytest.raises(BadRequest):
        content_length({"CONTENT_LENGTH": value})


@pytest.mark.parametrize(
    ("code", "line"),
    [
        pytest.param(200, "200 OK"),
        pytest.param(404, "404 Not Found"),
        pytest.param(599, "599 "),
    ],
)
def test_status_line(code: int, line: str) -> None:
    assert status_line(code) == line
    assert parse_status(status_line(code)) == code


def test_decode_headers() -> None:
    assert decode_headers([(b"x-a", b"caf\xe9"), (b"set-cookie", b"a=1")]) == (
        [("x-a", "caf\xe9"), ("set-cookie", "a=1")],
        None,
    )


def test_decode_headers_returns_the_declared_length() -> None:
    headers = [(b"content-length", b"12"), (b"Content-Length", b"12")]
    assert decode_headers(headers) == (
        [("content-length", "12"), ("Content-Length", "12")],
        12,
    )


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param([(b"x-a", b"1\r\nx: 2")], id="crlf"),
        pytest.param([(b"x a", b"1")], id="bad-name"),
        pytest.param([("x-a", "1")], id="str-pair"),
        pytest.param([(b"x-a",)], id="one-tuple"),
    ],
)
def test_decode_headers_refuses(headers: Any) -> None:
    with pytest.raises(ASGIProtocolError):
        decode_headers(headers)
    with pytest.raises(ASGIProtocolError):
        decode_headers(headers)  # the same again: nothing refused is remembered


def test_decode_headers_remembers_only_short_descriptive_pairs() -> None:
    from bridge import _headers

    headers: list[tuple[Any, Any]] = [
        (b"content-type", b"text/html"),
        (b"set-cookie", b"session=secret"),
        (b"location", b"/next?token=secret"),
        (b"content-length", b"5"),
        (bytearray(b"x-a"), bytearray(b"1")),
    ]
    first = decode_headers(headers)
    assert first == (
        [
            ("content-type", "text/html"),
            ("set-cookie", "session=secret"),
            ("location", "/next?token=secret"),
            ("content-length", "5"),
            ("x-a", "1"),
        ],
        5,
    )
    assert decode_headers(headers) == first
    assert (b"content-type", b"text/html") in _headers._DECODED
    assert not any(b"secret" in value for _name, value in _headers._DECODED)
    # Lengths already seen still have to agree.
    with pytest.raises(ASGIProtocolError, match="conflicting"):
        decode_headers([(b"content-length", b"5"), (b"content-length", b"6")])
