"""Storage agents in the kernel lab, side by side, measured inside one guest:

* ocf:lsaa:drbd vs ocf:linbit:drbd (drbd-utils 9.22), DRBD 8.4.11, a lone node (the
  peer is configured but absent): start, monitor (Secondary, UpToDate, peer
  unreachable, recurring-monitor interval), promote, demote, stop;
* ocf:lsaa:lvm-sysid vs ocf:heartbeat:LVM-activate (vg_access_mode=system_id), a VG
  with two LVs: start of a VG whose system ID is another node's (the takeover), start
  of our own VG, monitor, stop.

Each agent runs a whole cycle per round (the actions in the order Pacemaker would run
them, so each one finds the state it expects); the two agents' cycles alternate, the
order swapped every round.  The guest times each command itself (fork+exec costs
~38 ms under UML, so host-side timing would measure the lab, not the agents); the
medians per action come back as JSON.  Between LVM cycles the VG is handed to a
"ghost" node's system ID by an untimed vgchange.  crm_attribute, crm_master and
cibadmin are stubs in the guest (no cluster), the same for both agents.  Targets are
issue 7's.
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

# runs in the guest: argv[1] = JSON {cycle: [[label or null, argv, env], ...]},
# argv[2] = rounds, argv[3] = a trace file; prints {cycle: {label: median seconds}}
TIMER = r"""
import json, os, statistics, subprocess, sys, time
cycles = json.loads(sys.argv[1]); rounds = int(sys.argv[2]); trace = open(sys.argv[3], "w")
samples = {c: {} for c in cycles}
names = list(cycles)
for i in range(rounds + 1):
    for c in (names if i % 2 else names[::-1]):
        for label, argv, env in cycles[c]:
            full = dict(os.environ); full.update(env)
            t = time.perf_counter()
            r = subprocess.run(argv, env=full, capture_output=True)
            dt = time.perf_counter() - t
            if r.returncode not in (0, 8):
                sys.exit(f"{c} {label or argv}: rc {r.returncode}: {r.stderr.decode()[-300:]}")
            trace.write(f"round {i} {c} {label or argv[0]} {dt:.3f}s\n"); trace.flush()
            if i >= 1 and label:
                samples[c].setdefault(label, []).append(dt)
print(json.dumps({c: {k: statistics.median(v) for k, v in d.items()}
                  for c, d in samples.items()}))
"""


def rows(rounds: int = 10) -> list[Row]:
    from tests.lab.labctl import Lab

    with Lab() as lab:
        g = lab.guest("node1", disks=["64M", "64M"], lifetime=1500).wait_ready()
        conf = g.put_file("drbd.conf", DRBD_CONF)
        stub = g.put_file("crm_stub", STUB, mode=0o755)
        # /dev/fd as on a real node: the linbit agent's bash process substitutions need it
        g.sh(f"[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd; "
             f"ip link set lo up; cp {conf} /etc/drbd.conf; modprobe drbd; modprobe dm_mod; "
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
        # neither start waits for the absent peer: lsaa's wfc_timeout=0 means no wait;
        # linbit's 0 is DRBD's "wait forever", a non-number its "do not wait"
        drbd_env = {**base, "OCF_RESKEY_drbd_resource": "r0", "OCF_RESKEY_wfc_timeout": "0"}
        linbit_env = {**drbd_env, "OCF_RESKEY_wfc_timeout": "no"}
        lvm_env = {**base, "OCF_RESKEY_vgname": "vgha", "OCF_RESKEY_vg_access_mode": "system_id",
                   "OCF_RESKEY_activation_mode": "exclusive"}
        ghost = ["vgchange", "--config", NO_UDEV, "-y", "--systemid", "ghost", "vgha"]
        # the VG starts out as another node's (lvcreate left its LVs active)
        g.run(["vgchange", "--config", NO_UDEV, "-an", "vgha"], check=True, timeout=60)
        g.run(ghost, check=True, timeout=60)

        def drbd(agent: str, env: dict[str, str]) -> list[list[object]]:
            return [["start", [agent, "start"], env],
                    *[["monitor", [agent, "monitor"], env]] * 3,
                    ["promote", [agent, "promote"], env],
                    ["demote", [agent, "demote"], env],
                    ["stop", [agent, "stop"], env]]

        def lvm(agent: str) -> list[list[object]]:
            return [["takeover", [agent, "start"], lvm_env],
                    *[["monitor", [agent, "monitor"], lvm_env]] * 3,
                    ["stop", [agent, "stop"], lvm_env],
                    ["start", [agent, "start"], lvm_env],
                    ["stop", [agent, "stop"], lvm_env],
                    [None, ghost, {}]]

        ours = f"{ROOT}/ocf"
        cycles = {
            "lsaa-drbd": drbd(f"{ours}/drbd", drbd_env),
            "linbit-drbd": drbd("/usr/lib/ocf/resource.d/linbit/drbd", linbit_env),
            "lsaa-lvm": lvm(f"{ours}/lvm-sysid"),
            "LVM-activate": lvm("/usr/lib/ocf/resource.d/heartbeat/LVM-activate"),
            # what no Python agent can go below: its interpreter start, and that plus the
            # one LVM command a stop needs
            "floor": [["python", ["python3", "-IS", "-c", "pass"], {}],
                      ["python+vgs", ["sh", "-c", "python3 -IS -c pass && vgs --foreign --config '"
                                      + NO_UDEV + "' vgha >/dev/null"], {}]],
        }
        trace = g.share / "timings.log"  # each command's time, as the guest goes
        out = g.run(["python3", "-c", TIMER, json.dumps(cycles), str(rounds), str(trace)],
                    timeout=1200)
        assert out.rc == 0, out.stderr[-3000:] + trace.read_text()[-2000:]
        m = json.loads(out.stdout)
    targets = {"monitor": 0.3, "start": 0.5, "stop": 0.5, "promote": 0.7, "demote": 0.7}
    out_rows = [Row(f"{action} in guest: ocf:lsaa:drbd vs ocf:linbit:drbd",
                    m["lsaa-drbd"][action], f"ocf:linbit:drbd {action}",
                    m["linbit-drbd"][action], target)
                for action, target in targets.items()]
    targets = {"takeover": 0.5, "start": 0.5, "stop": 0.5, "monitor": 1.5}
    out_rows += [Row(f"{action} in guest: ocf:lsaa:lvm-sysid vs LVM-activate",
                     m["lsaa-lvm"][action], f"LVM-activate {action}",
                     m["LVM-activate"][action], target)
                 for action, target in targets.items()]
    out_rows += [
        Row("(floor) python3 -IS start in guest vs LVM-activate monitor", m["floor"]["python"],
            "LVM-activate monitor", m["LVM-activate"]["monitor"], None),
        Row("(floor) python3 -IS start + one vgs vs LVM-activate stop", m["floor"]["python+vgs"],
            "LVM-activate stop", m["LVM-activate"]["stop"], None),
        Row("(floor) python3 -IS start in guest vs ocf:linbit:drbd monitor",
            m["floor"]["python"], "ocf:linbit:drbd monitor", m["linbit-drbd"]["monitor"], None),
    ]
    return out_rows


if __name__ == "__main__":
    from run import print_table

    print_table(rows())
