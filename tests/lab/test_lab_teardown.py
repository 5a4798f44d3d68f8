"""Teardown leaves nothing behind, however a lab run ends; the host /etc is untouched."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from .labctl import (
    REPO,
    GuestDied,
    Lab,
    _ns_inode,
    hash_tree,
    host_snapshot,
    netns_holders,
    processes_mentioning,
)


def assert_nothing_left(before: dict[str, Any], workdir: Path, netns: str | None) -> None:
    """No process, netns, mount, loop device or file of the lab in ``workdir`` remains."""
    deadline = time.monotonic() + 10  # SIGKILLed processes need a moment to be reaped
    while processes_mentioning(str(workdir)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_mentioning(str(workdir)) == []
    if netns:
        assert netns_holders(netns) == []
    after = host_snapshot()
    assert after["mounts"] == before["mounts"]
    assert after["loops"] == before["loops"]
    assert not workdir.exists() or list(workdir.iterdir()) == []


def holder_netns(base: Path) -> str | None:
    for pid in processes_mentioning(str(base)):
        if b"lsaa-lab-holder" in Path(f"/proc/{pid}/cmdline").read_bytes():
            return _ns_inode(pid, "net")
    return None


def test_guest_killed_by_its_watchdog_mid_command_leaves_nothing(tmp_path: Path) -> None:
    before = host_snapshot()
    with Lab(results=tmp_path / "lab") as lab:
        net = lab.network()
        g = lab.guest("node1", disks=["64M"], nics=[(net, 1)], lifetime=5).wait_ready()
        g.run(["modprobe", "drbd"], check=True)
        assert lab.netns_inode and lab.netns_inode != _ns_inode(os.getpid(), "net")
        assert g.proc is not None and netns_holders(lab.netns_inode)
        t0 = time.monotonic()
        with pytest.raises(GuestDied):
            g.run(["sleep", "60"], timeout=60)
        assert time.monotonic() - t0 < 15
        assert g.proc.returncode != 0
    assert lab.leftover_pids() == [] and g.leftover_pids() == []
    assert_nothing_left(before, lab.workdir, lab.netns_inode)


def test_host_side_helpers_are_stopped_with_the_lab(tmp_path: Path) -> None:
    before = host_snapshot()
    with Lab(results=tmp_path / "lab") as lab:
        helper = lab.host_popen(["sh", "-c", "sleep 300 & sleep 300"])
        time.sleep(0.3)
        assert helper.poll() is None
        assert len(netns_holders(str(lab.netns_inode))) >= 3  # holder, sh, sleeps
    assert helper.returncode is not None
    assert_nothing_left(before, lab.workdir, lab.netns_inode)


def run_cli_until_ready(base: Path, *args: str) -> tuple[subprocess.Popen[str], str | None]:
    env = dict(os.environ, LAB_WORKDIR=str(base))
    cli = subprocess.Popen([sys.executable, "-m", "tests.lab", *args], cwd=REPO, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert cli.stdout is not None
    lines = []
    for line in cli.stdout:
        lines.append(line)
        if "ready in" in line and ("node2" in line or "-n" not in args):
            break
    assert any("ready in" in x for x in lines), lines
    return cli, holder_netns(base)


def test_ctrl_c_of_the_cli_mid_run_leaves_nothing(tmp_path: Path) -> None:
    before = host_snapshot()
    base = tmp_path / "work"
    base.mkdir()
    cli, netns = run_cli_until_ready(base, "-n", "2", "--net", "--disk", "64M", "--",
                                     "sleep", "120")
    try:
        assert netns is not None
        time.sleep(0.5)  # node1 is now inside "sleep 120"
        cli.send_signal(signal.SIGINT)
        out = cli.communicate(timeout=60)[0]
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    assert cli.returncode == 130, out
    assert "interrupted, everything torn down" in out
    assert_nothing_left(before, base, netns)


def test_sigkill_of_the_driver_takes_the_guests_down(tmp_path: Path) -> None:
    """No teardown code runs at all: PR_SET_PDEATHSIG must still end every process."""
    before = host_snapshot()
    base = tmp_path / "work"
    base.mkdir()
    cli, netns = run_cli_until_ready(base, "--net", "--", "sleep", "120")
    assert netns is not None
    cli.kill()
    cli.wait()
    assert cli.stdout is not None
    cli.stdout.close()
    # the work directory stays (no code ran to remove it): remove the files, then
    # check that no process, netns or mount is left
    deadline = time.monotonic() + 15
    while processes_mentioning(str(base)) and time.monotonic() < deadline:
        time.sleep(0.1)
    for d in base.iterdir():
        subprocess.run(["rm", "-rf", str(d)], check=True)
    assert_nothing_left(before, base, netns)


def test_host_etc_is_byte_identical_after_a_guest_rewrites_it(tmp_path: Path) -> None:
    before = hash_tree("/etc")
    with Lab(results=tmp_path / "lab") as lab:
        g = lab.guest("node1", disks=["64M"]).wait_ready()
        g.sh("echo 10.9.9.9 evil >> /etc/hosts\n"
             "echo lab > /etc/hostname\n"
             "rm -f /etc/issue\n"
             "mkdir -p /etc/lsaa-lab-probe && echo x > /etc/lsaa-lab-probe/f\n"
             "modprobe dm_mod\n"
             "pvcreate -y --config 'devices { obtain_device_list_from_udev=0 }' /dev/ubda\n"
             "echo InitiatorName=iqn.x:y > /etc/iscsi/initiatorname.iscsi\n"
             "chmod 600 /etc/passwd", check=True)
        assert "evil" in g.run(["cat", "/etc/hosts"]).stdout
    after = hash_tree("/etc")
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    assert changed == []
    assert oct(os.stat("/etc/passwd").st_mode & 0o777) != "0o600"
