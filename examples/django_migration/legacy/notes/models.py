from __future__ import annotations

from typing import ClassVar

from django.db import models


class Note(models.Model):  # type: ignore[misc]
    text = models.CharField(max_length=500)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["id"]

    def __str__(self) -> str:
        return str(self.text)
