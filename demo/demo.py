#!/usr/bin/python3
"""lsaa demo: a 2-node Pacemaker cluster on this machine, and a failover you can watch.

    python3 demo/demo.py              boot, configure (demo/cluster.pcs.sh), kill the node with
                                      the primary, measure the takeover, bring the node back,
                                      tear everything down
    python3 demo/demo.py --keep       the same, but leave the cluster running to explore
    python3 demo/demo.py --teardown   stop a cluster left by --keep

Each node is a set of Linux namespaces (mount, UTS, IPC, network, PID) running the real
Corosync and Pacemaker from Debian, with our agents from this checkout (``make dev-install``).
The nodes talk over a private switch (10.213.0.0/24) that exists only inside those
namespaces.  Needs root.  Exit status: 0 only if the surviving node took over.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests.cluster, from this checkout

from tests.cluster import Cluster, ClusterError, ClusterStatus, Node  # noqa: E402

# A fixed place (root only), so that --teardown finds a cluster left by --keep.
RUN_DIR = Path("/var/tmp/lsaa-demo")  # noqa: S108
SCRIPT = HERE / "cluster.pcs.sh"
NODES = ["node1", "node2"]
T0 = time.monotonic()


def say(text: str = "") -> None:
    stamp = f"[{time.monotonic() - T0:6.1f}s]"
    for i, line in enumerate(text.splitlines() or [""]):
        print(f"{stamp if i == 0 else ' ' * len(stamp)} {line}", flush=True)


def banner(text: str) -> None:
    print(flush=True)
    say(f"== {text} ==")


def indent(text: str) -> str:
    return "\n".join("    " + line for line in text.rstrip().splitlines())


def primary(st: ClusterStatus) -> str | None:
    """The node running the promoted db instance and app, if there is exactly one."""
    promoted = st.where("db", "Promoted")
    if len(promoted) == 1 and st.where("app") == promoted:
        return next(iter(promoted))
    return None


def settled(st: ClusterStatus, up: list[str]) -> str | None:
    """The primary, once every up node runs a db instance (so nothing is still moving)."""
    p = primary(st)
    if p and st.where("db") == set(up) and set(up) <= st.online:
        return p
    return None


def ensure_root() -> None:
    if os.geteuid() != 0:
        sys.exit("demo: needs root (it creates namespaces and runs corosync)")
    if not Path("/usr/lib/ocf/resource.d/lsaa/stateful").exists():
        sys.exit("demo: ocf:lsaa agents are not installed: run `make setup` (or make dev-install)")


def teardown_kept() -> int:
    """Stop a cluster left by --keep.  Returns the exit status."""
    if not (RUN_DIR / "cluster.json").exists():
        print(f"demo: no kept cluster in {RUN_DIR}")
        return 0
    c = Cluster.attach(RUN_DIR)
    left = c.teardown()
    for item in left:
        print(f"demo: left behind: {item}", file=sys.stderr)
    if not left:
        print(f"demo: cluster stopped, {RUN_DIR} removed")
    return 1 if left else 0


def failover(victim: Node, survivor: Node) -> dict[str, float] | None:
    """Kill ``victim`` hard and poll ``survivor`` until it runs the primary.  Returns the
    timeline (seconds after the kill), or None if the takeover did not happen in 60 s."""
    timeline: dict[str, float] = {}
    t_kill = time.monotonic()
    victim.kill()
    timeline["kill -KILL of the node's init returned"] = time.monotonic() - t_kill
    deadline = t_kill + 60
    while time.monotonic() < deadline:
        try:
            st = survivor.status()
        except ClusterError:
            time.sleep(0.05)
            continue
        now = time.monotonic() - t_kill
        if victim.name not in st.online:
            timeline.setdefault(f"{survivor.name} sees {victim.name} lost", now)
        if survivor.name in st.where("db", "Promoted"):
            timeline.setdefault(f"db promoted on {survivor.name}", now)
        if survivor.name in st.where("app"):
            timeline.setdefault(f"app started on {survivor.name}", now)
        if primary(st) == survivor.name:
            return timeline
        time.sleep(0.05)
    for what, t in timeline.items():
        say(f"  {t:6.2f}s  {what}")
    return None


def configure(cluster: Cluster) -> str:
    """Boot the cluster and create the resources; return the node running the primary."""
    banner("1. Boot two nodes (Corosync + Pacemaker, one set of namespaces each)")
    say("stonith-enabled=false: fencing is not configured at this stage (lsaa's fence")
    say("agents come later). Without fencing the survivor simply assumes a lost node is")
    say("down, which is only safe when it really is, as here. Never run production so.")
    t = time.monotonic()
    cluster.start(timeout=90)
    say(f"both nodes online after {time.monotonic() - t:.1f}s")

    banner(f"2. Configure the resources with pcs ({SCRIPT.relative_to(HERE.parent)})")
    n1 = cluster.nodes[0]
    say(indent("\n".join(line for line in SCRIPT.read_text().splitlines()
                         if line.startswith(("pcs", "    ")))))
    t = time.monotonic()
    n1.run(["sh", str(SCRIPT)])
    first = cluster.wait_for(lambda st: settled(st, NODES), "db promoted and app started",
                             60, via=n1)
    say(f"db promoted and app started on {first}, {time.monotonic() - t:.1f}s after the "
        "first pcs command")

    banner("3. Cluster state (crm_mon -1)")
    say(indent(n1.crm_mon()))
    return first


def takeover(victim: Node, survivor: Node) -> bool:
    """Kill the primary's node, report the takeover; True if it happened."""
    banner(f"4. Power cut: kill -KILL the init of {victim.name} (everything in it dies)")
    timeline = failover(victim, survivor)
    if timeline is None:
        say(f"FAILED: {survivor.name} did not take over within 60s")
        say(indent(survivor.crm_mon()))
        return False
    say(f"{survivor.name} took over. Timeline after the kill:")
    for what, at in sorted(timeline.items(), key=lambda kv: kv[1]):
        say(f"  {at:6.2f}s  {what}")
    say(indent(survivor.crm_mon()))
    return True


