"""Django's own ASGI entry point, as ``startproject`` writes it.

Not what the example serves (that is ``examples/django_migration/asgi.py``); kept
for comparison, and ``bench.py`` measures it against ``WSGIToASGI``.
"""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_migration.legacy.settings")

application = get_asgi_application()
