"""Response status lines and headers, checked and translated both ways: pure, no I/O.

Strict where a mistake would reach the client as something else (CR, LF or NUL in a
header, a malformed status line, a text body, disagreeing Content-Lengths), lenient
where real servers are and nothing is at risk (headers as any sequence of pairs,
status codes up to 999).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from http import HTTPStatus
from typing import Any, Final

from .exceptions import ASGIProtocolError, WSGIProtocolError

# HTTP token characters (RFC 9110 section 5.6.2).
_is_token = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+").fullmatch
# CR, LF and NUL would split or truncate a header line: response splitting.
_STATUS = re.compile(r"([1-9][0-9]{2}) [^\r\n\x00]*")
_SEQUENCES: Final = (list, tuple)
# Status lines and header names already validated (apps use a handful).
_CACHE_MAX = 1024
_STATUS_CODES: dict[str, int] = {}
_VALID_NAMES: dict[str, bytes] = {}
_DECODED_NAMES: dict[bytes, str] = {}
_REASONS: dict[int, str] = {}
# Whole (name, value) tuples already encoded, or decoded, for headers whose values describe the
# response rather than carry data (no cookie, credential or URL is kept here), and
# only short ones: apps send the same few of them with most responses.
_ENCODED: dict[tuple[str, str], tuple[bytes, bytes]] = {}
_DECODED: dict[tuple[bytes, bytes], tuple[str, str]] = {}  # the same, the other way
_CACHED_NAMES: Final = frozenset(
    {
        b"accept-ranges",
        b"access-control-allow-credentials",
        b"access-control-allow-headers",
        b"access-control-allow-methods",
        b"access-control-allow-origin",
        b"cache-control",
        b"connection",
        b"content-encoding",
        b"content-language",
        b"content-length",
        b"content-type",
        b"cross-origin-opener-policy",
        b"cross-origin-resource-policy",
        b"pragma",
        b"referrer-policy",
        b"server",
        b"strict-transport-security",
        b"transfer-encoding",
        b"vary",
        b"x-content-type-options",
        b"x-frame-options",
    }
)


def response_content_length(headers: Iterable[tuple[bytes, bytes]]) -> int | None:
    """The Content-Length a response declares, None when it declares none.

    :raises ValueError: when it is not a non-negative integer, or several
        Content-Length headers disagree (RFC 9110 8.6: a response-splitting vector).
    """
    found: int | None = None
    for name, value in headers:
        if name == b"content-length":
            if found is None and value.isdigit():
                found = int(value)  # the common case, without a call
            else:
                found = _declared_length(found, value)
    return found


def _declared_length(found: int | None, value: bytes) -> int:
    """One Content-Length header's ``value``, checked against the one ``found`` before it.

    :raises ValueError: as :func:`response_content_length`.
    """
    if not value.isdigit():
        raise ValueError(
            f"Expected Content-Length to be a non-negative integer, but got {value!r}."
        )
    length = int(value)
    if found is not None and found != length:
        raise ValueError(f"The response declares conflicting Content-Lengths {found} and {length}.")
    return length


def parse_status(status: object) -> int:
    """The status code of a PEP 3333 status line such as ``"200 OK"``.

    :raises WSGIProtocolError: when the status is not a native string of a
        three-digit code, a space and a reason phrase.
    """
    if type(status) is not str:
        raise WSGIProtocolError(
            f"Expected the status to be a str like '200 OK', but got {type(status).__name__}."
        )
    code = _STATUS_CODES.get(status)
    if code is not None:
        return code
    match = _STATUS.fullmatch(status)
    if match is None:
        raise WSGIProtocolError(f"Expected a status line like '200 OK', but got {status!r}.")
    code = int(match.group(1))
    if len(_STATUS_CODES) < _CACHE_MAX:
        _STATUS_CODES[status] = code
    return code


def encode_headers(headers: object) -> list[tuple[bytes, bytes]]:
    """Validate PEP 3333 response headers and encode them for ASGI (names lower-cased).

    PEP 3333 asks for a list of ``(str, str)`` tuples; like gunicorn, waitress and
    werkzeug, any list or tuple of 2-item lists or tuples is taken.

    :raises WSGIProtocolError: on any other shape, a name that is not an HTTP token,
        or a value with CR, LF, NUL or non-latin-1 text.
    """
    if type(headers) not in _SEQUENCES:
        raise WSGIProtocolError(
            f"Expected the response headers as a list, but got {type(headers).__name__}."
        )
    encoded: list[tuple[bytes, bytes]] = []
    for header in headers:  # type: ignore[attr-defined]  # a list or tuple, checked above
        try:
            pair = _ENCODED.get(header) if type(header) is tuple else None
        except TypeError:  # a tuple holding something unhashable: refused below
            pair = None
        if pair is None:
            pair = _encode_header(header)
        encoded.append(pair)
    return encoded


def _encode_header(header: Any) -> tuple[bytes, bytes]:
    if type(header) not in _SEQUENCES or len(header) != 2:
        raise WSGIProtocolError(
            f"Expected each response header as a (name, value) tuple, but got {header!r}."
        )
    name, value = header
    if type(name) is not str or type(value) is not str:
        raise WSGIProtocolError(
            f"Expected response header name and value as str, but got {header!r}."
        )
    try:
        raw_name = _VALID_NAMES.get(name)
        if raw_name is None:
            raw_name = name.lower().encode("latin-1")
            if not _is_token(raw_name):  # also rejects an empty name
                raise WSGIProtocolError(f"Invalid response header name {name!r}.")
            if len(_VALID_NAMES) < _CACHE_MAX:
                _VALID_NAMES[name] = raw_name
        raw_value = value.encode("latin-1")
    except UnicodeEncodeError:
        raise WSGIProtocolError(
            f"Response header {header!r} holds text outside latin-1; encode it first."
        ) from None
    if "\r" in value or "\n" in value or "\0" in value:
        raise WSGIProtocolError(
            f"Response header {name!r} has a CR, LF or NUL in its value {value!r}."
        )
    pair = (raw_name, raw_value.strip(b" \t"))
    if raw_name in _CACHED_NAMES and type(header) is tuple and len(value) <= 64:
        _remember(_ENCODED, header, pair)
    return pair


def _remember(cache: dict[Any, Any], header: tuple[Any, Any], pair: tuple[Any, Any]) -> None:
    if len(cache) >= _CACHE_MAX:
        cache.clear()  # as re's cache: what is still in use comes back at once
    cache[header] = pair


def decode_headers(
    headers: Iterable[tuple[bytes, bytes]],
) -> tuple[list[tuple[str, str]], int | None]:
    """ASGI response headers as PEP 3333 ``(str, str)`` pairs, and their Content-Length.

    Any iterable of pairs is read once.

    :raises ASGIProtocolError: when a header is not a pair of bytes, would split
        the response, or declares an invalid or conflicting Content-Length.
    """
    decoded: list[tuple[str, str]] = []
    length: int | None = None
    try:
        for header in headers:
            try:
                pair = _DECODED.get(header) if type(header) is tuple else None
            except TypeError:  # a tuple holding a bytearray: decoded below
                pair = None
            if pair is None:
                pair = _decode_header(header)
            if pair[0] == "content-length":
                value = pair[1]
                if length is None and value.isdigit() and value.isascii():
                    length = int(value)  # the common case, without a call
                else:
                    try:
                        length = _declared_length(length, value.encode("latin-1"))
                    except ValueError as exc:
                        raise ASGIProtocolError(str(exc)) from None
            decoded.append(pair)
    except (TypeError, ValueError, AttributeError) as exc:
        if isinstance(exc, ASGIProtocolError):
            raise
        raise ASGIProtocolError(
            f"Expected response headers as [name, value] pairs of bytes, but got {headers!r}."
        ) from None
    return decoded, length


def _decode_header(header: Any) -> tuple[str, str]:
    name, value = header
    text_name = _DECODED_NAMES.get(name) if type(name) is bytes else None
    if text_name is None:
        text_name = _decoded_name(name, value)
    text_value = value.decode("latin-1")
    if "\r" in text_value or "\n" in text_value or "\0" in text_value:
        raise ASGIProtocolError(f"Invalid response header {(name, value)!r}.")
    pair = (text_name, text_value)
    if type(header) is tuple and type(name) is bytes and type(value) is bytes:
        if name in _CACHED_NAMES and len(value) <= 64:
            _remember(_DECODED, header, pair)
    return pair


def _decoded_name(name: bytes, value: bytes) -> str:
    """A header name not seen before, checked and (when bytes) cached."""
    if not _is_token(name):
        raise ASGIProtocolError(f"Invalid response header {(name, value)!r}.")
    text_name = name.decode("latin-1")
    if type(name) is bytes and len(_DECODED_NAMES) < _CACHE_MAX:
        _DECODED_NAMES[name] = text_name
    return text_name


def status_line(code: int) -> str:
    """``"404 Not Found"`` for 404: the PEP 3333 status string for an ASGI status code.

    A code without a standard phrase (``"723 "``) still has the space PEP 3333 asks for.
    """
    line = _REASONS.get(code)
    if line is None:
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = ""
        line = f"{code} {phrase}"
        _REASONS[code] = line
    return line
