"""The run's own virtual environment and the frameworks' source distributions.

Everything lives in the cache directory (``.compat/`` by default, git-ignored):

* ``sdist/``: the downloaded ``.tar.gz`` files;
* ``src/<dist>-<version>/``: each one unpacked, where its tests run;
* ``venvs/<suite>/``: Python with ``bridge`` installed editable from this work
  tree, the framework at the version under test, and the suite's own test
  dependencies.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import re
import shutil
import subprocess
import sys
import tarfile
import venv
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .suites import EXCLUDED_TEST_DEPS, RUNNER_DEPS, Suite

INSTALL_TIMEOUT = 1800.0
"""Seconds pip may take to build the venv."""
DOWNLOAD_TIMEOUT = 300.0
"""Seconds pip may take to download one sdist."""

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def normalize(name: str) -> str:
    """A distribution name as PEP 503 compares it."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    """The normalized distribution name a PEP 508 requirement string is about."""
    match = _NAME.match(requirement)
    if match is None:
        raise ValueError(f"Cannot read a package name from requirement {requirement!r}.")
    return normalize(match.group(1))


def installed_version(dist: str) -> str | None:
    """The version of ``dist`` installed beside the runner, None when it is not."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _run(command: Sequence[str], timeout: float, cwd: Path | None = None) -> None:
    """Run a command to completion (bounded), raising with its output when it fails."""
    result = subprocess.run(
        list(command),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} exited with {result.returncode}:\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )


def _sdist_file(directory: Path, dist: str, version: str | None) -> Path | None:
    pattern = re.compile(
        rf"^{re.escape(normalize(dist)).replace('-', '[-_.]')}-(?P<version>[^-]+)\.tar\.gz$",
        re.IGNORECASE,
    )
    found = [
        path
        for path in directory.glob("*.tar.gz")
        if (match := pattern.match(path.name)) and (version is None or match["version"] == version)
    ]
    return max(found, key=lambda path: path.stat().st_mtime) if found else None


def fetch_sdist(cache: Path, dist: str, version: str | None) -> tuple[str, Path]:
    """Download (once) and unpack ``dist``'s sdist; its version and unpacked root.

    With ``version`` None the latest release is taken.
    """
    directory = cache / "sdist"
    directory.mkdir(parents=True, exist_ok=True)
    archive = _sdist_file(directory, dist, version)
    if archive is None:
        spec = dist if version is None else f"{dist}=={version}"
        _run(
            [
                *(sys.executable, "-m", "pip", "download", "--quiet", "--no-binary", ":all:"),
                *("--no-deps", "--dest", str(directory), spec),
            ],
            DOWNLOAD_TIMEOUT,
        )
        archive = _sdist_file(directory, dist, version)
        if archive is None:
            raise RuntimeError(f"pip downloaded no sdist for {spec} into {directory}.")
    root_name = archive.name[: -len(".tar.gz")]
    found_version = root_name.rpartition("-")[2]
    root = cache / "src" / root_name
    if not (root / "pyproject.toml").exists():
        shutil.rmtree(root, ignore_errors=True)
        root.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive) as tar:
            tar.extractall(root.parent, filter="data")
    return found_version, root


def _group(groups: Mapping[str, Any], name: str, seen: frozenset[str] = frozenset()) -> list[str]:
    """A PEP 735 dependency group's requirement strings, include-group resolved."""
    if name in seen:
        raise ValueError(f"Dependency group {name!r} includes itself.")
    found: list[str] = []
    for entry in groups.get(name, []):
        if isinstance(entry, str):
            found.append(entry)
        elif isinstance(entry, dict) and "include-group" in entry:
            found.extend(_group(groups, entry["include-group"], seen | {name}))
    return found


def test_requirements(suite: Suite, root: Path, pins: Mapping[str, str]) -> list[str]:
    """The requirements the suite's tests need, read from its sdist's ``pyproject.toml``.

    Any of the frameworks under test is replaced by its pin (``pins``: normalized
    name to pinned requirement); tools listed in ``EXCLUDED_TEST_DEPS`` are left out.
    """
    # tomllib is Python 3.11+, and the project's types are checked for 3.10.
    tomllib: Any = importlib.import_module("tomllib")
    with open(root / "pyproject.toml", "rb") as file:
        groups = tomllib.load(file).get("dependency-groups", {})
    requirements: list[str] = []
    for group in suite.groups:
        if group not in groups:
            raise RuntimeError(f"{root.name}'s pyproject.toml has no dependency group {group!r}.")
        for requirement in _group(groups, group):
            name = requirement_name(requirement)
            if name in EXCLUDED_TEST_DEPS:
                continue
            requirements.append(pins.get(name, requirement))
    return requirements


def pinned(suite: Suite, version: str) -> str:
    """The framework's own requirement: its extras, at the version under test."""
    extras = f"[{','.join(suite.extras)}]" if suite.extras else ""
    return f"{suite.dist}{extras}=={version}"


def venv_python(cache: Path, name: str) -> Path:
    """The interpreter of the venv called ``name``."""
    return cache / "venvs" / name / "bin" / "python"


def ensure_venv(cache: Path, name: str, repo: Path, requirements: Iterable[str]) -> Path:
    """Create the venv ``name`` (once per list of requirements); returns its interpreter.

    The list is kept in the venv: the same list reuses it, another one builds it anew.
    """
    wanted = "\n".join([f"-e {repo}", *sorted(set(requirements)), *RUNNER_DEPS]) + "\n"
    python = venv_python(cache, name)
    directory = python.parent.parent
    marker = directory / "compat-requirements.txt"
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return python
    venv.EnvBuilder(with_pip=True, clear=True).create(directory)
    _run([str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"], INSTALL_TIMEOUT)
    requirements_file = directory / "compat-requirements.in"
    requirements_file.write_text(wanted)
    _run(
        [str(python), "-m", "pip", "install", "--quiet", "-r", str(requirements_file)],
        INSTALL_TIMEOUT,
    )
    marker.write_text(wanted)
    return python


def versions_in(python: Path, dists: Iterable[str]) -> dict[str, str]:
    """The versions of ``dists`` that ``python``'s environment actually holds."""
    code = (
        "import importlib.metadata as m, json, sys\n"
        "print(json.dumps({d: m.version(d) for d in sys.argv[1:]}))\n"
    )
    result = subprocess.run(
        [str(python), "-c", code, *dists],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    versions: dict[str, str] = json.loads(result.stdout)
    return versions
