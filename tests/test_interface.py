"""Interface detection, ``to_asgi``/``to_wsgi`` and import strings."""

from __future__ import annotations

import functools
import io
from collections.abc import Iterable
from typing import Any

import django.core.handlers.wsgi
import flask
import httpx
import pytest
import starlette.applications
import starlette.endpoints
import starlette.requests
import starlette.responses

from bridge import (
    AppLoadError,
    ASGIToWSGI,
    WSGIToASGI,
    detect_interface,
    to_asgi,
    to_wsgi,
)
from bridge._importer import import_from_string
from bridge.types import Receive, Scope, Send, StartResponse
from tests.fixtures_pkg import apps


def _wsgi(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [])
    return [b""]


async def _asgi(scope: Scope, receive: Receive, send: Send) -> None:
    pass


class _WSGIClass:
    """PEP 3333 allows a class as the app: instantiated per request."""

    def __init__(self, environ: dict[str, Any], start_response: StartResponse) -> None:
        start_response("200 OK", [])

    def __iter__(self) -> Any:
        return iter([b"class"])


class _ASGIObject:
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        pass


class _SyncASGIObject:
    """Middleware-style: a sync __call__ that returns the awaitable."""

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Any:
        return _asgi(scope, receive, send)


class _Endpoint(starlette.endpoints.HTTPEndpoint):
    """An ASGI 3 class: instantiated with (scope, receive, send), then awaited."""

    async def get(self, request: starlette.requests.Request) -> starlette.responses.Response:
        return starlette.responses.PlainTextResponse("an endpoint")


def test_an_awaitable_class_is_served_as_asgi3() -> None:
    adapter = ASGIToWSGI(_Endpoint, lifespan="off")
    try:
        environ = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": "/",
            "SERVER_NAME": "testserver",
            "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "wsgi.input": io.BytesIO(),
            "wsgi.url_scheme": "http",
        }
        result = adapter(environ, lambda *args: lambda data: None)
        try:
            assert b"".join(result) == b"an endpoint"
        finally:
            result.close()
    finally:
        adapter.close()


@pytest.mark.parametrize(
    ("app", "expected"),
    [
        pytest.param(_wsgi, "wsgi", id="wsgi-function"),
        pytest.param(_WSGIClass, "wsgi", id="wsgi-class"),
        pytest.param(flask.Flask("t"), "wsgi", id="flask"),
        pytest.param(
            # What get_wsgi_application() returns, without configuring settings.
            object.__new__(django.core.handlers.wsgi.WSGIHandler),
            "wsgi",
            id="django-handler",
        ),
        pytest.param(_asgi, "asgi3", id="asgi3-function"),
        pytest.param(_ASGIObject(), "asgi3", id="asgi3-object"),
        pytest.param(_SyncASGIObject(), "asgi3", id="asgi3-sync-call"),
        pytest.param(starlette.applications.Starlette(), "asgi3", id="starlette"),
        pytest.param(apps.ASGI2App, "asgi2", id="asgi2-class"),
        pytest.param(_Endpoint, "asgi3", id="awaitable-class"),
        pytest.param(functools.partial(_asgi), "asgi3", id="partial-of-async"),
        pytest.param(WSGIToASGI(_wsgi), "asgi3", id="WSGIToASGI"),
        pytest.param(ASGIToWSGI(_asgi), "wsgi", id="ASGIToWSGI"),
    ],
)
def test_detect_interface(app: object, expected: str) -> None:
    assert detect_interface(app) == expected


def test_detect_interface_refuses_what_it_cannot_tell() -> None:
    with pytest.raises(TypeError, match="variable number of positional arguments"):
        detect_interface(lambda *args: None)
    with pytest.raises(TypeError, match="not callable"):
        detect_interface(42)


def test_to_asgi_returns_asgi_apps_unchanged_and_unwraps() -> None:
    assert to_asgi(_asgi) is _asgi
    assert to_asgi(ASGIToWSGI(_asgi)) is _asgi
    wrapped = to_asgi(_wsgi, max_threads=3)
    assert isinstance(wrapped, WSGIToASGI)
    assert wrapped.app is _wsgi
    assert wrapped.limiter.total_tokens == 3


def test_to_wsgi_returns_wsgi_apps_unchanged_and_unwraps() -> None:
    assert to_wsgi(_wsgi) is _wsgi
    assert to_wsgi(WSGIToASGI(_wsgi)) is _wsgi
    wrapped = to_wsgi(_asgi)
    assert isinstance(wrapped, ASGIToWSGI)
    assert wrapped.app is _asgi


def test_explicit_interface_wins() -> None:
    ambiguous = functools.partial(lambda *args: _wsgi(*args))
    wrapped = to_asgi(ambiguous, interface="wsgi")
    assert isinstance(wrapped, WSGIToASGI)
    with pytest.raises(ValueError, match="Expected interface"):
        to_asgi(_wsgi, interface="cgi")  # type: ignore[arg-type]


def test_asgi2_is_adapted_and_served() -> None:
    app = to_wsgi(apps.ASGI2App)
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://t") as client:
        assert client.get("/").text == "asgi"
    assert isinstance(app, ASGIToWSGI)
    app.close()


@pytest.mark.anyio
async def test_import_string_is_accepted() -> None:
    app = to_asgi("tests.fixtures_pkg.apps:wsgi_app")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/")).text == "wsgi"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_import_from_string() -> None:
    assert import_from_string("tests.fixtures_pkg.apps:asgi_app") is apps.asgi_app
    assert import_from_string("tests.fixtures_pkg.apps:Nested.app") is apps.asgi_app


@pytest.mark.parametrize(
    ("string", "message"),
    [
        pytest.param("tests.fixtures_pkg.apps", "must be in format", id="no-colon"),
        pytest.param(":app", "must be in format", id="no-module"),
        pytest.param(
            "tests.fixtures_pkg.nope:app", 'Could not import module "tests.fixtures', id="module"
        ),
        pytest.param("tests.fixtures_pkg.apps:nope", 'Attribute "nope" not found', id="attribute"),
    ],
)
def test_import_errors_say_what_is_wrong(string: str, message: str) -> None:
    with pytest.raises(AppLoadError, match=message):
        import_from_string(string)


def test_import_error_inside_the_module_propagates(tmp_path: Any, monkeypatch: Any) -> None:
    (tmp_path / "broken_mod.py").write_text("import module_that_does_not_exist\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="module_that_does_not_exist"):
        import_from_string("broken_mod:app")
