"""Each example, run by a real server as its docstring says."""

from __future__ import annotations

import hashlib
import time

import httpx
import pytest

from tests.conftest import Serve

pytestmark = pytest.mark.server


def test_flask_on_uvicorn(serve: Serve) -> None:
    with serve("uvicorn", "examples.flask_on_uvicorn.app:asgi_app") as server:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            assert client.get("/").json()["path"] == "/"
            with client.stream("GET", "/stream") as response:
                lines = [line for line in response.iter_lines() if line]
            assert lines == [f"line {number}" for number in range(10)]
            data = bytes(range(256)) * 4096
            uploaded = client.post("/upload", files={"file": ("blob.bin", data)}).json()
            assert uploaded == {
                "filename": "blob.bin",
                "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
            }
            assert client.get("/visits").json() == {"visits": 1}
            assert client.get("/visits").json() == {"visits": 2}


def test_flask_on_uvicorn_websocket(serve: Serve) -> None:
    from websockets.exceptions import ConnectionClosedOK
    from websockets.sync.client import connect

    with serve("uvicorn", "examples.flask_on_uvicorn.app:asgi_app") as server:
        with connect(f"ws://{server.host}:{server.port}/chat", open_timeout=10) as ws:
            ws.send("hello")
            assert ws.recv(timeout=10) == "1: hello"
            ws.send("again")
            assert ws.recv(timeout=10) == "2: again"
            ws.send("bye")
            with pytest.raises(ConnectionClosedOK) as closed:
                ws.recv(timeout=10)
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1000, "see you")


def test_starlette_on_gunicorn(serve: Serve) -> None:
    with serve(
        "gunicorn",
        "examples.starlette_on_gunicorn.app:wsgi_app",
        extra_args=["--worker-class", "gthread", "--threads", "4"],
    ) as server:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            index = client.get("/").json()
            assert isinstance(index["worker"], int)
            with client.stream("GET", "/events") as response:
                assert response.headers["content-type"].startswith("text/event-stream")
                events = [line for line in response.iter_lines() if line]
            assert events == [f"data: event {number}" for number in range(10)]
            accepted = client.post("/jobs", content=b"report")
            assert accepted.status_code == 202
            deadline = time.monotonic() + 5
            while "report" not in client.get("/jobs").json()["finished"]:
                assert time.monotonic() < deadline, "the background job never finished"
                time.sleep(0.05)


@pytest.mark.parametrize(
    ("server", "app", "extra_args"),
    [
        pytest.param("uvicorn", "examples.mixed_mount.app:app", [], id="uvicorn"),
        pytest.param(
            "gunicorn",
            "examples.mixed_mount.app:wsgi_app",
            ["--worker-class", "gthread", "--threads", "4"],
            id="gunicorn",
        ),
    ],
)
def test_mixed_mount(serve: Serve, server: str, app: str, extra_args: list[str]) -> None:
    with serve(server, app, extra_args=extra_args) as running:
        with httpx.Client(base_url=running.url, timeout=10) as client:
            assert client.get("/").json() == {
                "app": "flask",
                "script_name": "",
                "path_info": "/",
                "about_url": "/about",
            }
            api = client.get("/api/").json()
            assert api["app"] == "starlette"
            assert api["root_path"] == "/api"
            assert api["greeting"] == "hello from the API's lifespan"
            assert api["items_url"].endswith("/api/items")
            assert client.get("/api/items").json() == {"items": [1, 2, 3]}
            assert client.get("/health").text == "ok"
            assert client.get("/apix").status_code == 404
