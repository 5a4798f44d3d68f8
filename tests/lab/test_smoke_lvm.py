"""LVM in the lab: a VG owned by one system ID is refused elsewhere, then taken over.

There is no udev in the guest, so every command gets the udev-off settings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .labctl import Guest

CFG = ('global { system_id_source="uname" } '
       "activation { udev_sync=0 udev_rules=0 monitoring=0 } "
       "devices { obtain_device_list_from_udev=0 }")


def lvm(guest: Guest, *args: str, extra: str = ""):  # type: ignore[no-untyped-def]
    return guest.run([args[0], "--config", CFG + extra, *args[1:]], timeout=60)


def test_system_id_takeover_after_hostname_change(guest: Guest) -> None:
    guest.run(["modprobe", "dm_mod"], check=True)
    lvm(guest, "pvcreate", "-y", "/dev/ubda").check()
    lvm(guest, "vgcreate", "vg0", "/dev/ubda").check()
    lvm(guest, "lvcreate", "-y", "-L", "64M", "-n", "lv0", "vg0").check()
    assert lvm(guest, "vgs", "--noheadings", "-o", "systemid", "vg0").stdout.strip() == "node1"
    guest.run(["mkfs.ext4", "-q", "/dev/vg0/lv0"], check=True)
    lvm(guest, "vgchange", "-an", "vg0").check()

    guest.run(["hostname", "node2"], check=True)
    refused = lvm(guest, "vgchange", "-ay", "vg0")
    assert refused.rc != 0
    assert "system ID node1" in refused.stderr, refused.stderr

    lvm(guest, "vgchange", "-y", "--systemid", "node2", "vg0",
        extra=' local { extra_system_ids=["node1"] }').check()
    lvm(guest, "vgchange", "-ay", "vg0").check()
    assert lvm(guest, "vgs", "--noheadings", "-o", "systemid", "vg0").stdout.strip() == "node2"
    attr = lvm(guest, "lvs", "--noheadings", "-o", "lv_attr", "vg0/lv0").stdout.strip()
    assert attr[4] == "a", attr  # active
    guest.run(["fsck.ext4", "-n", "/dev/vg0/lv0"], check=True)
    lvm(guest, "vgchange", "-an", "vg0").check()
