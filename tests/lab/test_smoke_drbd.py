"""DRBD 8.4 between two guests: node1 writes, dies; node2 takes over, data intact."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .test_smoke_util import wait_until

if TYPE_CHECKING:
    from .labctl import Guest

# ping-int 1 / ping-timeout 5 (tenths of a second): notice a dead peer in ~1.5 s
# instead of the default ~10 s.
CONF = """\
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
SIZE_MB = 16


def test_replicated_data_survives_failover(guest_pair: tuple[Guest, Guest]) -> None:
    n1, n2 = guest_pair
    for g in (n1, n2):
        conf = g.put_file("drbd.conf", CONF.format(a1=n1.ip(), a2=n2.ip()))
        g.sh(f"cp {conf} /etc/drbd.conf\nmodprobe drbd\n"
             "drbdadm -- --force create-md r0\ndrbdadm up r0", check=True, timeout=60)
    n1.run(["drbdadm", "wait-connect", "r0"], timeout=60, check=True)
    # both disks are blank: skip the initial full sync
    n1.run(["drbdadm", "--", "--clear-bitmap", "new-current-uuid", "r0"], check=True)
    wait_until(lambda: n1.run(["drbdadm", "dstate", "r0"]).stdout.strip()
               == "UpToDate/UpToDate", 30, "UpToDate on both sides")

    n1.run(["drbdadm", "primary", "r0"], check=True)
    written = n1.sh(f"head -c {SIZE_MB}M /dev/urandom > /tmp/data\n"
                    "dd if=/tmp/data of=/dev/drbd0 bs=1M oflag=direct status=none\n"
                    "md5sum < /tmp/data", check=True).stdout.split()[0]
    assert n2.run(["drbdadm", "role", "r0"]).stdout.strip() == "Secondary/Primary"

    n1.kill()  # the primary crashes: protocol C means every acked write is on node2
    wait_until(lambda: n2.run(["drbdadm", "cstate", "r0"]).stdout.strip() != "Connected",
               30, "node2 to notice the dead peer")
    n2.run(["drbdadm", "primary", "r0"], check=True)
    read = n2.sh(f"dd if=/dev/drbd0 bs=1M count={SIZE_MB} iflag=direct status=none | md5sum",
                 check=True).stdout.split()[0]
    assert read == written
    assert n2.run(["drbdadm", "role", "r0"]).stdout.strip().startswith("Primary/")
    n2.sh("drbdadm secondary r0 && drbdadm down r0", check=True)
