"""ocf:lsaa:drbd and ocf:lsaa:lvm-sysid decisions, driven in-process with the strict
fake runner and recorded outputs (tests/fixtures/{drbd,lvm})."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ocfrun import ocf

from lsaa.agents import drbd as drbd_agent
from lsaa.agents import lvm_sysid
from lsaa.testing.fakerun import Call, FakeRunner

FIX = Path(__file__).resolve().parents[1] / "fixtures"
P = {"drbd_resource": "r0"}
CRM = ["crm_attribute", "--node", "n1", "--name", "master-drbd", "--lifetime", "reboot"]
FENCE = "//rsc_location[starts-with(@id,'drbd-fence-by-handler-r0-')]"


def fx(tool: str, name: str, ext: str = "out") -> str:
    return (FIX / tool / f"{name}.{ext}").read_text()


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(drbd_agent, "PROC_DRBD", str(tmp_path / "proc-drbd"))
    monkeypatch.setattr(drbd_agent, "KMSG", str(tmp_path / "no-kmsg"))
    monkeypatch.setattr(lvm_sysid, "SYS_BLOCK", str(tmp_path / "sys-block"))
    monkeypatch.setattr(lvm_sysid, "UDEV_CONTROL", str(tmp_path / "udev-control"))
    (tmp_path / "udev-control").write_text("")  # udev present: no extra --config
    (tmp_path / "state").mkdir()
    return tmp_path


def proc(world: Path, fixture: str) -> None:
    (world / "proc-drbd").write_text(fx("drbd", fixture))


def env(world: Path) -> dict[str, str]:
    return {"HA_RSCTMP": str(world / "state"), "OCF_RESOURCE_INSTANCE": "drbd"}


def cached(world: Path, **extra: object) -> None:
    (world / "state" / "lsaa-drbd-drbd.json").write_text(json.dumps({"minors": [0], **extra}))


# -- drbd ----------------------------------------------------------------------------

def test_probe_down_deletes_stale_score_without_drbdadm(world: Path) -> None:
    proc(world, "proc-drbd-unconfigured")
    runner = FakeRunner([Call([*CRM, "--delete"])])
    out = ocf(drbd_agent.AGENT, "monitor", P, runner=runner, env=env(world), on_node="n1")
    assert out.rc == 7
    runner.assert_done()


def test_probe_primary_maps_minors_and_publishes(world: Path) -> None:
    proc(world, "proc-drbd-primary")
    runner = FakeRunner([Call(["drbdadm", "sh-minor", "r0"], stdout="0\n"),
                         Call([*CRM, "--update", "10000"])])
    out = ocf(drbd_agent.AGENT, "monitor", P, runner=runner, env=env(world), on_node="n1")
    assert out.rc == 8
    runner.assert_done()


def test_recurring_monitor_unchanged_score_runs_nothing(world: Path) -> None:
    import time

    proc(world, "proc-drbd-secondary-uptodate")
    cached(world, score=10000, score_at=time.time(), dirty=False)
    runner = FakeRunner([])
    out = ocf(drbd_agent.AGENT, "monitor", P, runner=runner, env=env(world), on_node="n1",
              interval="20000")
    assert out.rc == 0
    runner.assert_done()


def test_resync_done_removes_fencing_constraint_once(world: Path) -> None:
    import time

    proc(world, "proc-drbd-secondary-uptodate")
    cached(world, score=10000, score_at=time.time(), dirty=True)
    runner = FakeRunner([Call(["cibadmin", "--delete-all", "--force", "--xpath", FENCE])])
    out = ocf(drbd_agent.AGENT, "monitor", P, runner=runner, env=env(world), on_node="n1",
              interval="20000")
    assert out.rc == 0
    runner.assert_done()
    again = FakeRunner([])
    assert ocf(drbd_agent.AGENT, "monitor", P, runner=again, env=env(world), on_node="n1",
               interval="20000").rc == 0
    again.assert_done()


def test_promote_refuses_inconsistent_without_calling_drbdadm(world: Path) -> None:
    proc(world, "proc-drbd-synctarget")
    cached(world)
    out = ocf(drbd_agent.AGENT, "promote", P, runner=FakeRunner([]), env=env(world),
              on_node="n1")
    assert out.rc == 1
    assert "Inconsistent, not UpToDate" in out.reasons[0]


def test_promote_respects_fencing_constraint(world: Path) -> None:
    proc(world, "proc-drbd-wfconnection-uptodate")
    cached(world)
    constraint = ('<rsc_location rsc="drbd-clone" id="drbd-fence-by-handler-r0-drbd-clone">'
                  '<rule role="Promoted" score="-INFINITY" id="x"><expression '
                  'attribute="#uname" operation="ne" value="n2" id="y"/></rule>'
                  '</rsc_location>')
    runner = FakeRunner([Call(["cibadmin", "--query", "--xpath", FENCE], stdout=constraint)])
    out = ocf(drbd_agent.AGENT, "promote", P, runner=runner, env=env(world), on_node="n1")
    assert out.rc == 1
    assert "reserves the promoted role for n2" in out.reasons[0]


def test_promote_stops_on_no_uptodate_disk(world: Path) -> None:
    proc(world, "proc-drbd-wfconnection-uptodate")
    cached(world)
    runner = FakeRunner([
        Call(["cibadmin", "--query", "--xpath", FENCE], rc=105),
        Call(["drbdadm", "primary", "r0"], rc=17, stderr=fx("drbd", "primary-outdated", "err")),
    ])
    out = ocf(drbd_agent.AGENT, "promote", P, runner=runner, env=env(world), on_node="n1")
    assert out.rc == 1
    assert "no access to UpToDate data" in out.reasons[0]
    runner.assert_done()


def test_monitor_primary_without_disk_is_failed_promoted(world: Path) -> None:
    text = fx("drbd", "proc-drbd-primary").replace("ds:UpToDate/UpToDate",
                                                    "ds:Diskless/UpToDate")
    (world / "proc-drbd").write_text(text)
    cached(world)
    runner = FakeRunner([Call([*CRM, "--delete"]),
                         Call(["cibadmin", "--delete-all", "--force", "--xpath", FENCE])])
    out = ocf(drbd_agent.AGENT, "monitor", P, runner=runner, env=env(world), on_node="n1",
              interval="10000")
    assert out.rc == 9
    assert "Diskless" in out.reasons[0]


def test_split_brain_flag_degrades_and_drops_score(world: Path) -> None:
    proc(world, "proc-drbd-splitbrain-secondary")
    cached(world, split_brain=True, score=10000, score_at=0)
    runner = FakeRunner([Call([*CRM, "--delete"])])
    out = ocf(drbd_agent.AGENT, "monitor", P, runner=runner, env=env(world), on_node="n1",
              interval="20000")
    assert out.rc == 190
    assert "split brain" in out.reasons[0]
    runner.assert_done()


def test_meta_checks_are_inherent(world: Path) -> None:
    out = ocf(drbd_agent.AGENT, "start", P, env=env(world), on_node="n1",
              promoted_max="3", clone_node_max="2")
    assert out.rc == 6
    assert "promoted-max must be at most 2" in out.reasons[0]


def test_start_refuses_two_primaries_with_protocol_a(world: Path) -> None:
    proc(world, "proc-drbd-unconfigured")
    runner = FakeRunner([
        Call(["drbdadm", "sh-minor", "r0"], stdout="0\n"),
        Call(["drbdadm", "-d", "up", "r0"], stdout=fx("drbd", "dry-up-two-primaries-protocol-a")),
    ])
    out = ocf(drbd_agent.AGENT, "start", P, runner=runner, env=env(world), on_node="n1",
              promoted_max="2")
    assert out.rc == 2
    assert "protocol A" in out.reasons[0]


# -- lvm-sysid -------------------------------------------------------------------------

VGS = ["vgs", "--foreign", "--reportformat", "json", "-o",
       "vg_name,vg_systemid,vg_lock_type,vg_missing_pv_count,lv_count,vg_autoactivation", "vgha"]
LP = {"vgname": "vgha"}


def dm(world: Path, *names: str) -> None:
    for i, name in enumerate(names):
        d = world / "sys-block" / f"dm-{i}" / "dm"
        d.mkdir(parents=True)
        (d / "name").write_text(name + "\n")


def test_lvm_takeover_result_is_checked(world: Path) -> None:
    runner = FakeRunner([
        Call(["lvm", "systemid"], stdout="  system ID: node2\n"),
        Call(["lvmconfig", "activation/volume_list"], rc=5),
        Call(VGS, stdout=fx("lvm", "vgs-foreign")),
        Call(["vgchange", "--config", 'local { extra_system_ids=["node1"] }', "-y",
              "--systemid", "node2", "vgha"], rc=5, stderr="  Some new lvm2 refusal\n"),
        Call(VGS, stdout=fx("lvm", "vgs-foreign")),  # still node1's
    ])
    out = ocf(lvm_sysid.AGENT, "start", LP, runner=runner, env=env(world))
    assert out.rc == 1
    assert "takeover of vgha from node1 failed" in out.reasons[0]
    assert "Some new lvm2 refusal" in out.reasons[0]
    runner.assert_done()


def test_lvm_start_takes_over_and_ends_with_monitor(world: Path) -> None:
    lvs = '{"report": [{"lv": [{"lv_name":"lv0"}, {"lv_name":"lv1"}]}]}'

    class Activating(FakeRunner):
        def _execute(self, argv, input, timeout, env, shown):  # type: ignore[no-untyped-def]
            res = super()._execute(argv, input, timeout, env, shown)
            if argv[:2] == ["lvchange", "-ay"]:
                dm(world, "vgha-lv0", "vgha-lv1")
            return res

    runner = Activating([
        Call(["lvm", "systemid"], stdout="  system ID: node2\n"),
        Call(["lvmconfig", "activation/volume_list"], rc=5),
        Call(VGS, stdout=fx("lvm", "vgs-foreign")),
        Call(["vgchange", "--config", 'local { extra_system_ids=["node1"] }', "-y",
              "--systemid", "node2", "vgha"], stdout=fx("lvm", "vgchange-takeover")),
        Call(VGS, stdout=fx("lvm", "vgs-own").replace("node1", "node2")),
        Call(VGS, stdout=fx("lvm", "vgs-own").replace("node1", "node2")),
        Call(["vgchange", "--setautoactivation", "n", "vgha"]),
        Call(["lvs", "--reportformat", "json", "-o", "lv_name", "vgha"], stdout=lvs),
        Call(["lvchange", "-ay", "vgha"]),
    ])
    out = ocf(lvm_sysid.AGENT, "start", LP, runner=runner, env=env(world))
    assert out.rc == 0, out.stderr
    runner.assert_done()


def test_lvm_refusals(world: Path) -> None:
    out = ocf(lvm_sysid.AGENT, "start", LP, env=env(world), runner=FakeRunner([
        Call(["lvm", "systemid"], stdout=fx("lvm", "systemid-unset"))]))
    assert out.rc == 2
    assert "system_id_source" in out.reasons[0]
    out = ocf(lvm_sysid.AGENT, "start", LP, env=env(world), runner=FakeRunner([
        Call(["lvm", "systemid"], stdout=fx("lvm", "systemid")),
        Call(["lvmconfig", "activation/volume_list"], stdout='volume_list="vgx"\n')]))
    assert out.rc == 2
    assert "volume_list" in out.reasons[0]
    out = ocf(lvm_sysid.AGENT, "start", {"vgname": "vgnoid"}, env=env(world),
              runner=FakeRunner([
                  Call(["lvm", "systemid"], stdout=fx("lvm", "systemid")),
                  Call(["lvmconfig", "activation/volume_list"], rc=5),
                  Call([*VGS[:-1], "vgnoid"], stdout=fx("lvm", "vgs-noid"))]))
    assert out.rc == 6
    assert "no system ID" in out.reasons[0]


def test_lvm_monitor_reads_sysfs_only(world: Path) -> None:
    assert ocf(lvm_sysid.AGENT, "monitor", LP, env=env(world)).rc == 7
    dm(world, "vgha-lv0", "vgha-lv1", "vgha--x-lv0")
    (world / "state" / "lsaa-lvm-sysid-drbd.lvs").write_text("lv0\nlv1\nlv2\n")
    out = ocf(lvm_sysid.AGENT, "monitor", LP, env=env(world), interval="30000")
    assert out.rc == 1
    assert "lv2 no longer active" in out.reasons[0]
    (world / "state" / "lsaa-lvm-sysid-drbd.lvs").write_text("lv0\nlv1\n")
    assert ocf(lvm_sysid.AGENT, "monitor", LP, env=env(world), interval="30000").rc == 0


def test_lvm_no_udev_config(world: Path) -> None:
    (world / "udev-control").unlink()
    out = ocf(lvm_sysid.AGENT, "start", {**LP, "lvm_config": "devices { a=1 }"},
              env=env(world), runner=FakeRunner([
                  Call(["lvm", "systemid", "--config",
                        lvm_sysid.NO_UDEV + " devices { a=1 }"], stdout="  system ID: \n")]))
    assert out.rc == 2
