"""The migration's entry point: the legacy Django project and the new API, one ASGI app.

Run it (after ``python examples/django_migration/manage.py migrate``)::

    uvicorn examples.django_migration.asgi:app

``/api`` goes to the FastAPI app (``api.py``); every other path goes to the legacy
Django project, unchanged, through ``bridge.WSGIToASGI`` (sync views in a thread
pool of up to 64, the default ``max_threads``). Move a route from the Django URLconf
to the API, mount the API's router wider, and the legacy part shrinks: the
strangler-fig way.
"""

from __future__ import annotations

from django.contrib.staticfiles.handlers import StaticFilesHandler

from bridge import Mount

from .api import api
from .legacy.wsgi import application

# StaticFilesHandler is what ``runserver`` wraps around the app: it serves
# ``/static/`` (the admin's CSS, the home page's script) from the apps' static
# folders. In production run ``collectstatic`` and let the proxy or WhiteNoise
# serve them instead.
app = Mount({"/api": api}, default=StaticFilesHandler(application))
