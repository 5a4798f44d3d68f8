"""Parsers and decisions of ocf:lsaa:drbd and ocf:lsaa:lvm-sysid on outputs recorded
in the kernel lab (tests/fixtures/{drbd,lvm}/INDEX.md lists the commands;
tests/lab/capture_storage.py re-records them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lsaa.backends import drbd, lvm

FIX = Path(__file__).resolve().parents[1] / "fixtures"
SCORES = drbd.parse_scores(drbd.DEFAULT_SCORES)


def fx(tool: str, name: str) -> str:
    return (FIX / tool / f"{name}.out").read_text()


def proc_state(name: str) -> drbd.DrbdState | None:
    return drbd.state_from_proc(drbd.parse_proc_drbd(fx("drbd", name)), "r0", [0])


# -- /proc/drbd ------------------------------------------------------------------

def test_proc_version_and_unconfigured() -> None:
    text = fx("drbd", "proc-drbd-unconfigured")
    assert drbd.proc_version(text) == "8.4.11"
    assert drbd.parse_proc_drbd(text) == {}
    assert drbd.state_from_proc({}, "r0", [0]) is None
    # 8.4: a detached StandAlone minor is "cs:Unconfigured", i.e. down
    assert proc_state("proc-drbd-diskless") is None


@pytest.mark.parametrize(("fixture", "role", "disk", "conn", "peer_disk", "score"), [
    ("proc-drbd-secondary-uptodate", "Secondary", "UpToDate", "Connected", "UpToDate", 10000),
    ("proc-drbd-primary", "Primary", "UpToDate", "Connected", "UpToDate", 10000),
    ("proc-drbd-peer-primary", "Secondary", "UpToDate", "Connected", "UpToDate", 10000),
    ("proc-drbd-wfconnection-uptodate", "Secondary", "UpToDate", "WFConnection", "DUnknown",
     1000),
    ("proc-drbd-standalone", "Secondary", "UpToDate", "StandAlone", "DUnknown", 1000),
    ("proc-drbd-syncsource", "Secondary", "UpToDate", "Connected", "Inconsistent", 10000),
    ("proc-drbd-synctarget", "Secondary", "Inconsistent", "Connected", "UpToDate", None),
    ("proc-drbd-outdated", "Secondary", "Outdated", "StandAlone", "DUnknown", None),
    ("proc-drbd-wfconnection-inconsistent", "Secondary", "Inconsistent", "WFConnection",
     "DUnknown", None),
    ("proc-drbd-connected-inconsistent", "Secondary", "Inconsistent", "Connected",
     "Inconsistent", None),
    ("proc-drbd-peer-dead-primary", "Primary", "UpToDate", "WFConnection", "DUnknown", 10000),
])
def test_proc_states_and_scores(fixture: str, role: str, disk: str, conn: str,
                                peer_disk: str, score: int | None) -> None:
    st = proc_state(fixture)
    assert st is not None
    assert (st.role, st.disks, st.peers[0].connection, st.peers[0].disks) == (
        role, [disk], conn, [peer_disk])
    assert drbd.promotion_score(st, SCORES) == score


def test_lone_uptodate_ranks_below_a_pair() -> None:
    lone = drbd.promotion_score(proc_state("proc-drbd-wfconnection-uptodate"), SCORES)
    pair = drbd.promotion_score(proc_state("proc-drbd-secondary-uptodate"), SCORES)
    assert isinstance(lone, int)
    assert isinstance(pair, int)
    assert 0 < lone < pair


def test_score_table_edges() -> None:
    st = drbd.DrbdState("r0", "Secondary")
    st.disks = ["Attaching"]
    assert drbd.promotion_score(st, SCORES) == drbd.UNCHANGED
    st.disks = ["Consistent"]
    assert drbd.promotion_score(st, SCORES) is None  # 1st value 0 -> delete
    assert drbd.promotion_score(st, (5, 10, 1000, 10000)) == 5
    st.disks = ["UpToDate"]
    st.quorum = False
    assert drbd.promotion_score(st, SCORES) is None
    sb = proc_state("proc-drbd-splitbrain-secondary")
    assert drbd.promotion_score(sb, SCORES, split_brain=True) is None
    sbp = proc_state("proc-drbd-splitbrain-primary")
    assert drbd.promotion_score(sbp, SCORES, split_brain=True) == 10000
    with pytest.raises(ValueError, match="decrease"):
        drbd.parse_scores("10 0 1000 10000")
    with pytest.raises(ValueError, match="four"):
        drbd.parse_scores("1 2")


# -- events2 ---------------------------------------------------------------------

def test_events2_from_drbdsetup_84() -> None:
    """Recorded: drbdsetup-84 answers events2 --now for the 8.4.11 kernel."""
    st = drbd.parse_events2(fx("drbd", "events2-84-connected"), "r0")
    assert st is not None
    assert (st.role, st.minors, st.disks) == ("Secondary", [0], ["UpToDate"])
    assert st.peers[0].name == "peer"  # synthetic peer name on 8.4
    assert st.synced()
    assert drbd.parse_events2(fx("drbd", "events2-84"), "r0") is None  # not up


# HAND-WRITTEN, NOT RECORDED: DRBD 9 is not available in the lab (the UML kernel
# has 8.4.11).  Written from the documented events2 format (drbdsetup(8), LINBIT's
# drbd.shellfuncs.sh, domain-notes §4.6): two peers, quorum keys, a diskless peer.
EVENTS2_DRBD9_HANDWRITTEN = """\
exists resource name:r0 role:Secondary suspended:no force-io-failures:no may_promote:no promotion_score:10102
exists connection name:r0 peer-node-id:1 conn-name:node1 connection:Connected role:Primary
exists connection name:r0 peer-node-id:2 conn-name:node3 connection:Connecting role:Unknown
exists device name:r0 volume:0 minor:0 backing_dev:/dev/vg0/r0 disk:UpToDate client:no open:no quorum:yes
exists peer-device name:r0 peer-node-id:1 conn-name:node1 volume:0 replication:Established peer-disk:UpToDate peer-client:no resync-suspended:no
exists peer-device name:r0 peer-node-id:2 conn-name:node3 volume:0 replication:Off peer-disk:DUnknown peer-client:no resync-suspended:no
exists -
"""  # noqa: E501


def test_events2_drbd9_handwritten_sample() -> None:
    st = drbd.parse_events2(EVENTS2_DRBD9_HANDWRITTEN, "r0")
    assert st is not None
    assert [p.name for p in st.peers] == ["node1", "node3"]
    assert st.peers[0].role == "Primary"
    assert st.uptodate_peer() is st.peers[0]
    assert not st.synced()
    assert drbd.promotion_score(st, SCORES) == 1000  # node3 unknown
    no_quorum = EVENTS2_DRBD9_HANDWRITTEN.replace("quorum:yes", "quorum:no")
    assert drbd.promotion_score(drbd.parse_events2(no_quorum, "r0"), SCORES) is None


# -- kernel messages, dry run -------------------------------------------------------

def test_split_brain_in_recorded_dmesg() -> None:
    for name in ("dmesg-splitbrain-primary", "dmesg-splitbrain-secondary"):
        lines = fx("drbd", name).splitlines()
        assert drbd.split_brain_in_kmsg(lines, "r0", [0])
        assert not drbd.split_brain_in_kmsg(lines, "r1", [1])
        # a later reconnect attempt clears it
        assert not drbd.split_brain_in_kmsg(
            [*lines, "drbd r0: conn( StandAlone -> Unconnected ) "], "r0", [0])


def test_kmsg_record() -> None:
    assert drbd.parse_kmsg_record("3,512,4350000,-;block drbd0: Split-Brain detected"
                                  " but unresolved, dropping connection!\n SUBSYSTEM=block"
                                  ) == ("block drbd0: Split-Brain detected but unresolved,"
                                        " dropping connection!")


def test_dry_run_settings() -> None:
    assert drbd.dump_settings(fx("drbd", "dry-up-two-primaries-protocol-a")) == ("A", True)
    assert drbd.dump_settings("drbdsetup-84 connect r0 a b --protocol=C") == ("C", False)


# -- lvm ---------------------------------------------------------------------------

def test_vgs_rows() -> None:
    own = lvm.parse_vgs(fx("lvm", "vgs-own"))[0]
    assert (own["vg_systemid"], own["vg_autoactivation"]) == ("node1", "enabled")
    assert lvm.parse_vgs(fx("lvm", "vgs-missing")) == []
    assert lvm.parse_vgs(fx("lvm", "vgs-noid"))[0]["vg_systemid"] == ""
    assert lvm.parse_vgs(fx("lvm", "vgs-taken"))[0]["vg_systemid"] == "node2"
    assert lvm.parse_vgs(fx("lvm", "vgs-taken"))[0]["vg_autoactivation"] == ""
    assert [r["lv_name"] for r in lvm.parse_lvs(fx("lvm", "lvs"))] == ["lv0", "lv1"]
    with pytest.raises(ValueError, match="vgs JSON"):
        lvm.parse_vgs("{oops")


def test_systemid_and_config() -> None:
    assert lvm.parse_systemid(fx("lvm", "systemid")) == "node1"
    assert lvm.parse_systemid(fx("lvm", "systemid-unset")) == ""
    assert lvm.parse_config_list(fx("lvm", "lvmconfig-both"), "volume_list") == ["vgx"]
    assert lvm.parse_config_list('volume_list=["a","b/c"]', "volume_list") == ["a", "b/c"]
    assert lvm.parse_config_list(fx("lvm", "lvmconfig-volume-list-unset"),
                                 "volume_list") is None
    assert lvm.volume_list_allows(["vgx"], "vgha", []) is False
    assert lvm.volume_list_allows(["vgha"], "vgha", []) is True
    assert lvm.volume_list_allows(["vgha/lv0"], "vgha", ["lv0"]) is True
    assert lvm.volume_list_allows(["@*"], "vgha", []) is None


def test_dm_names() -> None:
    names = fx("lvm", "sys-dm-names").split()
    assert lvm.active_lvs(names, "vgha") == {"lv0": ["vgha-lv0"], "lv1": ["vgha-lv1"]}
    assert lvm.split_dm_name("my--vg-lv--0") == ("my-vg", "lv-0", "")
    assert lvm.split_dm_name("vg-pool-tpool") == ("vg", "pool", "tpool")
    assert lvm.active_lvs(["a--b-lv"], "a") == {}  # VG "a" never matches VG "a-b"
    assert lvm.split_dm_name("luks") is None
    assert lvm.parse_dmsetup_info(fx("lvm", "dmsetup-active")) == {"vgha-lv0": 0,
                                                                   "vgha-lv1": 0}
    assert lvm.parse_dmsetup_info(fx("lvm", "dmsetup-none")) == {}


@pytest.mark.parametrize("bad", ["-vg", "a b", "", ".", "x" * 128, "vg/lv"])
def test_bad_names(bad: str) -> None:
    with pytest.raises(ValueError, match="not a valid"):
        lvm.check_name(bad)
