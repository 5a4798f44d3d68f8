"""Logging conventions: HA_debug compared as a string, files, tracing, masking."""

from __future__ import annotations

import pytest

from lsaa.log import Log, is_on


@pytest.mark.parametrize(("value", "on"), [
    (None, False), ("", False), ("0", False), ("no", False), ("false", False),
    ("1", True), ("yes", True), ("2", True),
])
def test_debug_flag_is_a_string(value, on):
    assert is_on(value) is on


def test_logfile_debuglog_and_mask(tmp_path):
    main, debug = tmp_path / "ha.log", tmp_path / "debug.log"
    log = Log("dummy(r1)", {"HA_LOGFILE": str(main), "HA_DEBUGLOG": str(debug),
                            "HA_debug": "0", "HA_LOGFACILITY": "none"}, ["pw123"])
    log.debug("hidden")
    log.info("started with pw123\nsecond line")
    assert "hidden" not in main.read_text()
    assert not debug.exists()
    (line,) = main.read_text().splitlines()
    assert line.endswith("INFO: started with ****** second line")
    assert "dummy(r1)[" in line
    log.debug_on = True
    log.debug("now visible")
    assert "now visible" in debug.read_text()


def test_trace_writes_debug_to_trace_file(tmp_path):
    trace = tmp_path / "trace"
    log = Log("t", {"OCF_TRACE_RA": "1", "OCF_TRACE_FILE": str(trace),
                    "HA_LOGFACILITY": "none"})
    log.debug("ran ipvsadm")
    assert "ran ipvsadm" in trace.read_text()


def test_password_with_blanks_is_masked_before_folding(tmp_path):
    main = tmp_path / "ha.log"
    log = Log("t", {"HA_LOGFILE": str(main), "HA_LOGFACILITY": "none"}, ["pa ss  word "])
    log.error("login failed for pa ss  word \n")
    assert "pa ss" not in main.read_text()
    assert "******" in main.read_text()
