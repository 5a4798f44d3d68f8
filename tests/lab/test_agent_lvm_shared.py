"""ocf:lsaa:lvm-sysid with two nodes on one shared disk, as in a cluster with a SAN.

node1 and node2 are separate UML kernels that attach the same disk file
(:meth:`Lab.shared_disk`, UML ``ubd0c``): the VG is created with node1's system
ID, node1 "dies" (its guest is SIGKILLed with the VG active and a filesystem
mounted: no clean deactivation), node2's start takes the VG over and finds the
data intact, node1 comes back with the same disks and LVM there refuses the VG,
then a clean move back to node1 works.

The system ID comes from the host name (``system_id_source="uname"``), given to
every LVM command with ``--config`` (the agent's ``lvm_config`` parameter): no
lvm.conf is edited.  Data crosses nodes only through the disk: node1 syncs what
it wrote before it dies (what is still in a dead kernel's page cache is lost, as
in a real crash), LVM reads the disk with O_DIRECT.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from .labctl import REPO

if TYPE_CHECKING:
    from .labctl import Guest, Lab

SYSID = 'global { system_id_source="uname" }'
NO_UDEV = ("activation { udev_sync=0 udev_rules=0 monitoring=0 } "
           "devices { obtain_device_list_from_udev=0 }")
CFG = f"{SYSID} {NO_UDEV}"
P = {"vgname": "vgha", "lvm_config": SYSID}
RECURRING = {"OCF_RESKEY_CRM_meta_interval": "30000"}
DEPTH = {"OCF_CHECK_LEVEL": "10", "OCF_RESKEY_CRM_meta_interval": "60000"}
MNT = "/mnt/ha"


def lvm(g: Guest, cmd: str, *args: str, timeout: float = 60):  # type: ignore[no-untyped-def]
    return g.run([cmd, "--config", CFG, *args], timeout=timeout)


def sysid(g: Guest) -> str:
    out = lvm(g, "vgs", "--foreign", "--reportformat", "json", "-o", "vg_systemid",
              "vgha").check().stdout
    return str(json.loads(out)["report"][0]["vg"][0]["vg_systemid"])


def active_here(g: Guest) -> list[str]:
    """dm devices of vgha on this node (what the agent's monitor reads)."""
    out = g.run("cat /sys/block/dm-*/dm/name 2>/dev/null || true").stdout.split()
    return sorted(n for n in out if n.startswith("vgha-"))


@pytest.fixture
def nodes(lab: Lab) -> tuple[Guest, Guest]:
    san = lab.shared_disk("san", "128M")
    n1, n2 = lab.boot({"name": "node1", "disks": [san]},
                      {"name": "node2", "disks": [san]})
    for g in (n1, n2):
        g.run(["modprobe", "dm_mod"], check=True)
    # node1 creates the VG: it gets node1's system ID
    lvm(n1, "pvcreate", "-y", "/dev/ubda").check()
    lvm(n1, "vgcreate", "vgha", "/dev/ubda").check()
    for lv in ("lv0", "lv1"):
        lvm(n1, "lvcreate", "-y", "-L", "32M", "-n", lv, "vgha").check()
    lvm(n1, "vgchange", "-an", "vgha").check()
    return n1, n2


def test_takeover_from_a_dead_node_and_the_returning_node_is_locked_out(
        lab: Lab, nodes: tuple[Guest, Guest]) -> None:
    n1, n2 = nodes
    assert sysid(n1) == "node1"
    # node2 sees the VG through the shared disk, as foreign, and LVM refuses it there
    assert sysid(n2) == "node1"
    refused = lvm(n2, "vgchange", "-ay", "vgha")
    assert refused.rc == 5 and "system ID node1" in refused.stderr, refused.stderr
    assert active_here(n2) == []
    for g in (n1, n2):
        assert g.agent("lvm-sysid", "monitor", P).rc == 7  # probes: inactive

    # node1 runs the resource and writes data: a filesystem (left mounted) and raw blocks
    r = n1.agent("lvm-sysid", "start", P)
    assert r.rc == 0, r.stderr
    assert n1.agent("lvm-sysid", "monitor", P, env=RECURRING).rc == 0
    assert n1.agent("lvm-sysid", "monitor", P, env=DEPTH).rc == 0
    assert active_here(n1) == ["vgha-lv0", "vgha-lv1"]
    n1.sh(f"mkfs.ext4 -q /dev/vgha/lv0 && mkdir -p {MNT} && mount /dev/vgha/lv0 {MNT} && "
          f"head -c 4M /dev/urandom > {MNT}/data && sync", check=True)
    fs_sum = n1.run(["md5sum", f"{MNT}/data"], check=True).stdout.split()[0]
    n1.sh("head -c 8M /dev/urandom > /tmp/raw && "
          "dd if=/tmp/raw of=/dev/vgha/lv1 bs=1M oflag=direct status=none", check=True)
    raw_sum = n1.run(["md5sum", "/tmp/raw"], check=True).stdout.split()[0]

    # node1 dies: no stop, no unmount, no deactivation (fencing would do this)
    n1.kill()
    assert not n1.alive

    # node2: the probe finds nothing active, start takes the VG over
    assert n2.agent("lvm-sysid", "monitor", P).rc == 7
    r = n2.agent("lvm-sysid", "start", P)
    assert r.rc == 0, r.stderr
    assert sysid(n2) == "node2"
    assert active_here(n2) == ["vgha-lv0", "vgha-lv1"]
    assert n2.agent("lvm-sysid", "monitor", P, env=RECURRING).rc == 0
    assert n2.agent("lvm-sysid", "monitor", P, env=DEPTH).rc == 0
    # the data node1 wrote: the filesystem (journal replayed by the mount) and raw
    n2.sh(f"mkdir -p {MNT} && mount /dev/vgha/lv0 {MNT}", check=True)
    assert n2.run(["md5sum", f"{MNT}/data"], check=True).stdout.split()[0] == fs_sum
    n2.run(["umount", MNT], check=True)
    raw = n2.run("head -c 8M /dev/vgha/lv1 | md5sum", check=True).stdout.split()[0]
    assert raw == raw_sum

    # node1 comes back with the same disks: the VG is foreign there
    n1.restart()
    n1.run(["modprobe", "dm_mod"], check=True)
    assert sysid(n1) == "node2"
    assert n1.agent("lvm-sysid", "monitor", P).rc == 7  # probe
    # what a boot or an admin would do to activate it: LVM refuses, nothing active
    for cmd in (["vgchange", "-ay", "vgha"], ["lvchange", "-ay", "vgha/lv0"]):
        refused = lvm(n1, *cmd)
        assert refused.rc == 5, refused
        assert "system ID node2" in refused.stderr, refused.stderr
    lvm(n1, "vgchange", "-aay", "vgha")  # auto-activation: off since node2's start
    assert active_here(n1) == []
    assert n1.agent("lvm-sysid", "monitor", P).rc == 7
    assert n1.agent("lvm-sysid", "validate-all", P).rc == 0  # node1 itself is fine
    assert sysid(n2) == "node2"  # nothing node1 did changed the owner

    # clean move back: stop on node2 (system ID kept), start on node1
    r = n2.agent("lvm-sysid", "stop", {**P, "clear_systemid_on_stop": "false"})
    assert r.rc == 0, r.stderr
    assert active_here(n2) == []
    assert n2.agent("lvm-sysid", "monitor", P).rc == 7
    assert sysid(n2) == "node2"
    r = n1.agent("lvm-sysid", "start", P)
    assert r.rc == 0, r.stderr
    assert sysid(n1) == sysid(n2) == "node1"
    assert n1.agent("lvm-sysid", "monitor", P, env=DEPTH).rc == 0
    n1.sh(f"mkdir -p {MNT} && mount -o ro /dev/vgha/lv0 {MNT}", check=True)
    assert n1.run(["md5sum", f"{MNT}/data"], check=True).stdout.split()[0] == fs_sum
    n1.run(["umount", MNT], check=True)
    refused = lvm(n2, "vgchange", "-ay", "vgha")
    assert refused.rc == 5 and "system ID node1" in refused.stderr, refused.stderr
    assert n1.agent("lvm-sysid", "stop", P).rc == 0
    assert active_here(n1) == []


def test_conformance_harness_on_the_shared_disk(nodes: tuple[Guest, Guest]) -> None:
    """The harness on node2 against the VG node1 created; node1 stays locked out."""
    n1, n2 = nodes
    r = n2.run(["python3", "-m", "lsaa.tester", "ocf", "-o", "vgname=vgha",
                "-o", f"lvm_config={SYSID}", "-n", "vgtest",
                "--invalid", "vgname=-bad", "--hostile", str(REPO / "ocf" / "lvm-sysid")],
               timeout=300, env={"PYTHONPATH": str(REPO / "lib")})
    assert r.rc == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert sysid(n1) == sysid(n2) == "node2"
    assert active_here(n1) == []
    refused = lvm(n1, "vgchange", "-ay", "vgha")
    assert refused.rc == 5 and "system ID node2" in refused.stderr, refused.stderr


def test_vg_stolen_from_a_live_owner_is_seen_and_still_stops(
        nodes: tuple[Guest, Guest]) -> None:
    """What fencing exists to prevent: node2 takes the VG while node1 has it active.

    node1's level-10 monitor must see the new owner on the disk, and its stop
    must still deactivate the LVs (LVM deactivates a foreign VG, with a warning).
    """
    n1, n2 = nodes
    assert n1.agent("lvm-sysid", "start", P).rc == 0
    assert n2.agent("lvm-sysid", "start", P).rc == 0  # no lock in LVM: only fencing
    assert sysid(n1) == "node2"
    assert n1.agent("lvm-sysid", "monitor", P, env=RECURRING).rc == 0  # no command run
    r = n1.agent("lvm-sysid", "monitor", P, env=DEPTH)
    assert r.rc == 1
    assert "active here but owned by system ID 'node2'" in r.stderr
    r = n1.agent("lvm-sysid", "stop", P)
    assert r.rc == 0, r.stderr
    assert active_here(n1) == []
    assert active_here(n2) == ["vgha-lv0", "vgha-lv1"]
    assert sysid(n2) == "node2"
