"""Our agents under a real Pacemaker 2.1 + pcs: meta-data, lifecycle, failures, promotion,
reload-agent and a clean stop.

Every wait is a poll of the cluster's state with a deadline; nothing asserts on elapsed time.
The node is shared by the module (see conftest.py); each test creates its own resources and the
``resources`` fixture deletes them again.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from tests.cluster import Cluster, ClusterStatus, CommandError, Node
from tests.cluster.cluster import processes_in_pidns
from tests.cluster.resources import Resources

pytestmark = pytest.mark.functional

OCF_NOT_CONFIGURED = 6  # crm_resource --validate exits with the agent's OCF code
OCF_NOT_RUNNING = 7


def dummy_state(node: Node, state_dir: str, rsc: str) -> Path:
    """Host path of ocf:lsaa:dummy's state file for resource ``rsc`` inside ``node``."""
    return node.path(f"{state_dir}/lsaa-dummy-{rsc}.state")


def results(node: Node, op: str, rsc: str) -> int:
    """How many times the controller logged the result of ``op`` on ``rsc``."""
    return len(re.findall(rf"Result of {re.escape(op)} operation for {re.escape(rsc)} on ",
                          node.pacemaker_log()))


def locate(node: Node, rsc: str) -> str:
    """``crm_resource --locate``'s answer (it prints "NOT running" on stderr)."""
    res = node.run(["crm_resource", "--locate", "-r", rsc])
    return (res.stdout + res.stderr).strip()


# -- meta-data as pcs sees it -----------------------------------------------------------------


def test_pcs_describe_shows_our_parameters(pcmk_node: Node) -> None:
    out = pcmk_node.run(["pcs", "resource", "describe", "ocf:lsaa:dummy"]).stdout
    assert out.startswith("ocf:lsaa:dummy - Example resource that exists as a state file")
    for param in ("state_dir (unique group: state):", "fake:"):
        assert f"\n  {param}" in out, out
    # pcs copied our default operations, so it parsed the <actions> it validated
    assert re.search(r"monitor:\n\s+interval=10s\n\s+timeout=20s", out), out
    assert re.search(r"reload-agent:\n\s+interval=0s\n\s+timeout=20s", out), out


def test_pcs_offline_create_accepts_our_metadata_and_rejects_unknown_parameter(
        pcmk_node: Node, tmp_path: Path) -> None:
    cib = tmp_path / "cib.xml"
    cib.write_text(subprocess.run(["cibadmin", "--empty"], capture_output=True, text=True,
                                  check=True, env={"PATH": "/usr/sbin:/usr/bin"}).stdout)
    ok = pcmk_node.run(["pcs", "-f", str(cib), "resource", "create", "d0", "ocf:lsaa:dummy",
                        "state_dir=/run/d0", "fake=1"])
    # pcs refuses (or warns about) meta-data that fails its schema: neither may happen
    assert "Unable to get agent metadata" not in ok.stdout + ok.stderr
    assert "Warning" not in ok.stdout + ok.stderr
    config = pcmk_node.run(["pcs", "-f", str(cib), "resource", "config", "d0"]).stdout
    assert "state_dir=/run/d0" in config
    assert "reload-agent: d0-reload-agent-interval-0s" in config

    bad = pcmk_node.run(["pcs", "-f", str(cib), "resource", "create", "d9", "ocf:lsaa:dummy",
                         "state_dir=/run/d9", "bogus=1"], check=False)
    assert bad.returncode != 0
    assert "invalid resource option 'bogus'" in bad.stderr
    assert "'check_command', 'fake', 'state_dir'" in bad.stderr
    assert "d9" not in pcmk_node.run(["pcs", "-f", str(cib), "resource", "config"]).stdout


# -- crm_resource runs the agent outside the cluster -------------------------------------------


@pytest.mark.parametrize(("state_dir", "rc"), [("/run/x", 0), ("relative", OCF_NOT_CONFIGURED)])
def test_crm_resource_validate(pcmk_node: Node, state_dir: str, rc: int) -> None:
    res = pcmk_node.run(["crm_resource", "--validate", "--class", "ocf", "--provider", "lsaa",
                         "--agent", "dummy", "--option", f"state_dir={state_dir}"], check=False)
    assert res.returncode == rc, res
    if rc:
        # the agent's exit reason reaches the administrator
        assert "state_dir: 'relative' is not an absolute path" in res.stdout + res.stderr


