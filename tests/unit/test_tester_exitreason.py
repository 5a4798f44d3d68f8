"""Exit-reason parsing as Pacemaker does it: last occurrence, one line, 128 chars."""

from __future__ import annotations

from lsaa.tester import exitreason


def test_last_occurrence_wins() -> None:
    found = exitreason.find("ocf-exit-reason:first\nnoise\nocf-exit-reason:second\n")
    assert found == exitreason.ExitReason("second", ())


def test_prefix_may_follow_other_text_on_the_line() -> None:
    found = exitreason.find("Dummy(x)[1]: ocf-exit-reason:mid-line\n")
    assert found is not None and found.text == "mid-line"


def test_no_reason() -> None:
    assert exitreason.find("touch: cannot touch\n") is None
    assert exitreason.find("") is None


def test_custom_prefix() -> None:
    found = exitreason.find("X:why\n", prefix="X:")
    assert found is not None and found.text == "why"


def test_good_reason_has_no_problems() -> None:
    reason = exitreason.ExitReason("State file is not writable", ())
    assert exitreason.problems(reason) == []


def test_exactly_128_is_fine_129_is_not() -> None:
    assert exitreason.problems(exitreason.ExitReason("x" * 128, ())) == []
    found = exitreason.problems(exitreason.ExitReason("x" * 129, ()))
    assert len(found) == 1 and "129 characters" in found[0]


def test_empty_reason() -> None:
    assert "empty" in exitreason.problems(exitreason.ExitReason("  ", ()))[0]


def test_continuation_line_is_multi_line() -> None:
    reason = exitreason.find("ocf-exit-reason:could not start:\n  port 80 in use\n")
    assert reason is not None
    found = exitreason.problems(reason)
    assert len(found) == 1 and "multi-line" in found[0] and "port 80 in use" in found[0]


def test_log_lines_after_the_reason_are_fine() -> None:
    stderr = (
        "ocf-exit-reason:not configured\n"
        "Dummy(rsc)[123]: ERROR: not configured\n"
        "ERROR:root:not configured\n"
        "2024-01-01 12:00:00,000 ERROR: Failed\n"
        "WARNING: something\n"
        "\n"
    )
    reason = exitreason.find(stderr)
    assert reason is not None
    assert exitreason.problems(reason) == []
