"""Pure translation between ASGI scopes and WSGI environs, and PEP 3333 checks.

Nothing here does I/O or touches an event loop, so every rule can be tested with
plain data. Both adapters build on these functions; neither has header or path
code of its own.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote_from_bytes, unquote_to_bytes

from .exceptions import ASGIProtocolError, BadRequest
from .types import Environ, Scope

_DEFAULT_PORTS = {"http": "80", "https": "443", "ws": "80", "wss": "443"}

# Header name -> environ key, cached because real traffic repeats a small set of names
# (names with "_" are not: whether they are kept depends on the adapter).
_ENVIRON_KEYS: dict[bytes, str] = {
    b"content-type": "CONTENT_TYPE",
    b"content-length": "CONTENT_LENGTH",
}
_ENVIRON_KEYS_MAX = 4096
# RFC 3986 pchar and "/", which may appear in a request path as they are.
_RAW_PATH_SAFE = "/:@!$&'()*+,;=-._~"
# A path made of them alone (the common case) is its own raw path: no quoting call.
_is_plain_path = re.compile(r"[A-Za-z0-9/:@!$&'()*+,;=\-._~]*").fullmatch
# PEP 3333 (and wsgiref.validate) reserve these for CONTENT_TYPE and CONTENT_LENGTH.
_SHADOWED_KEYS = frozenset({"HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"})
_wsgi_logger = logging.getLogger("bridge.wsgi")
# The other way: environ key -> ASGI header name, or None for a key that is not a
# header (``wsgi.input``, ``REMOTE_ADDR``...): one lookup per key, cached the same way.
_HEADER_NAMES: dict[str, bytes | None] = {
    "CONTENT_TYPE": b"content-type",
    "CONTENT_LENGTH": b"content-length",
}
_CGI_CONTENT_KEYS = frozenset({"CONTENT_TYPE", "CONTENT_LENGTH"})
# Where the headers are in an environ, by the tuple of its keys: a server builds most
# environs with the same keys in the same order, so build_scope() then looks at its
# header keys only, not at each of the environ's.
_HEADER_PLANS: dict[tuple[str, ...], tuple[tuple[str, bytes], ...]] = {}
_PLANS_MAX = 256
_UNSEEN: Any = object()


def _environ_key(name: bytes) -> str:
    key = "HTTP_" + name.decode("latin-1").upper().replace("-", "_")
    # Only names without "_" are cached: a hit needs no underscore or shadowing check.
    if b"_" not in name and len(_ENVIRON_KEYS) < _ENVIRON_KEYS_MAX:
        _ENVIRON_KEYS[name] = key
    return key


class _ErrorStream:
    """``wsgi.errors``: a text stream whose lines go to the ``bridge.wsgi`` logger."""

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending = ""

    def write(self, text: str) -> int:
        lines = (self._pending + text).split("\n")
        self._pending = lines.pop()
        for line in lines:
            _wsgi_logger.error("%s", line)
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if self._pending:
            _wsgi_logger.error("%s", self._pending)
            self._pending = ""


def _path_info(scope: Scope, root_path: str) -> str:
    """PATH_INFO: the request path with ``root_path`` removed on a segment boundary."""
    path: str = scope["path"]
    if root_path and (path == root_path or path.startswith(root_path + "/")):
        path = path[len(root_path) :]
    if type(path) is str and path.isascii():
        return path  # the common case: the same text as a WSGI string
    try:
        encoded = path.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raise BadRequest(f"The request path {path!r} cannot be encoded as UTF-8.") from None
    if b"\xef\xbf\xbd" in encoded:
        # The server replaced undecodable bytes; raw_path still has them.
        raw_path = scope.get("raw_path")
        if raw_path:
            raw = unquote_to_bytes(raw_path.partition(b"?")[0])
            prefix = root_path.encode("utf-8")
            if prefix and (raw == prefix or raw.startswith(prefix + b"/")):
                raw = raw[len(prefix) :]
            encoded = raw
    return encoded.decode("latin-1")


def _refuse_ambiguous_framing(duplicates: dict[str, list[str]]) -> None:
    """RFC 9112: several Host headers, or Content-Length values that disagree, are 400."""
    if "HTTP_HOST" in duplicates:
        raise BadRequest("The request has more than one Host header.")
    lengths = duplicates.get("CONTENT_LENGTH")
    if lengths is not None and len(set(lengths)) > 1:
        raise BadRequest(f"The request has conflicting Content-Length headers {lengths!r}.")


def build_environ(
    scope: Scope,
    *,
    keep_underscore_headers: bool = False,
    max_duplicate_headers: int | None = 100,
) -> Environ:
    """Build the PEP 3333 environ for an ASGI ``http`` scope, without ``wsgi.input``.

    The scope's ``headers`` (and each pair), ``client`` and ``server`` may be any
    iterables, as the ASGI spec types them; each is read once. ``REQUEST_URI`` and
    ``RAW_URI`` hold the request target as the client sent it (from ``raw_path``),
    as gunicorn and werkzeug's server set them.

    :raises BadRequest: when a header is repeated more than ``max_duplicate_headers``
        times (None: no limit), the framing headers are ambiguous, or the path cannot
        be represented.
    :raises ASGIProtocolError: when the scope itself is malformed (a server bug).
    """
    try:
        return _build_environ(scope, keep_underscore_headers, max_duplicate_headers)
    except (KeyError, TypeError, AttributeError, ValueError, IndexError) as exc:
        if isinstance(exc, ASGIProtocolError):
            raise
        raise ASGIProtocolError(
            f"The ASGI server's http scope is malformed ({type(exc).__name__}: {exc})."
        ) from None


def _request_uri(scope: Scope, query: str) -> str:
    """The request target: ``raw_path`` (or the quoted ``path``), then ``?`` and the query."""
    raw_path = scope.get("raw_path")
    if raw_path:
        uri: str = raw_path.decode("latin-1")
        if "?" in uri:  # (a str test: ``b"?" in`` bytes costs several times as much)
            uri = uri.partition("?")[0]
    else:
        uri = quote_from_bytes(
            scope["path"].encode("utf-8", "surrogateescape"), safe=_RAW_PATH_SAFE
        )
    return uri + "?" + query if query else uri


_PAIRS = (tuple, list)


def _build_environ(
    scope: Scope, keep_underscore_headers: bool, max_duplicate_headers: int | None
) -> Environ:
    method = scope["method"]
    if type(method) is not str:
        raise TypeError(f"'method' must be a str, not {type(method).__name__}")
    root_path = scope.get("root_path", "").rstrip("/")
    scheme = scope.get("scheme") or "http"
    query: str = scope.get("query_string", b"").decode("latin-1")
    path = scope["path"]
    if root_path or type(path) is not str or not path.isascii():
        path = _path_info(scope, root_path)  # (an ASCII path and no root path are as they are)
    uri = _request_uri(scope, query)
    environ: Environ = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": (
            root_path if root_path.isascii() else root_path.encode("utf-8").decode("latin-1")
        ),
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "REQUEST_URI": uri,
        "RAW_URI": uri,
        "SERVER_PROTOCOL": "HTTP/" + scope.get("http_version", "1.1"),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scheme,
        "wsgi.errors": _ErrorStream(),
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,
        "asgi.scope": scope,
    }
    duplicates: dict[str, list[str]] | None = None
    known = _ENVIRON_KEYS
    for name, raw_value in scope["headers"]:
        key = known.get(name)
        if key is None:
            if b"_" in name and not keep_underscore_headers:
                continue
            key = _environ_key(name)
            if key in _SHADOWED_KEYS:
                # "Content_Length" must not pose as the Content-Length the server framed.
                continue
        value = raw_value.decode("latin-1")
        if key in environ:
            if duplicates is None:
                duplicates = {}
            _repeat(duplicates, environ, key, value, name, max_duplicate_headers)
        else:
            environ[key] = value
    if duplicates:
        _join_repeats(duplicates, environ)
    if "CONTENT_LENGTH" in environ and "HTTP_TRANSFER_ENCODING" in environ:
        # RFC 9112 6.3: a request smuggling vector; the server should have refused it.
        raise BadRequest("The request has both Content-Length and Transfer-Encoding.")
    # SERVER_NAME and SERVER_PORT from ``server``, else Host; REMOTE_ADDR and REMOTE_PORT.
    server = scope.get("server")
    if server is not None and type(server) not in _PAIRS:
        server = tuple(server)  # the spec says an iterable: a one-shot iterator, even
    if server and server[1] is not None:
        environ["SERVER_NAME"] = server[0]
        environ["SERVER_PORT"] = str(server[1])
    else:
        host, _, port = environ.get("HTTP_HOST", "").rpartition(":")
        if not host or not port.isdigit():
            host, port = environ.get("HTTP_HOST", "") or "localhost", ""
        environ["SERVER_NAME"] = host
        environ["SERVER_PORT"] = port or _DEFAULT_PORTS.get(scheme, "80")
    client = scope.get("client")
    if client is not None and type(client) not in _PAIRS:
        client = tuple(client)
    if client:
        environ["REMOTE_ADDR"] = client[0]
        environ["REMOTE_PORT"] = str(client[1])
    return environ


def _repeat(
    duplicates: dict[str, list[str]],
    environ: Environ,
    key: str,
    value: str,
    name: bytes,
    limit: int | None,
) -> None:
    """Note a repeated header's ``value``; refuse more than ``limit`` repeats."""
    values = duplicates.get(key)
    if values is None:
        values = duplicates[key] = [environ[key]]
    values.append(value)
    if limit is not None and len(values) > limit:
        raise BadRequest(f"Header {name.decode('latin-1')!r} is repeated more than {limit} times.")


