"""``python -m tests.stack``: the two-node cluster in lab guests, with real fencing.

    python -m tests.stack demo [--keep]     boot, configure (demo/stack.pcs.sh), start the
                                            iSCSI client, show the cluster, power-cut the
                                            active node, print the measured failover
                                            timeline (MTTR: until both an HTTP GET through
                                            the VIP and an iSCSI write are answered), the
                                            lost-write and DRBD checks, tear down
    python -m tests.stack soak [-n 10]      N failovers back and forth: MTTR, lost
                                            acknowledged writes and DRBD state of each
    python -m tests.stack run NODE CMD...   run a command in a node (or the client) of a
                                            kept demo
    python -m tests.stack compare [-n N]    the same stack with the ClusterLabs/LINBIT
                                            agents, MTTRs side by side (compare.py)
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import time
from pathlib import Path

from .bmc import PASSWORD, USER
from .client import Verification
from .cluster import (
    NODES,
    PCS_SCRIPT,
    POST_DELAY,
    TOKEN_MS,
    Failover,
    Stack,
    http_get,
    running_stack,
)

KEEP_STATE = Path("/run/lsaa-stack.json")


def say(text: str = "") -> None:
    print(text, flush=True)


def banner(text: str) -> None:
    say()
    say(f"== {text}")


def indent(text: str) -> str:
    return "\n".join("   " + line for line in text.rstrip().splitlines())


def configure(st: Stack, in_guest: bool = False) -> str:
    where = "on node1" if in_guest else "on a CIB copy, pushed from node1"
    banner(f"Resources and fencing: {PCS_SCRIPT.relative_to(PCS_SCRIPT.parents[1])} {where}"
           f" (fence agent {st.agent})")
    took = st.pcs_script(in_guest=in_guest)
    t1 = time.monotonic()
    active = st.wait_steady()
    say(f"pcs script {took:.1f} s; everything started {time.monotonic() - t1:.1f} s later,"
        f" service on {active}")
    if st.client is not None:
        dev = st.start_client()
        say(f"iSCSI client ({st.client.g.ip()}, not a cluster node): ocf:lsaa:iscsi-initiator"
            f" logged in with CHAP through the VIP portal; LUN 0 is {dev}, written with"
            " O_DIRECT|O_SYNC, numbered and checksummed 4 KiB records")
        say(indent(st.client.session()))
        say(f"LIO fileio backstore lun0 on {active}: {st.lun_cache_mode(active)}")
    return active


def show_failover(st: Stack, f: Failover) -> None:
    say(f"timeline (seconds after the SIGKILL of {f.victim}'s guest):")
    say(f.table())
    http, iscsi = f.mttr_http, f.mttr_iscsi
    say(f"MTTR (kill -> HTTP through the VIP and iSCSI both answer again, on {f.survivor}):"
        f" {fmt(f.mttr)}  (HTTP GET {fmt(http)}, iSCSI write {fmt(iscsi)})"
        if f.iscsi_client else f"MTTR (kill -> first HTTP GET through the VIP answered,"
        f" {f.survivor} directing): {fmt(http)}")
    if f.iscsi is not None:
        say(f"iSCSI read-back on {f.survivor} ({f.victim} still off): {f.iscsi.line()}"
            f"  {'ok' if f.iscsi.ok else 'ACKNOWLEDGED WRITES LOST'}")
    if f.fence_constraint:
        say(f"DRBD fencing: the constraint crm-fence-peer.sh placed (CIB on {f.survivor},"
            " after the takeover):")
        say(indent(f.fence_constraint))
    if f.drbd is not None:
        say(f"DRBD after {f.victim}'s rejoin and resync: {f.drbd.line()}"
            f"  {'ok' if f.drbd.ok else 'NOT OK'}")
        say("DRBD handlers run (kernel log), and what they said (syslog):")
        say(indent("\n".join(f.drbd.handlers + f.drbd.handler_log) or "none"))
    if f.served:
        counts = ", ".join(f"{b} {f.served.count(b)}" for b in sorted(set(f.served)))
        say(f"GETs through the VIP after the kill answered by: {counts}"
            f" ({f.http_failures} failed during the whole probe)")
    say(f"{f.victim}'s BMC: {', '.join(f.bmc)}")
    say(f"stonith_admin --history {f.victim} (on {f.survivor}):")
    say(indent(st.fence_history(f.survivor, f.victim)))


def fmt(t: float | None) -> str:
    return "none" if t is None else f"{t:.2f} s"


def final_check(st: Stack) -> Verification | None:
    """Read the LUN back once more (covers the writes since the last failover's check)."""
    if st.client is None:
        return None
    v = st.client.verify(restart=False)
    say(f"iSCSI read-back at the end: {v.line()}  {'ok' if v.ok else 'ACKNOWLEDGED WRITES LOST'}")
    return v


def demo(keep: bool, in_guest: bool, results: str | None, **kw: object) -> int:
    banner("Booting the lab guests (UML): two nodes, where Corosync + Pacemaker start,"
           " and an iSCSI client")
    with running_stack(results=results, keep=bool(results), **kw) as st:
        say(f"both nodes online {st.t_online:.1f} s after the first boot"
            f" (token {st.token_ms} ms, POST delay {st.post_delay:g} s,"
            f" BMCs: ipmi_sim on {st.net.host_ip}:"
            f"{st.bmc_port('node1')}/{st.bmc_port('node2')})")
        active = configure(st, in_guest)
        say(indent(st.crm_mon(active)))
        banner(f"Power cut: SIGKILL of {active}'s guest; {active} is fenced through its BMC")
        f = st.failover(active)
        show_failover(st, f)
        banner(f"After the takeover and {f.victim}'s rejoin")
        st.wait_steady(f.survivor)
        say(indent(st.crm_mon(f.survivor)))
        say(f"ipvsadm -Ln on {f.survivor}:")
        say(indent(st.guests[f.survivor].run(["ipvsadm", "-Ln"], timeout=60).stdout))
        bodies = [http_get(st.lab, st.vip) for _ in range(4)]
        say(f"4 HTTP GETs of http://{st.vip}/ from {st.net.host_ip}: {bodies}")
        v = final_check(st)
        ok = (v is None or v.ok) and f.lost_writes in (None, 0) and f.drbd is not None \
            and f.drbd.ok
        if keep:
            keep_running(st)
    say("\nEverything torn down.")
    return 0 if ok else 1


def keep_running(st: Stack) -> None:
    state = {n: str(st.guests[n].share) for n in NODES}
    if st.client is not None:
        state["client"] = str(st.client.g.share)
    state["netns"] = st.lab.netns
    KEEP_STATE.write_text(json.dumps(state))
    banner("Kept running (the guests live as long as this process): Ctrl-C tears down")
    me = f"{sys.executable} -m tests.stack"
    say(f"  {me} run node1 crm_mon -1          # any command in a node")
    say(f"  {me} run node2 pcs status")
    if st.client is not None:
        say(f"  {me} run client iscsiadm -m session -P 1   # the iSCSI client;"
            f" its writes: {st.client.log}")
    say(f"  nsenter --net={st.lab.netns} ipmitool -I lanplus -C 3 -H {st.net.host_ip}"
        f" -p {st.bmc_port('node1')} -U {USER} -P {PASSWORD} chassis power status")
    say(f"  logs: {st.lab.results}/NODE/log/{{pacemaker,corosync}}/")
    try:
        signal.pause()
    finally:
        KEEP_STATE.unlink(missing_ok=True)


def run_in_kept(node: str, argv: list[str]) -> int:
    """Run a command in a node of a kept demo, through the guest's command spool."""
    try:
        share = Path(json.loads(KEEP_STATE.read_text())[node])
    except (OSError, KeyError, ValueError):
        print(f"no kept demo with a node {node} (python -m tests.stack demo --keep)",
              file=sys.stderr)
        return 2
    ctl = share / "ctl"
    rid = f"x{os.getpid()}-{int(time.time() * 1000)}"
    tmp = ctl / f".req-{rid}.tmp"
    tmp.write_text(json.dumps({"kind": "run", "argv": argv, "env": {}, "input": None,
                               "timeout": 120, "cwd": None}))
    tmp.rename(ctl / f"req-{rid}.json")
    resp = ctl / f"resp-{rid}.json"
    deadline = time.monotonic() + 150
    while not resp.exists():
        if time.monotonic() > deadline:
            print("no answer from the guest", file=sys.stderr)
            return 1
        time.sleep(0.02)
    data = json.loads(resp.read_text())
    resp.unlink()
    sys.stdout.write(data.get("stdout", ""))
    sys.stderr.write(data.get("stderr", data.get("error", "")))
    return int(data.get("rc", 1))


def soak(n: int, in_guest: bool, results: str | None, **kw: object) -> int:
    banner(f"Soak: {n} failovers back and forth")
    from tests.lab.labctl import host_snapshot, processes_mentioning

    mttrs: list[float] = []
    lost = acked = 0
    split: list[str] = []  # DRBD's kernel lines about a split brain, from every run
    before = host_snapshot()
    with running_stack(results=results, keep=bool(results), **kw) as st:
        say(f"both nodes online {st.t_online:.1f} s after the first boot")
        active = configure(st, in_guest)
        for i in range(1, n + 1):
            f = st.failover(active)
            ok = ("on" in f.bmc and f.settled == f.survivor and f.rejoined
                  and f.drbd is not None and f.drbd.ok and f.lost_writes in (None, 0))
            fenced = f.marks.get(f"fencer: {f.victim} fenced")
            say(f"run {i:2d}: {f.victim} -> {f.survivor}  MTTR {fmt(f.mttr)}"
                f" (HTTP {fmt(f.mttr_http)}, iSCSI {fmt(f.mttr_iscsi)};"
                f" fenced {fmt(fenced)}, rejoined"
                f" {f.marks.get('rejoined: both nodes online', 0):.1f} s)"
                f"  BMC {','.join(f.bmc)}  {'ok' if ok else 'FAILED'}")
            if f.iscsi is not None:
                acked += f.iscsi.acknowledged
                lost += f.iscsi.lost
                say(f"        iSCSI: {f.iscsi.line()}")
            if f.drbd is not None:
                say(f"        DRBD: {f.drbd.line()}")
                split += f.drbd.split_brain
            if not ok or f.mttr is None:
                show_failover(st, f)
                return 1
            mttrs.append(f.mttr)
            active = st.wait_steady(f.survivor)
            if active != f.survivor:
                say(f"the service moved back to {active}")
                return 1
        v = final_check(st)
        if v is not None:
            acked, lost = acked + v.acknowledged, lost + v.lost
            if not v.ok:
                return 1
    # the lab's close raised if a process of it survived; mounts and loop devices too
    after = host_snapshot()
    left = [*processes_mentioning(str(st.lab.workdir)),
            *sorted(set(after["mounts"]) ^ set(before["mounts"])),
            *sorted(set(after["loops"]) ^ set(before["loops"]))]
    say(f"\nMTTR over {n} failovers: min {min(mttrs):.2f} s, median "
        f"{statistics.median(mttrs):.2f} s, max {max(mttrs):.2f} s")
    if st.client is not None:
        say(f"iSCSI: {acked} writes acknowledged, {lost} lost (read back after each takeover"
            " and at the end)")
    say(f"split brain: {len(split)} (DRBD's kernel log on both nodes after each rejoin)"
        + "".join(f"\n  {line}" for line in split))
    say(f"left behind: {', '.join(map(str, left)) if left else 'nothing'} (processes, mounts,"
        " loop devices)")
    return 0 if not split and not left and lost == 0 else 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["compare"]:  # its own options (argparse's REMAINDER drops a leading -x)
        from .compare import main as compare_main

        return compare_main(argv[1:])
    ap = argparse.ArgumentParser(prog="python -m tests.stack", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("demo", help="the whole show, with the failover timeline")
    d.add_argument("--keep", action="store_true", help="leave it running until Ctrl-C")
    s = sub.add_parser("soak", help="N consecutive failovers back and forth")
    s.add_argument("-n", type=int, default=10)
    for p in (d, s):
        p.add_argument("--results", metavar="DIR",
                       help="keep the nodes' logs (pacemaker, corosync, console) in DIR")
        p.add_argument("--token", type=int, default=TOKEN_MS, metavar="MS",
                       help=f"corosync totem token (default {TOKEN_MS})")
        p.add_argument("--post-delay", type=float, default=POST_DELAY, metavar="S",
                       help="seconds from a BMC power-on to the guest's boot"
                            f" (default {POST_DELAY:g})")
        p.add_argument("--pcs-in-guest", action="store_true",
                       help="run every pcs command of demo/stack.pcs.sh in node1 (slow)")
        p.add_argument("--no-drbd-fencing", action="store_true",
                       help="drbd.conf without resource-level fencing (to measure its cost)")
    c = sub.add_parser("compare", add_help=False,
                       help="the lsaa stack and the ClusterLabs/LINBIT agents' one, MTTR side by"
                            " side (tests/stack/compare.py; compare --help)")
    c.add_argument("args", nargs=argparse.REMAINDER)
    r = sub.add_parser("run", help="run a command in a node of a kept demo")
    r.add_argument("node", choices=(*NODES, "client"))
    r.add_argument("argv", nargs=argparse.REMAINDER)
    args = ap.parse_args(argv)
    if args.cmd == "run":
        return run_in_kept(args.node, args.argv)
    if os.geteuid() != 0:
        print("the lab needs root", file=sys.stderr)
        return 2

    def on_term(_sig: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    # Ctrl-C tears down even when started from a shell that ignores SIGINT (a background job)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    t0 = time.monotonic()
    try:
        kw = {"token_ms": args.token, "post_delay": args.post_delay,
              "drbd_fencing": not args.no_drbd_fencing}
        rc = (demo(args.keep, args.pcs_in_guest, args.results, **kw) if args.cmd == "demo"
              else soak(args.n, args.pcs_in_guest, args.results, **kw))
    except KeyboardInterrupt:
        print("\ninterrupted: everything torn down", file=sys.stderr)
        return 130
    say(f"total {time.monotonic() - t0:.0f} s")
    return rc


if __name__ == "__main__":
    sys.exit(main())