def test_crm_resource_force_check_start_stop(pcmk_node: Node) -> None:
    base = ["--class", "ocf", "--provider", "lsaa", "--agent", "dummy",
            "--option", "state_dir=/run/lsaa-force"]
    state_dir = pcmk_node.path("/run/lsaa-force")

    def crm(action: str) -> int:
        return pcmk_node.run(["crm_resource", f"--force-{action}", *base],
                             check=False).returncode

    assert crm("check") == OCF_NOT_RUNNING
    assert crm("start") == 0
    assert [p.name for p in state_dir.iterdir()], "force-start wrote no state file"
    assert crm("check") == 0
    assert crm("stop") == 0
    assert list(state_dir.iterdir()) == []
    assert crm("check") == OCF_NOT_RUNNING


# -- lifecycle under the cluster ----------------------------------------------------------------


def test_create_starts_and_disable_stops(pcmk_cluster: Cluster, pcmk_node: Node,
                                        resources: Resources) -> None:
    resources.create("d1", "ocf:lsaa:dummy", "state_dir=/run/lsaa-d1",
                     "op", "monitor", "interval=2s")
    pcmk_cluster.wait_resource("d1", ["node1"])
    state = dummy_state(pcmk_node, "/run/lsaa-d1", "d1")
    assert state.read_text() == "fake=dummy\n"
    assert locate(pcmk_node, "d1") == "resource d1 is running on: node1"
    # the resource's own monitor agrees (crm_resource runs it with the CIB's parameters)
    assert pcmk_node.run(["crm_resource", "-r", "d1", "--force-check"],
                         check=False).returncode == 0

    pcmk_node.run(["pcs", "resource", "disable", "d1"])
    pcmk_cluster.wait_resource("d1", [])
    assert not state.exists()
    assert "resource d1 is NOT running" in locate(pcmk_node, "d1")


def test_monitor_detects_failure_and_cluster_restarts(pcmk_node: Node,
                                                      resources: Resources) -> None:
    resources.create("d2", "ocf:lsaa:dummy", "state_dir=/run/lsaa-d2",
                     "op", "monitor", "interval=2s")
    resources.wait("d2 started", lambda st: st.where("d2") == {"node1"})
    state = dummy_state(pcmk_node, "/run/lsaa-d2", "d2")
    starts = results(pcmk_node, "start", "d2")

    state.unlink()  # the "service" dies behind the cluster's back
    st = resources.wait("d2 failed and recovered",
                        lambda st: st.fail_count("d2", "node1") >= 1
                        and st.where("d2") == {"node1"})
    assert st.fail_count("d2") == 1
    assert state.exists()
    log = pcmk_node.pacemaker_log()
    assert re.search(r"Result of monitor operation for d2 on node1: not running", log)
    assert results(pcmk_node, "start", "d2") == starts + 1


def test_reload_agent_applies_reloadable_parameter_without_restart(
        pcmk_node: Node, resources: Resources) -> None:
    resources.create("d3", "ocf:lsaa:dummy", "state_dir=/run/lsaa-d3",
                     "op", "monitor", "interval=2s")
    resources.wait("d3 started", lambda st: st.where("d3") == {"node1"})
    state = dummy_state(pcmk_node, "/run/lsaa-d3", "d3")
    assert state.read_text() == "fake=dummy\n"
    starts, stops = results(pcmk_node, "start", "d3"), results(pcmk_node, "stop", "d3")

    pcmk_node.run(["pcs", "resource", "update", "d3", "fake=x"])
    resources.wait("d3 reloaded",
                   lambda st: state.exists() and state.read_text() == "fake=x\n"
                   and results(pcmk_node, "reload-agent", "d3") == 1
                   and st.where("d3") == {"node1"})
    assert (results(pcmk_node, "start", "d3"), results(pcmk_node, "stop", "d3")) \
        == (starts, stops), "a reloadable parameter must not restart the resource"
    assert "Result of reload-agent operation for d3 on node1: ok" in pcmk_node.pacemaker_log()


def test_promotable_clone_is_promoted(pcmk_node: Node, resources: Resources) -> None:
    resources.create("s1", "ocf:lsaa:stateful", "state_dir=/run/lsaa-s1", "promotable")
    st = resources.wait("s1 promoted", lambda st: st.where("s1", "Promoted") == {"node1"})
    assert [r.clone for r in st.resources if r.id == "s1"] == ["s1-clone"]
    # the score our crm backend wrote is the one the scheduler read
    score = pcmk_node.run(["crm_attribute", "--node", "node1", "--name", "master-s1",
                           "--lifetime", "reboot", "--query", "--quiet"]).stdout.strip()
    assert score == "10"
    assert pcmk_node.path("/run/lsaa-s1/lsaa-stateful-s1.state").read_text() == "promoted\n"


