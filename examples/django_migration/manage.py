#!/usr/bin/env python
"""Django's command-line utility for the legacy project.

Run from the repository root: ``python examples/django_migration/manage.py migrate``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def main() -> None:
    # The project's modules are named from the repository root
    # (``examples.django_migration.legacy``), as uvicorn imports them.
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_migration.legacy.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
