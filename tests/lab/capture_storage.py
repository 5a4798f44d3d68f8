"""Record real DRBD 8.4 / drbd-utils 9.22 and lvm2 2.03.16 outputs for unit tests.

Run as root on the host: ``python3 -m tests.lab.capture_storage [drbd|lvm]``.  It
boots lab guests (UML 6.1 kernel: DRBD 8.4.11 in-kernel, device-mapper) and writes
what each command printed to tests/fixtures/{drbd,lvm}/<name>.{out,err,rc}.
Each fixture is the verbatim output of the command listed in
tests/fixtures/<tool>/README.md, so a fixture can always be re-recorded.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

from .labctl import REPO, Lab

if TYPE_CHECKING:
    from .labctl import Guest

FIX = REPO / "tests" / "fixtures"

DRBD_CONF = """\
global {{ usage-count no; }}
common {{
  net {{ protocol C; ping-int 1; ping-timeout 5; }}
  disk {{ c-plan-ahead 0; resync-rate 300M; }}
}}
resource r0 {{
  on node1 {{ device /dev/drbd0; disk /dev/ubda; address {a1}:7788; meta-disk internal; }}
  on node2 {{ device /dev/drbd0; disk /dev/ubda; address {a2}:7788; meta-disk internal; }}
}}
"""

LVMCFG = ("activation { udev_sync=0 udev_rules=0 monitoring=0 } "
          "devices { obtain_device_list_from_udev=0 }")

INDEX: list[str] = []


def save(tool: str, name: str, guest: Guest, argv: list[str] | str) -> str:
    res = guest.run(argv, timeout=60)
    d = FIX / tool
    d.mkdir(parents=True, exist_ok=True)
    (d / f"{name}.out").write_text(res.stdout)
    if res.stderr:
        (d / f"{name}.err").write_text(res.stderr)
    (d / f"{name}.rc").write_text(f"{res.rc}\n")
    shown = argv if isinstance(argv, str) else " ".join(argv)
    INDEX.append(f"| `{name}` | {guest.name} | `{shown}` | {res.rc} |")
    return res.stdout


def wait(pred, what: str, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.2)


def drbd(lab: Lab) -> None:
    net = lab.network("lan")
    n1, n2 = lab.boot({"name": "node1", "disks": ["128M"], "nics": [(net, 1)]},
                      {"name": "node2", "disks": ["128M"], "nics": [(net, 2)]})
    conf = DRBD_CONF.format(a1=n1.ip(), a2=n2.ip())
    for g in (n1, n2):
        path = g.put_file("drbd.conf", conf)
        g.sh(f"cp {path} /etc/drbd.conf; modprobe drbd; drbdadm -- --force create-md r0",
             check=True, timeout=60)
    save("drbd", "version", n1, ["drbdadm", "--version"])
    save("drbd", "proc-drbd-unconfigured", n1, ["cat", "/proc/drbd"])
    save("drbd", "role-unconfigured", n1, ["drbdadm", "role", "r0"])
    save("drbd", "cstate-unconfigured", n1, ["drbdadm", "cstate", "r0"])
    save("drbd", "dstate-unconfigured", n1, ["drbdadm", "dstate", "r0"])
    save("drbd", "sh-minor", n1, ["drbdadm", "sh-minor", "r0"])
    save("drbd", "sh-minor-unknown", n1, ["drbdadm", "sh-minor", "nosuch"])
    save("drbd", "dump", n1, ["drbdadm", "dump", "r0"])
    save("drbd", "status-json-84", n1, ["drbdsetup", "status", "--json", "r0"])
    save("drbd", "events2-84", n1, ["drbdsetup", "events2", "--now", "r0"])
    n1.run(["drbdadm", "up", "r0"], check=True)
    save("drbd", "proc-drbd-wfconnection-inconsistent", n1, ["cat", "/proc/drbd"])
    save("drbd", "primary-inconsistent", n1, ["drbdadm", "primary", "r0"])
    n2.run(["drbdadm", "up", "r0"], check=True)
    n1.run(["drbdadm", "wait-connect", "r0"], timeout=60, check=True)
    save("drbd", "proc-drbd-connected-inconsistent", n1, ["cat", "/proc/drbd"])
    save("drbd", "status-84", n1, ["drbdadm", "status", "r0"])
    n1.run(["drbdadm", "--", "--clear-bitmap", "new-current-uuid", "r0"], check=True)
    wait(lambda: n1.run(["drbdadm", "dstate", "r0"]).stdout.strip() == "UpToDate/UpToDate",
         "UpToDate")
    save("drbd", "proc-drbd-secondary-uptodate", n1, ["cat", "/proc/drbd"])
    save("drbd", "role-secondary", n1, ["drbdadm", "role", "r0"])
    save("drbd", "cstate-connected", n1, ["drbdadm", "cstate", "r0"])
    save("drbd", "dstate-uptodate", n1, ["drbdadm", "dstate", "r0"])
    save("drbd", "sh-status-84", n1, ["drbdsetup", "sh-status", "r0"])
    n1.run(["drbdadm", "primary", "r0"], check=True)
    save("drbd", "proc-drbd-primary", n1, ["cat", "/proc/drbd"])
    save("drbd", "proc-drbd-peer-primary", n2, ["cat", "/proc/drbd"])
    save("drbd", "role-primary", n1, ["drbdadm", "role", "r0"])
    save("drbd", "primary-while-peer-primary", n2, ["drbdadm", "primary", "r0"])
    # a holder of the device: secondary is refused
    n1.spawn(["python3", "-c", "import time; f=open('/dev/drbd0','rb'); time.sleep(30)"])
    time.sleep(1.5)
    save("drbd", "secondary-held-open", n1, ["drbdadm", "secondary", "r0"])
    save("drbd", "holders-sys", n1, "ls -A /sys/block/drbd0/holders")
    save("drbd", "fuser", n1, ["fuser", "-v", "/dev/drbd0"])
    wait(lambda: n1.run(["drbdadm", "secondary", "r0"]).rc == 0, "holder gone", 60)
    # resync in progress: slow it down, invalidate the peer
    n1.run(["drbdadm", "disk-options", "--resync-rate=2M", "r0"], check=True)
    n1.run(["drbdadm", "invalidate-remote", "r0"], check=True)
    time.sleep(1.5)
    save("drbd", "proc-drbd-syncsource", n1, ["cat", "/proc/drbd"])
    save("drbd", "proc-drbd-synctarget", n2, ["cat", "/proc/drbd"])
    save("drbd", "primary-synctarget", n2, ["drbdadm", "primary", "r0"])
    n1.run(["drbdadm", "disk-options", "--resync-rate=300M", "r0"], check=True)
    wait(lambda: n2.run(["drbdadm", "dstate", "r0"]).stdout.strip() == "UpToDate/UpToDate",
         "resync", 120)
    n2.run(["drbdadm", "secondary", "r0"], check=True)  # 8.4 promoted the SyncTarget
    save("drbd", "events2-84-connected", n1, ["drbdsetup", "events2", "--now", "r0"])
    # disconnect: StandAlone here, WFConnection there; outdate; detach
    n2.run(["drbdadm", "disconnect", "r0"], check=True)
    time.sleep(0.5)
    save("drbd", "proc-drbd-standalone", n2, ["cat", "/proc/drbd"])
    save("drbd", "proc-drbd-wfconnection-uptodate", n1, ["cat", "/proc/drbd"])
    n2.run(["drbdadm", "outdate", "r0"], check=True)
    save("drbd", "proc-drbd-outdated", n2, ["cat", "/proc/drbd"])
    save("drbd", "primary-outdated", n2, ["drbdadm", "primary", "r0"])
    n2.run(["drbdadm", "detach", "r0"], check=True)
    save("drbd", "proc-drbd-diskless", n2, ["cat", "/proc/drbd"])
    n2.run(["drbdadm", "adjust", "r0"], check=True)
    wait(lambda: n2.run(["drbdadm", "dstate", "r0"]).stdout.strip() == "UpToDate/UpToDate",
         "reattach and resync", 120)
    # split brain: disconnect, promote both, write on both, reconnect
    n1.run(["drbdadm", "disconnect", "r0"], check=True)
    n2.run(["drbdadm", "disconnect", "r0"], check=True)
    for g in (n1, n2):
        g.run(["drbdadm", "primary", "r0"], check=True)
        g.sh("dd if=/dev/urandom of=/dev/drbd0 bs=4k count=16 oflag=direct status=none",
             check=True)
    n2.run(["drbdadm", "secondary", "r0"], check=True)
    n1.run(["drbdadm", "connect", "r0"], check=True)
    n2.run(["drbdadm", "connect", "r0"], check=True)
    time.sleep(3)
    save("drbd", "proc-drbd-splitbrain-primary", n1, ["cat", "/proc/drbd"])
    save("drbd", "proc-drbd-splitbrain-secondary", n2, ["cat", "/proc/drbd"])
    save("drbd", "dmesg-splitbrain-primary", n1, ["dmesg"])
    save("drbd", "dmesg-splitbrain-secondary", n2, ["dmesg"])
    save("drbd", "cstate-splitbrain", n2, ["drbdadm", "cstate", "r0"])
    save("drbd", "status-84-splitbrain", n2, ["drbdadm", "status", "r0"])
    # peer gone: kill node2, node1 loses the connection
    n2.kill()
    n1.run(["drbdadm", "connect", "r0"])
    time.sleep(3)
    save("drbd", "proc-drbd-peer-dead-primary", n1, ["cat", "/proc/drbd"])
    n1.run(["drbdadm", "secondary", "r0"], check=True)
    n1.run(["drbdadm", "down", "r0"], check=True)
    save("drbd", "proc-drbd-down", n1, ["cat", "/proc/drbd"])
    save("drbd", "down-again", n1, ["drbdadm", "down", "r0"])


def lvm(lab: Lab) -> None:
    g = lab.guest("node1", disks=["128M", "128M"]).wait_ready()
    g.run(["modprobe", "dm_mod"], check=True)
    c = LVMCFG
    sid = 'global { system_id_source="uname" } ' + c
    save("lvm", "lvmconfig-sysid-unset", g, ["lvmconfig", "global/system_id_source"])
    save("lvm", "lvmconfig-sysid-set", g, ["lvmconfig", "--config", sid,
                                             "global/system_id_source"])
    save("lvm", "lvmconfig-volume-list-unset", g, ["lvmconfig", "activation/volume_list"])
    vlist = sid + ' activation { volume_list=["vgx"] }'
    save("lvm", "lvmconfig-both", g, ["lvmconfig", "--config", vlist,
                                       "global/system_id_source", "activation/volume_list"])
    save("lvm", "systemid-unset", g, ["lvm", "systemid"])
    save("lvm", "systemid", g, ["lvm", "systemid", "--config", sid])
    g.run(["pvcreate", "-y", "--config", sid, "/dev/ubda", "/dev/ubdb"], check=True)
    g.run(["vgcreate", "--config", sid, "vgha", "/dev/ubda"], check=True)
    g.run(["vgcreate", "--config", c, "vgnoid", "/dev/ubdb"], check=True)
    g.run(["lvcreate", "-y", "--config", sid, "-L", "32M", "-n", "lv0", "vgha"], check=True)
    g.run(["lvcreate", "-y", "--config", sid, "-L", "16M", "-n", "lv1", "vgha"], check=True)
    g.run(["vgchange", "--config", sid, "-an", "vgha"], check=True)  # lvcreate activates
    fields = "vg_name,vg_systemid,vg_lock_type,vg_missing_pv_count,lv_count,vg_autoactivation"
    save("lvm", "vgs-own", g, ["vgs", "--config", sid, "--foreign", "--reportformat", "json",
                               "-o", fields, "vgha"])
    save("lvm", "vgs-noid", g, ["vgs", "--config", sid, "--foreign", "--reportformat", "json",
                                "-o", fields, "vgnoid"])
    save("lvm", "vgs-missing", g, ["vgs", "--config", sid, "--foreign", "--reportformat",
                                   "json", "-o", fields, "nosuchvg"])
    save("lvm", "lvs", g, ["lvs", "--config", sid, "--foreign", "--reportformat", "json", "-o",
                           "lv_name,lv_active,lv_attr,lv_dm_path", "vgha"])
    save("lvm", "setautoactivation", g, ["vgchange", "--config", sid, "--setautoactivation",
                                         "n", "vgha"])
    save("lvm", "dmsetup-none", g, ["dmsetup", "info", "-c", "--noheadings", "-o",
                                    "name,open", "-S", "name=~^vgha-"])
    save("lvm", "lvchange-ay", g, ["lvchange", "--config", sid, "-ay", "vgha"])
    save("lvm", "dmsetup-active", g, ["dmsetup", "info", "-c", "--noheadings", "-o",
                                      "name,open", "-S", "name=~^vgha-"])
    save("lvm", "dmsetup-active-vgname", g, ["dmsetup", "info", "-c", "--noheadings", "-o",
                                             "name,open", "-S", "vg_name=vgha"])
    save("lvm", "sys-dm-names", g, "for d in /sys/block/dm-*/dm; do cat $d/name; done")
    save("lvm", "lvs-active", g, ["lvs", "--config", sid, "--foreign", "--reportformat",
                                  "json", "-o", "lv_name,lv_active,lv_attr,lv_dm_path", "vgha"])
    save("lvm", "lvchange-an", g, ["lvchange", "--config", sid, "-an", "vgha"])
    g.run(["hostname", "node2"], check=True)
    save("lvm", "vgs-foreign", g, ["vgs", "--config", sid, "--foreign", "--reportformat",
                                   "json", "-o", fields, "vgha"])
    save("lvm", "vgs-foreign-noforeign", g, ["vgs", "--config", sid, "--reportformat",
                                             "json", "-o", fields, "vgha"])
    save("lvm", "lvchange-foreign", g, ["lvchange", "--config", sid, "-ay", "vgha"])
    save("lvm", "vgchange-takeover", g, ["vgchange", "-y", "--config",
                                         sid + ' local { extra_system_ids=["node1"] }',
                                         "--systemid", "node2", "vgha"])
    save("lvm", "vgchange-takeover-again", g, ["vgchange", "-y", "--config",
                                               sid + ' local { extra_system_ids=["node2"] }',
                                               "--systemid", "node2", "vgha"])
    save("lvm", "vgchange-clear", g, ["vgchange", "-y", "--config", sid, "--systemid", "",
                                      "vgnoid"])
    save("lvm", "vgs-taken", g, ["vgs", "--config", sid, "--foreign", "--reportformat",
                                 "json", "-o", fields, "vgha"])


def main(argv: list[str]) -> int:
    which = argv[1:] or ["drbd", "lvm"]
    for what in which:
        INDEX.clear()
        with Lab(keep=False) as lab:
            try:
                {"drbd": drbd, "lvm": lvm}[what](lab)
            finally:
                for g in lab.guests:
                    print(g.console_tail(5))
        (FIX / what / "INDEX.md").write_text(
            "| fixture | guest | command | rc |\n|---|---|---|---|\n" + "\n".join(INDEX) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
