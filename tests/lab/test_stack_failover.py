"""The two-node cluster in lab guests (tests/stack: DRBD -> LVM -> Filesystem -> iSCSI
target + LUN -> VIP -> LVS service VIP:80, demo/stack.pcs.sh): a power cut of the active
node is fenced through its BMC (fence_lsaa_ipmi -> ipmi_sim -> the guest really boots
again), the survivor takes the service over (HTTP through the VIP and iSCSI writes of a
third guest, the client, answer again), no write the client had acknowledged is lost, the
fenced node rejoins, and DRBD's resource-level fencing constrains promotion to the
survivor until the rejoined node has resynced: no split brain.

Asserts on state only; the measured timeline is printed (``pytest -s`` to see it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.lab.test_smoke_util import wait_until
from tests.stack.cluster import ISCSI_LAST, NODES, http_get, running_stack, settled_on

IQN = "iqn.2024-01.lsaa.stack:data"  # demo/stack.pcs.sh's default

if TYPE_CHECKING:
    from pathlib import Path


def test_power_cut_of_the_active_node_is_fenced_and_taken_over(tmp_path: Path) -> None:
    with running_stack(results=tmp_path / "lab") as st:
        assert sorted(st.online("node1")) == sorted(NODES)
        st.pcs_script()
        active = st.wait_steady()
        survivor = next(n for n in NODES if n != active)
        assert http_get(st.lab, st.vip) in NODES  # the LVS service answers before the cut
        assert st.agent == "fence_lsaa_ipmi"
        assert st.client is not None
        st.start_client()  # ocf:lsaa:iscsi-initiator login through the VIP, writer running
        assert "recovery_tmo 120" in st.client.session()
        # write-through backstore: an acknowledged write is on DRBD, not in a page cache
        assert st.lun_cache_mode(active) == "Mode: O_DSYNC, emulate_write_cache=0"

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
        # the LVS virtual service runs on the survivor, and HTTP through the VIP answers
        # from the host side of the lab network (the MTTR's measure)
        assert f.mttr is not None and f.served, f.table()
        lvs = st.guests[survivor].run(["ipvsadm", "-Ln"], timeout=60)
        assert lvs.ok and f"TCP  {st.vip}:80 rr" in lvs.stdout, lvs.stdout
        assert http_get(st.lab, st.vip) in NODES
        assert f.rejoined
        assert st.wait_steady(survivor) == survivor

        # iSCSI: writes went on through the takeover, and the LUN read back through the
        # survivor's target (the victim still off) holds every acknowledged record
        assert f.mttr_iscsi is not None and f.marks.get(ISCSI_LAST) is not None, f.table()
        assert f.iscsi is not None and f.iscsi.acknowledged > 0, f.iscsi
        assert f.iscsi.lost == 0 and f.iscsi.verified == f.iscsi.blocks > 0, f.iscsi.line()
        assert f.mttr == max(f.mttr_http or 0, f.mttr_iscsi)

        # DRBD: the survivor's promotion ran crm-fence-peer.sh, whose constraint allowed
        # Promoted only there; the rejoined node resynced from it and crm-unfence-peer.sh
        # removed the constraint; one Primary, both UpToDate, no split brain
        assert f.fence_constraint is not None and f"value=\"{survivor}\"" in \
            f.fence_constraint, f.fence_constraint
        assert f.drbd is not None and f.drbd.ok, f.drbd
        assert f.drbd.primaries == [survivor] and not f.drbd.split_brain
        assert any(f"{survivor}: drbd r0: fence-peer helper returned 7" in h
                   for h in f.drbd.handlers), f.drbd.handlers
        assert any(f"{active}: " in h and "after-resync-target minor-0 exit code 0 " in h
                   for h in f.drbd.handlers), f.drbd.handlers
        assert any("placed constraint 'drbd-fence-by-handler-r0-data-clone'" in line
                   for line in f.drbd.handler_log), f.drbd.handler_log
        assert sorted(st.online(active)) == sorted(NODES)

        # LVS balances by direct routing: the rejoined node gets its weight back from the
        # health checks, and answers requests for the VIP it does not hold (only the
        # director forwards them to it: it answers no ARP for the VIP)
        answered: set[str | None] = set()

        def both_answer() -> bool:
            answered.add(http_get(st.lab, st.vip))
            return set(NODES) <= answered
        wait_until(both_answer, 90, f"GETs through the VIP answered by {NODES}")

        # a dead real server is quiesced: stop the rejoined node's web server (by its PID)
        st.guests[active].sh("kill $(cat /run/lsaa-www.pid)", check=True)
        wait_until(lambda: (st.lvs_weights(survivor) or {}).get(st.node_ip(active)) == 0, 60,
                   f"{active}'s real server quiesced on {survivor}")
        assert st.lvs_weights(survivor) == {st.node_ip(active): 0, st.node_ip(survivor): 1}
        assert [http_get(st.lab, st.vip) for _ in range(4)] == [survivor] * 4

        # the writes made during the rejoin, the resync and the checks above are there too
        v = st.client.verify(restart=False)
        assert v.ok and v.lost == 0 and v.acknowledged > 0, v.line()
