"""``python -m benchmarks``: measure the bridge against its peers and the issue's targets.

See ``benchmarks/README.md`` for what each figure means.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import servers
from .concurrency import run_concurrency
from .inprocess import run_inprocess
from .load import LoadGenerator, wrk_available
from .memory import run_memory
from .report import Check, Figures, checks_table, figures_table
from .servers import CLIENT_CPU, SERVER_CPU, pinning_available
from .settings import Settings
from .streams import run_streams
from .throughput import run_gunicorn, run_uvicorn

GROUPS: dict[str, Callable[[Settings, Figures], list[Check]]] = {
    "inprocess": run_inprocess,
    "streams": run_streams,
    "uvicorn": run_uvicorn,
    "gunicorn": run_gunicorn,
    "memory": run_memory,
    "concurrency": run_concurrency,
}
DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "latest.json"
_PACKAGES = (
    "wsgi-asgi-bridge",
    "a2wsgi",
    "asgiref",
    "uvicorn",
    "gunicorn",
    "starlette",
    "flask",
    "anyio",
    "uvloop",
    "httptools",
    "h11",
)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark bridge.WSGIToASGI / bridge.ASGIToWSGI against their peers.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="fewer rounds, 1 s wrk runs: a smoke run (< 2 min)"
    )
    parser.add_argument(
        "--only",
        action="append",
        metavar="GROUP",
        help=f"run only these groups (repeat or comma-separate): {', '.join(GROUPS)}",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=DEFAULT_JSON,
        metavar="PATH",
        help="where to write the results (default: benchmarks/results/latest.json)",
    )
    parser.add_argument("--rounds", type=int, help="override the number of interleaved rounds")
    parser.add_argument("--duration", type=float, help="override the seconds per wrk run")
    parser.add_argument(
        "--uvicorn-http",
        default="auto",
        choices=("auto", "h11", "httptools"),
        help="uvicorn's HTTP implementation (default: auto, as uvicorn picks it)",
    )
    parser.add_argument(
        "--no-wrk", action="store_true", help="use the Python load generator even if wrk exists"
    )
    args = parser.parse_args(argv)
    groups: list[str] = []
    for item in args.only or list(GROUPS):
        for name in item.split(","):
            name = name.strip()
            if name not in GROUPS:
                parser.error(f"unknown group {name!r}; choose from {', '.join(GROUPS)}")
            if name not in groups:
                groups.append(name)
    args.groups = groups
    return args


def _snapshot(destination: Path) -> Path:
    """Copy ``bridge/`` and ``benchmarks/`` to ``destination``; measure that copy.

    The in-process groups import ``bridge`` from it (it goes first on ``sys.path``) and
    the servers run from it, so a run measures one version of the code even when the
    work tree is edited meanwhile.
    """
    if "bridge" in sys.modules:
        raise RuntimeError("bridge was imported before the snapshot was taken.")
    ignore = shutil.ignore_patterns("__pycache__", "results", "*.pyc")
    for name in ("bridge", "benchmarks"):
        shutil.copytree(servers.PROJECT_ROOT / name, destination / name, ignore=ignore)
    sys.path.insert(0, str(destination))
    servers.source_root = destination
    return destination


def _bridge_source(root: Path = servers.PROJECT_ROOT) -> str:
    """The git commit and a hash of ``bridge/*.py``, to tie figures to the code measured."""
    digest = hashlib.sha256()
    for path in sorted((root / "bridge").rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=servers.PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{commit or 'unknown commit'}, bridge/*.py sha256 {digest.hexdigest()[:12]}"


def _loadavg() -> str:
    """The 1-minute load average: other work on the machine skews every figure."""
    try:
        with open("/proc/loadavg", encoding="ascii") as file:
            return file.read().split()[0]
    except OSError:
        return "unknown"


def _environment(settings: Settings, snapshot: Path) -> dict[str, Any]:
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    http = settings.uvicorn_http
    if http == "auto":
        http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "pinning": (
            f"servers on core {SERVER_CPU}, clients (wrk, this runner, in-process) on core "
            f"{CLIENT_CPU}"
            if pinning_available()
            else "none (taskset missing or fewer than 2 cores)"
        ),
        "load_generator": settings.load.description,
        "uvicorn": f"--http {http}, loop {loop} (auto)",
        "gunicorn": "1 worker; gthread with 4 threads",
        "rounds": settings.rounds,
        "wrk_seconds": settings.duration,
        "quick": settings.quick,
        "loadavg_at_start": _loadavg(),
        "bridge_source": _bridge_source(snapshot),
        "packages": versions,
    }


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    warnings.simplefilter("ignore", DeprecationWarning)
    if pinning_available():
        os.sched_setaffinity(0, {CLIENT_CPU})
    work_dir = Path(tempfile.mkdtemp(prefix="bridge-bench-"))
    log_dir = work_dir / "logs"
    log_dir.mkdir()
    snapshot = _snapshot(work_dir / "src")
    load = LoadGenerator(use_wrk=False if args.no_wrk else None)
    settings = Settings.make(
        quick=args.quick,
        log_dir=log_dir,
        uvicorn_http=args.uvicorn_http,
        load=load,
        rounds=args.rounds,
        duration=args.duration,
    )
    environment = _environment(settings, snapshot)
    if not wrk_available() or args.no_wrk:
        print(f"NOTE: {load.description}", file=sys.stderr)
    started = time.monotonic()
    figures = Figures()
    checks: list[Check] = []
    timings: dict[str, float] = {}
    for name in args.groups:
        print(f"[{time.monotonic() - started:6.1f}s] running group {name} ...", file=sys.stderr)
        group_start = time.monotonic()
        try:
            checks += GROUPS[name](settings, figures)
        except Exception as exc:
            traceback.print_exc()
            checks.append(
                Check(name, f"group {name} failed", None, "", "runs", False, note=repr(exc)[:300])
            )
        timings[name] = time.monotonic() - group_start
    elapsed = time.monotonic() - started
    environment["loadavg_at_end"] = _loadavg()
    live = _bridge_source()
    if live != environment["bridge_source"]:
        environment["work_tree_now"] = live
        print(
            "NOTE: bridge/ in the work tree changed during the run; the figures are of the "
            f"snapshot taken at the start ({snapshot}).",
            file=sys.stderr,
        )
    failing = [check for check in checks if check.passed is False]
    passing = [check for check in checks if check.passed]
    lines = [
        f"## bridge benchmarks ({'quick' if settings.quick else 'full'} run, "
        f"{settings.rounds} rounds, {elapsed:.0f} s)",
        "",
        "Environment: "
        + "; ".join(
            f"{key} {value}"
            for key, value in environment.items()
            if key not in ("packages", "platform")
        ),
        "",
        "Packages: "
        + ", ".join(f"{name} {version}" for name, version in environment["packages"].items()),
        "",
        "### Targets",
        "",
        checks_table(checks),
        "",
        f"{len(passing)} PASS, {len(failing)} FAIL"
        + (
            ": " + "; ".join(f"#{checks.index(c) + 1} {c.name}" for c in failing) if failing else ""
        ),
        "",
        "### All figures (median of rounds)",
        "",
        figures_table(figures),
        "",
        f"Server logs: {log_dir}; code measured: snapshot in {snapshot}",
    ]
    text = "\n".join(lines)
    print(text)
    document = {
        "command": " ".join(
            ["python -m benchmarks", *(argv if argv is not None else sys.argv[1:])]
        ),
        "elapsed_seconds": elapsed,
        "group_seconds": timings,
        "environment": environment,
        "checks": [check.to_json() for check in checks],
        "figures": [figure.to_json() for figure in figures],
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(document, indent=2, default=str) + "\n")
    args.json.with_suffix(".md").write_text(text + "\n")
    print(f"\nResults: {args.json} (markdown: {args.json.with_suffix('.md')})", file=sys.stderr)
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
