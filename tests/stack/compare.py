"""lsaa's HA stack against the same stack built with the ClusterLabs/LINBIT agents.

    python -m tests.stack compare [-n N] [--results DIR]

In one invocation: boot the two-node lab (tests/stack/cluster.py), configure it with
demo/stack.pcs.sh (lsaa's agents, fence_lsaa_ipmi), power-cut the active node N times
(back and forth), tear everything down; then the same with
demo/stack-clusterlabs.pcs.sh (ocf:linbit:drbd, LVM-activate, iSCSITarget +
iSCSILogicalUnit lio-t, ldirectord, fence_ipmilan) on a freshly booted lab, whose nodes
also run tests/stack/clusterlabs.sh at every boot (D-Bus for targetcli, ldirectord.cf).
Both stacks use the same resource names, order, constraints, monitor intervals and
stickiness, the same DRBD/LVM/filesystem setup, BMCs, Corosync token and POST delay, so
:meth:`Stack.failover` measures both the same way.

Prints both timelines side by side (seconds after the power cut; the median over the N
failovers of each stack), the MTTR ratio and the ratio per phase (fenced, storage up =
fs started, target up = lun0 started, service answering = MTTR), and where the takeover's
time goes: each resource action's own execution time on the survivor (pacemaker-execd's
"execution time") against the time Pacemaker spends between actions.

:func:`compare` is the programmatic entry (bench/bench_stack.py).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import sys
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING

from tests.lab.labctl import REPO, LabError

from .cluster import (
    ANSWERING,
    NODES,
    PCS_SCRIPT,
    POST_DELAY,
    SERVICE,
    TOKEN_MS,
    Failover,
    Stack,
    running_stack,
    stamp,
)

if TYPE_CHECKING:
    from tests.lab.labctl import Guest

HERE = Path(__file__).resolve().parent
CL_SCRIPT = REPO / "demo" / "stack-clusterlabs.pcs.sh"
CL_NODE_SH = HERE / "clusterlabs.sh"


class ClusterLabsStack(Stack):
    """The lab cluster for demo/stack-clusterlabs.pcs.sh.

    Its nodes run ``clusterlabs.sh start`` at every boot after what every stack node
    runs (:meth:`Stack.start_node`): the system D-Bus for targetcli and
    /etc/ha.d/ldirectord.cf for this lab's VIP and real servers.
    """

    def start_node(self, g: Guest) -> None:
        super().start_node(g)
        g.run(["/bin/sh", str(CL_NODE_SH), "start", self.vip,
               *[self.node_ip(n) for n in NODES]], check=True, timeout=120)


@dataclass(frozen=True)
class Flavour:
    """One way of building the stack: its pcs script, fence agent and node setup."""

    name: str
    script: Path
    agent: str
    stack_class: type[Stack]


LSAA = Flavour("lsaa", PCS_SCRIPT, "fence_lsaa_ipmi", Stack)
CLUSTERLABS = Flavour("ClusterLabs", CL_SCRIPT, "fence_ipmilan", ClusterLabsStack)

# The phases compared one by one: a name and the timeline mark that ends it
# (victim/survivor stand for the node names, see generic()).
PHASES = [
    ("fenced", "fencer: victim fenced"),
    ("storage up (fs started)", "fs started on survivor"),
    ("target up (lun0 started)", "lun0 started on survivor"),
    ("service answering (MTTR)", ANSWERING),
]

# the group member before the VIP: IPaddr2 has the address up (and its gratuitous ARP out)
# a little before its start result is logged, never before this one has started
BEFORE_VIP = SERVICE[SERVICE.index("vip") - 1]

EXEC_RX = re.compile(r"pacemaker-execd.*info: (\S+) (\w+) \(call \d+, PID \d+\) exited with "
                     r"status (\d+) \(execution time ([\d.]+)(ms|s)\b")


def generic(f: Failover, mark: str) -> str:
    """A timeline mark with the node names replaced by their roles in this failover."""
    mark = re.sub(rf"\b{re.escape(f.victim)}\b", "victim", mark)
    return re.sub(rf"\b{re.escape(f.survivor)}\b", "survivor", mark)


def executions(log: str, since: float, until: float) -> list[tuple[float, str, float]]:
    """(end time, "RSC ACTION", seconds) of every agent run pacemaker-execd logged as
    finished between ``since`` and ``until`` (wall-clock)."""
    out = []
    for line in log.splitlines():
        m = EXEC_RX.search(line)
        t = stamp(line) if m else None
        if m is None or t is None or not since <= t <= until:
            continue
        secs = float(m.group(4)) / (1000 if m.group(5) == "ms" else 1)
        out.append((t, f"{m.group(1)} {m.group(2)}", secs))
    return out


@dataclass
class Run:
    """One measured failover of one flavour, with the survivor's agent runs."""

    failover: Failover
    # (seconds after the kill, "RSC ACTION", execution seconds), up to the service answering
    actions: list[tuple[float, str, float]] = field(default_factory=list)

    def marks(self) -> dict[str, float]:
        return {generic(self.failover, k): v for k, v in self.failover.marks.items()}


