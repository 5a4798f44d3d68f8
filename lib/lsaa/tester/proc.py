"""Run an agent the way Pacemaker's daemons do, and never hang the harness.

The child gets its own session (hence its own process group, as execd's
``setpgid(0, 0)``), an explicit environment and a deadline. At the deadline the
*whole group* is SIGKILLed, as ``mainloop.c:child_kill_helper`` does: no
SIGTERM, no grace.

Output goes to anonymous temporary files rather than pipes. A daemon that an
agent starts inherits its stdout and keeps it open after the agent exits; with
pipes, reading to EOF would then wait for the daemon. With files, waiting for
the agent is all there is, so no read can deadlock or outlive the deadline.
"""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import IO

# What a shell reports when exec fails; used when the agent cannot be started
# (e.g. not executable by the user it runs as).
RC_CANNOT_EXECUTE = 126


@dataclass(frozen=True)
class Result:
    """What one agent run produced. ``rc`` is negative (-9) when it was killed."""

    argv: tuple[str, ...]
    rc: int
    stdout: str
    stderr: str
    duration: float
    timed_out: bool


def _read(handle: IO[bytes]) -> str:
    handle.seek(0)
    return handle.read().decode("utf-8", errors="replace")


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        # The whole group is already gone.
        pass


def run(
    argv: Sequence[str],
    env: Mapping[str, str],
    timeout: float,
    *,
    stdin: str | None = None,
    user: str | None = None,
    cwd: str = "/",
) -> Result:
    """Run ``argv`` with exactly ``env``; SIGKILL its process group after ``timeout`` s.

    ``stdin`` is fed from a file (then EOF), or /dev/null when None.
    ``user`` switches to that account (uid, primary gid, no supplementary
    groups); it needs root. Exec failures come back as rc 126 with the error on
    stderr instead of raising, because "the agent cannot run as nobody" is a
    finding, not a harness crash.
    """
    uid: int | None = None
    gid: int | None = None
    if user is not None:
        entry = pwd.getpwnam(user)
        uid, gid = entry.pw_uid, entry.pw_gid
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.TemporaryFile() as inp:
        inp.write((stdin or "").encode())
        inp.flush()
        inp.seek(0)
        started = time.monotonic()
        try:
            proc = subprocess.Popen(
                list(argv),
                stdin=inp if stdin is not None else subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=dict(env),
                cwd=cwd,
                start_new_session=True,
                user=uid,
                group=gid,
                extra_groups=[] if uid is not None else None,
            )
        except OSError as exc:
            return Result(tuple(argv), RC_CANNOT_EXECUTE, "", f"cannot execute: {exc}\n",
                          time.monotonic() - started, False)
        timed_out = False
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            # The child is its session's and group's leader, so its pid is the pgid.
            _kill_group(proc.pid)
            rc = proc.wait()
        duration = time.monotonic() - started
        return Result(tuple(argv), rc, _read(out), _read(err), duration, timed_out)


def can_switch_user() -> bool:
    """True when runs with ``user=`` are possible (the harness is root)."""
    return os.geteuid() == 0
