"""The comparison of the two runs, as a Markdown report and as JSON."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .causes import Cause, cause_of
from .known_differences import KnownDifference, known_difference
from .results import Counts, TestResult, differing, only_bridged_pass
from .runner import RunOutcome

_MESSAGE_CHARS = 240


@dataclass
class SuiteReport:
    """One suite's two runs and how they differ."""

    suite: str
    version: str
    native: RunOutcome
    bridged: RunOutcome
    expected: list[tuple[TestResult, KnownDifference]] = field(default_factory=list)
    unexpected: list[tuple[TestResult, Cause]] = field(default_factory=list)
    bridged_only_pass: list[str] = field(default_factory=list)

    @classmethod
    def compare(
        cls, suite: str, version: str, native: RunOutcome, bridged: RunOutcome
    ) -> SuiteReport:
        report = cls(suite, version, native, bridged)
        for result in differing(native.results, bridged.results):
            known = known_difference(suite, result)
            if known is not None:
                report.expected.append((result, known))
            else:
                report.unexpected.append((result, cause_of(suite, result)))
        report.bridged_only_pass = only_bridged_pass(native.results, bridged.results)
        return report

    @property
    def crossed(self) -> int:
        """Tests that sent at least one request through the double bridge."""
        return sum(1 for result in self.bridged.results.values() if "bridged" in result.notes)


def _one_line(text: str, limit: int = _MESSAGE_CHARS) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _failure(result: TestResult) -> str:
    first = result.message or (result.details.splitlines() or [""])[0]
    return _one_line(first)


def _counts(outcome: RunOutcome) -> str:
    counts = Counts.of(outcome.results.values())
    text = f"{counts.passed} / {counts.failed} / {counts.skipped}"
    if outcome.problem:
        text += f" ({outcome.problem})"
    return text


def summary_table(reports: Sequence[SuiteReport]) -> list[str]:
    """Markdown table: per suite, each run's counts and the differences."""
    lines = [
        "| suite | version | native passed / failed / skipped | bridged passed / failed / skipped "
        "| crossed the bridge | differing | expected | unexpected | time native / bridged |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for report in reports:
        native_time = "reused" if report.native.reused else f"{report.native.seconds:.0f} s"
        lines.append(
            f"| {report.suite} | {report.version} | {_counts(report.native)} "
            f"| {_counts(report.bridged)} | {report.crossed} "
            f"| {len(report.expected) + len(report.unexpected)} | {len(report.expected)} "
            f"| {len(report.unexpected)} | {native_time} / {report.bridged.seconds:.0f} s |"
        )
    return lines


def _grouped_unexpected(
    reports: Sequence[SuiteReport],
) -> list[tuple[Cause, list[tuple[str, TestResult]]]]:
    groups: dict[str, tuple[Cause, list[tuple[str, TestResult]]]] = {}
    for report in reports:
        for result, cause in report.unexpected:
            groups.setdefault(cause.key, (cause, []))[1].append((report.suite, result))
    return sorted(groups.values(), key=lambda group: -len(group[1]))


def _grouped_expected(
    reports: Sequence[SuiteReport],
) -> list[tuple[KnownDifference, list[tuple[str, TestResult]]]]:
    groups: dict[str, tuple[KnownDifference, list[tuple[str, TestResult]]]] = {}
    for report in reports:
        for result, known in report.expected:
            groups.setdefault(known.category, (known, []))[1].append((report.suite, result))
    return sorted(groups.values(), key=lambda group: -len(group[1]))


def markdown(reports: Sequence[SuiteReport], header: Sequence[str], examples: int | None) -> str:
    """The whole report; ``examples`` caps the tests listed per group (None: all)."""
    lines = ["# Compatibility through the double bridge", "", *header, "", *summary_table(reports)]
    unexpected = _grouped_unexpected(reports)
    lines += ["", f"## Unexpected differences ({sum(len(tests) for _, tests in unexpected)})"]
    for cause, tests in unexpected:
        lines += ["", f"### {cause.title}: {len(tests)}", ""]
        if cause.where != "?":
            lines += [f"Where to look: {cause.where}.", ""]
        by_message: dict[str, list[str]] = defaultdict(list)
        for suite, result in tests:
            by_message[_failure(result)].append(f"{suite}::{result.test_id}")
        shown = 0
        for message, ids in sorted(by_message.items(), key=lambda item: -len(item[1])):
            if examples is not None and shown >= examples:
                lines.append(f"- … and {len(tests) - shown} more (see the full report)")
                break
            chosen = ids if examples is None else ids[: max(1, examples - shown)]
            shown += len(chosen)
            more = f" (+{len(ids) - len(chosen)} more)" if len(ids) > len(chosen) else ""
            lines.append(f"- `{message}`{more}")
            lines.extend(f"  - {test_id}" for test_id in chosen)
    expected = _grouped_expected(reports)
    lines += ["", f"## Expected differences ({sum(len(tests) for _, tests in expected)})", ""]
    for known, tests in expected:
        lines.append(f"- **{known.category}** ({len(tests)}): {known.reason}")
        listed = tests if examples is None else tests[:3]
        lines.extend(f"  - {suite}::{result.test_id}" for suite, result in listed)
        if len(listed) < len(tests):
            lines.append(f"  - … and {len(tests) - len(listed)} more")
    passing = [
        (report.suite, test_id) for report in reports for test_id in report.bridged_only_pass
    ]
    if passing:
        lines += ["", f"## Failing natively, passing through the bridge ({len(passing)})", ""]
        listed_passing = passing if examples is None else passing[:10]
        lines.extend(f"- {suite}::{test_id}" for suite, test_id in listed_passing)
        if len(listed_passing) < len(passing):
            lines.append(f"- … and {len(passing) - len(listed_passing)} more")
    return "\n".join(lines) + "\n"


def _result_json(suite: str, result: TestResult) -> dict[str, Any]:
    return {
        "suite": suite,
        "test": result.test_id,
        "outcome": result.outcome,
        "message": result.message,
        "details": result.details,
        "log": result.log,
        "notes": sorted(result.notes),
    }


def to_json(reports: Sequence[SuiteReport], meta: dict[str, Any]) -> dict[str, Any]:
    """Everything in the report, as data."""
    suites = []
    for report in reports:
        native = Counts.of(report.native.results.values())
        bridged = Counts.of(report.bridged.results.values())
        suites.append(
            {
                "suite": report.suite,
                "version": report.version,
                "native": {**native.__dict__, "seconds": round(report.native.seconds, 1)},
                "bridged": {**bridged.__dict__, "seconds": round(report.bridged.seconds, 1)},
                "crossed_the_bridge": report.crossed,
                "native_problem": report.native.problem,
                "bridged_problem": report.bridged.problem,
                "unexpected": [
                    {**_result_json(report.suite, result), "cause": cause.key, "where": cause.where}
                    for result, cause in report.unexpected
                ],
                "expected": [
                    {**_result_json(report.suite, result), "category": known.category}
                    for result, known in report.expected
                ],
                "bridged_only_pass": report.bridged_only_pass,
            }
        )
    return {**meta, "suites": suites}


def write(
    cache: Path,
    reports: Sequence[SuiteReport],
    header: Sequence[str],
    meta: dict[str, Any],
    name: str = "report",
) -> tuple[Path, Path]:
    """Write ``<name>.md`` and ``<name>.json`` into the cache directory."""
    md = cache / f"{name}.md"
    md.write_text(markdown(reports, header, examples=None))
    data = cache / f"{name}.json"
    data.write_text(json.dumps(to_json(reports, meta), indent=2) + "\n")
    return md, data
