"""A Django app from ``get_wsgi_application()``, served through ``bridge.WSGIToASGI``.

Settings are configured here and this module is also the URLconf. Django reads
request bodies only up to ``CONTENT_LENGTH``, so ``/upload`` (a chunked body) reads
``wsgi.input`` itself, as a Django view behind any WSGI server would have to.
"""

from __future__ import annotations

from django.conf import settings

settings.configure(
    DEBUG=False,
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    SECRET_KEY="only-for-tests",
    INSTALLED_APPS=[],
    MIDDLEWARE=[],
    DATABASES={},
    USE_TZ=True,
    LOGGING={
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"stderr": {"class": "logging.StreamHandler"}},
        # Unhandled view errors go to the server log, as the other apps' do.
        "loggers": {"django.request": {"handlers": ["stderr"], "level": "ERROR"}},
    },
)

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import (  # noqa: E402
    HttpRequest,
    HttpResponse,
    JsonResponse,
    StreamingHttpResponse,
)
from django.urls import path  # noqa: E402

from bridge import WSGIToASGI  # noqa: E402

from . import _shared  # noqa: E402


def text(request: HttpRequest) -> HttpResponse:
    return HttpResponse(_shared.TEXT, content_type="text/plain; charset=utf-8")


def json_document(request: HttpRequest) -> HttpResponse:
    query = request.META.get("QUERY_STRING", "")
    return JsonResponse(_shared.describe("django", request.method, request.path, query))


def echo(request: HttpRequest) -> HttpResponse:
    return HttpResponse(request.body, content_type="application/octet-stream")


def upload(request: HttpRequest) -> HttpResponse:
    body = request.META["wsgi.input"]
    return StreamingHttpResponse(_shared.upload_report(body), content_type="text/plain")


def stream(request: HttpRequest) -> HttpResponse:
    token = request.GET["token"]
    return StreamingHttpResponse(_shared.ack_stream(token), content_type="text/plain")


def forever(request: HttpRequest) -> HttpResponse:
    token = request.GET["token"]
    return StreamingHttpResponse(_shared.Ticker(token), content_type="text/plain")


def slow(request: HttpRequest) -> HttpResponse:
    return HttpResponse(_shared.slow(), content_type="text/plain")


def error(request: HttpRequest) -> HttpResponse:
    raise RuntimeError(_shared.SECRET)


def empty(request: HttpRequest) -> HttpResponse:
    return HttpResponse(status=204)


urlpatterns = [
    path("", text),
    path("text", text),
    path("json", json_document),
    path("echo", echo),
    path("upload", upload),
    path("stream", stream),
    path("forever", forever),
    path("slow", slow),
    path("error", error),
    path("empty", empty),
]

app = WSGIToASGI(get_wsgi_application())