def rejoin(cluster: Cluster, victim: Node, survivor: Node) -> None:
    """Boot the killed node again and wait until the cluster has settled."""
    banner(f"5. Restart {victim.name}: it boots with an empty /run and rejoins")
    t = time.monotonic()
    victim.boot()
    cluster.wait_online(60)
    say(f"{victim.name} online again after {time.monotonic() - t:.1f}s")
    final = cluster.wait_for(lambda st: settled(st, NODES), "db running on both nodes",
                             60, via=survivor)
    if final == survivor.name:
        say(f"db Unpromoted on {victim.name}; the primary stays on {final} (no fail-back)")
    else:
        say(f"the primary moved back to {final}")
    banner("6. Final state (crm_mon -1)")
    say(indent(survivor.crm_mon()))


def run(keep: bool) -> int:
    """The whole demo; returns the exit status (0 only if the takeover happened and, without
    ``keep``, the teardown left nothing behind)."""
    if (RUN_DIR / "cluster.json").exists():
        say(f"A previous demo was kept in {RUN_DIR}: stopping it first")
        if teardown_kept() != 0:
            return 1
    cluster = Cluster(NODES, run_dir=RUN_DIR, cluster_name="lsaa-demo", keep_dir=keep,
                      die_with_parent=not keep)
    ok = False
    try:
        victim = cluster.node(configure(cluster))
        survivor = next(n for n in cluster.nodes if n is not victim)
        ok = takeover(victim, survivor)
        if ok:
            rejoin(cluster, victim, survivor)
    except ClusterError as e:
        say(f"FAILED: {e}")
        ok = False
    except BaseException:  # Ctrl-C: nothing may stay behind
        cluster.teardown(graceful=False)
        raise
    if keep and ok:
        keep_instructions(cluster)
        return 0
    banner("Tear down")
    left = cluster.teardown()
    for item in left:
        say(f"left behind: {item}")
    if not left:
        say("all processes, mounts and namespaces gone")
    ok = ok and not left
    say(f"demo {'passed' if ok else 'FAILED'} in {time.monotonic() - T0:.1f}s")
    return 0 if ok else 1


def keep_instructions(cluster: Cluster) -> None:
    banner("The cluster keeps running (--keep)")
    enter = {n.name: " ".join(n.nsenter()) for n in cluster.nodes}
    n1 = cluster.nodes[0].name
    lines = ["Run a command on a node by entering its namespaces:"]
    lines += [f"  {name}: {cmd} COMMAND" for name, cmd in enter.items()]
    lines += [
        "For example:",
        f"  {enter[n1]} crm_mon                  (live view; Ctrl-C to quit)",
        f"  {enter[n1]} pcs status",
        f"  {enter[n1]} env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin TERM=$TERM bash",
        f"                                   (a shell \"on\" {n1}; try pcs node standby {n1})",
        f"Logs: {RUN_DIR}/nodes/NODE/log-pacemaker/pacemaker.log and log-corosync/corosync.log",
        "Tear down: python3 demo/demo.py --teardown",
    ]
    say("\n".join(lines))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="leave the cluster running")
    parser.add_argument("--teardown", action="store_true", help="stop a kept cluster")
    args = parser.parse_args()
    ensure_root()
    if args.teardown:
        return teardown_kept()
    return run(args.keep)


if __name__ == "__main__":
    sys.exit(main())
