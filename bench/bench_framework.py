"""Framework cost: meta-data and monitor of a framework-built agent (ocf:lsaa:dummy)
against resource-agents' own Python agent (dummypy), the shell Dummy, and a bare
interpreter start (the floor)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import Cmd, Row, medians

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEARTBEAT = "/usr/lib/ocf/resource.d/heartbeat"


def rows(rounds: int = 40) -> list[Row]:
    state = tempfile.mkdtemp(prefix="lsaa-bench-")
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "OCF_ROOT": "/usr/lib/ocf",
           "OCF_RESOURCE_INSTANCE": "bench", "OCF_RESKEY_state_dir": state,
           "OCF_RESKEY_state": os.path.join(state, "dummy.state"), "HA_LOGFACILITY": "none",
           "OCF_RESKEY_CRM_meta_interval": "10000", "OCF_RESKEY_CRM_meta_timeout": "20000"}
    ours = os.path.join(ROOT, "ocf", "dummy")
    for agent in (ours, f"{HEARTBEAT}/Dummy", f"{HEARTBEAT}/dummypy"):
        # started, so every monitor takes its "running" path
        subprocess.run([agent, "start"], env=env, check=True, capture_output=True)
    cmds = {
        # The floor is the interpreter start our launchers pay: -IS, no site-packages
        # .pth files (on this machine they import certifi and cost ~5 ms a start).
        "bare": Cmd(["/usr/bin/python3", "-IS", "-c", "pass"], env),
        # the floor, a plain start with this machine's site-packages
        "bare-site": Cmd(["/usr/bin/python3", "-c", "pass"], env),
        "lsaa-meta": Cmd([ours, "meta-data"], env),
        "lsaa-mon": Cmd([ours, "monitor"], env),
        "dummypy-meta": Cmd([f"{HEARTBEAT}/dummypy", "meta-data"], env),
        "dummypy-mon": Cmd([f"{HEARTBEAT}/dummypy", "monitor"], env),
        "Dummy-mon": Cmd([f"{HEARTBEAT}/Dummy", "monitor"], env),
        # dummypy as it would run without site: the share of its cost that is the
        # interpreter's .pth files rather than the agent.
        "dummypy-mon-S": Cmd(["/usr/bin/python3", "-S", f"{HEARTBEAT}/dummypy", "monitor"],
                             env),
    }
    m = medians(cmds, rounds)
    return [
        Row("meta-data: ocf:lsaa:dummy vs dummypy", m["lsaa-meta"], "dummypy meta-data",
            m["dummypy-meta"], 0.5),
        Row("monitor: ocf:lsaa:dummy vs dummypy", m["lsaa-mon"], "dummypy monitor",
            m["dummypy-mon"], 0.5),
        Row("meta-data: ocf:lsaa:dummy vs bare python3", m["lsaa-meta"], "python3 -IS -c pass",
            m["bare"], 1.5),
        Row("monitor: ocf:lsaa:dummy vs bare python3", m["lsaa-mon"], "python3 -IS -c pass",
            m["bare"], 1.5),
        Row("meta-data: ocf:lsaa:dummy vs python3 -c pass", m["lsaa-meta"], "python3 -c pass",
            m["bare-site"], 1.5),
        Row("monitor: ocf:lsaa:dummy vs python3 -c pass", m["lsaa-mon"], "python3 -c pass",
            m["bare-site"], 1.5),
        Row("(floor) dummypy monitor vs bare python3", m["dummypy-mon"], "python3 -IS -c pass",
            m["bare"], None),
        Row("(floor) shell Dummy monitor vs bare python3", m["Dummy-mon"], "python3 -IS -c pass",
            m["bare"], None),
        Row("(no site for either) monitor: ocf:lsaa:dummy vs dummypy", m["lsaa-mon"],
            "dummypy monitor, python3 -S", m["dummypy-mon-S"], None),
    ]


if __name__ == "__main__":
    from run import print_table

    print_table(rows())
