"""The ``serve`` harness itself: every server it knows starts, answers and stops."""

from __future__ import annotations

import httpx
import pytest

from ._protocols import ServeFn
from .apps import _shared

pytestmark = pytest.mark.server

PLAIN_WSGI = "tests.integration.apps.raw_app:wsgi_app"
"""The raw app without the bridge, for the WSGI servers."""


@pytest.mark.parametrize(
    ("server", "app", "extra_args"),
    [
        pytest.param("gunicorn", PLAIN_WSGI, (), id="gunicorn"),
        pytest.param("waitress", PLAIN_WSGI, (), id="waitress"),
        pytest.param("uvicorn", "tests.integration.apps.raw_app:app", (), id="uvicorn"),
        pytest.param(
            "hypercorn", "tests.integration.apps.raw_app:app", ("-k", "trio"), id="hypercorn"
        ),
        pytest.param("granian", PLAIN_WSGI, (), id="granian-wsgi"),
        pytest.param("uwsgi", PLAIN_WSGI, (), id="uwsgi"),
        pytest.param("mod_wsgi", PLAIN_WSGI, (), id="mod_wsgi"),
    ],
)
def test_serves_then_stops(
    serve: ServeFn,
    tmp_path_factory: pytest.TempPathFactory,
    server: str,
    app: str,
    extra_args: tuple[str, ...],
) -> None:
    markers = tmp_path_factory.mktemp("markers")
    markers.chmod(0o777)  # mod_wsgi's daemon user; the app writes none here
    env = {_shared.MARKER_DIR_ENV: str(markers)}
    with serve(server, app, extra_args=extra_args, env=env) as running:
        assert running.url == f"http://127.0.0.1:{running.port}"
        response = httpx.get(f"{running.url}/text", timeout=10.0)
        assert response.content == _shared.TEXT, running.describe()
        assert running.is_running()

    assert not running.is_running(), "The server outlived its context manager."
    assert running.log_path.exists()


def test_startup_failure_reports_the_log(serve: ServeFn) -> None:
    with (
        pytest.raises(pytest.fail.Exception, match="did not") as failure,
        serve("uvicorn", "tests.integration.apps.no_such_module:app"),
    ):
        pass  # pragma: no cover - never reached

    assert "no_such_module" in str(failure.value)


def test_unknown_server_is_refused(serve: ServeFn) -> None:
    with pytest.raises(ValueError, match="Expected a server in"), serve("nginx", "x:app"):
        pass  # pragma: no cover - never reached
