"""A Flask app, served through ``bridge.WSGIToASGI`` as ``app``.

``PROPAGATE_EXCEPTIONS`` lets ``/error`` escape Flask, so the bridge and the server,
not Flask's error page, turn it into the 500 the test checks.
"""

from __future__ import annotations

from flask import Flask, Response, jsonify, request

from bridge import WSGIToASGI

from . import _shared

flask_app = Flask(__name__)
flask_app.config["PROPAGATE_EXCEPTIONS"] = True


@flask_app.get("/")
@flask_app.get("/text")
def text() -> Response:
    return Response(_shared.TEXT, content_type="text/plain; charset=utf-8")


@flask_app.get("/json")
def json_document() -> Response:
    query = request.query_string.decode("latin-1")
    return jsonify(_shared.describe("flask", request.method, request.path, query))


@flask_app.post("/echo")
def echo() -> Response:
    return Response(request.get_data(), content_type="application/octet-stream")


@flask_app.post("/upload")
def upload() -> Response:
    # The request context is gone once the view returns; the stream object is not.
    return Response(_shared.upload_report(request.stream), content_type="text/plain")


@flask_app.get("/stream")
def stream() -> Response:
    return Response(_shared.ack_stream(request.args["token"]), content_type="text/plain")


@flask_app.get("/forever")
def forever() -> Response:
    return Response(_shared.Ticker(request.args["token"]), content_type="text/plain")


@flask_app.get("/slow")
def slow() -> Response:
    return Response(_shared.slow(), content_type="text/plain")


@flask_app.get("/error")
def error() -> Response:
    raise RuntimeError(_shared.SECRET)


@flask_app.get("/empty")
def empty() -> Response:
    return Response(status=204)


app = WSGIToASGI(flask_app)
