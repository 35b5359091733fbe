"""The four test suites the yardstick runs, and how each is installed and started."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Mode = Literal["asgi", "wsgi"]


@dataclass(frozen=True)
class Suite:
    """One framework's own test suite, as shipped in its source distribution.

    * ``dist``: the name on PyPI (and of the sdist file).
    * ``mode``: ``"asgi"`` bridges every app given to Starlette's ``TestClient`` as
      ``WSGIToASGI(ASGIToWSGI(app))``; ``"wsgi"`` bridges every app run by
      Werkzeug's ``run_wsgi_app`` as ``ASGIToWSGI(WSGIToASGI(app))``.
    * ``extras``: extras of the framework itself that its tests import.
    * ``groups``: the sdist's PEP 735 dependency groups that hold its test
      dependencies (read from its ``pyproject.toml`` at install time).
    * ``paths``: what pytest is given, relative to the sdist's root.
    * ``fast``: representative test files for ``--fast``.
    * ``pytest_args``: extra arguments for both runs, such as deselecting tests that
      start a real server in a subprocess (no test client, so nothing to compare).
    * ``also_pin``: other frameworks under test that the suite runs on, pinned to
      their versions under test in its venv (Flask runs on Werkzeug).
    * ``constraints``: requirements added to the suite's venv to keep it runnable.

    Each suite gets a venv of its own, so that one suite's test tools never decide
    another's.
    """

    name: str
    dist: str
    mode: Mode
    extras: tuple[str, ...] = ()
    groups: tuple[str, ...] = ("tests",)
    paths: tuple[str, ...] = ("tests",)
    fast: tuple[str, ...] = ()
    pytest_args: tuple[str, ...] = ()
    also_pin: tuple[str, ...] = ()
    constraints: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)


SUITES: dict[str, Suite] = {
    suite.name: suite
    for suite in (
        Suite(
            name="starlette",
            dist="starlette",
            mode="asgi",
            extras=("full",),
            groups=("dev",),
            fast=(
                "tests/test_requests.py",
                "tests/test_responses.py",
                "tests/test_background.py",
                "tests/middleware/test_errors.py",
                "tests/middleware/test_body_limit.py",
            ),
        ),
        Suite(
            name="fastapi",
            dist="fastapi",
            mode="asgi",
            extras=("all",),
            groups=("tests",),
            also_pin=("starlette",),
            fast=(
                "tests/test_dependency_after_yield_streaming.py",
                "tests/test_exception_handlers.py",
                "tests/test_tutorial/test_additional_responses",
                "tests/test_tutorial/test_header_params",
                "tests/test_ws_router.py",
                "tests/test_telemetry/test_background.py",
            ),
        ),
        Suite(
            name="flask",
            dist="flask",
            mode="wsgi",
            also_pin=("werkzeug",),
            # Its conftest uses _pytest.monkeypatch.notset, gone in pytest 9.1.
            constraints=("pytest<9.1",),
            fast=("tests/test_testing.py", "tests/test_reqctx.py", "tests/test_basic.py"),
        ),
        Suite(
            name="werkzeug",
            dist="werkzeug",
            mode="wsgi",
            fast=("tests/test_test.py", "tests/test_wsgi.py", "tests/test_wrappers.py"),
            # Real dev servers in subprocesses: no test client is involved.
            pytest_args=("-m", "not dev_server"),
        ),
    )
}

# Tools in the suites' dependency groups that running the tests does not need (or
# that change pytest's output): coverage, benchmarks, linters, release tooling.
EXCLUDED_TEST_DEPS = frozenset(
    {
        "coverage",
        "pytest-cov",
        "pytest-codspeed",
        "pytest-sugar",
        "pytest-xdist",
        "ruff",
        "twine",
        "prek",
        "zizmor",
        "playwright",
        "tox",
        "tox-uv",
        "pre-commit",
        "pre-commit-uv",
    }
)

# Installed for every run: the per-test time limit, and workers for --jobs 2.
RUNNER_DEPS = ("pytest-timeout", "pytest-xdist")