@dataclass
class Result:
    flavour: Flavour
    runs: list[Run] = field(default_factory=list)
    setup_s: float | None = None  # pcs script pushed -> everything started

    def median(self, mark: str) -> float | None:
        vals = [r.marks()[mark] for r in self.runs if mark in r.marks()]
        return statistics.median(vals) if vals else None

    @property
    def mttr(self) -> float | None:
        return self.median(ANSWERING)

    def action_medians(self) -> dict[str, float]:
        """"RSC ACTION" -> median over the runs of its total execution time in the takeover
        (a notify runs several times in one takeover: summed)."""
        per: dict[str, list[float]] = {}
        for r in self.runs:
            tot: dict[str, float] = {}
            for _, what, secs in r.actions:
                tot[what] = tot.get(what, 0.0) + secs
            for what, secs in tot.items():
                per.setdefault(what, []).append(secs)
        return {k: statistics.median(v) for k, v in per.items()}


def say(text: str = "") -> None:
    print(text, flush=True)


def stack_kw(flavour: Flavour) -> dict[str, object]:
    """running_stack()'s keywords for a lab cluster that ``flavour``'s script configures."""
    kw: dict[str, object] = {"stack_class": flavour.stack_class, "agent": flavour.agent}
    if "with_client" in {f.name for f in fields(Stack)}:
        # the MTTR compared is the HTTP service's; an iSCSI client guest would be a third
        # UML on this 2-CPU machine, load that both stacks' takeovers would share
        kw["with_client"] = False
    return kw


def measure(flavour: Flavour, n: int, results: str | None = None, **kw: float) -> Result:
    """Boot a lab, configure it with ``flavour``'s script, run ``n`` failovers, tear down."""
    res = Result(flavour)
    say(f"\n== {flavour.name}: {flavour.script.relative_to(REPO)}, fence agent {flavour.agent}")
    with running_stack(results=results, keep=bool(results), **stack_kw(flavour), **kw) as st:
        say(f"both nodes online {st.t_online:.1f} s after the first boot")
        took = st.pcs_script(script=flavour.script)
        t1 = time.monotonic()
        active = st.wait_steady()
        res.setup_s = time.monotonic() - t1
        say(f"pcs script {took:.1f} s; everything started {res.setup_s:.1f} s later,"
            f" service on {active}")
        for i in range(1, n + 1):
            f = st.failover(active)
            if f.mttr is None or f.settled != f.survivor or not f.rejoined:
                raise LabError(f"{flavour.name}: failover {i} did not complete:\n{f.table()}")
            before = f.marks.get(f"{BEFORE_VIP} started on {f.survivor}")
            if before is None or f.mttr < before:
                # a GET answered before the survivor could have the VIP came from elsewhere:
                # the rebooted victim's own real server (the host's ARP entry for the VIP
                # still names the victim's MAC, and the VIP is local on every real server)
                raise LabError(f"{flavour.name}: HTTP answered at {f.mttr:.2f} s, before"
                               f" {f.survivor} started the VIP: not a takeover\n{f.table()}")
            end = f.t_kill + max(f.mttr, f.marks.get("web started on " + f.survivor, 0.0))
            acts = executions(st.log(f.survivor), f.t_kill, end)
            run = Run(f, [(t - f.t_kill, what, secs) for t, what, secs in acts])
            res.runs.append(run)
            say(f"failover {i}: {f.victim} -> {f.survivor}, MTTR {f.mttr:.2f} s")
            active = st.wait_steady(f.survivor)
            if active != f.survivor:
                raise LabError(f"{flavour.name}: the service moved back to {active}")
    return res


def compare(n: int = 1, results: str | None = None, **kw: float
            ) -> tuple[Result, Result]:
    """Both flavours, one after the other, each on a lab of its own; (lsaa, ClusterLabs)."""
    return measure(LSAA, n, results, **kw), measure(CLUSTERLABS, n, results, **kw)


