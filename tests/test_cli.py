"""``python -m bridge``: inspect, serve, and its one-line errors."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from bridge import ServerNotAvailable
from bridge._servers import SERVERS
from bridge.cli import main
from tests.conftest import HOST, PROJECT_ROOT, free_port, open_directory, require_server, stop


def test_inspect_describes_a_mount(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", "tests.fixtures_pkg.apps:mounted"]) == 0
    out = capsys.readouterr().out
    assert "ASGI 3 (bridge.Mount)" in out
    assert "/asgi -> ASGI 3" in out
    assert "(default) -> WSGI" in out and "through WSGIToASGI" in out
    assert "served by gunicorn" in out and "through ASGIToWSGI" in out


def test_inspect_an_already_bridged_app(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", "tests.fixtures_pkg.apps:bridged"]) == 0
    out = capsys.readouterr().out
    assert "WSGI (bridge.ASGIToWSGI)" in out
    assert "served by uvicorn: the app it wraps, unwrapped" in out


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        pytest.param(["inspect", "nope"], 'must be in format "<module>:<attribute>"', id="format"),
        pytest.param(["inspect", "no_such_module:app"], "Could not import module", id="module"),
        pytest.param(["inspect", "tests.fixtures_pkg.apps:nope"], "not found in module", id="attr"),
        pytest.param(
            ["inspect", "tests.fixtures_pkg.apps:not_an_app"], "not callable", id="not-an-app"
        ),
    ],
)
def test_errors_are_one_line(
    arguments: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(arguments) == 1
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1
    assert "Traceback" not in err


def test_port_in_use_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as holder:
        holder.bind((HOST, 0))
        holder.listen()
        port = holder.getsockname()[1]
        code = main(
            [
                "serve",
                "tests.fixtures_pkg.apps:wsgi_app",
                "--server",
                "wsgiref",
                "--port",
                str(port),
            ]
        )
    assert code == 1
    err = capsys.readouterr().err
    assert f"Port {port} on {HOST} is in use" in err
    assert "--port" in err


def test_missing_server_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    server = SERVERS["granian"]
    monkeypatch.setattr(type(server), "is_installed", lambda self: False)
    with pytest.raises(ServerNotAvailable, match=r"pip install 'wsgi-asgi-bridge\[granian\]'"):
        server.require()


def test_no_bridge_console_script() -> None:
    # /usr/sbin/bridge belongs to iproute2 on Linux.
    text = (PROJECT_ROOT / "pyproject.toml").read_text()
    scripts = text.split("[project.scripts]", 1)[1].split("[", 1)[0]
    assert "\nbridge =" not in scripts
    assert "wsgi-asgi-bridge =" in scripts


@pytest.mark.server
@pytest.mark.parametrize(
    ("app", "server", "body"),
    [
        pytest.param("tests.fixtures_pkg.apps:asgi_app", "wsgiref", "asgi", id="asgi-on-wsgiref"),
        pytest.param("tests.fixtures_pkg.apps:wsgi_app", "uvicorn", "wsgi", id="wsgi-on-uvicorn"),
        pytest.param("tests.fixtures_pkg.apps:asgi_app", "gunicorn", "asgi", id="asgi-on-gunicorn"),
        pytest.param("tests.fixtures_pkg.apps:wsgi_app", "granian", "wsgi", id="wsgi-on-granian"),
        pytest.param(
            "tests.fixtures_pkg.apps:wsgi_app", "hypercorn", "wsgi", id="wsgi-on-hypercorn"
        ),
        pytest.param("tests.fixtures_pkg.apps:asgi_app", "waitress", "asgi", id="asgi-on-waitress"),
        pytest.param("tests.fixtures_pkg.apps:asgi_app", "uwsgi", "asgi", id="asgi-on-uwsgi"),
        pytest.param("tests.fixtures_pkg.apps:asgi_app", "mod_wsgi", "asgi", id="asgi-on-mod_wsgi"),
        pytest.param("tests.fixtures_pkg.apps:asgi_app", "granian", "asgi", id="asgi-on-granian"),
        pytest.param(
            "tests.fixtures_pkg.apps:bridged", "granian", "asgi", id="bridged-on-granian-wsgi"
        ),
    ],
)
def test_serve_runs_the_app_bridged(app: str, server: str, body: str, tmp_path: Path) -> None:
    require_server(server, app)
    port = free_port()
    log_path = tmp_path / "serve.log"
    # mod_wsgi-express makes its server root under $TMPDIR: one removed afterwards.
    scratch = contextlib.ExitStack()
    server_tmp = scratch.enter_context(open_directory("serve-cli-"))
    with log_path.open("ab") as log:  # appended: a server may reopen it (Apache)
        process = subprocess.Popen(
            [sys.executable, "-m", "bridge", "serve", app, "--server", server, "--port", str(port)],
            cwd=PROJECT_ROOT,
            env={**os.environ, "TMPDIR": str(server_tmp)},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 15
        text = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                text = httpx.get(f"http://{HOST}:{port}/", timeout=1).text
                break
            except httpx.TransportError:
                time.sleep(0.05)
        assert text == body, log_path.read_text(errors="replace")[-2000:]
    finally:
        stop(process, group=True)
        scratch.close()
    if server != "mod_wsgi":  # Apache truncates the log it shares when it opens it
        assert b"bridge: serving " + app.encode() in log_path.read_bytes()


@pytest.mark.parametrize(
    ("app", "interface"),
    [
        pytest.param("tests.fixtures_pkg.apps:wsgi_app", "wsgi", id="wsgi"),
        pytest.param("tests.fixtures_pkg.apps:bridged", "wsgi", id="bridged"),
        pytest.param("tests.fixtures_pkg.apps:asgi_app", "asgi", id="asgi"),
    ],
)
def test_granian_serves_each_app_with_its_own_interface(
    app: str, interface: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Neither bridged nor unwrapped: the interface granian is told to use is the app's.
    runs: list[tuple[str, str]] = []
    server = SERVERS["granian"]
    monkeypatch.setitem(
        SERVERS,
        "granian",
        dataclasses.replace(server, run=lambda target, options: runs.append((target, "ran"))),
    )
    for name in ("BRIDGE_TARGET", "BRIDGE_APP", "BRIDGE_INTERFACE"):
        monkeypatch.delenv(name, raising=False)

    assert main(["serve", app, "--server", "granian", "--port", str(free_port())]) == 0

    assert runs == [("bridge._served:app", "ran")]
    assert os.environ["BRIDGE_TARGET"] == interface


def test_uwsgi_is_found_as_a_program(monkeypatch: pytest.MonkeyPatch) -> None:
    server = SERVERS["uwsgi"]
    monkeypatch.setattr("bridge._servers._find_program", lambda name: None)
    assert not server.is_installed()
    with pytest.raises(ServerNotAvailable, match=r"wsgi-asgi-bridge\[uwsgi\]"):
        server.require()
