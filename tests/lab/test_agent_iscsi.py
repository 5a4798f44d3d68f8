"""ocf:lsaa:iscsi-target + iscsi-lun on LIO (node1), ocf:lsaa:iscsi-initiator (node2).

A failover as the cluster would do it: the initiator writes through the target,
the target side stops (sessions open) and starts again, and the data reads back
through the same disk identity.  The agents load the kernel modules and mount
configfs themselves: the test does not.  Also captures the iscsiadm outputs
used by the unit tests (IPv4 and IPv6 portals) into the guest share.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from .test_smoke_util import wait_until

if TYPE_CHECKING:
    from .labctl import Guest

REPO = Path(__file__).resolve().parents[2]
IQN = "iqn.2024-01.lsaa.lab:disk0"
INI = "iqn.2024-01.lsaa.lab:node2"
USER, PASSWORD = "labuser", "labsecret123"
V6_T, V6_I = "fd77::1", "fd77::2"
SIZE_MB = 4


def target_params(tip: str) -> dict[str, str]:
    return {"implementation": "lio", "iqn": IQN, "portals": f"{tip}:3260 [{V6_T}]:3260",
            "allowed_initiators": INI, "incoming_username": USER, "incoming_password": PASSWORD}


LUN = {"implementation": "lio", "target_iqn": IQN, "lun": "0", "path": "/dev/ubda",
       "backstore": "block"}


def expected_serial(resource: str) -> str:
    from lsaa.agents.iscsi_lun import default_serial

    return default_serial(resource)


def serial_of(g: Guest, dev: str) -> str:
    page = g.run(["cat", f"/sys/block/{dev}/device/vpd_pg80"], check=True).stdout
    return page[4:].strip("\x00\n ")  # 4-byte VPD header, then the serial


def start_target_side(g: Guest, tip: str) -> None:
    r = g.agent("iscsi-target", "start", target_params(tip), instance="p_target")
    assert r.rc == 0, r.stderr
    r = g.agent("iscsi-lun", "start", LUN, instance="p_lun")
    assert r.rc == 0, r.stderr


def released(g: Guest, dev: str) -> bool:
    code = f"import os; os.close(os.open('{dev}', os.O_RDONLY | os.O_EXCL))"
    return g.run(["python3", "-c", code]).ok


def test_lio_target_lun_initiator_failover(guest_pair: tuple[Guest, Guest]) -> None:
    tgt, ini = guest_pair
    tip = tgt.ip()
    for g, addr in ((tgt, V6_T), (ini, V6_I)):  # IPv6 is a module in the UML kernel
        g.sh(f"modprobe ipv6; ip -6 addr add {addr}/64 dev eth0 nodad", check=True)
    assert tgt.agent("iscsi-target", "monitor", target_params(tip), instance="p_target").rc == 7

    start_target_side(tgt, tip)
    np = tgt.run(["ls", f"/sys/kernel/config/target/iscsi/{IQN}/tpgt_1/np"], check=True).stdout
    assert sorted(np.split()) == sorted([f"{tip}:3260", f"[{V6_T}]:3260"])  # no 0.0.0.0
    assert not released(tgt, "/dev/ubda")  # LIO holds it while exported

    # a portal removed behind the agent's back: the recurring monitor fails
    tgt.run(["rmdir", f"/sys/kernel/config/target/iscsi/{IQN}/tpgt_1/np/[{V6_T}]:3260"],
            check=True)
    bad = tgt.agent("iscsi-target", "monitor", target_params(tip), instance="p_target",
                    env={"OCF_RESKEY_CRM_meta_interval": "10000"})
    assert bad.rc == 1 and "portal" in bad.stderr and PASSWORD not in bad.stderr
    assert tgt.agent("iscsi-target", "start", target_params(tip), instance="p_target").rc == 0

    ini.sh("modprobe iscsi_tcp; modprobe sd_mod\n"
           f"echo InitiatorName={INI} > /etc/iscsi/initiatorname.iscsi", check=True)
    ini.spawn(["iscsid", "-f"])
    wait_until(lambda: ini.run(["iscsiadm", "-m", "session"]).rc in (0, 21), 30, "iscsid")

    init = {"portal": tip, "target": IQN, "username": USER, "password": "wrong-password1"}
    bad = ini.agent("iscsi-initiator", "start", init, instance="p_ini", timeout=60)
    assert bad.rc == 1 and "authentication" in bad.stderr.lower()
    assert "wrong-password1" not in bad.stderr + bad.stdout
    init["password"] = PASSWORD
    r = ini.agent("iscsi-initiator", "start", init, instance="p_ini", timeout=60)
    assert r.rc == 0, r.stderr
    rec = ini.sh(f"cat /etc/iscsi/nodes/{IQN}/{tip},3260,1/default", check=True).stdout
    assert "node.startup = manual" in rec and f"node.session.auth.password = {PASSWORD}" in rec
    disks = json.loads(ini.run(["cat", "/run/resource-agents/lsaa-iscsi-initiator-p_ini.disks"],
                               check=True).stdout)["disks"]
    dev = disks[0]["dev"].rsplit("/", 1)[1]
    serial = expected_serial("p_lun")
    assert serial_of(ini, dev) == serial

    # second path over IPv6: same disk identity (what multipath keys on)
    init6 = {"portal": f"[{V6_T}]:3260", "target": IQN, "username": USER, "password": PASSWORD}
    r = ini.agent("iscsi-initiator", "start", init6, instance="p_ini6", timeout=60)
    assert r.rc == 0, r.stderr
    dev6 = json.loads(ini.run(["cat", "/run/resource-agents/lsaa-iscsi-initiator-p_ini6.disks"],
                              check=True).stdout)["disks"][0]["dev"].rsplit("/", 1)[1]
    assert dev6 != dev and serial_of(ini, dev6) == serial
    capture_iscsiadm(ini)
    assert ini.agent("iscsi-initiator", "stop", init6, instance="p_ini6").rc == 0
    assert ini.agent("iscsi-initiator", "monitor", init6, instance="p_ini6").rc == 7
    assert ini.agent("iscsi-initiator", "monitor", init, instance="p_ini").rc == 0

    written = ini.sh(f"head -c {SIZE_MB}M /dev/urandom > /tmp/data\n"
                     f"dd if=/tmp/data of=/dev/{dev} bs=1M oflag=direct status=none\n"
                     "md5sum < /tmp/data", check=True).stdout.split()[0]

    # failover of the target side, sessions open: stop closes them and frees the disk
    assert tgt.agent("iscsi-lun", "stop", LUN, instance="p_lun").rc == 0
    r = tgt.agent("iscsi-target", "stop", target_params(tip), instance="p_target")
    assert r.rc == 0, r.stderr
    assert released(tgt, "/dev/ubda")
    assert tgt.run(["test", "-e", f"/sys/kernel/config/target/iscsi/{IQN}"]).rc != 0
    assert tgt.agent("iscsi-lun", "monitor", LUN, instance="p_lun").rc == 7

    start_target_side(tgt, tip)
    def read_back() -> str:
        r = ini.sh(f"dd if=/dev/{dev} bs=1M count={SIZE_MB} iflag=direct status=none | md5sum")
        return r.stdout.split()[0] if r.ok else ""
    wait_until(lambda: read_back() == written, 90, "the data to read back after failover", 1)
    assert serial_of(ini, dev) == serial
    assert ini.agent("iscsi-initiator", "monitor", init, instance="p_ini").rc == 0
    assert ini.agent("iscsi-initiator", "stop", init, instance="p_ini").rc == 0
    assert ini.agent("iscsi-initiator", "monitor", init, instance="p_ini").rc == 7

    mutual_chap_and_readonly(tgt, ini, tip)

    # the conformance harness, in the guests, on all three agents
    assert tgt.agent("iscsi-lun", "stop", LUN, instance="p_lun").rc == 0
    assert tgt.agent("iscsi-target", "stop", target_params(tip), instance="p_target").rc == 0
    harness(tgt, "iscsi-target", target_params(tip))
    start_target_side(tgt, tip)
    tgt.run(["truncate", "-s", "16M", "/tmp/lun1.img"], check=True)
    harness(tgt, "iscsi-lun", {**LUN, "lun": "1", "backstore": "fileio", "path": "/tmp/lun1.img"})
    harness(ini, "iscsi-initiator", {**init, "portal": tip})


def mutual_chap_and_readonly(tgt: Guest, ini: Guest, tip: str) -> None:
    """A second target on the same portal whose initiator must also authenticate it
    (mutual CHAP), exporting a write-protected fileio LUN; and readonly refused on an
    open-access target, where LIO cannot write-protect one LUN."""
    ro_iqn, t_user, t_pw = "iqn.2024-01.lsaa.lab:ro", "labtarget", "targetsecret12"
    target = {"implementation": "lio", "iqn": ro_iqn, "portals": f"{tip}:3260",
              "allowed_initiators": INI, "incoming_username": USER,
              "incoming_password": PASSWORD, "outgoing_username": t_user,
              "outgoing_password": t_pw}
    lun = {"implementation": "lio", "target_iqn": ro_iqn, "lun": "0", "path": "/tmp/ro.img",
           "backstore": "fileio", "readonly": "true"}
    image = tgt.sh("head -c 1M /dev/urandom > /tmp/ro.img; md5sum < /tmp/ro.img",
                   check=True).stdout.split()[0]
    assert tgt.agent("iscsi-target", "start", target, instance="p_ro_target").rc == 0
    r = tgt.agent("iscsi-lun", "start", lun, instance="p_ro_lun")
    assert r.rc == 0, r.stderr
    acl = f"/sys/kernel/config/target/iscsi/{ro_iqn}/tpgt_1/acls/{INI}"
    assert tgt.run(["cat", f"{acl}/lun_0/write_protect"], check=True).stdout.strip() == "1"
    assert tgt.run(["cat", f"{acl}/auth/userid_mutual"], check=True).stdout.strip() == t_user

    init = {"portal": tip, "target": ro_iqn, "username": USER, "password": PASSWORD,
            "username_in": t_user, "password_in": "not-the-target1"}
    bad = ini.agent("iscsi-initiator", "start", init, instance="p_ro_ini", timeout=60)
    assert bad.rc == 1, bad.stderr  # the target answered with the wrong mutual secret
    assert "not-the-target1" not in bad.stderr + bad.stdout and t_pw not in bad.stderr
    assert ini.agent("iscsi-initiator", "stop", init, instance="p_ro_ini").rc == 0
    init["password_in"] = t_pw
    r = ini.agent("iscsi-initiator", "start", init, instance="p_ro_ini", timeout=60)
    assert r.rc == 0, r.stderr
    dev = json.loads(ini.run(["cat", "/run/resource-agents/lsaa-iscsi-initiator-p_ro_ini"
                              ".disks"], check=True).stdout)["disks"][0]["dev"].rsplit("/", 1)[1]
    assert ini.run(["cat", f"/sys/block/{dev}/ro"], check=True).stdout.strip() == "1"
    got = ini.sh(f"dd if=/dev/{dev} bs=1M count=1 iflag=direct status=none | md5sum",
                 check=True).stdout.split()[0]
    assert got == image
    write = ini.sh(f"dd if=/dev/zero of=/dev/{dev} bs=4k count=1 oflag=direct status=none")
    assert not write.ok  # refused: the LUN is write-protected
    assert tgt.sh("md5sum < /tmp/ro.img", check=True).stdout.split()[0] == image
    assert tgt.agent("iscsi-lun", "monitor", lun, instance="p_ro_lun").rc == 0
    assert ini.agent("iscsi-initiator", "stop", init, instance="p_ro_ini").rc == 0
    assert tgt.agent("iscsi-lun", "stop", lun, instance="p_ro_lun").rc == 0
    assert tgt.agent("iscsi-target", "stop", target, instance="p_ro_target").rc == 0

    open_target = {"implementation": "lio", "iqn": ro_iqn, "portals": f"{tip}:3260",
                   "open_access": "true"}
    assert tgt.agent("iscsi-target", "start", open_target, instance="p_ro_target").rc == 0
    r = tgt.agent("iscsi-lun", "start", lun, instance="p_ro_lun")
    assert r.rc == 6 and "readonly: target" in r.stderr and "open access" in r.stderr, r.stderr
    assert tgt.run(["test", "-e", f"/sys/kernel/config/target/iscsi/{ro_iqn}/tpgt_1/lun/"
                    "lun_0"]).rc != 0  # nothing half-made
    assert tgt.agent("iscsi-lun", "stop", lun, instance="p_ro_lun").rc == 0
    assert tgt.agent("iscsi-target", "stop", open_target, instance="p_ro_target").rc == 0


def harness(g: Guest, agent: str, params: dict[str, str]) -> None:
    argv = ["python3", "-m", "lsaa.tester", "ocf"]
    for k, v in params.items():
        argv += ["-o", f"{k}={v}"]
    r = g.run([*argv, str(REPO / "ocf" / agent)], timeout=150)
    assert r.rc == 0, r.stdout[-3000:] + r.stderr[-2000:]


def capture_iscsiadm(g: Guest) -> None:
    """Real iscsiadm outputs for the unit tests' fixtures (copied to the results dir)."""
    out = os.environ.get("LSAA_CAPTURE_DIR")
    cmds = {"session.txt": "iscsiadm -m session", "node.txt": "iscsiadm -m node",
            "session-P1.txt": "iscsiadm -m session -P 1"}
    for name, cmd in cmds.items():
        text = g.sh(cmd + " 2>&1; true").stdout
        if out:
            Path(out).mkdir(parents=True, exist_ok=True)
            (Path(out) / name).write_text(text.replace(PASSWORD, "******"))