# -- a clean stop ---------------------------------------------------------------------------------


@pytest.mark.usefixtures("pcmk_host")
def test_graceful_stop_stops_resources_and_leaves_nothing() -> None:
    """Stopping Pacemaker stops every resource through our agents (state files gone, promotion
    score cleared before the CIB goes away), then the node's namespaces hold nothing but their
    init, and the teardown leaves nothing on the host."""
    cluster = Cluster(["node1"], cluster_name="lsaa-stop")
    try:
        cluster.start()
        node = cluster.nodes[0]
        node.run(["pcs", "resource", "create", "d4", "ocf:lsaa:dummy", "state_dir=/run/lsaa-d4"])
        node.run(["pcs", "resource", "create", "s4", "ocf:lsaa:stateful",
                  "state_dir=/run/lsaa-s4", "promotable"])
        cluster.wait_for(lambda st: st.where("d4") == {"node1"}
                         and st.where("s4", "Promoted") == {"node1"}, "d4 and s4 up")
        states = [dummy_state(node, "/run/lsaa-d4", "d4"),
                  node.path("/run/lsaa-s4/lsaa-stateful-s4.state")]
        assert all(p.exists() for p in states)

        node.stop_cluster()
        assert [p for p in states if p.exists()] == []
        log = node.pacemaker_log()
        assert "Result of stop operation for d4 on node1: ok" in log
        assert "Result of demote operation for s4 on node1: ok" in log
        assert "Result of stop operation for s4 on node1: ok" in log
        assert node.pidns is not None
        assert processes_in_pidns(node.pidns) == [node.init_pid]
    finally:
        left = cluster.teardown()
    assert left == []
    assert not cluster.run_dir.exists()


@pytest.mark.usefixtures("pcmk_host")
def test_two_nodes_survivor_takes_over_after_power_cut() -> None:
    """The driver's kill and boot against a promotable clone with a colocated resource: the
    configuration of demo/cluster.pcs.sh (what `make demo` shows), asserted."""
    script = Path(__file__).resolve().parents[2] / "demo" / "cluster.pcs.sh"
    with Cluster(["node1", "node2"], cluster_name="lsaa-failover") as cluster:
        n1 = cluster.nodes[0]
        n1.run(["sh", str(script)])

        def primary(st: ClusterStatus) -> str | None:
            promoted = st.where("db", "Promoted")
            if len(promoted) == 1 and st.where("app") == promoted \
                    and st.where("db") == st.online:
                return next(iter(promoted))
            return None

        victim = cluster.node(cluster.wait_for(primary, "db promoted, app with it", 60))
        survivor = next(n for n in cluster.nodes if n is not victim)
        victim.kill()
        assert not victim.up
        st = cluster.wait_for(lambda st: st if primary(st) == survivor.name else None,
                              f"{survivor.name} to take over", 60, via=survivor)
        assert st.offline == {victim.name}
        assert dummy_state(survivor, "/run/lsaa-demo", "app").read_text() == "fake=v1\n"

        victim.boot()  # a reboot: its CIB is kept, its /run (and resource state) is not
        cluster.wait_online()
        st = cluster.wait_for(lambda st: st if primary(st) else None,
                              f"{victim.name} back with db running", 60, via=survivor)
        assert st.where("db", "Unpromoted") == {victim.name}
        assert st.fail_counts == {}, "a power cut is not a resource failure"


def test_invalid_configuration_is_fatal_with_our_exit_reason(pcmk_node: Node,
                                                             resources: Resources) -> None:
    """rc 6 (not configured) from start: Pacemaker bans the resource everywhere instead of
    retrying, the administrator reads our exit reason in crm_mon, and stop still succeeds."""
    with pytest.raises(CommandError) as refused:
        pcmk_node.run(["pcs", "resource", "create", "bad0", "ocf:lsaa:dummy",
                       "state_dir=relative", "--agent-validation"])
    assert "'relative' is not an absolute path" in str(refused.value)

    resources.create("bad1", "ocf:lsaa:dummy", "state_dir=relative")  # pcs does not validate
    reason = "invalid configuration: state_dir: 'relative' is not an absolute path"
    resources.wait("bad1's start failure recorded",
                   lambda st: st.fail_count("bad1") > 0 and reason in pcmk_node.crm_mon())
    log = pcmk_node.pacemaker_log()
    assert f"Preventing bad1 from restarting anywhere because of fatal failure (not configured: " \
        f"{reason})" in log
    assert "Result of stop operation for bad1 on node1: ok" in log
    assert results(pcmk_node, "start", "bad1") == 1
