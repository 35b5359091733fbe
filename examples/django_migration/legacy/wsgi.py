"""The legacy entry point, unchanged: ``gunicorn examples.django_migration.legacy.wsgi``."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_migration.legacy.settings")

application = get_wsgi_application()