def _join_repeats(duplicates: dict[str, list[str]], environ: Environ) -> None:
    """One environ value per repeated header (PEP 3333): joined by ``,``, cookies by ``; ``."""
    _refuse_ambiguous_framing(duplicates)
    for key, values in duplicates.items():
        if key == "CONTENT_LENGTH":
            environ[key] = values[0]  # all equal, checked above
        else:
            environ[key] = ("; " if key == "HTTP_COOKIE" else ",").join(values)


_HTTP_VERSIONS = {"HTTP/1.1": "1.1", "HTTP/1.0": "1.0", "HTTP/2": "2", "HTTP/2.0": "2"}


def _http_version(protocol: str) -> str:
    version = protocol.partition("/")[2]
    if version in ("2", "2.0"):
        return "2"
    if version in ("3", "3.0"):
        return "3"
    return "1.0" if version == "1.0" else "1.1"


def _wsgi_str_to_utf8(value: str) -> str:
    if value.isascii():
        return value  # the common case: the same text either way
    return value.encode("latin-1").decode("utf-8", "replace")


def _header_plan(keys: tuple[str, ...]) -> tuple[tuple[str, bytes], ...]:
    """The header keys among an environ's ``keys``, with their ASGI names, in order."""
    plan = []
    for key in keys:
        name = _HEADER_NAMES.get(key, _UNSEEN)
        if name is _UNSEEN:
            name = _header_name(key)
        if name is not None:
            plan.append((key, name))
    if len(_HEADER_PLANS) >= _PLANS_MAX:
        _HEADER_PLANS.clear()  # as re's cache: the plans still in use come back at once
    found = _HEADER_PLANS[keys] = tuple(plan)
    return found


