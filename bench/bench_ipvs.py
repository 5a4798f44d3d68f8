"""ocf:lsaa:ipvs in the lab guest: start at 1/100/1,000 real servers (netlink
backend; at 1,000 also backend=ipvsadm) against ``ipvsadm -R`` of the same
table, monitor at 1,000 against a bare interpreter, start/monitor against
ocf:heartbeat:ldirectord (2 servers, HTTP checks), and one monitor
health-checking 100 servers of which 10 are black-holed (1 s timeout).

All timings are taken inside one booted guest (bench/ipvs_guest.py), each
comparison interleaved round by round.
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import Row

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def measure(rounds: int = 7) -> dict[str, float]:
    sys.path.insert(0, ROOT)
    from tests.lab.labctl import Lab
    from tests.lab.test_agent_ipvs import BACKEND, RS, SETUP

    with Lab() as lab:
        g = lab.guest("node1").wait_ready()
        g.sh(SETUP, check=True)
        for ns in RS:
            g.spawn(["ip", "netns", "exec", ns, "python3", "-c", BACKEND, ns])
        g.run(["sh", "-c", "for i in $(seq 100); do python3 -c \"import urllib.request as u; "
               "u.urlopen('http://10.20.0.12:8080/', timeout=1)\" 2>/dev/null && exit 0; "
               "sleep 0.1; done; exit 1"], check=True)
        r = g.run(["python3", os.path.join(ROOT, "bench", "ipvs_guest.py"), str(rounds)],
                  timeout=1800, check=True)
    data: dict[str, float] = json.loads(r.stdout.strip().splitlines()[-1])
    return data


def rows(rounds: int = 7) -> list[Row]:
    m = measure(rounds)
    out = [Row(f"ipvs start, {n} real servers vs ipvsadm -R", m[f"start{n}"],
               "ipvsadm -R (same table)", m[f"restore{n}"], 1.5 if n == 1000 else None)
           for n in (1, 100, 1000)]
    out += [Row(f"ipvs monitor, {n} real servers vs bare python3", m[f"monitor{n}"],
                "python3 -c pass", m["bare"], 3.0 if n == 1000 else None)
            for n in (1, 100, 1000)]
    if "start1000_ipvsadm" in m:  # the ipvsadm fallback, for the record (no target)
        out += [Row("ipvs start, 1000 servers, backend=ipvsadm vs ipvsadm -R",
                    m["start1000_ipvsadm"], "ipvsadm -R (same table)", m["restore1000"], None),
                Row("ipvs monitor, 1000 servers, backend=ipvsadm vs bare python3",
                    m["monitor1000_ipvsadm"], "python3 -c pass", m["bare"], None)]
    if "ldir_start" in m:
        out += [Row("ipvs start vs ocf:heartbeat:ldirectord (2 servers, http)", m["lsaa_start"],
                    "ldirectord start", m["ldir_start"], 0.2),
                Row("ipvs monitor vs ocf:heartbeat:ldirectord", m["lsaa_monitor"],
                    "ldirectord monitor", m["ldir_monitor"], 0.3)]
    out.append(Row(f"health checks: 100 servers, 10 dead ({m['quiesced']:.0f} quiesced)",
                   m["health100"], "the 1 s check timeout", 1.0, 2.0))
    return out


if __name__ == "__main__":
    from run import print_table

    print_table(rows())
