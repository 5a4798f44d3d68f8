"""ocf:lsaa:lvm-sysid in a real kernel: takeover from a dead owner, data intact,
the old owner locked out, and the conformance harness.

One guest plays both nodes by changing its hostname (system_id_source=uname), as
lab-recipes D.2 does: cheap, and the partial-activation and refusal cases need
only one kernel.  Two real nodes (two kernels on one shared disk, the owner
killed and booted again): test_agent_lvm_shared.py.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .labctl import Guest

# lvm.conf of "every node": the system ID comes from the host name.  The guest's
# /etc is an overlay: the host's lvm.conf is never touched.
LVMLOCAL = 'global {\n    system_id_source = "uname"\n}\n'
NO_UDEV = ("activation { udev_sync=0 udev_rules=0 monitoring=0 } "
           "devices { obtain_device_list_from_udev=0 }")
P = {"vgname": "vgha"}


def _setup(g: Guest) -> str:
    conf = g.put_file("lvm-systemid.conf", LVMLOCAL)
    g.sh(f"modprobe dm_mod; cat {conf} >> /etc/lvm/lvm.conf", check=True)
    g.run(["pvcreate", "-y", "--config", NO_UDEV, "/dev/ubda"], check=True)
    g.run(["vgcreate", "--config", NO_UDEV, "vgha", "/dev/ubda"], check=True)
    for lv in ("lv0", "lv1"):
        g.run(["lvcreate", "-y", "--config", NO_UDEV, "-L", "32M", "-n", lv, "vgha"],
              check=True)
    g.run(["vgchange", "--config", NO_UDEV, "-an", "vgha"], check=True)
    return "vgha"


def _sysid(g: Guest) -> str:
    out = g.run(["vgs", "--config", NO_UDEV, "--foreign", "--reportformat", "json", "-o",
                 "vg_systemid", "vgha"], check=True).stdout
    return str(json.loads(out)["report"][0]["vg"][0]["vg_systemid"])


def test_takeover_from_dead_owner(guest: Guest) -> None:
    g = guest
    _setup(g)
    assert g.agent("lvm-sysid", "monitor", P).rc == 7  # probe: inactive
    r = g.agent("lvm-sysid", "start", P)
    assert r.rc == 0, r.stderr
    assert g.agent("lvm-sysid", "monitor", P,
                   env={"OCF_RESKEY_CRM_meta_interval": "30000"}).rc == 0
    g.sh("mkfs.ext4 -q /dev/vgha/lv0 && mkdir -p /mnt/a && mount /dev/vgha/lv0 /mnt/a && "
         "head -c 4M /dev/urandom > /mnt/a/data && md5sum /mnt/a/data > /tmp/sum && "
         "umount /mnt/a", check=True)
    # node1 "dies" with the VG active: its dm devices vanish with the kernel; here
    # we remove them behind LVM's back (dmsetup), as a crash would.
    g.run(["dmsetup", "remove", "vgha-lv0", "vgha-lv1"], check=True)
    g.run(["hostname", "node2"], check=True)
    assert g.agent("lvm-sysid", "monitor", P).rc == 7  # probe on node2: foreign VG
    r = g.agent("lvm-sysid", "start", P)
    assert r.rc == 0, r.stderr
    assert _sysid(g) == "node2"
    g.sh("mount -o ro /dev/vgha/lv0 /mnt/a && md5sum -c /tmp/sum && umount /mnt/a",
         check=True)
    depth = {"OCF_CHECK_LEVEL": "10", "OCF_RESKEY_CRM_meta_interval": "60000"}
    assert g.agent("lvm-sysid", "monitor", P, env=depth).rc == 0
    assert g.agent("lvm-sysid", "stop", P).rc == 0
    assert g.agent("lvm-sysid", "monitor", P).rc == 7
    # node1 comes back: its LVM refuses the VG now owned by node2
    g.run(["hostname", "node1"], check=True)
    refused = g.run(["lvchange", "--config", NO_UDEV, "-ay", "vgha"])
    assert refused.rc == 5
    assert "system ID node2" in refused.stderr
    assert g.agent("lvm-sysid", "monitor", P).rc == 7


def test_partial_activation_is_a_failure_and_refusals(guest: Guest) -> None:
    g = guest
    _setup(g)
    assert g.agent("lvm-sysid", "start", P).rc == 0
    g.run(["dmsetup", "remove", "vgha-lv1"], check=True)
    r = g.agent("lvm-sysid", "monitor", P, env={"OCF_RESKEY_CRM_meta_interval": "30000"})
    assert r.rc == 1
    assert "lv1" in r.stderr
    assert g.agent("lvm-sysid", "stop", P).rc == 0
    # a VG without a system ID: inherently invalid (metadata on the shared disk)
    g.run(["vgchange", "--config", NO_UDEV, "-y", "--systemid", "", "vgha"], check=True)
    r = g.agent("lvm-sysid", "start", P)
    assert r.rc == 6
    assert "no system ID" in r.stderr
    # this node's lvm.conf gives no system ID: node-local, OCF_ERR_ARGS
    r = g.agent("lvm-sysid", "start", {**P, "lvm_config": 'global { system_id_source="none" }'})
    assert r.rc == 2
    assert "system_id_source" in r.stderr


def test_conformance_harness(guest: Guest) -> None:
    g = guest
    _setup(g)
    r = g.run(["python3", "-m", "lsaa.tester", "ocf", "-o", "vgname=vgha", "-n", "vgtest",
               "--invalid", "vgname=-bad", "--hostile",
               "/work/main/ocf/lvm-sysid"], timeout=300,
              env={"PYTHONPATH": "/work/main/lib"})
    assert r.rc == 0, r.stdout[-3000:] + r.stderr[-2000:]
