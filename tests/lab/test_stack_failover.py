"""The two-node cluster in lab guests (tests/stack: DRBD -> LVM -> Filesystem -> iSCSI
target + LUN -> VIP, demo/stack.pcs.sh): a power cut of the active node is fenced
through its BMC (fence_lsaa_ipmi -> ipmi_sim -> the guest really boots again), the
survivor takes the service over, and the fenced node rejoins.

Asserts on state only; the measured timeline is printed (``pytest -s`` to see it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.stack.cluster import NODES, running_stack, settled_on

IQN = "iqn.2024-01.lsaa.stack:data"  # demo/stack.pcs.sh's default

if TYPE_CHECKING:
    from pathlib import Path


def test_power_cut_of_the_active_node_is_fenced_and_taken_over(tmp_path: Path) -> None:
    with running_stack(results=tmp_path / "lab") as st:
        assert sorted(st.online("node1")) == sorted(NODES)
        st.pcs_script()
        active = st.wait_steady()
        survivor = next(n for n in NODES if n != active)
        assert st.agent == "fence_lsaa_ipmi"

        f = st.failover(active)
        print(f"\n{active} power-cut; timeline (s after the kill):\n{f.table()}")

        # fencing happened: the victim's BMC was asked for its power state and powered it
        # on again (it was already off), and the fencer recorded a successful reboot
        assert f.bmc[:4] == ["on", "boot", "booted", "started"], f.bmc
        asked = [what for _t, what in st.power.chassis_log(active, f.t_kill)]
        assert "get power" in asked and "set power 1" in asked, asked
        assert f"reboot of {active} successful" in st.fence_history(survivor, active)

        # the survivor runs the service; the fenced node is back as a cluster member
        mon = st.crm_mon(survivor)
        assert settled_on(mon) == survivor, mon
        lun = f"/sys/kernel/config/target/iscsi/{IQN}/tpgt_1/lun/lun_0"
        assert st.guests[survivor].run(["test", "-d", lun]).ok  # the LUN is exported there
        assert st.guests[survivor].run(["mountpoint", "-q", "/srv/stack"]).ok
        assert f.rejoined
        assert st.wait_steady(survivor) == survivor
        assert sorted(st.online(active)) == sorted(NODES)
