"""What cannot cross a WSGI hop at all: tests that differ for these reasons are expected.

Each entry names test ids (``fnmatch`` patterns over ``suite::node id``) and, where
the same test could also fail for another reason, a regular expression the
failure must match (searched in the message, the exception lines and the log).
An entry is added only once a test was seen failing for that reason; every other
difference is a bug to report.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

from .results import TestResult


@dataclass(frozen=True)
class KnownDifference:
    """One reason a test cannot pass through the double bridge."""

    category: str
    reason: str
    tests: tuple[str, ...]
    failure: str = ""  # a regular expression; empty: any failure

    def matches(self, suite: str, result: TestResult) -> bool:
        """True when ``result`` (a differing test of ``suite``) is this difference."""
        key = f"{suite}::{result.test_id}"
        if not any(fnmatch.fnmatchcase(key, pattern) for pattern in self.tests):
            return False
        if not self.failure:
            return True
        text = "\n".join((result.message, result.details, result.log))
        return re.search(self.failure, text) is not None


KNOWN_DIFFERENCES: tuple[KnownDifference, ...] = ()


def known_difference(suite: str, result: TestResult) -> KnownDifference | None:
    """The first known difference that explains ``result``, if any."""
    for difference in KNOWN_DIFFERENCES:
        if difference.matches(suite, result):
            return difference
    return None
