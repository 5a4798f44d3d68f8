"""Storage monitors in the kernel lab, side by side, measured inside one guest:

* ocf:lsaa:drbd monitor vs ocf:linbit:drbd monitor (drbd-utils 9.22), DRBD 8.4.11,
  a lone Secondary (UpToDate, peer absent) with a recurring-monitor interval;
* ocf:lsaa:lvm-sysid monitor vs ocf:heartbeat:LVM-activate monitor
  (vg_access_mode=system_id), two active LVs.

The guest times each command itself (fork+exec costs ~38 ms under UML, so host-side
timing would measure the lab, not the agents), interleaved round by round; the
medians come back as JSON.  crm_attribute is a stub in the guest (no cluster), the
same for both agents.  Rows are informational (target None): the issue sets none.
"""

from __future__ import annotations

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, ROOT)

from timing import Row  # noqa: E402

DRBD_CONF = """\
global { usage-count no; }
resource r0 {
  on node1 { device /dev/drbd0; disk /dev/ubda; address 127.0.0.1:7788; meta-disk internal; }
  on ghost { device /dev/drbd0; disk /dev/ubda; address 127.0.0.2:7788; meta-disk internal; }
}
"""
NO_UDEV = ("activation { udev_sync=0 udev_rules=0 monitoring=0 } "
           "devices { obtain_device_list_from_udev=0 }")
STUB = "#!/bin/sh\nexit 0\n"

# runs in the guest: argv[1] = JSON {name: [argv, env]}, argv[2] = rounds
TIMER = r"""
import json, os, statistics, subprocess, sys, time
cmds = json.loads(sys.argv[1]); rounds = int(sys.argv[2])
samples = {k: [] for k in cmds}
for i in range(rounds + 2):
    for name, (argv, env) in cmds.items():
        full = dict(os.environ); full.update(env)
        t = time.perf_counter()
        r = subprocess.run(argv, env=full, capture_output=True)
        dt = time.perf_counter() - t
        if r.returncode not in (0, 8):
            sys.exit(f"{name}: rc {r.returncode}: {r.stderr.decode()[-300:]}")
        if i >= 2:
            samples[name].append(dt)
print(json.dumps({k: statistics.median(v) for k, v in samples.items()}))
"""


def rows(rounds: int = 15) -> list[Row]:
    from tests.lab.labctl import Lab

    with Lab() as lab:
        g = lab.guest("node1", disks=["64M", "64M"]).wait_ready()
        conf = g.put_file("drbd.conf", DRBD_CONF)
        stub = g.put_file("crm_stub", STUB, mode=0o755)
        g.sh(f"ip link set lo up; cp {conf} /etc/drbd.conf; modprobe drbd; modprobe dm_mod; "
             f"for t in crm_attribute crm_master cibadmin; do cp {stub} /usr/sbin/$t; done; "
             "drbdadm -- --force create-md r0 >/dev/null 2>&1; drbdadm up r0; "
             "drbdadm primary --force r0; drbdadm secondary r0; "
             "printf 'global { system_id_source = \"uname\" }\\n' >> /etc/lvm/lvm.conf",
             check=True, timeout=120)
        for argv in (["pvcreate", "-y", "/dev/ubdb"], ["vgcreate", "vgha", "/dev/ubdb"],
                     ["lvcreate", "-y", "-L", "16M", "-n", "lv0", "vgha"],
                     ["lvcreate", "-y", "-L", "16M", "-n", "lv1", "vgha"]):
            g.run([argv[0], "--config", NO_UDEV, *argv[1:]], check=True, timeout=60)
        base = {"OCF_ROOT": "/usr/lib/ocf", "OCF_RESOURCE_INSTANCE": "bench",
                "OCF_RESKEY_CRM_meta_timeout": "20000", "HA_LOGFACILITY": "none",
                "OCF_RESKEY_CRM_meta_interval": "20000", "OCF_RESKEY_CRM_meta_on_node": "node1",
                "OCF_RESKEY_CRM_meta_clone_max": "2", "OCF_RESKEY_CRM_meta_clone_node_max": "1",
                "OCF_RESKEY_CRM_meta_master_max": "1",
                "OCF_RESKEY_CRM_meta_master_node_max": "1",
                "OCF_RESKEY_CRM_meta_promoted_max": "1",
                "OCF_RESKEY_CRM_meta_promoted_node_max": "1", "OCF_RESKEY_CRM_meta_notify": "true",
                "OCF_RESKEY_crm_feature_set": "3.16.2"}
        drbd_env = {**base, "OCF_RESKEY_drbd_resource": "r0"}
        lvm_env = {**base, "OCF_RESKEY_vgname": "vgha", "OCF_RESKEY_vg_access_mode": "system_id",
                   "OCF_RESKEY_activation_mode": "exclusive"}
        ours = f"{ROOT}/ocf"
        r = g.run([f"{ours}/drbd", "start"], env={**drbd_env, "OCF_RESKEY_wfc_timeout": "0"})
        assert r.rc == 0, r.stderr
        r = g.run([f"{ours}/lvm-sysid", "start"], env=lvm_env)
        assert r.rc == 0, r.stderr
        cmds = {
            "lsaa-drbd": [[f"{ours}/drbd", "monitor"], drbd_env],
            "linbit-drbd": [["/usr/lib/ocf/resource.d/linbit/drbd", "monitor"], drbd_env],
            "lsaa-lvm": [[f"{ours}/lvm-sysid", "monitor"], lvm_env],
            "LVM-activate": [["/usr/lib/ocf/resource.d/heartbeat/LVM-activate", "monitor"],
                             lvm_env],
        }
        out = g.run(["python3", "-c", TIMER, json.dumps(cmds), str(rounds)], timeout=600)
        assert out.rc == 0, out.stderr
        m = json.loads(out.stdout)
    return [
        Row("monitor in guest: ocf:lsaa:drbd vs ocf:linbit:drbd", m["lsaa-drbd"],
            "ocf:linbit:drbd monitor", m["linbit-drbd"], None),
        Row("monitor in guest: ocf:lsaa:lvm-sysid vs LVM-activate", m["lsaa-lvm"],
            "ocf:heartbeat:LVM-activate monitor", m["LVM-activate"], None),
    ]


if __name__ == "__main__":
    from run import print_table

    print_table(rows())
