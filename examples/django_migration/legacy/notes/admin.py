from __future__ import annotations

from django.contrib import admin

from .models import Note


@admin.register(Note)
class NoteAdmin(admin.ModelAdmin):  # type: ignore[misc]
    list_display = ("id", "text", "created_at")
    search_fields = ("text",)
