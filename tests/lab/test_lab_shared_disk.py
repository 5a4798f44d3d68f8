"""Shared disks: two guests on one disk file, a killed guest restarted, nothing left."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from .labctl import Lab, LabError, host_snapshot
from .test_lab_teardown import assert_nothing_left

if TYPE_CHECKING:
    from pathlib import Path

RD = "dd if=/dev/{} bs=4096 skip=7 count=1 iflag=direct status=none | head -c4"
WR = "printf {} | dd of=/dev/ubda bs=4096 seek=7 count=1 conv=sync {} status=none"


def test_two_guests_share_a_disk_and_a_killed_one_comes_back(tmp_path: Path) -> None:
    before = host_snapshot()
    with Lab(results=tmp_path / "lab", keep=True) as lab:
        san = lab.shared_disk("san", "32M")
        assert lab.shared_disk("san", "32M") is san
        with pytest.raises(LabError):
            lab.shared_disk("san", "64M")
        n1, n2 = lab.boot({"name": "node1", "disks": [san]},
                          {"name": "node2", "disks": ["16M", san]})
        assert (n1.ubd_flags, n2.ubd_flags) == (["c"], ["", "c"])
        assert "Not locking" in n1.run("dmesg").stdout
        n1.sh(WR.format("AAAA", "oflag=direct"), check=True)
        assert n2.run(RD.format("ubdb")).stdout == "AAAA"
        # written through the page cache and flushed: visible too
        n1.sh(WR.format("BBBB", "conv=fsync"), check=True)
        assert n2.run(RD.format("ubdb")).stdout == "BBBB"
        n1.kill()
        with pytest.raises(LabError):
            n2.restart()  # still running
        n1.restart()
        assert n1.run(RD.format("ubda")).stdout == "BBBB"
        assert n1.run(["hostname"]).stdout.strip() == "node1"
        assert san.path.exists()
    assert not san.path.exists()
    assert (tmp_path / "lab" / "node1" / "console.log").exists()  # keep: results stay
    assert lab.leftover_pids() == []
    assert_nothing_left(before, lab.workdir / "shared", lab.netns_inode)


def test_a_shared_disk_of_another_lab_is_refused(tmp_path: Path) -> None:
    with Lab(results=tmp_path / "a") as a, Lab(results=tmp_path / "b") as b:
        san = a.shared_disk("san", "8M")
        with pytest.raises(LabError):
            b.guest("node1", disks=[san])
