"""``examples/fastapi_websockets_on_gunicorn``, run by gunicorn as its docstring says."""

from __future__ import annotations

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.conftest import Serve

pytestmark = pytest.mark.server

TIMEOUT = 10.0


def test_fastapi_websockets_on_gunicorn(serve: Serve) -> None:
    with serve(
        "gunicorn",
        "examples.fastapi_websockets_on_gunicorn.app:wsgi_app",
        extra_args=["--worker-class", "gthread", "--threads", "8"],
        ready_path="/who",
    ) as server:
        base = f"ws://{server.host}:{server.port}/chat/"

        def join(name: str) -> ClientConnection:
            return connect(base + name, proxy=None, open_timeout=TIMEOUT, close_timeout=TIMEOUT)

        with join("alice") as alice:
            assert alice.recv(TIMEOUT) == "alice joined"
            with join("bob") as bob:
                assert bob.recv(TIMEOUT) == "bob joined"
                assert alice.recv(TIMEOUT) == "bob joined"
                who = httpx.get(f"{server.url}/who", timeout=TIMEOUT).json()
                assert who == {"members": ["alice", "bob"]}
                bob.send("hi all")
                assert alice.recv(TIMEOUT) == "bob: hi all"
                assert bob.recv(TIMEOUT) == "bob: hi all"
                with join("bob") as impostor:
                    with pytest.raises(ConnectionClosed):
                        impostor.recv(TIMEOUT)
                assert (impostor.close_code, impostor.close_reason) == (4009, "that name is taken")
            assert alice.recv(TIMEOUT) == "bob left"
