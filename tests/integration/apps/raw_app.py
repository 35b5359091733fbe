"""A plain PEP 3333 callable, served through ``bridge.WSGIToASGI`` as ``app``."""

from __future__ import annotations

import json
from collections.abc import Iterable

from bridge import WSGIToASGI
from bridge.types import Environ, StartResponse

from . import _shared


def _respond(
    start_response: StartResponse, status: str, content_type: str, body: bytes
) -> list[bytes]:
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]


def wsgi_app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    path: str = environ["PATH_INFO"]
    method: str = environ["REQUEST_METHOD"]
    query: str = environ.get("QUERY_STRING", "")
    token = query.partition("token=")[2]
    if path in ("/", "/text"):
        return _respond(start_response, "200 OK", "text/plain; charset=utf-8", _shared.TEXT)
    if path == "/json":
        document = _shared.describe("raw", method, path, query)
        return _respond(start_response, "200 OK", "application/json", json.dumps(document).encode())
    if path == "/echo" and method == "POST":
        body: bytes = environ["wsgi.input"].read()
        return _respond(start_response, "200 OK", "application/octet-stream", body)
    if path == "/upload" and method == "POST":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return _shared.upload_report(environ["wsgi.input"])
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return _shared.ack_stream(token)
    if path == "/forever":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return _shared.Ticker(token)
    if path == "/slow":
        return _respond(start_response, "200 OK", "text/plain", _shared.slow())
    if path == "/error":
        raise RuntimeError(_shared.SECRET)
    if path == "/empty":
        start_response("204 No Content", [])
        return []
    return _respond(start_response, "404 Not Found", "text/plain", b"not found\n")


app = WSGIToASGI(wsgi_app)
