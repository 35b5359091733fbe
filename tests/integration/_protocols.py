"""The shapes of ``tests/conftest.py``'s ``serve`` fixture, for annotating tests.

They are structural so that test modules need not import ``conftest``, whose module
name depends on how pytest imports it (``conftest`` or ``tests.conftest``).
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol


class RunningServer(Protocol):
    """What ``serve()`` yields: ``conftest.Server``."""

    @property
    def name(self) -> str: ...
    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def url(self) -> str: ...
    @property
    def pid(self) -> int: ...
    @property
    def log_path(self) -> Path: ...
    def is_running(self) -> bool: ...
    def log_tail(self, lines: int = ...) -> str: ...
    def describe(self, lines: int = ...) -> str: ...


class ServeFn(Protocol):
    """The ``serve`` fixture: ``conftest.serve`` with logs in pytest's tmp directory."""

    def __call__(
        self,
        server: str,
        app_import: str,
        *,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        ready_path: str = "/",
        tls: ssl.SSLContext | None = None,
    ) -> contextlib.AbstractContextManager[RunningServer]: ...
