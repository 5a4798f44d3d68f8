"""Report bookkeeping and rendering."""

from __future__ import annotations

import pytest

from lsaa.tester.report import FAIL, PASS, SKIP, WARN, Report


def test_ok_and_failures() -> None:
    report = Report("agent")
    report.add("a", PASS, "fine")
    report.add("b", WARN, "hmm")
    assert report.failures == []
    report.add("c", FAIL, "broken")
    report.add("d", SKIP)
    assert not report.ok
    assert report.failed_names() == ["c"]
    assert [c.name for c in report.warnings] == ["b"]
    assert report.status_of("d") == SKIP
    assert report.status_of("zzz") is None
    assert report.counts() == {PASS: 1, FAIL: 1, WARN: 1, SKIP: 1}


def test_render_one_line_per_check_and_summary() -> None:
    report = Report("agent X")
    report.add("start", PASS, "rc=0\nwith a newline")
    report.add("stop", FAIL, "rc=1")
    lines = report.render().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("PASS  start") and "rc=0 with a newline" in lines[0]
    assert lines[1].startswith("FAIL  stop")
    assert lines[2] == ("SUMMARY FAILED: agent X: 2 checks, 1 passed, 1 failed, "
                        "0 warnings, 0 skipped")


def test_unknown_status_rejected() -> None:
    with pytest.raises(ValueError, match="unknown check status"):
        Report("x").add("a", "MAYBE")
