"""A/B of the work tree's ``bridge`` against a git revision, in one server.

``python -m benchmarks.compare --base REV [--case w2a-hello] [--cycles 10]``

Both versions are served side by side by one server process: ``bridge`` from the work
tree and ``bridge_base``, exported from ``REV``, each wrapping the same app, plus the
native app. wrk then loads each path for ``--seconds`` in turn, ``--cycles`` times,
with the order rotating, so the machine's drift hits all three alike and the ratio of
each cycle pairs measurements a few seconds apart. This resolves differences of a few
per cent on a machine whose speed drifts by 10-35 % over minutes, where separate
servers and rounds do not (see docs/performance.md). Servers and wrk are pinned as
in the full runner.

Cases: ``w2a-hello``, ``w2a-flask``, ``w2a-upload`` under uvicorn, and ``a2w-hello``,
``a2w-starlette``, ``a2w-upload`` under gunicorn (``--worker sync|gthread``). The
upload cases POST ``--post-size`` bytes (default 100). ``inprocess-w2a-hello`` and
``inprocess-a2w-hello`` call both versions directly in this process, no server
(:mod:`benchmarks.compare_inprocess`).
"""

from __future__ import annotations

import argparse
import importlib
import io
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import apps, compare_inprocess
from .load import LoadGenerator
from .servers import PROJECT_ROOT, Server

_BASE_PACKAGE = "bridge_base"


_INNER: dict[str, Callable[[], Any]] = {
    # The app of each case, unwrapped: WSGI for w2a-*, ASGI for a2w-*.
    "w2a-hello": lambda: apps.wsgi_hello,
    "w2a-flask": apps.make_flask,
    "w2a-upload": lambda: apps.wsgi_upload,
    "a2w-hello": lambda: apps.asgi_hello,
    "a2w-starlette": apps.make_starlette,
    "a2w-upload": lambda: apps.asgi_upload,
}
CASES = tuple(_INNER) + compare_inprocess.CASES


_NATIVE: dict[str, Callable[[], Any]] = {
    # The same app written for the server's own interface (Flask and Starlette have none).
    "w2a-hello": lambda: apps.asgi_hello,
    "w2a-upload": lambda: apps.asgi_upload,
    "a2w-hello": lambda: apps.wsgi_hello,
    "a2w-upload": lambda: apps.wsgi_upload,
}


def variants(case: str) -> tuple[str, ...]:
    return ("native", "base", "work") if case in _NATIVE else ("base", "work")


def _build(case: str, variant: str) -> Any:
    if variant == "native":
        return _NATIVE[case]()
    return _wrap(case, {"base": _BASE_PACKAGE, "work": "bridge"}[variant])


def _wrap(case: str, package: str) -> Any:
    adapter = "WSGIToASGI" if case.startswith("w2a") else "ASGIToWSGI"
    return getattr(importlib.import_module(package), adapter)(_INNER[case]())


