"""LIO target with CHAP on node1, open-iscsi initiator on node2, data round trip."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .test_smoke_util import wait_until

if TYPE_CHECKING:
    from .labctl import Guest

IQN = "iqn.2024-01.lsaa.lab:disk0"
INI = "iqn.2024-01.lsaa.lab:node2"
USER, PASSWORD = "labuser", "labsecret123"
SIZE_MB = 4

TARGETCLI = f"""\
/backstores/fileio create name=disk0 file_or_dev=/tmp/lio-disk0.img size=64M
/iscsi create {IQN}
/iscsi/{IQN}/tpg1/luns create /backstores/fileio/disk0
/iscsi/{IQN}/tpg1/acls create {INI}
/iscsi/{IQN}/tpg1/acls/{INI} set auth userid={USER} password={PASSWORD}
/iscsi/{IQN}/tpg1 set attribute authentication=1
exit
"""


def setup_target(g: Guest) -> None:
    g.sh("modprobe configfs\n"
         "mountpoint -q /sys/kernel/config || mount -t configfs configfs /sys/kernel/config\n"
         "modprobe target_core_mod; modprobe iscsi_target_mod; modprobe target_core_file\n"
         "mkdir -p /run/dbus", check=True)
    g.spawn(["dbus-daemon", "--system", "--nofork", "--nopidfile"])
    wait_until(lambda: g.run(["test", "-S", "/run/dbus/system_bus_socket"]).ok, 30, "dbus")
    # one targetcli process for everything: each start costs 1-1.5 s in the guest
    g.run(["targetcli"], input=TARGETCLI, timeout=60, check=True)


def setup_initiator(g: Guest) -> None:
    g.sh("modprobe iscsi_tcp; modprobe sd_mod\n"
         f"echo InitiatorName={INI} > /etc/iscsi/initiatorname.iscsi", check=True)
    g.spawn(["iscsid", "-f"])
    wait_until(lambda: g.run(["iscsiadm", "-m", "session"]).rc in (0, 21), 30, "iscsid")


def set_chap(g: Guest, target_ip: str, password: str) -> None:
    for k, v in (("authmethod", "CHAP"), ("username", USER), ("password", password)):
        g.run(["iscsiadm", "-m", "node", "-T", IQN, "-p", target_ip, "-o", "update",
               "-n", "node.session.auth." + k, "-v", v], check=True)


def test_chap_login_and_data_round_trip(guest_pair: tuple[Guest, Guest]) -> None:
    target, ini = guest_pair
    setup_target(target)
    setup_initiator(ini)
    tip = target.ip()

    found = ini.run(["iscsiadm", "-m", "discovery", "-t", "st", "-p", tip], check=True)
    assert IQN in found.stdout

    set_chap(ini, tip, "wrong-password")
    bad = ini.run(["iscsiadm", "-m", "node", "-T", IQN, "-p", tip, "--login"], timeout=60)
    assert bad.rc != 0 and "authorization failure" in (bad.stdout + bad.stderr).lower()

    set_chap(ini, tip, PASSWORD)
    ini.run(["iscsiadm", "-m", "node", "-T", IQN, "-p", tip, "--login"], timeout=60, check=True)
    wait_until(lambda: ini.run(["test", "-b", "/dev/sda"]).ok, 30, "/dev/sda")

    written = ini.sh(
        f"head -c {SIZE_MB}M /dev/urandom > /tmp/data\n"
        "dd if=/tmp/data of=/dev/sda bs=1M oflag=direct status=none\n"
        "md5sum < /tmp/data", check=True).stdout.split()[0]
    read = ini.sh(f"dd if=/dev/sda bs=1M count={SIZE_MB} iflag=direct status=none | md5sum",
                  check=True).stdout.split()[0]
    assert read == written
    ini.run(["iscsiadm", "-m", "node", "-T", IQN, "-p", tip, "--logout"], check=True)
    # and it really landed in the target's backing file
    on_target = target.sh(f"head -c {SIZE_MB}M /tmp/lio-disk0.img | md5sum",
                          check=True).stdout.split()[0]
    assert on_target == written
