"""``python -m bridge inspect`` says whether an app's WebSockets work under each server."""

from __future__ import annotations

import pytest

from bridge.cli import main


def _websockets_lines(lines: list[str]) -> dict[str, str]:
    """Each server's ``websockets:`` line, by the server's name."""
    said: dict[str, str] = {}
    for index, line in enumerate(lines):
        if line.startswith("  served by "):
            name = line.removeprefix("  served by ").split(":")[0].split(" ")[0]
            said[name] = lines[index + 1].strip()
    return said


@pytest.mark.parametrize(
    "app", ["tests.fixtures_pkg.apps:bridged", "tests.fixtures_pkg.apps:mounted"]
)
def test_inspect_says_where_an_asgi_apps_websockets_work(
    capsys: pytest.CaptureFixture[str], app: str
) -> None:
    assert main(["inspect", app]) == 0
    said = _websockets_lines(capsys.readouterr().out.splitlines())
    assert said["gunicorn"].startswith("websockets: yes (gunicorn's sync and gthread workers")
    assert said["waitress"] == (
        "websockets: no: waitress offers no socket (upgrade requests reach the app as HTTP)"
    )
    assert said["wsgiref"].startswith("websockets: no: wsgiref offers no socket")
    assert said["uwsgi"] == said["mod_wsgi"] == "websockets: no: it offers no socket"
    # The ASGI servers serve the ASGI app itself (ASGIToWSGI's is unwrapped); granian
    # serves each app with the app's own interface.
    assert said["uvicorn"] == said["hypercorn"] == "websockets: yes"
    if app.endswith(":bridged"):
        assert said["granian"].startswith("websockets: no: granian's WSGI interface")
    else:
        assert said["granian"] == "websockets: yes"


def test_inspect_says_where_a_wsgi_apps_websockets_work(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["inspect", "tests.fixtures_pkg.apps:wsgi_app"]) == 0
    said = _websockets_lines(capsys.readouterr().out.splitlines())
    through = "websockets: yes, through WSGIToASGI (flask-sock, Flask-SocketIO"
    assert said["uvicorn"].startswith(through)
    assert said["hypercorn"].startswith(through)
    # Granian serves a WSGI app with its WSGI interface, which hands over no socket.
    assert said["granian"].startswith("websockets: no: granian's WSGI interface offers no socket")
    assert said["gunicorn"].startswith("websockets: yes (gunicorn's sync and gthread workers")
    assert said["waitress"].startswith("websockets: no: waitress offers no socket")
    assert len(said) == 8, said


@pytest.mark.parametrize("available", [True, False])
def test_inspect_says_how_websocket_frames_are_masked(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, available: bool
) -> None:
    from bridge import _websocket_masking

    monkeypatch.setattr(_websocket_masking, "AVAILABLE", available)
    assert main(["inspect", "tests.fixtures_pkg.apps:bridged"]) == 0
    out = capsys.readouterr().out
    if available:
        assert "WebSocket masking: in C (the websockets library is installed)" in out
    else:
        assert "pip install 'wsgi-asgi-bridge[speedups]'" in out
