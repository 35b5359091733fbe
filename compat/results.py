"""Test outcomes read from pytest's JUnit XML, and the comparison of two runs."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Outcome = Literal["passed", "failed", "error", "skipped"]

_ORDER: dict[Outcome, int] = {"passed": 0, "skipped": 1, "failed": 2, "error": 3}
_EXCEPTION_LINE = re.compile(r"^E\s{1,8}(.*)$")
_LOG_LINE = re.compile(r"^(?:CRITICAL|ERROR|WARNING)\s+\S+:\S+:\d+\s")


@dataclass(frozen=True)
class TestResult:
    """One test's outcome in one run.

    ``message`` is pytest's one-line summary of the failure (``Type: text``);
    ``details`` the ``E`` lines of its report (the exception as pytest showed it);
    ``log`` the warnings and errors logged while it ran (the bridge logs an app's
    exception it could not hand on there).
    """

    __test__ = False  # not a pytest test class

    test_id: str
    outcome: Outcome
    message: str = ""
    details: str = ""
    log: str = ""
    time: float = 0.0
    notes: frozenset[str] = frozenset()

    @property
    def exception_type(self) -> str:
        """The exception's name as pytest reported it ("Failed" for pytest.fail)."""
        head = self.message.split(":", 1)[0].strip()
        return head if head and " " not in head else ""


def _test_id(case: ElementTree.Element) -> str:
    """The pytest node id, rebuilt from a ``testcase`` of ``junit_family=xunit1``."""
    name = case.get("name", "")
    classname = case.get("classname", "")
    file = case.get("file")
    if file:
        module = file.removesuffix(".py").replace("/", ".")
        rest = classname[len(module) + 1 :] if classname.startswith(module + ".") else ""
        parts = [file, *([part for part in rest.split(".") if part] if rest else []), name]
        return "::".join(parts)
    return f"{classname.replace('.', '/')}.py::{name}" if classname else name


def _summary(element: ElementTree.Element) -> tuple[str, str]:
    message = (element.get("message") or "").strip()
    text = element.text or ""
    exception_lines = [
        match.group(1).rstrip()
        for line in text.splitlines()
        if (match := _EXCEPTION_LINE.match(line))
    ]
    details = "\n".join(exception_lines[:12])
    if not message:
        lines = exception_lines or text.strip().splitlines()[-1:]
        message = lines[0] if lines else ""
    return message, details


def _outcome_of(case: ElementTree.Element) -> tuple[Outcome, str, str]:
    outcome: Outcome = "passed"
    message = details = ""
    for child in case:
        found: Outcome | None = None
        if child.tag == "failure":
            found = "failed"
        elif child.tag == "error":
            found = "error"
        elif child.tag == "skipped":
            found = "skipped"
        if found is not None and _ORDER[found] > _ORDER[outcome]:
            outcome = found
            message, details = _summary(child)
    return outcome, message, details


def _log_of(case: ElementTree.Element) -> str:
    lines: list[str] = []
    for child in case:
        if child.tag in ("system-out", "system-err") and child.text:
            lines.extend(line for line in child.text.splitlines() if _LOG_LINE.match(line))
    return "\n".join(dict.fromkeys(lines))  # each distinct line once, in order


def _notes_of(case: ElementTree.Element) -> frozenset[str]:
    """What the compat plugin noted on the test (see ``compat._plugin.note``)."""
    return frozenset(
        prop.get("value", "") for prop in case.iter("property") if prop.get("name") == "compat"
    )


def read_junit(path: Path) -> dict[str, TestResult]:
    """Every test in a JUnit XML file, by node id (the worst outcome if reported twice)."""
    results: dict[str, TestResult] = {}
    for case in ElementTree.parse(path).getroot().iter("testcase"):
        test_id = _test_id(case)
        outcome, message, details = _outcome_of(case)
        result = TestResult(
            test_id=test_id,
            outcome=outcome,
            message=message,
            details=details,
            log=_log_of(case),
            time=float(case.get("time") or 0.0),
            notes=_notes_of(case),
        )
        known = results.get(test_id)
        if known is None or _ORDER[outcome] > _ORDER[known.outcome]:
            results[test_id] = result
    return results


@dataclass(frozen=True)
class Counts:
    """How many tests of a run passed, failed (failures and errors) or were skipped."""

    passed: int = 0
    failed: int = 0
    skipped: int = 0

    @classmethod
    def of(cls, results: Iterable[TestResult]) -> Counts:
        passed = failed = skipped = 0
        for result in results:
            if result.outcome == "passed":
                passed += 1
            elif result.outcome == "skipped":
                skipped += 1
            else:
                failed += 1
        return cls(passed, failed, skipped)


def differing(
    native: Mapping[str, TestResult], bridged: Mapping[str, TestResult]
) -> list[TestResult]:
    """The bridged results of tests that pass natively but fail or error through the bridge.

    A test the bridged run never reported (its run was cut short) is not listed.
    """
    return [
        bridged[test_id]
        for test_id, result in native.items()
        if result.outcome == "passed"
        and test_id in bridged
        and bridged[test_id].outcome in ("failed", "error")
    ]


def only_bridged_pass(
    native: Mapping[str, TestResult], bridged: Mapping[str, TestResult]
) -> list[str]:
    """Tests that fail natively but pass through the bridge (flaky, or environment-bound)."""
    return [
        test_id
        for test_id, result in native.items()
        if result.outcome in ("failed", "error")
        and bridged.get(test_id, result).outcome == "passed"
    ]
