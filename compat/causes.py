"""Probable causes of unexpected differences, recognized from what a failure shows.

Each rule reads the failure's message, its exception lines and the log of the test
(the bridge logs what it swallows there) and names the part of ``bridge`` most
likely at fault. The first rule that matches wins; a failure no rule knows is
grouped by its exception type.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

from .results import TestResult


@dataclass(frozen=True)
class Cause:
    """A probable cause: how it shows, and where in ``bridge`` to look."""

    key: str
    title: str
    where: str
    failure: str = ""  # a regular expression over message, exception lines and log
    tests: tuple[str, ...] = ()  # fnmatch patterns over "suite::node id"

    def matches(self, suite: str, result: TestResult) -> bool:
        if self.tests and not any(
            fnmatch.fnmatchcase(f"{suite}::{result.test_id}", pattern) for pattern in self.tests
        ):
            return False
        if not self.failure:
            return bool(self.tests)
        text = "\n".join((result.message, result.details, result.log))
        return re.search(self.failure, text) is not None


CAUSES: tuple[Cause, ...] = ()


def cause_of(suite: str, result: TestResult) -> Cause:
    """The first cause whose rule matches ``result``, else one named by its exception."""
    for cause in CAUSES:
        if cause.matches(suite, result):
            return cause
    kind = result.exception_type or result.outcome
    return Cause(key=f"other:{kind}", title=f"Not yet classified ({kind})", where="?")
