"""``Mount``: prefix dispatch, paths, lifespan fan-out, websockets."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Iterable
from typing import Any

import anyio
import httpx
import pytest
from flask import Flask, jsonify, request, url_for
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from bridge import ASGIToWSGI, Mount, WSGIToASGI, to_wsgi
from bridge.types import Message, Receive, Scope, Send, StartResponse

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _recording_wsgi(name: str) -> Any:
    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        body = json.dumps(
            {"app": name, "SCRIPT_NAME": environ["SCRIPT_NAME"], "PATH_INFO": environ["PATH_INFO"]}
        ).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]

    return app


def _recording_asgi(name: str) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = json.dumps(
            {"app": name, "root_path": scope["root_path"], "path": scope["path"]}
        ).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    return app


def _client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def test_longest_prefix_on_segment_boundaries() -> None:
    app = Mount(
        {
            "/api": _recording_asgi("api"),
            "/api/v2": _recording_asgi("v2"),
            "/legacy/": _recording_wsgi("legacy"),
        },
        default=_recording_wsgi("default"),
    )
    async with _client(app) as client:
        seen = {
            path: (await client.get(path)).json()
            for path in [
                "/api/users",
                "/api/v2/users",
                "/apikeys",
                "/legacy/x",
                "/legacy",
                "/",
                "/legacyx",
            ]
        }
    assert seen["/api/users"] == {"app": "api", "root_path": "/api", "path": "/api/users"}
    assert seen["/api/v2/users"] == {"app": "v2", "root_path": "/api/v2", "path": "/api/v2/users"}
    assert seen["/apikeys"]["app"] == "default"
    assert seen["/legacy/x"] == {"app": "legacy", "SCRIPT_NAME": "/legacy", "PATH_INFO": "/x"}
    assert seen["/legacy"] == {"app": "legacy", "SCRIPT_NAME": "/legacy", "PATH_INFO": ""}
    assert seen["/"] == {"app": "default", "SCRIPT_NAME": "", "PATH_INFO": "/"}
    assert seen["/legacyx"]["app"] == "default"


async def test_wsgi_apps_are_wrapped_once() -> None:
    wsgi = _recording_wsgi("w")
    app = Mount({"/a": wsgi, "/b": WSGIToASGI(wsgi)})
    wrapped = dict(app.routes)
    assert isinstance(wrapped["/a"], WSGIToASGI) and wrapped["/a"].app is wsgi
    assert isinstance(wrapped["/b"], WSGIToASGI) and wrapped["/b"].app is wsgi
    assert not isinstance(wrapped["/b"].app, WSGIToASGI)


async def test_mount_inside_a_root_path() -> None:
    app = Mount({"/api": _recording_asgi("api")})
    transport = httpx.ASGITransport(app=app, root_path="/outer")
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        seen = (await client.get("/outer/api/x")).json()
    assert seen == {"app": "api", "root_path": "/outer/api", "path": "/outer/api/x"}


async def test_unmatched_paths_get_404_without_default() -> None:
    async with _client(Mount({"/api": _recording_asgi("api")})) as client:
        response = await client.get("/other")
    assert response.status_code == 404
    assert response.text == "Not Found"


async def test_flask_and_starlette_build_urls_with_their_prefix() -> None:
    flask_app = Flask(__name__)

    @flask_app.get("/page")
    def page() -> Any:
        return jsonify(url=url_for("page"), script=request.script_root)

    async def endpoint(request: Request) -> Response:
        return JSONResponse({"url": str(request.url_for("item"))})

    starlette_app = Starlette(routes=[Route("/item", endpoint, name="item")])
    app = Mount({"/old": flask_app, "/new": starlette_app})
    async with _client(app) as client:
        assert (await client.get("/old/page")).json() == {"url": "/old/page", "script": "/old"}
        assert (await client.get("/new/item")).json() == {"url": "http://t/new/item"}


async def test_bare_prefix_is_left_to_the_app_unless_redirect_slashes() -> None:
    starlette_app = Starlette(routes=[Route("/", lambda request: Response("root"))])
    async with _client(Mount({"/new": starlette_app})) as client:
        response = await client.get("/new?x=1")
    # Starlette itself redirects a mount's bare prefix; the Mount passed it through.
    assert response.status_code == 307
    assert response.headers["location"] == "http://t/new/?x=1"

    async with _client(Mount({"/w": _recording_wsgi("w")})) as client:
        assert (await client.get("/w")).json()["PATH_INFO"] == ""
    async with _client(Mount({"/w": _recording_wsgi("w")}, redirect_slashes=True)) as client:
        response = await client.get("/w?x=1")
    assert response.status_code == 307
    assert response.headers["location"] == "/w/?x=1"


def test_bad_prefixes_are_refused() -> None:
    with pytest.raises(ValueError, match="must start with '/'"):
        Mount({"api": _recording_asgi("a")})
    with pytest.raises(ValueError, match="mounted twice"):
        Mount([("/api", _recording_asgi("a")), ("/api/", _recording_asgi("b"))])


def _lifespan_app(name: str, log: list[str], *, fail: bool = False) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        log.append(f"start {name}")
        if fail:
            raise RuntimeError(f"{name} cannot start")
        yield {"name": name}
        log.append(f"stop {name}")

    async def endpoint(request: Request) -> Response:
        return JSONResponse({"state": request.state.name})

    return Starlette(routes=[Route("/", endpoint)], lifespan=lifespan)


async def _run_lifespan(app: Any, messages: list[Message]) -> list[Message]:
    sent: list[Message] = []
    inbox = list(messages)

    async def receive() -> Message:
        if not inbox:
            await anyio.sleep_forever()  # bounded by the fail_after below
        return inbox.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    with anyio.fail_after(5):
        await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)
    return sent


async def test_lifespan_fans_out_and_state_stays_per_mount() -> None:
    log: list[str] = []
    app = Mount(
        {"/a": _lifespan_app("a", log), "/b": _lifespan_app("b", log), "/w": _recording_wsgi("w")},
        default=_lifespan_app("default", log),
    )
    sent: list[Message] = []
    shutdown = anyio.Event()
    started = anyio.Event()

    async def receive() -> Message:
        if not sent:
            return {"type": "lifespan.startup"}
        await shutdown.wait()
        return {"type": "lifespan.shutdown"}

    async def send(message: Message) -> None:
        sent.append(message)
        started.set()

    async with anyio.create_task_group() as task_group:
        task_group.start_soon(app, {"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
        with anyio.fail_after(5):
            await started.wait()
        assert sent == [{"type": "lifespan.startup.complete"}]
        async with _client(app) as client:
            assert (await client.get("/a/")).json() == {"state": "a"}
            assert (await client.get("/b/")).json() == {"state": "b"}
            assert (await client.get("/")).json() == {"state": "default"}
        shutdown.set()
    assert sent[-1] == {"type": "lifespan.shutdown.complete"}
    # Longest prefix first (both are one segment: mount order), default last; reverse on stop.
    starts = [entry for entry in log if entry.startswith("start")]
    stops = [entry for entry in log if entry.startswith("stop")]
    assert starts[-1] == "start default"
    assert stops == [entry.replace("start", "stop") for entry in reversed(starts)]


async def test_lifespan_failure_names_the_mount_and_stops_the_started() -> None:
    log: list[str] = []
    app = Mount({"/ok": _lifespan_app("ok", log), "/bad": _lifespan_app("bad", log, fail=True)})
    sent = await _run_lifespan(app, [{"type": "lifespan.startup"}])
    assert sent[-1]["type"] == "lifespan.startup.failed"
    assert "'/bad'" in sent[-1]["message"]
    assert "bad cannot start" in sent[-1]["message"]
    if "start ok" in log:
        assert "stop ok" in log


async def _websocket(app: Any, path: str, *, denial: bool = False) -> list[Message]:
    sent: list[Message] = []
    incoming: list[Message] = [
        {"type": "websocket.connect"},
        {"type": "websocket.receive", "text": "ping"},
        {"type": "websocket.disconnect", "code": 1000},
    ]

    async def receive() -> Message:
        return incoming.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [],
        "scheme": "ws",
        "subprotocols": [],
        "extensions": {"websocket.http.response": {}} if denial else {},
    }
    with anyio.fail_after(5):
        await app(scope, receive, send)
    return sent


async def test_websockets_reach_asgi_and_wsgi_mounts_by_prefix() -> None:
    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(await websocket.receive_text())
        await websocket.close()

    app = Mount(
        {
            "/ws": Starlette(routes=[WebSocketRoute("/echo", echo)]),
            "/legacy": _recording_wsgi("old"),
        },
        default=_recording_wsgi("default"),
    )
    sent = await _websocket(app, "/ws/echo")
    assert [message["type"] for message in sent] == [
        "websocket.accept",
        "websocket.send",
        "websocket.close",
    ]
    assert sent[1]["text"] == "ping"
    # The WSGI mount gets the upgrade with its prefix in SCRIPT_NAME; this one answers
    # it with a plain response, which is the handshake's denial.
    denied = await _websocket(app, "/legacy/socket", denial=True)
    assert denied[0]["type"] == "websocket.http.response.start"
    assert {message["type"] for message in denied[1:]} == {"websocket.http.response.body"}
    assert not denied[-1].get("more_body", False)
    assert json.loads(b"".join(message["body"] for message in denied[1:])) == {
        "app": "old",
        "SCRIPT_NAME": "/legacy",
        "PATH_INFO": "/socket",
    }
    refused = await _websocket(app, "/other")
    assert [message["type"] for message in refused] == ["websocket.close"]


def test_to_wsgi_of_a_mount_serves_the_mix_with_lifespans() -> None:
    log: list[str] = []
    app = to_wsgi(Mount({"/api": _lifespan_app("api", log)}, default=_recording_wsgi("legacy")))
    assert isinstance(app, ASGIToWSGI)
    try:
        with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://t") as client:
            assert client.get("/api/").json() == {"state": "api"}
            assert client.get("/x").json() == {
                "app": "legacy",
                "SCRIPT_NAME": "",
                "PATH_INFO": "/x",
            }
    finally:
        app.close()
    assert log == ["start api", "stop api"]
