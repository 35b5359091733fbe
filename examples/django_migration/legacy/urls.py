"""URLs of the legacy project. The new API lives beside it, under ``/api``."""

from __future__ import annotations

from django.contrib import admin
from django.urls import path

from .notes import views

urlpatterns = [
    path("", views.home, name="home"),
    path("notes/<int:pk>/", views.note_detail, name="note-detail"),
    path("slow/", views.slow, name="slow"),
    path("admin/", admin.site.urls),
]