def _header_name(key: str) -> bytes | None:
    """The ASGI header name for an environ key, None when the key is not a header."""
    name = key[5:].lower().replace("_", "-").encode("latin-1") if key.startswith("HTTP_") else None
    if len(_HEADER_NAMES) < _ENVIRON_KEYS_MAX:
        _HEADER_NAMES[key] = name
    return name


def build_scope(environ: Environ, *, extensions: dict[str, Any] | None = None) -> Scope:
    """Build the ASGI ``http`` scope for a PEP 3333 environ.

    :raises BadRequest: when the environ is missing keys or holds values of the
        wrong type (a sloppy WSGI server), so the bridge can answer 400 instead of
        crashing.
    """
    try:
        script_name: str = environ.get("SCRIPT_NAME", "")
        path_info: str = environ.get("PATH_INFO", "")
        # Plain ASCII, the common case, reads the same either way: no call.
        root_path = script_name if script_name.isascii() else _wsgi_str_to_utf8(script_name)
        if path_info and path_info[0] != "/":
            path_info = "/" + path_info  # a sloppy PATH_INFO: not glued to SCRIPT_NAME
        path = root_path + (path_info if path_info.isascii() else _wsgi_str_to_utf8(path_info))
        keys = tuple(environ)
        plan = _HEADER_PLANS.get(keys)
        if plan is None:
            plan = _header_plan(keys)
        headers: list[tuple[bytes, bytes]] = []
        for key, name in plan:
            value = environ[key]
            if not value and key in _CGI_CONTENT_KEYS:
                continue  # an empty CONTENT_TYPE or CONTENT_LENGTH is no header
            headers.append((name, value.encode("latin-1")))
        raw_uri = environ.get("RAW_URI") or environ.get("REQUEST_URI")
        if raw_uri:
            raw_path = raw_uri.encode("latin-1").partition(b"?")[0]
            if raw_path.startswith((b"http://", b"https://")):
                # An absolute-form request target: keep the path part only.
                raw_path = b"/" + raw_path.split(b"/", 3)[3] if raw_path.count(b"/") >= 3 else b"/"
        else:
            # What a client would have sent for this path: its bytes, percent-encoded
            # where a raw '%', '?', '#' or non-ASCII byte could not stand as itself.
            full_path = script_name + path_info
            if _is_plain_path(full_path):
                raw_path = full_path.encode("ascii")
            else:
                raw_path = quote_from_bytes(
                    full_path.encode("latin-1"), safe=_RAW_PATH_SAFE
                ).encode("ascii")
        protocol = environ.get("SERVER_PROTOCOL", "HTTP/1.1")
        remote_addr = environ.get("REMOTE_ADDR")
        remote_port = environ.get("REMOTE_PORT")
        if type(remote_port) is int:  # werkzeug's server puts an int there
            remote_port = str(remote_port)
        server_port = environ.get("SERVER_PORT")
        scope: Scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": _HTTP_VERSIONS.get(protocol) or _http_version(protocol),
            "method": environ["REQUEST_METHOD"].upper(),
            "scheme": environ.get("wsgi.url_scheme", "http"),
            "path": path,
            "raw_path": raw_path,
            "query_string": environ.get("QUERY_STRING", "").encode("latin-1"),
            "root_path": root_path,
            "headers": headers,
            "client": (
                (remote_addr, int(remote_port) if remote_port and remote_port.isdigit() else 0)
                if remote_addr
                else None
            ),
            "server": (
                (environ.get("SERVER_NAME", ""), int(server_port))
                if server_port and str(server_port).isdigit()
                else None
            ),
            "extensions": extensions if extensions is not None else {},
            "wsgi_environ": environ,
        }
    except KeyError as exc:
        raise BadRequest(f"The WSGI server's environ has no {exc.args[0]!r} key.") from None
    except (AttributeError, TypeError, UnicodeError) as exc:
        raise BadRequest(
            f"The WSGI server's environ holds a value of the wrong type: {exc}."
        ) from None
    return scope


def content_length(environ: Environ) -> int | None:
    """The request's CONTENT_LENGTH as an int, None when absent.

    :raises BadRequest: when it is not a non-negative decimal number.
    """
    value = environ.get("CONTENT_LENGTH")
    if not value:
        return None
    if not isinstance(value, str) or not value.isdigit() or not value.isascii():
        raise BadRequest(f"Invalid Content-Length {value!r}: expected a non-negative integer.")
    return int(value)
