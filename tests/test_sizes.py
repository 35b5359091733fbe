"""The package stays readable: no class over 200 lines, no module over 450, no function
over 80 (decorators, docstrings and data-building literals included)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "bridge"
MODULES = sorted(PACKAGE.glob("*.py"))
LIMITS = {"module": 450, "class": 200, "function": 80}


def sizes(path: Path) -> list[tuple[str, str, int]]:
    """(kind, name, lines) for the module and every class and function in it."""
    text = path.read_text("utf-8")
    found = [("module", path.name, len(text.splitlines()))]
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            kind = "class" if isinstance(node, ast.ClassDef) else "function"
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            assert node.end_lineno is not None
            found.append((kind, f"{path.name}:{node.name}", node.end_lineno - first + 1))
    return found


@pytest.mark.parametrize("path", MODULES, ids=lambda path: path.name)
def test_sizes_stay_under_the_limits(path: Path) -> None:
    over = [(kind, name, lines) for kind, name, lines in sizes(path) if lines > LIMITS[kind]]
    assert over == []


def test_the_package_is_all_there() -> None:
    assert len(MODULES) > 30  # the glob found the package
