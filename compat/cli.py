"""``python -m compat``: run the frameworks' own test suites natively and through the bridge."""

from __future__ import annotations

import argparse
import datetime
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from . import environment
from .report import SuiteReport, markdown, write
from .runner import Options, run_suite
from .suites import SUITES, Suite

REPO = Path(__file__).resolve().parent.parent
"""The work tree ``bridge`` is installed from (editable) into the run's venv."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m compat",
        description=(
            "Run the test suites of Starlette, FastAPI, Flask and Werkzeug from their "
            "sdists, natively and with every test client app behind the double bridge, "
            "and list the tests that pass natively but fail through the bridge."
        ),
    )
    parser.add_argument(
        "--suite",
        action="append",
        choices=sorted(SUITES),
        help="run this suite (repeatable; default: all four)",
    )
    parser.add_argument("-k", dest="keyword", help="pytest -k expression, for both runs")
    parser.add_argument(
        "--fast", action="store_true", help="only a few representative test files per suite"
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        choices=(1, 2),
        help="pytest-xdist workers per run (default 1; the machine is shared)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=1800.0,
        help="seconds one run of one suite may take before it is stopped (default 1800)",
    )
    parser.add_argument(
        "--test-timeout",
        type=float,
        default=30.0,
        help="seconds one test may take (pytest-timeout; default 30)",
    )
    parser.add_argument(
        "--version",
        action="append",
        default=[],
        metavar="DIST==VERSION",
        help="test this version of a framework instead of the one installed beside the runner",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=REPO / ".compat",
        help="where sdists, the venvs and the reports go (default: .compat/ in the work tree)",
    )
    parser.add_argument(
        "--reuse-native",
        action="store_true",
        help="reuse a native run's results from an earlier identical run",
    )
    return parser


def _wanted_versions(overrides: Sequence[str]) -> dict[str, str | None]:
    """Each framework's version under test: ``--version``, else the one installed here.

    None means none is installed beside the runner: the latest release is taken.
    """
    forced = {}
    for override in overrides:
        name, sep, version = override.partition("==")
        if not sep or not version:
            raise SystemExit(f"--version expects DIST==VERSION, got {override!r}")
        forced[environment.normalize(name)] = version
    return {
        suite.name: forced.get(environment.normalize(suite.dist))
        or environment.installed_version(suite.dist)
        for suite in SUITES.values()
    }


def _prepare(suite: Suite, cache: Path, versions: dict[str, str], roots: dict[str, Path]) -> Path:
    """The suite's venv, built if needed and checked to hold the versions under test."""
    pins = {
        environment.normalize(SUITES[name].dist): environment.pinned(SUITES[name], versions[name])
        for name in (suite.name, *suite.also_pin)
    }
    requirements = [
        *pins.values(),
        *environment.test_requirements(suite, roots[suite.name], pins),
        *suite.constraints,
    ]
    _say(f"venv {suite.name}: {', '.join(sorted(pins.values()))}, bridge from this work tree")
    python = environment.ensure_venv(cache, suite.name, REPO, requirements)
    dists = [SUITES[name].dist for name in (suite.name, *suite.also_pin)]
    found = environment.versions_in(python, dists)
    for name in (suite.name, *suite.also_pin):
        if found[SUITES[name].dist] != versions[name]:
            raise SystemExit(
                f"The {suite.name} venv holds {SUITES[name].dist} {found[SUITES[name].dist]}, "
                f"not {versions[name]}."
            )
    return python


def _plugin_path(cache: Path) -> Path:
    """A directory holding only ``compat`` (a link to this package), for PYTHONPATH.

    The suites' pytest imports ``compat._plugin`` from there, not from the work tree,
    whose own ``tests`` package would shadow theirs.
    """
    path = cache / "path"
    path.mkdir(exist_ok=True)
    link = path / "compat"
    package = Path(__file__).resolve().parent
    if not link.is_symlink() or link.resolve() != package:
        link.unlink(missing_ok=True)
        link.symlink_to(package, target_is_directory=True)
    return path


def _bridge_revision() -> str:
    try:
        result = subprocess.run(
            ["git", "-C", str(REPO), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except OSError:
        return "unknown"
    return result.stdout.strip() or "unknown"


def _say(text: str) -> None:
    print(text, flush=True)  # noqa: T201 - this is the command's output


def _prepare_all(
    suites: Sequence[Suite], cache: Path, overrides: Sequence[str]
) -> tuple[dict[str, str], dict[str, Path], dict[str, Path]]:
    """Sdists and venvs for ``suites``: the versions, unpacked roots and interpreters."""
    wanted = _wanted_versions(overrides)
    versions: dict[str, str] = {}
    roots: dict[str, Path] = {}
    needed = dict.fromkeys(name for suite in suites for name in (suite.name, *suite.also_pin))
    for name in needed:
        dist, version = SUITES[name].dist, wanted[name]
        _say(f"sdist: {dist}{'==' + version if version else ' (latest)'}")
        versions[name], roots[name] = environment.fetch_sdist(cache, dist, version)
    pythons = {suite.name: _prepare(suite, cache, versions, roots) for suite in suites}
    return versions, roots, pythons


def _run_both(
    suite: Suite, version: str, python: Path, root: Path, cache: Path, options: Options
) -> SuiteReport:
    """The suite's native run, then its bridged run, compared."""
    outcomes = []
    for run in ("native", "bridged"):
        _say(f"{suite.name} {version}: {run} run…")
        outcome = run_suite(suite, version, python, root, cache, _plugin_path(cache), run, options)
        took = " (reused)" if outcome.reused else f" in {outcome.seconds:.0f} s"
        problem = f"; {outcome.problem}" if outcome.problem else ""
        _say(f"  {len(outcome.results)} tests{took}{problem}")
        outcomes.append(outcome)
    return SuiteReport.compare(suite.name, version, *outcomes)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen suites; exit status 1 when a test differs unexpectedly or a run broke."""
    args = _parser().parse_args(argv)
    cache: Path = args.cache_dir.resolve()
    cache.mkdir(parents=True, exist_ok=True)
    suites = [SUITES[name] for name in dict.fromkeys(args.suite or SUITES)]
    options = Options(
        fast=args.fast,
        keyword=args.keyword,
        jobs=args.jobs,
        test_timeout=args.test_timeout,
        suite_timeout=args.timeout,
        reuse_native=args.reuse_native,
    )
    started = time.monotonic()
    versions, roots, pythons = _prepare_all(suites, cache, args.version)
    reports = [
        _run_both(
            suite, versions[suite.name], pythons[suite.name], roots[suite.name], cache, options
        )
        for suite in suites
    ]

    elapsed = time.monotonic() - started
    revision = _bridge_revision()
    header = [
        f"bridge {revision}, Python {sys.version.split()[0]}, "
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
        f"{'--fast, ' if args.fast else ''}{elapsed:.0f} s in all.",
        "Crossed the bridge: tests that sent a request through it. Differing: passed "
        "natively, failed or errored through the bridge. Expected: explained by "
        "compat/known_differences.py.",
    ]
    meta = {
        "bridge": revision,
        "python": sys.version.split()[0],
        "fast": args.fast,
        "keyword": args.keyword,
        "seconds": round(elapsed, 1),
    }
    md, data = write(cache, reports, header, meta, "report-fast" if args.fast else "report")
    _say("")
    _say(markdown(reports, header, examples=5))
    _say(f"Full report: {md}\nAs JSON: {data}")
    failed = any(report.unexpected for report in reports)
    broken = any(report.native.problem or report.bridged.problem for report in reports)
    return 1 if failed or broken else 0
