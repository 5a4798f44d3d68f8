"""Teardown leaves nothing behind, however a lab run ends; the host /etc is untouched."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

import pytest

from .labctl import REPO, GuestDied, Lab, hash_tree, host_snapshot

if TYPE_CHECKING:
    from pathlib import Path


def assert_same_host_state(before: dict[str, Any], after: dict[str, Any]) -> None:
    for key in ("mounts", "loops", "netns", "uml_pids", "labdirs"):
        assert after[key] == before[key], f"{key} changed: {before[key]} -> {after[key]}"


def settled_snapshot() -> dict[str, Any]:
    # netns inodes of exiting processes can linger for a moment after SIGKILL
    time.sleep(0.2)
    return host_snapshot()


def test_guest_killed_by_its_watchdog_mid_command_leaves_nothing(tmp_path: Path) -> None:
    before = host_snapshot()
    with Lab(results=tmp_path / "lab") as lab:
        net = lab.network()
        g = lab.guest("node1", disks=["64M"], nics=[(net, 1)], lifetime=5).wait_ready()
        g.run(["modprobe", "drbd"], check=True)
        assert before["netns"] != host_snapshot()["netns"]  # the lab made its own netns
        t0 = time.monotonic()
        with pytest.raises(GuestDied):
            g.run(["sleep", "60"], timeout=60)
        assert time.monotonic() - t0 < 15
        assert g.proc is not None and g.proc.returncode != 0
        workdir = lab.workdir
    assert not workdir.exists()
    assert lab.leftover_pids() == [] and g.leftover_pids() == []
    assert_same_host_state(before, settled_snapshot())


def test_host_side_helpers_are_stopped_with_the_lab(tmp_path: Path) -> None:
    before = host_snapshot()
    with Lab(results=tmp_path / "lab") as lab:
        helper = lab.host_popen(["sh", "-c", "sleep 300 & sleep 300"])
        time.sleep(0.3)
        assert helper.poll() is None
    assert helper.returncode is not None
    assert_same_host_state(before, settled_snapshot())


def test_ctrl_c_of_the_cli_mid_run_leaves_nothing(tmp_path: Path) -> None:
    before = host_snapshot()
    base = tmp_path / "work"
    base.mkdir()
    env = dict(os.environ, LAB_WORKDIR=str(base))
    cli = subprocess.Popen(
        [sys.executable, "-m", "tests.lab", "-n", "2", "--net", "--disk", "64M", "--",
         "sleep", "120"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert cli.stdout is not None
        lines = []
        for line in cli.stdout:
            lines.append(line)
            if "node2 ready" in line:
                break
        assert any("node2 ready" in x for x in lines), lines
        time.sleep(0.5)  # node1 is now inside "sleep 120"
        cli.send_signal(signal.SIGINT)
        out = cli.communicate(timeout=60)[0]
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    assert cli.returncode == 130, out
    assert "interrupted, everything torn down" in out
    assert list(base.iterdir()) == []
    assert_same_host_state(before, settled_snapshot())


def test_sigkill_of_the_driver_takes_the_guests_down(tmp_path: Path) -> None:
    """No teardown code runs at all: PR_SET_PDEATHSIG must still end every process."""
    before = host_snapshot()
    base = tmp_path / "work"
    base.mkdir()
    env = dict(os.environ, LAB_WORKDIR=str(base))
    cli = subprocess.Popen(
        [sys.executable, "-m", "tests.lab", "--net", "--", "sleep", "120"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert cli.stdout is not None
    for line in cli.stdout:
        if "ready" in line:
            break
    cli.kill()
    cli.wait()
    cli.stdout.close()
    deadline = time.monotonic() + 15
    while host_snapshot()["uml_pids"] and time.monotonic() < deadline:
        time.sleep(0.1)
    after = settled_snapshot()
    assert after["uml_pids"] == []
    assert after["netns"] == before["netns"]
    # the work directory stays (no code ran to remove it); only files, no processes
    for d in base.iterdir():
        subprocess.run(["rm", "-rf", str(d)], check=True)


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
