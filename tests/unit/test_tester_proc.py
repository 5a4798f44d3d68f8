"""The child runner: process groups, deadlines, output capture."""

from __future__ import annotations

import os
import time

from lsaa.tester import proc

ENV = {"PATH": "/usr/bin:/bin"}


def test_captures_output_and_rc() -> None:
    result = proc.run(["/bin/sh", "-c", "echo out; echo err >&2; exit 3"], ENV, 5)
    assert (result.rc, result.stdout, result.stderr, result.timed_out) == (3, "out\n", "err\n",
                                                                             False)


def test_env_is_exactly_what_was_given() -> None:
    result = proc.run(["/bin/sh", "-c", "env"], {"PATH": "/bin", "ONLY": "1"}, 5)
    names = {line.split("=", 1)[0] for line in result.stdout.splitlines()}
    assert names <= {"PATH", "ONLY", "PWD", "SHLVL", "_"}
    assert "ONLY" in names


def test_stdin_is_fed_then_eof() -> None:
    result = proc.run(["/bin/cat"], ENV, 5, stdin="action=status\nplug=n1\n")
    assert result.stdout == "action=status\nplug=n1\n"


def test_timeout_kills_the_whole_group(tmp_path: object) -> None:
    # The grandchild would write its marker after 2 s unless the group is killed.
    marker = f"{tmp_path}/survived"
    script = f"(sleep 2; touch {marker}) & sleep 30"
    result = proc.run(["/bin/sh", "-c", script], ENV, 0.5)
    # Killed at the timeout (sh would exit 0 after 30 s), not waited for.
    assert result.timed_out and result.rc == -9
    time.sleep(2.2)
    assert not os.path.exists(marker)


def test_background_child_holding_stdout_does_not_block() -> None:
    # A daemon started by the agent inherits stdout; the run ends with the agent.
    # Waiting for the daemon (3 s) would overrun the 2 s timeout: timed_out proves it.
    result = proc.run(["/bin/sh", "-c", "sleep 3 & echo started"], ENV, 2)
    assert result.rc == 0 and result.stdout == "started\n"
    assert not result.timed_out


def test_own_process_group() -> None:
    result = proc.run(["/bin/sh", "-c", "ps -o pgid= -p $$; echo $$"], ENV, 5)
    pgid, pid = result.stdout.split()
    assert pgid == pid
    assert int(pgid) != os.getpgrp()


def test_exec_failure_is_a_result() -> None:
    result = proc.run(["/nonexistent/agent", "start"], ENV, 5)
    assert result.rc == proc.RC_CANNOT_EXECUTE and "cannot execute" in result.stderr
