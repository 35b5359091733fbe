"""Migrate the notes database, then serve the example under uvicorn.

Run from the repository root::

    python examples/django_migration/serve.py            # http://127.0.0.1:8000

``NOTES_DB`` picks the SQLite file (default ``examples/django_migration/db.sqlite3``),
``HOST`` and ``PORT`` the address. The same as::

    python examples/django_migration/manage.py migrate
    uvicorn examples.django_migration.asgi:app --timeout-graceful-shutdown 5
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    # The example's modules are named from the repository root, as uvicorn imports them.
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_migration.legacy.settings")

    import django
    import uvicorn
    from django.core.management import call_command

    django.setup()
    call_command("migrate", interactive=False, verbosity=1)
    uvicorn.run(
        "examples.django_migration.asgi:app",
        host=os.environ.get("HOST", "127.0.0.1"),
        port=int(os.environ.get("PORT", "8000")),
        # Open event streams and websockets last until the browser goes away; on
        # Ctrl-C, wait for them at most this long.
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main()
