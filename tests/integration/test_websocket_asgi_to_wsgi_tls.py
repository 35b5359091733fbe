"""An ASGI app's WebSockets over TLS through ``ASGIToWSGI``, under real WSGI servers.

gunicorn (``--certfile``) and werkzeug's server (``ssl_context``) hand over a TLS
socket; the adapter's loop reads and writes it as it is (a TLS socket has no
``sendmsg()``, and a 1 MiB message crosses as 64 records each way). The certificate
is made for the test with the ``openssl`` command (a Debian package CI installs).
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from ._protocols import RunningServer, ServeFn

pytestmark = pytest.mark.server

APP = "tests.integration.apps.fastapi_websocket_app:wsgi_app"
TIMEOUT = 10.0
SERVERS = {
    "gunicorn-gthread": ("gunicorn", ("--worker-class", "gthread", "--threads", "4")),
    "werkzeug": ("tests.integration.werkzeug_server", ("--threaded",)),
}


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


@pytest.fixture(scope="module")
def client_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certificate[0]))


@pytest.fixture(scope="module", params=list(SERVERS))
def server(
    request: pytest.FixtureRequest,
    serve: ServeFn,
    certificate: tuple[Path, Path],
    client_tls: ssl.SSLContext,
) -> Iterator[RunningServer]:
    name, args = SERVERS[request.param]
    cert, key = certificate
    tls_args = ("--certfile", str(cert), "--keyfile", str(key))
    with serve(name, APP, extra_args=(*args, *tls_args), tls=client_tls) as running:
        yield running
        assert running.is_running(), running.describe()


def test_messages_both_ways_over_tls(server: RunningServer, client_tls: ssl.SSLContext) -> None:
    big = bytes(range(256)) * 4096  # 1 MiB: 64 records each way
    url = f"wss://{server.host}:{server.port}/ws/echo"
    with connect(
        url, ssl=client_tls, proxy=None, open_timeout=TIMEOUT, close_timeout=TIMEOUT
    ) as ws:
        ws.send("héllo")
        assert ws.recv(TIMEOUT) == "héllo"
        ws.send(big)
        assert ws.recv(TIMEOUT) == big
        for index in range(20):  # small messages back to back, several per record read
            ws.send(f"message {index}")
        assert [ws.recv(TIMEOUT) for _ in range(20)] == [f"message {i}" for i in range(20)]
        ws.send("close:4000:done")
        with pytest.raises(ConnectionClosed):
            ws.recv(TIMEOUT)
    assert (ws.close_code, ws.close_reason) == (4000, "done")
    # The server goes on serving HTTPS on a fresh connection.
    answer = httpx.get(f"https://{server.host}:{server.port}/", verify=client_tls, timeout=TIMEOUT)
    assert answer.text == "ok\n"
    log = server.log_tail(200)
    assert "Traceback" not in log, server.describe()
