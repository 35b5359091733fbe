"""The Django migration example under uvicorn: legacy pages, the admin, the new API, live updates.

One server for the module, on a fresh SQLite file in pytest's temporary directory,
migrated (and given an admin user) by the example's own ``manage.py`` first.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Event,
    RejectConnection,
    Request,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError

from tests.conftest import PROJECT_ROOT, Serve, Server

pytestmark = pytest.mark.server

APP = "examples.django_migration.asgi:app"
MANAGE = PROJECT_ROOT / "examples" / "django_migration" / "manage.py"
HOME_MARKER = '<main id="notes-app" data-rendered-by="django" data-api="/api">'
ADMIN_USER = "admin"
ADMIN_PASSWORD = "correct horse battery staple"
TIMEOUT = 10.0
"""Seconds any single network operation may take."""


def manage(db: Path, *arguments: str) -> None:
    """Run the example's ``manage.py`` against ``db``, as its README says."""
    env = dict(
        os.environ,
        NOTES_DB=str(db),
        DJANGO_SUPERUSER_PASSWORD=ADMIN_PASSWORD,
    )
    finished = subprocess.run(
        [sys.executable, str(MANAGE), *arguments],
        cwd=PROJECT_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert finished.returncode == 0, (
        f"manage.py {' '.join(arguments)} exited with {finished.returncode}:\n"
        f"{finished.stdout.decode(errors='replace')}{finished.stderr.decode(errors='replace')}"
    )


@pytest.fixture(name="server", scope="module")
def server_fixture(serve: Serve, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    db = tmp_path_factory.mktemp("django-migration") / "notes.sqlite3"
    manage(db, "migrate", "--noinput", "--verbosity", "0")
    manage(
        db,
        "createsuperuser",
        "--noinput",
        "--username",
        ADMIN_USER,
        "--email",
        "admin@example.com",
    )
    with serve("uvicorn", APP, env={"NOTES_DB": str(db)}) as running:
        yield running


@pytest.fixture(name="client")
def client_fixture(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        yield client


def create_note(server: Server, text: str) -> dict[str, Any]:
    response = httpx.post(f"{server.url}/api/notes", json={"text": text}, timeout=TIMEOUT)
    assert response.status_code == 201, response.text
    note: dict[str, Any] = response.json()
    return note


class EventStream:
    """Server-sent events from an open ``text/event-stream`` response, one at a time."""

    def __init__(self, response: httpx.Response) -> None:
        self.lines = response.iter_lines()

    def next_event(self) -> tuple[str, str]:
        """The next event's name and data; comment lines (keep-alives) are skipped."""
        name = "message"
        data: list[str] = []
        for line in self.lines:
            if not line:
                if data:
                    return name, "\n".join(data)
                continue
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
        raise AssertionError("The event stream ended.")

    def wait_for_note(self, text: str, deadline: float) -> dict[str, Any]:
        while time.monotonic() < deadline:
            name, data = self.next_event()
            if name == "note":
                note: dict[str, Any] = json.loads(data)
                if note["text"] == text:
                    return note
        raise AssertionError(f"No note event for {text!r} before the deadline.")


class WebSocketClient:
    """A blocking websocket client: wsproto on a plain socket, bounded by ``TIMEOUT``."""

    def __init__(self, server: Server, path: str) -> None:
        self.sock = socket.create_connection((server.host, server.port), timeout=TIMEOUT)
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.pending: collections.deque[Event] = collections.deque()
        self.sock.sendall(self.ws.send(Request(host=f"{server.host}:{server.port}", target=path)))

    def close(self) -> None:
        # Either side may have closed already.
        with contextlib.suppress(OSError, LocalProtocolError):
            self.sock.sendall(self.ws.send(CloseConnection(code=1000)))
        self.sock.close()

    def next_event(self) -> Event:
        while not self.pending:
            data = self.sock.recv(65536)
            self.ws.receive_data(data or None)
            self.pending.extend(self.ws.events())
        return self.pending.popleft()

    def receive_json(self) -> dict[str, Any]:
        text = ""
        while True:
            event = self.next_event()
            if not isinstance(event, TextMessage):
                raise AssertionError(f"Expected a text message, but got {event!r}.")
            text += event.data
            if event.message_finished:
                message: dict[str, Any] = json.loads(text)
                return message


def test_home_page_is_rendered_by_django(client: httpx.Client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert HOME_MARKER in response.text
    assert re.search(r'<span id="note-count">\d+</span>', response.text)
    assert '<script src="/static/notes/notes.js" defer></script>' in response.text


def test_home_page_script_is_served(client: httpx.Client) -> None:
    response = client.get("/static/notes/notes.js")
    assert response.status_code == 200
    assert "javascript" in response.headers["content-type"]
    assert "new EventSource(`${api}/events`)" in response.text


def test_admin_login_page_renders(client: httpx.Client) -> None:
    redirect = client.get("/admin/")
    assert redirect.status_code == 302
    assert redirect.headers["location"] == "/admin/login/?next=/admin/"
    login = client.get("/admin/login/")
    assert login.status_code == 200
    assert "Django administration" in login.text
    assert 'name="csrfmiddlewaretoken"' in login.text
    assert client.get("/static/admin/css/base.css").status_code == 200


def test_api_notes_round_trip(server: Server, client: httpx.Client) -> None:
    created = create_note(server, "written through the API")
    assert set(created) == {"id", "text", "created_at"}
    assert created["text"] == "written through the API"
    listed = client.get("/api/notes").json()
    assert created in listed
    assert [note["id"] for note in listed] == sorted(note["id"] for note in listed)
    assert client.get("/api/notes", params={"limit": 1}).json() == [listed[-1]]
    # The legacy view reads, with the ORM, what the API wrote.
    detail = client.get(f"/notes/{created['id']}/")
    assert detail.status_code == 200
    assert '<p id="note-text">written through the API</p>' in detail.text
    assert client.post("/api/notes", json={"text": ""}).status_code == 422
    assert client.post("/api/notes", json={"text": "x" * 501}).status_code == 422


def test_api_docs_know_their_mount_prefix(client: httpx.Client) -> None:
    schema = client.get("/api/openapi.json").json()
    assert "/notes" in schema["paths"]
    assert client.get("/api/docs").status_code == 200


def test_event_stream_delivers_a_created_note(server: Server, client: httpx.Client) -> None:
    with client.stream("GET", "/api/events") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = EventStream(response)
        assert events.next_event() == ("ready", "{}")
        created = create_note(server, "announced over SSE")
        assert events.wait_for_note("announced over SSE", time.monotonic() + TIMEOUT) == created


def test_websocket_delivers_a_created_note(server: Server) -> None:
    socket_client = WebSocketClient(server, "/api/ws")
    try:
        accepted = socket_client.next_event()
        assert isinstance(accepted, AcceptConnection), accepted
        assert socket_client.receive_json() == {"type": "ready"}
        created = create_note(server, "announced over the websocket")
        assert socket_client.receive_json() == {"type": "note", "note": created}
    finally:
        socket_client.close()


def test_websocket_to_the_legacy_app_is_denied_by_django(server: Server) -> None:
    # Django gets the upgrade as a GET it does not route: its 404 is the denial.
    socket_client = WebSocketClient(server, "/ws")
    try:
        rejected = socket_client.next_event()
        assert isinstance(rejected, RejectConnection), rejected
        assert rejected.status_code == 404
    finally:
        socket_client.close()


def test_note_added_in_the_legacy_admin_reaches_the_live_stream(
    server: Server, client: httpx.Client
) -> None:
    login_page = client.get("/admin/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login_page.text)
    assert token, login_page.text
    logged_in = client.post(
        "/admin/login/?next=/admin/",
        data={
            "csrfmiddlewaretoken": token[1],
            "username": ADMIN_USER,
            "password": ADMIN_PASSWORD,
            "next": "/admin/",
        },
    )
    assert logged_in.status_code == 302, logged_in.text
    assert logged_in.headers["location"] == "/admin/"
    add_page = client.get("/admin/notes/note/add/")
    assert add_page.status_code == 200
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', add_page.text)
    assert token, add_page.text
    with client.stream("GET", "/api/events") as response:
        events = EventStream(response)
        assert events.next_event() == ("ready", "{}")
        saved = client.post(
            "/admin/notes/note/add/",
            data={"csrfmiddlewaretoken": token[1], "text": "added in the admin"},
        )
        assert saved.status_code == 302, saved.text
        note = events.wait_for_note("added in the admin", time.monotonic() + TIMEOUT)
    assert note in client.get("/api/notes").json()
