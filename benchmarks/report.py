"""Figures, target checks, the markdown tables and the JSON document."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Figure:
    """The samples of one implementation in one case (one sample per round)."""

    group: str
    case: str
    impl: str
    unit: str
    samples: list[float] = field(default_factory=list)
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def median(self) -> float:
        if not self.samples:
            raise ValueError(f"No samples for {self.group}/{self.case}/{self.impl}.")
        return statistics.median(self.samples)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["median"] = self.median if self.samples else None
        return data


@dataclass
class Check:
    """One target of the issue: the bridge's figure against its baseline."""

    group: str
    name: str
    value: float | None
    unit: str
    target: str
    passed: bool | None
    baseline: float | None = None
    baseline_label: str = ""
    ratio: float | None = None
    ratio_label: str = ""
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Figures:
    """Every figure of a run, keyed by (group, case, impl)."""

    def __init__(self) -> None:
        self._figures: dict[tuple[str, str, str], Figure] = {}

    def get(self, group: str, case: str, impl: str, unit: str) -> Figure:
        key = (group, case, impl)
        figure = self._figures.get(key)
        if figure is None:
            figure = self._figures[key] = Figure(group, case, impl, unit)
        return figure

    def add(self, group: str, case: str, impl: str, unit: str, value: float) -> Figure:
        figure = self.get(group, case, impl, unit)
        figure.samples.append(value)
        return figure

    def find(self, group: str, case: str, impl: str) -> Figure | None:
        figure = self._figures.get((group, case, impl))
        return figure if figure is not None and figure.samples else None

    def __iter__(self) -> Any:
        return iter(self._figures.values())


# Checks.


def _missing(group: str, name: str, unit: str, target: str, what: str) -> Check:
    return Check(group, name, None, unit, target, False, note=f"not measured: {what}")


def at_least_ratio(
    figures: Figures,
    group: str,
    case: str,
    name: str,
    baseline_impl: str,
    threshold: float,
    *,
    baseline_label: str,
    impl: str = "bridge",
) -> Check:
    """bridge / baseline >= threshold (throughput: higher is better)."""
    target = f"≥ {threshold:g}x {baseline_label}"
    mine = figures.find(group, case, impl)
    base = figures.find(group, case, baseline_impl)
    unit = (mine or base).unit if (mine or base) else ""
    if mine is None or base is None:
        return _missing(group, name, unit, target, f"{case}/{impl} or {baseline_impl}")
    ratio = mine.median / base.median if base.median else float("inf")
    return Check(
        group,
        name,
        mine.median,
        mine.unit,
        target,
        ratio >= threshold,
        baseline=base.median,
        baseline_label=baseline_label,
        ratio=ratio,
        ratio_label=f"bridge / {baseline_label}",
        note=_paired_note(mine, base),
    )


def _paired_note(mine: Figure, base: Figure) -> str:
    """The ratio round by round, for the reader: drift between rounds cancels in it.

    The check itself stays the ratio of the medians.
    """
    if len(mine.samples) != len(base.samples) or len(mine.samples) < 2:
        return ""
    ratios = [a / b for a, b in zip(mine.samples, base.samples, strict=True) if b]
    if not ratios:
        return ""
    return (
        f"per round: median {statistics.median(ratios):.3f}, {min(ratios):.3f} - {max(ratios):.3f}"
    )


def at_most_ratio(
    figures: Figures,
    group: str,
    case: str,
    name: str,
    baseline_impl: str,
    threshold: float,
    *,
    baseline_label: str,
    native_impl: str | None = None,
) -> Check:
    """bridge / baseline <= threshold (a cost: lower is better).

    With ``native_impl`` the cost compared is the *added* cost: each figure minus the
    native app's figure measured in the same rounds.
    """
    what = "added cost" if native_impl else "time"
    target = f"≤ {threshold:g}x {baseline_label}'s {what}"
    mine = figures.find(group, case, "bridge")
    base = figures.find(group, case, baseline_impl)
    unit = (mine or base).unit if (mine or base) else ""
    if mine is None or base is None:
        return _missing(group, name, unit, target, f"{case}/bridge or {baseline_impl}")
    value, base_value = mine.median, base.median
    note = ""
    if native_impl is not None:
        native = figures.find(group, case, native_impl)
        if native is None:
            return _missing(group, name, unit, target, f"{case}/{native_impl}")
        value -= native.median
        base_value -= native.median
        note = f"native {native.median:.3g} {unit}; added = impl - native"
    ratio = value / base_value if base_value > 0 else float("inf")
    return Check(
        group,
        name,
        value,
        mine.unit,
        target,
        ratio <= threshold,
        baseline=base_value,
        baseline_label=baseline_label,
        ratio=ratio,
        ratio_label=f"bridge / {baseline_label}",
        note=note,
    )


