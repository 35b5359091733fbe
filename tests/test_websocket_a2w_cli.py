"""``python -m bridge inspect`` says whether an ASGI app's WebSockets work under each
WSGI server."""

from __future__ import annotations

import pytest

from bridge.cli import main


@pytest.mark.parametrize(
    "app", ["tests.fixtures_pkg.apps:bridged", "tests.fixtures_pkg.apps:mounted"]
)
def test_inspect_says_where_websockets_work(capsys: pytest.CaptureFixture[str], app: str) -> None:
    assert main(["inspect", app]) == 0
    lines = capsys.readouterr().out.splitlines()

    def after(server: str) -> str:
        index = next(i for i, line in enumerate(lines) if line.startswith(f"  served by {server}"))
        return lines[index + 1].strip()

    assert after("gunicorn").startswith("websockets: yes (gunicorn's sync and gthread workers")
    assert after("waitress") == (
        "websockets: no: waitress offers no socket (upgrade requests reach the app as HTTP)"
    )
    assert after("wsgiref").startswith("websockets: no: wsgiref offers no socket")


def test_inspect_says_nothing_of_websockets_for_a_wsgi_app(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["inspect", "tests.fixtures_pkg.apps:wsgi_app"]) == 0
    assert "websockets:" not in capsys.readouterr().out


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
