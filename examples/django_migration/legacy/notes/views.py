"""The legacy pages: plain sync views, as they were before the migration."""

from __future__ import annotations

import time

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from .models import Note

SLOW_SECONDS = 0.05
"""How long ``slow`` blocks, standing for a database query or an HTTP call."""


def home(request: HttpRequest) -> HttpResponse:
    """The home page: counted by the ORM here, listed and kept live by the new API."""
    response: HttpResponse = render(
        request, "notes/home.html", {"note_count": Note.objects.count(), "api_url": "/api"}
    )
    return response


def note_detail(request: HttpRequest, pk: int) -> HttpResponse:
    response: HttpResponse = render(
        request, "notes/detail.html", {"note": get_object_or_404(Note, pk=pk)}
    )
    return response


def slow(request: HttpRequest) -> HttpResponse:
    """A sync view that waits on I/O, the kind ``bench.py`` measures."""
    time.sleep(SLOW_SECONDS)
    return HttpResponse("done\n", content_type="text/plain")
