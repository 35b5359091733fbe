"""Example pages in headless Chromium, driven by Playwright.

The Django migration example's legacy page (a Django template) lists the notes it
fetches from the new API and shows a note created afterwards through its live
updates, without a reload. The WebSocket examples' pages talk over a WebSocket
through the bridge, both ways: a Flask app's flask-sock route under uvicorn, and a
FastAPI app's websocket route under gunicorn.

Installs nothing: skipped unless Debian's Chromium is at ``/usr/bin/chromium`` and
the ``playwright`` package is importable (``apt-get install chromium`` and
``pip install playwright``; Playwright's own browser download is never used).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import PROJECT_ROOT, Serve

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
"""Without the background-networking flags Chromium keeps dialling out, and the
machine's closed network refuses it. Playwright gives every ``launch()`` a fresh,
temporary user-data directory of its own."""

APP = "examples.django_migration.asgi:app"
MANAGE = PROJECT_ROOT / "examples" / "django_migration" / "manage.py"
TIMEOUT_MS = 15_000
"""Milliseconds any single browser step may take."""

pytestmark = [
    pytest.mark.server,
    pytest.mark.skipif(
        not CHROMIUM.is_file(),
        reason=f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)",
    ),
    pytest.mark.skipif(
        importlib.util.find_spec("playwright") is None,
        reason="the playwright package is not installed (pip install playwright)",
    ),
]


@contextlib.contextmanager
def browser_page(playwright: Any) -> Iterator[tuple[Any, list[str]]]:
    """A page in a fresh headless Chromium, and the list its script errors go to."""
    browser = playwright.chromium.launch(
        executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=TIMEOUT_MS
    )
    try:
        page = browser.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        yield page, errors
    finally:
        browser.close()


def migrate(db: Path) -> None:
    finished = subprocess.run(
        [sys.executable, str(MANAGE), "migrate", "--noinput", "--verbosity", "0"],
        cwd=PROJECT_ROOT,
        env=dict(os.environ, NOTES_DB=str(db)),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert finished.returncode == 0, (finished.stdout + finished.stderr).decode(errors="replace")


def test_home_page_lists_notes_and_shows_new_ones_live(serve: Serve, tmp_path: Path) -> None:
    # Installed by CI next to Chromium; mypy must pass without it too.
    from playwright.sync_api import sync_playwright  # type: ignore[import-not-found, unused-ignore]

    db = tmp_path / "notes.sqlite3"
    migrate(db)
    with (
        serve("uvicorn", APP, env={"NOTES_DB": str(db)}) as server,
        httpx.Client(base_url=f"{server.url}/api", timeout=10) as api,
    ):
        seeded = api.post("/notes", json={"text": "there before the page loaded"})
        assert seeded.status_code == 201, seeded.text

        with sync_playwright() as playwright, browser_page(playwright) as (page, errors):
            page.goto(f"{server.url}/")
            assert page.locator("#notes-app").get_attribute("data-rendered-by") == "django"
            # "live": the list came from GET /api/notes and the event stream is open.
            page.wait_for_selector('#notes[data-state="live"]')
            assert page.locator("#notes li").all_inner_texts() == ["there before the page loaded"]
            assert page.locator("#live-status").inner_text() == "connected"

            page.evaluate("window.notReloaded = true")
            created = api.post("/notes", json={"text": "created while the page was open"})
            assert created.status_code == 201, created.text
            page.wait_for_selector(f'#notes li[data-note-id="{created.json()["id"]}"]')
            assert page.locator("#notes li").all_inner_texts() == [
                "there before the page loaded",
                "created while the page was open",
            ]

            # The page's form posts to the API; the note shows up once.
            page.fill("#note-form input[name=text]", "typed into the legacy page")
            page.click("#note-form button[type=submit]")
            page.wait_for_selector('#notes li:has-text("typed into the legacy page")')
            assert page.locator("#notes li").count() == 3
            assert page.evaluate("window.notReloaded") is True
            assert errors == []

        texts = [note["text"] for note in api.get("/notes").json()]
        assert texts[-1] == "typed into the legacy page"


@pytest.mark.parametrize(
    ("server", "app", "extra_args", "page", "expected"),
    [
        pytest.param(
            "uvicorn",
            "examples.flask_on_uvicorn.app:asgi_app",
            (),
            "/talk",
            "1: hello from the browser",
            id="flask-sock-under-uvicorn",
        ),
        pytest.param(
            "gunicorn",
            "examples.fastapi_websockets_on_gunicorn.app:wsgi_app",
            ("--worker-class", "gthread", "--threads", "4"),
            "/",
            "browser: hello from the browser",
            id="fastapi-under-gunicorn",
        ),
    ],
)
def test_a_page_talks_over_a_websocket_through_the_bridge(
    serve: Serve,
    server: str,
    app: str,
    extra_args: tuple[str, ...],
    page: str,
    expected: str,
) -> None:
    from playwright.sync_api import sync_playwright  # type: ignore[import-not-found, unused-ignore]

    with (
        serve(server, app, extra_args=extra_args) as running,
        sync_playwright() as playwright,
        browser_page(playwright) as (tab, errors),
    ):
        tab.goto(f"{running.url}{page}")
        tab.wait_for_selector('#status:has-text("open")')
        tab.fill("#say input[name=text]", "hello from the browser")
        tab.click("#say button[type=submit]")
        tab.wait_for_selector(f'#log li:has-text("{expected}")')
        assert expected in tab.locator("#log li").all_inner_texts()
        assert errors == []