def at_most_value(
    figures: Figures,
    group: str,
    case: str,
    name: str,
    limit: float,
    *,
    impl: str = "bridge",
    reference_impl: str | None = None,
    reference_label: str = "",
    pick: Callable[[Figure], float] | None = None,
) -> Check:
    """An absolute bound on the bridge's figure (a time or a size)."""
    mine = figures.find(group, case, impl)
    unit = mine.unit if mine else ""
    target = f"≤ {limit:g} {unit}".rstrip()
    if mine is None:
        return _missing(group, name, unit, target, f"{case}/{impl}")
    value = pick(mine) if pick else mine.median
    reference = figures.find(group, case, reference_impl) if reference_impl else None
    return Check(
        group,
        name,
        value,
        mine.unit,
        target,
        value <= limit,
        baseline=(pick(reference) if pick else reference.median) if reference else None,
        baseline_label=reference_label if reference else "",
    )


def cpu_case(case: str) -> str:
    """The name of the ``server CPU per ...`` figure beside a WebSocket case."""
    per = "message" if case.startswith("1 MiB") else "round trip"
    return f"{case}: server CPU per {per}"


def cpu_info(figures: Figures, group: str, case: str, baseline: str) -> list[Check]:
    """An info row for a ``... server CPU per ...`` case, bridge against ``baseline``:
    the ratio a CPU-bound server would reach (none when either figure is missing)."""
    mine = figures.find(group, case, "bridge")
    base = figures.find(group, case, baseline)
    if mine is None or base is None:
        return []
    return [
        Check(
            group,
            f"{case} (info: the ratio a CPU-bound server would reach)",
            mine.median,
            mine.unit,
            "info",
            None,
            baseline=base.median,
            baseline_label=baseline,
            ratio=base.median / mine.median,
            ratio_label="native / bridge",
        )
    ]


# Formatting.


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "req/s":
        return f"{value:,.0f} req/s"
    if unit == "s":
        if abs(value) < 1e-3:
            return f"{value * 1e6:.1f} µs"
        if abs(value) < 1:
            return f"{value * 1e3:.1f} ms"
        return f"{value:.2f} s"
    if unit == "ms":
        return f"{value:.1f} ms"
    if unit in ("MiB/s", "MiB"):
        return f"{value:,.1f} {unit}"
    return f"{value:.4g} {unit}".rstrip()


def checks_table(checks: Sequence[Check]) -> str:
    lines = [
        "| # | Group | Target | bridge | baseline | ratio | target | result |",
        "|---|---|---|---:|---:|---:|---|---|",
    ]
    for number, check in enumerate(checks, 1):
        result = "PASS" if check.passed else ("FAIL" if check.passed is False else "info")
        base = fmt(check.baseline, check.unit)
        if check.baseline_label and check.baseline is not None:
            base += f" ({check.baseline_label})"
        ratio = "-" if check.ratio is None else f"{check.ratio:.3f}"
        name = check.name + (f" <br><sub>{check.note}</sub>" if check.note else "")
        lines.append(
            f"| {number} | {check.group} | {name} | {fmt(check.value, check.unit)} | {base} "
            f"| {ratio} | {check.target} | **{result}** |"
        )
    return "\n".join(lines)


def figures_table(figures: Figures) -> str:
    lines = [
        "| Group | Case | Implementation | median | min - max | rounds | note |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    for figure in figures:
        if not figure.samples:
            continue
        low, high = min(figure.samples), max(figure.samples)
        lines.append(
            f"| {figure.group} | {figure.case} | {figure.impl} | {fmt(figure.median, figure.unit)} "
            f"| {fmt(low, figure.unit)} - {fmt(high, figure.unit)} | {len(figure.samples)} "
            f"| {figure.note} |"
        )
    return "\n".join(lines)
