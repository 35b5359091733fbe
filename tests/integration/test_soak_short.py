"""The short soak: ``benchmarks/soak.py`` with 10,000 requests, 5,000 through each adapter.

The full soak (``python -m benchmarks.soak``, 200,000 requests per adapter) is not
part of the suite; this run checks that the mix (small GETs, uploads, streams,
deliberate disconnects) goes through both adapters under real servers with no
failed request, no stream left running, and memory and thread counts within the
soak's thresholds (which allow for a short run's noise; see the soak's docstring).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import soak

pytestmark = pytest.mark.server

TOTAL_REQUESTS = 10_000


def test_short_soak_through_both_adapters(tmp_path: Path) -> None:
    per_adapter = TOTAL_REQUESTS // len(soak.ADAPTERS)
    reports = soak.run(per_adapter, list(soak.ADAPTERS), tmp_path, echo=lambda line: None)

    assert [report.adapter for report in reports] == list(soak.ADAPTERS)
    for report in reports:
        assert report.outcome.requests == per_adapter, report.table()
        assert report.outcome.disconnects == per_adapter // 20, report.table()
        assert report.ok, report.table()
