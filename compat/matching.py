"""Recognizing a failing test: by its id, by what it showed, by what the plugin noted."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from .results import TestResult


@functools.cache
def _pattern(glob: str) -> re.Pattern[str]:
    # "*" is the only wildcard: node ids hold "[", "]" and "?" as themselves.
    return re.compile(".*".join(re.escape(part) for part in glob.split("*")), re.DOTALL)


def _text(result: TestResult) -> str:
    return "\n".join((result.message, result.details, result.log))


@dataclass(frozen=True)
class Rule:
    """Which failing tests a rule is about; every part given must hold.

    * ``tests``: patterns over ``suite::node id`` (``*`` is the only wildcard), one
      of which must match;
    * ``failure``: a regular expression searched in the failure's message, its
      exception lines and the warnings and errors logged while it ran;
    * ``note``: what the plugin must have noted on the test (``websocket``,
      ``repeated-header``, ``underscore-header``: see ``compat._patches.note``).
    """

    tests: tuple[str, ...] = ()
    failure: str = ""
    note: str = ""

    def matches(self, suite: str, result: TestResult) -> bool:
        """True when the rule covers this failing test of ``suite``."""
        if not (self.tests or self.failure or self.note):
            return False
        key = f"{suite}::{result.test_id}"
        if self.tests and not any(_pattern(glob).fullmatch(key) for glob in self.tests):
            return False
        if self.note and self.note not in result.notes:
            return False
        return not self.failure or re.search(self.failure, _text(result)) is not None
