"""The comparison stack of ``python -m tests.stack compare`` works: the two-node lab
cluster configured with demo/stack-clusterlabs.pcs.sh (ocf:linbit:drbd, LVM-activate,
Filesystem, iSCSITarget + iSCSILogicalUnit lio-t, IPaddr2, ldirectord, fence_ipmilan)
fences a power-cut active node through its BMC and the survivor takes everything over.

Without this, a broken ClusterLabs configuration would only show as a failed or
meaningless row of ``make bench`` (bench/bench_stack.py).  lsaa's own stack has the same
checks in test_stack_failover.py.  One failover, about 3 minutes.  Asserts on state only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.stack.cluster import NODES, http_get, running_stack, settled_on
from tests.stack.compare import CLUSTERLABS, stack_kw

IQN = "iqn.2024-01.lsaa.stack:data"  # the scripts' default

if TYPE_CHECKING:
    from pathlib import Path


def test_clusterlabs_stack_fails_over(tmp_path: Path) -> None:
    with running_stack(results=tmp_path / "lab", **stack_kw(CLUSTERLABS)) as st:
        st.pcs_script(script=CLUSTERLABS.script)
        active = st.wait_steady()
        survivor = next(n for n in NODES if n != active)
        mon = st.crm_mon(active, "--output-as=xml")  # the text shows no clone's agent
        for agent in ("ocf:linbit:drbd", "ocf:heartbeat:LVM-activate",
                      "ocf:heartbeat:iSCSITarget", "ocf:heartbeat:iSCSILogicalUnit",
                      "ocf:heartbeat:ldirectord", "stonith:fence_ipmilan"):
            assert f'resource_agent="{agent}"' in mon, mon
        assert http_get(st.lab, st.vip) in NODES

        f = st.failover(active)
        print(f"\n{active} power-cut; timeline (s after the kill):\n{f.table()}")
        # fence_ipmilan asked the victim's BMC and the fencer recorded the reboot
        assert f.bmc[:4] == ["on", "boot", "booted", "started"], f.bmc
        assert f"reboot of {active} successful" in st.fence_history(survivor, active)
        mon = st.crm_mon(survivor)
        assert settled_on(mon) == survivor, mon
        g = st.guests[survivor]
        # LVM-activate put the survivor's system ID on the VG; the LUN file is exported
        assert g.run(["vgs", "--noheadings", "-o", "systemid", "vg0"]).stdout.strip() \
            == survivor
        assert g.run(["mountpoint", "-q", "/srv/stack"]).ok
        lun = f"/sys/kernel/config/target/iscsi/{IQN}/tpgt_1/lun/lun_0"
        assert g.run(["test", "-d", lun]).ok
        # a portal on the VIP (iSCSITarget creates none for its default 0.0.0.0:3260)
        np = f"/sys/kernel/config/target/iscsi/{IQN}/tpgt_1/np/{st.vip}:3260"
        assert g.run(["test", "-d", np]).ok
        # ldirectord's virtual service, and the dead real server quiesced, not removed
        assert f.mttr is not None and f.served, f.table()
        assert any(k.startswith(f"web: {active}'s real server quiesced") for k in f.marks)
        lvs = g.run(["ipvsadm", "-Ln"], timeout=60)
        assert lvs.ok and f"TCP  {st.vip}:80 rr" in lvs.stdout, lvs.stdout
        assert f.rejoined
        assert st.wait_steady(survivor) == survivor
