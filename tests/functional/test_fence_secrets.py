"""A fence agent run as the fencer runs it: the password reaches it on stdin and
appears nowhere else — not in any process's argv or environment, not in the
debug file, not on stdout/stderr."""

from __future__ import annotations

import os
import subprocess
import time

import pytest
from procscan import process_texts

pytestmark = pytest.mark.functional
AGENT = os.path.join(os.path.dirname(__file__), "..", "..", "fence", "fence_lsaa_dummy")
SECRET = "Pa55-w0rd-that-must-not-leak"


@pytest.mark.parametrize("via", ["password", "password_script"])
def test_password_only_on_stdin(tmp_path, via):
    (tmp_path / "node1").write_text("on\n")
    debug = tmp_path / "debug.log"
    script = tmp_path / "pw"
    script.write_text(f"#!/bin/sh\nsleep 0.5\necho '{SECRET}'\n")
    script.chmod(0o700)
    cred = f"password={SECRET}" if via == "password" else f"password_script={script}"
    (tmp_path / ".password").write_text(SECRET + "\n")
    # delay keeps the agent alive long enough to look at it from outside
    stdin = (f"action=reboot\nplug=node1\nstate_dir={tmp_path}\ndelay=1\n{cred}\n"
             f"verbose=1\ndebug_file={debug}\n").encode()
    proc = subprocess.Popen([AGENT], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    proc.stdin.write(stdin)
    proc.stdin.close()
    seen: list[bytes] = []
    deadline = time.monotonic() + 10
    while proc.poll() is None and time.monotonic() < deadline:
        seen += process_texts(proc.pid)
        time.sleep(0.05)
    assert proc.wait(timeout=10) == 0
    out, err = proc.stdout.read(), proc.stderr.read()
    assert seen, "the agent was never observed running"
    assert (tmp_path / "node1").read_text() == "on\n"  # rebooted: off, then on again
    assert b"DEBUG" in debug.read_bytes()
    for text in [*seen, out, err, debug.read_bytes()]:
        assert SECRET.encode() not in text


def test_wrong_password_fails_and_is_masked(tmp_path):
    (tmp_path / "node1").write_text("on\n")
    (tmp_path / ".password").write_text("right\n")
    res = subprocess.run([AGENT], input=f"action=off\nplug=node1\nstate_dir={tmp_path}\n"
                         f"password={SECRET}\n".encode(), capture_output=True, check=False)
    assert res.returncode == 1
    assert res.stderr == b"ERROR: authentication failed for password ******\n"
    assert (tmp_path / "node1").read_text() == "on\n"