def single(r: Result) -> str:
    """One flavour's failovers (``--only``): each timeline."""
    return "\n\n".join(f"{r.flavour.name} failover {i}: {run.failover.victim} ->"
                        f" {run.failover.survivor}\n{run.failover.table()}\n  agents: "
                        + ", ".join(f"{what} {secs:.2f}@{t:.2f}" for t, what, secs in run.actions)
                        for i, run in enumerate(r.runs, 1))


def _fmt(v: float | None) -> str:
    return f"{v:7.2f}" if v is not None else "      -"


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:5.2f}" if a is not None and b else "    -"


def report(ours: Result, theirs: Result) -> str:
    """Both timelines side by side, the phases' ratios and the agents' execution times."""
    a, b = ours.flavour.name, theirs.flavour.name
    n = len(ours.runs)
    lines = [f"timeline, seconds after the power cut (median of {n} failover"
             f"{'s' if n != 1 else ''} each; victim = the node cut, survivor = the other):",
             f"  {a:>7}  {b:>11}  ratio  mark"]
    marks = {m for r in ours.runs + theirs.runs for m in r.marks()}

    def key(m: str) -> float:
        return min(v for v in (ours.median(m), theirs.median(m)) if v is not None)

    for m in sorted(marks, key=key):
        x, y = ours.median(m), theirs.median(m)
        lines.append(f"  {_fmt(x)}  {_fmt(y):>11}  {_ratio(x, y)}  {m}")
    lines += ["", f"phases (seconds after the power cut): {a} vs {b}, ratio"]
    for name, mark in PHASES:
        x, y = ours.median(mark), theirs.median(mark)
        lines.append(f"  {name:28} {_fmt(x)}  {_fmt(y)}  {_ratio(x, y)}")
    # from the fencing confirmation to the service answering: the resource agents' share.
    # Only the actions in the chain count (promote, notify, start: each waits for the one
    # before); a started resource's first monitor runs beside the next start.
    lines += ["", "takeover after fencing (fenced -> answering): the chain's agent execution"
              " time on the survivor vs the rest (Pacemaker's transitions, CIB updates)"]
    for r in (ours, theirs):
        fenced, mttr = r.median("fencer: victim fenced"), r.mttr
        if fenced is None or mttr is None:
            continue
        chain = statistics.median(
            sum(secs for t, what, secs in run.actions
                if fenced <= t <= mttr and not what.endswith(" monitor"))
            for run in r.runs)
        lines.append(f"  {r.flavour.name:11} {mttr - fenced:6.2f} s = agents {chain:5.2f} s"
                     f" + other {mttr - fenced - chain:5.2f} s")
        lines.append("      execution s: " + ", ".join(
            f"{k} {v:.2f}" for k, v in r.action_medians().items()))
    if ours.mttr and theirs.mttr:
        lines += ["", f"MTTR {a} {ours.mttr:.2f} s, {b} {theirs.mttr:.2f} s:"
                  f" ratio {ours.mttr / theirs.mttr:.2f} (target <= 0.70)"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.stack compare", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=1,
                    help="failovers per stack, back and forth (default 1)")
    ap.add_argument("--results", metavar="DIR",
                    help="keep the nodes' logs (pacemaker, corosync, console) in DIR")
    ap.add_argument("--token", type=int, default=TOKEN_MS, metavar="MS",
                    help=f"corosync totem token (default {TOKEN_MS})")
    ap.add_argument("--post-delay", type=float, default=POST_DELAY, metavar="S",
                    help="seconds from a BMC power-on to the guest's boot"
                         f" (default {POST_DELAY:g})")
    ap.add_argument("--only", choices=[LSAA.name, CLUSTERLABS.name],
                    help="measure one of the stacks only (to look at its timelines)")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("the lab needs root", file=sys.stderr)
        return 2

    def on_term(_sig: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    t0 = time.monotonic()
    try:
        kw = {"token_ms": args.token, "post_delay": args.post_delay}
        if args.only:
            only = measure(LSAA if args.only == LSAA.name else CLUSTERLABS, args.n,
                           args.results, **kw)
            say()
            say(single(only))
        else:
            ours, theirs = compare(args.n, args.results, **kw)
            say()
            say(report(ours, theirs))
    except KeyboardInterrupt:
        print("\ninterrupted: everything torn down", file=sys.stderr)
        return 130
    say(f"total {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
