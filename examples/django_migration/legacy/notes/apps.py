from __future__ import annotations

from django.apps import AppConfig


class NotesConfig(AppConfig):  # type: ignore[misc]
    name = "examples.django_migration.legacy.notes"
    label = "notes"
    verbose_name = "Notes"
