"""The lab's own contract: commands, environment, isolation from the host."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest

from .labctl import REPO

if TYPE_CHECKING:
    from .labctl import Guest


def test_run_returns_rc_stdout_stderr_and_env(guest: Guest) -> None:
    r = guest.run(["sh", "-c", 'echo out; echo err >&2; echo "$X"; exit 3'], env={"X": "42"})
    assert (r.rc, r.stdout, r.stderr) == (3, "out\n42\n", "err\n")
    assert guest.run(["cat"], input="fed\n").stdout == "fed\n"
    assert guest.run("hostname").stdout.strip() == "node1"
    r = guest.run(["/nonexistent"])
    assert r.rc == 127 and "cannot run" in r.stderr


def test_command_timeout_kills_the_command_not_the_guest(guest: Guest) -> None:
    r = guest.run(["sh", "-c", "sleep 30 & sleep 30"], timeout=1)
    assert r.timed_out and not r.ok
    assert r.duration < 10
    # the whole session was killed: no sleep left in the guest
    assert guest.run(["sh", "-c", "pgrep -x sleep || true"]).stdout == ""
    assert guest.run(["true"]).ok


def test_many_commands_run_on_one_boot(guest: Guest) -> None:
    """Commands go to the running guest's control channel: no boot per command (what it
    costs is make bench's business, not a test's)."""
    boot = guest.run(["cat", "/proc/sys/kernel/random/boot_id"], check=True).stdout
    for i in range(20):
        assert guest.run(["echo", str(i)], check=True).stdout == f"{i}\n"
    assert guest.run(["cat", "/proc/sys/kernel/random/boot_id"], check=True).stdout == boot


def test_repo_is_visible_read_only_and_lsaa_imports(guest: Guest) -> None:
    # make dev-install links the package into the system site directory
    r = guest.run(["python3", "-c", "import os, lsaa; print(os.path.realpath(lsaa.__file__))"],
                  check=True)
    assert r.stdout.strip() == str(REPO / "lib" / "lsaa" / "__init__.py")
    r = guest.run(["touch", str(REPO / "lab-write-probe")])
    assert r.rc != 0 and "Read-only" in r.stderr
    assert not (REPO / "lab-write-probe").exists()


def test_guest_writes_stay_in_the_guest_except_the_share(guest: Guest) -> None:
    probe = f"/etc/lsaa-lab-probe-{os.getpid()}"
    guest.run(["sh", "-c", f"echo x > {probe} && cat {probe}"], check=True)
    assert not os.path.exists(probe)
    guest.run(["sh", "-c", f"echo result > {guest.share}/out.txt"], check=True)
    assert (guest.share / "out.txt").read_text() == "result\n"


def test_kernel_modules_load(guest: Guest) -> None:
    mods = ["ip_vs", "drbd", "dm_mod", "target_core_mod", "iscsi_tcp"]
    guest.run(["sh", "-c", "for m in {}; do modprobe $m || exit 1; done".format(" ".join(mods))],
              check=True)
    loaded = guest.run(["cat", "/proc/modules"]).stdout
    for m in mods:
        assert m + " " in loaded


def test_spawn_runs_a_daemon_with_output_in_the_share(guest: Guest) -> None:
    pid = guest.spawn(["sh", "-c", "echo started; exec sleep 60"], log=str(guest.share / "d.log"))
    assert guest.run(["kill", "-0", str(pid)]).ok
    assert (guest.share / "d.log").read_text() == "started\n"
    guest.run(["kill", str(pid)], check=True)


def test_agent_gets_the_ocf_environment(guest: Guest) -> None:
    fake = guest.put_file("agents/envdump", "#!/bin/sh\nenv | grep ^OCF_ | sort\nexit 7\n", 0o755)
    r = guest.agent("envdump", "monitor", {"vip": "10.0.0.1", "port": 80}, instance="v1",
                    timeout=30, agent_dir=os.path.dirname(fake))
    assert r.rc == 7
    env = dict(line.split("=", 1) for line in r.stdout.splitlines())
    assert env["OCF_RESKEY_vip"] == "10.0.0.1"
    assert env["OCF_RESKEY_port"] == "80"
    assert env["OCF_RESOURCE_INSTANCE"] == "v1"
    assert env["OCF_RESOURCE_TYPE"] == "envdump"
    assert env["OCF_ROOT"] == "/usr/lib/ocf"
    assert env["OCF_RESKEY_CRM_meta_timeout"] == "30000"


@pytest.mark.skipif(not (REPO / "ocf" / "dummy").exists(), reason="ocf/dummy not in the repo")
def test_repo_agent_runs_in_place(guest: Guest) -> None:
    params = {"state_dir": "/run/lab-dummy"}
    assert guest.agent("dummy", "meta-data").stdout.lstrip().startswith("<?xml")
    assert guest.agent("dummy", "monitor", params).rc == 7
    assert guest.agent("dummy", "start", params).rc == 0
    assert guest.agent("dummy", "monitor", params).rc == 0
    assert guest.agent("dummy", "stop", params).rc == 0
    assert guest.agent("dummy", "monitor", params).rc == 7
