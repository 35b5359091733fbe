"""Running one suite's pytest, natively or through the double bridge, bounded in time."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .results import TestResult, read_junit
from .suites import Suite

Run = Literal["native", "bridged"]

STOP_GRACE = 10.0
"""Seconds a timed-out pytest gets after SIGTERM before SIGKILL."""


@dataclass(frozen=True)
class Options:
    """How to run every suite: the same for the native and the bridged run."""

    fast: bool = False
    keyword: str | None = None
    jobs: int = 1
    test_timeout: float = 30.0
    suite_timeout: float = 1800.0
    reuse_native: bool = False


@dataclass
class RunOutcome:
    """What one pytest run produced."""

    run: Run
    results: dict[str, TestResult] = field(default_factory=dict)
    seconds: float = 0.0
    exit_code: int | None = None
    problem: str | None = None  # timed out, crashed, or wrote no report
    log: Path | None = None
    reused: bool = False


def pytest_command(
    suite: Suite, python: Path, run: Run, junit: Path, options: Options
) -> list[str]:
    """The pytest command line for one run of a suite (run from the sdist's root)."""
    command = [
        str(python),
        "-m",
        "pytest",
        *(suite.fast if options.fast else suite.paths),
        "-q",
        # A module that fails to import (one of Flask's needs a pytest internal that
        # pytest 9 dropped) is an error in both runs, not the end of the run.
        "--continue-on-collection-errors",
        "-p",
        "no:cacheprovider",
        # logfire's pytest plugin comes with FastAPI's test dependencies; it is no part
        # of any suite and fails on some reports.
        "-p",
        "no:pytest_logfire",
        "-p",
        "compat._plugin",
        "--bridge-mode",
        suite.mode if run == "bridged" else "off",
        "--timeout",
        f"{options.test_timeout:g}",
        f"--junitxml={junit}",
        "-o",
        "junit_family=xunit1",
        "-o",
        "junit_logging=log",
        *suite.pytest_args,
    ]
    if options.keyword:
        command += ["-k", options.keyword]
    if options.jobs > 1:
        command += ["-n", str(min(options.jobs, 2))]
    return command


def _fingerprint(command: Sequence[str], version: str) -> str:
    text = "\0".join([version, *command[1:]])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the pytest we started, and its children: its own process group, by its id."""
    for sig, wait in ((signal.SIGTERM, STOP_GRACE), (signal.SIGKILL, STOP_GRACE)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def run_suite(
    suite: Suite,
    version: str,
    python: Path,
    root: Path,
    cache: Path,
    plugin_path: Path,
    run: Run,
    options: Options,
) -> RunOutcome:
    """Run the suite once; its results come from the JUnit XML pytest writes."""
    results_dir = cache / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    probe = pytest_command(suite, python, run, results_dir / "x.xml", options)
    stem = f"{suite.name}-{version}-{run}-{_fingerprint(probe, version)}"
    junit = results_dir / f"{stem}.xml"
    log = results_dir / f"{stem}.log"
    outcome = RunOutcome(run=run, log=log)
    if run == "native" and options.reuse_native and junit.exists():
        outcome.results = read_junit(junit)
        outcome.reused = True
        return outcome
    junit.unlink(missing_ok=True)
    command = pytest_command(suite, python, run, junit, options)
    environ = dict(os.environ)
    environ["PYTHONPATH"] = os.pathsep.join(
        part for part in (str(plugin_path), environ.get("PYTHONPATH", "")) if part
    )
    environ.update(suite.env)
    started = time.monotonic()
    with open(log, "wb") as output:
        output.write(("$ " + " ".join(command) + "\n").encode())
        output.flush()
        process = subprocess.Popen(
            command,
            cwd=root,
            env=environ,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, stopped as one on timeout
        )
        try:
            outcome.exit_code = process.wait(options.suite_timeout)
        except subprocess.TimeoutExpired:
            _stop(process)
            outcome.problem = f"timed out after {options.suite_timeout:g} s"
    outcome.seconds = time.monotonic() - started
    if junit.exists():
        outcome.results = read_junit(junit)
    elif outcome.problem is None:
        outcome.problem = f"pytest exited with {outcome.exit_code} and wrote no report"
    if outcome.exit_code not in (None, 0, 1) and outcome.problem is None:
        outcome.problem = f"pytest exited with {outcome.exit_code} (see {log.name})"
    return outcome