def _asgi_dispatch(case: str) -> Any:
    routes: dict[str, Any] = {}

    async def dispatch(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await apps.asgi_hello(scope, receive, send)  # lifespan
            return
        variant = scope["path"].strip("/")
        app = routes.get(variant)
        if app is None:
            app = routes[variant] = _build(case, variant)
        scope = {**scope, "path": "/", "raw_path": b"/"}
        await app(scope, receive, send)

    return dispatch


def _wsgi_dispatch(case: str) -> Any:
    routes: dict[str, Any] = {}

    def dispatch(environ: dict[str, Any], start_response: Any) -> Any:
        variant = environ.get("PATH_INFO", "/").strip("/")
        app = routes.get(variant)
        if app is None:
            app = routes[variant] = _build(case, variant)
        environ["PATH_INFO"] = environ["RAW_URI"] = "/"
        return app(environ, start_response)

    return dispatch


def __getattr__(name: str) -> Any:
    """``w2a_hello`` and so on: the dispatcher a server imports for a case."""
    case = name.replace("_", "-", 1)
    if case not in CASES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    app = _asgi_dispatch(case) if case.startswith("w2a") else _wsgi_dispatch(case)
    globals()[name] = app
    return app


def export_base(revision: str, into: Path) -> None:
    """``bridge/`` as of ``revision``, as the package ``bridge_base`` under ``into``."""
    archive = subprocess.run(
        ["git", "-C", str(PROJECT_ROOT), "archive", "--format=tar", revision, "bridge"],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    (into / "bridge").rename(into / _BASE_PACKAGE)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compare")
    parser.add_argument("--base", required=True, help="git revision to compare against")
    parser.add_argument("--case", choices=CASES, default="w2a-hello")
    parser.add_argument("--worker", choices=("sync", "gthread"), default="sync")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--cycles", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--post-size", type=int, default=100)
    args = parser.parse_args()
    if args.cycles < 2:
        parser.error("--cycles must be at least 2")

    with tempfile.TemporaryDirectory(prefix="bridge-compare-") as tmp:
        base_dir = Path(tmp)
        export_base(args.base, base_dir)
        if args.case in compare_inprocess.CASES:
            sys.path.insert(0, str(base_dir))
            figures = compare_inprocess.measure(
                args.case, {"base": _BASE_PACKAGE, "work": "bridge"}, args.cycles, args.seconds
            )
            print(_table(args, "no server (in process)", figures))
            return
        os.environ["PYTHONPATH"] = os.pathsep.join(
            [str(base_dir), *filter(None, [os.environ.get("PYTHONPATH")])]
        )
        kind = "uvicorn" if args.case.startswith("w2a") else f"gunicorn-{args.worker}"
        server = Server(
            kind,
            args.case.replace("-", "_", 1),
            log_dir=base_dir,
            uvicorn_http="httptools",
            ready_path="/base",
            module="benchmarks.compare",
        )
        post_size = args.post_size if args.case.endswith("upload") else None
        load = LoadGenerator()
        names = variants(args.case)
        samples: dict[str, list[float]] = {variant: [] for variant in names}
        server.start()
        try:
            for variant in names:  # warm-up: each variant's first requests build it
                load.run(
                    server.port,
                    f"/{variant}",
                    connections=args.connections,
                    duration=1,
                    post_size=post_size,
                )
            for cycle in range(args.cycles):
                shift = cycle % len(names)
                for variant in names[shift:] + names[:shift]:
                    result = load.run(
                        server.port,
                        f"/{variant}",
                        connections=args.connections,
                        duration=args.seconds,
                        post_size=post_size,
                    )
                    if result.error_count:
                        raise SystemExit(f"{variant}: errors {result.errors}")
                    samples[variant].append(result.rps)
        finally:
            server.stop()
    print(_table(args, kind, samples))


def _table(args: argparse.Namespace, kind: str, samples: dict[str, list[float]]) -> str:
    native = samples.get("native")
    lines = [
        f"{args.case} under {kind}"
        + ("" if args.case in compare_inprocess.CASES else f", {args.connections} connections")
        + f", {args.cycles} cycles of {args.seconds:g} s; base = {args.base}",
        "",
        "| variant | median req/s | vs native (per cycle) | vs base (per cycle) |",
        "|---|---:|---:|---:|",
    ]
    for variant, figures in samples.items():
        versus_native = _paired(figures, native) if native is not None else "-"
        lines.append(
            f"| {variant} | {statistics.median(figures):,.0f} "
            f"| {versus_native} | {_paired(figures, samples['base'])} |"
        )
    return "\n".join(lines)


def _paired(mine: list[float], base: list[float]) -> str:
    ratios = [a / b for a, b in zip(mine, base, strict=True) if b]
    low, _, high = statistics.quantiles(ratios, n=4)
    return f"{statistics.median(ratios):.3f} ({low:.3f}-{high:.3f})"


if __name__ == "__main__":
    main()
