"""fence_lsaa_ipmi against fence_ipmilan (fence-agents, ipmitool underneath), side by side
on one OpenIPMI ipmi_sim, both told the same thing on stdin as the fencer would: lanplus,
cipher suite 3 (without it fence_ipmilan stalls ~10 s on ipmi_sim), power_wait=0.

Floors, shown without a target: a bare interpreter, and an interpreter that only imports
pyghmi's session module (which loads cryptography's OpenSSL backend) -- what any
pyghmi-based agent pays before it sends a packet."""

from __future__ import annotations

import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, ROOT)
from tests.functional import ipmi_lab  # noqa: E402
from timing import Cmd, Row, medians  # noqa: E402

OURS = os.path.join(ROOT, "fence", "fence_lsaa_ipmi")
ANCHOR = "/usr/sbin/fence_ipmilan"


def rows(rounds: int = 30) -> list[Row]:
    reason = ipmi_lab.missing()
    if reason:
        raise RuntimeError(reason)
    if not os.path.exists(ANCHOR):
        raise RuntimeError(f"{ANCHOR} is not installed (fence-agents)")
    scratch = ipmi_lab.scratch("lsaa-bench-ipmi-")
    sim = ipmi_lab.IpmiSim(scratch / "sim")
    sim.start()
    try:
        return _rows(sim, rounds)
    finally:
        sim.kill()
        shutil.rmtree(scratch, ignore_errors=True)


def _rows(sim: ipmi_lab.IpmiSim, rounds: int) -> list[Row]:
    env = {**ipmi_lab.env(), "HA_LOGFACILITY": "none"}

    def stdin(action: str, cipher: str | None = "3") -> bytes:
        lines = [f"action={action}", "ip=127.0.0.1", f"ipport={sim.port}",
                 f"username={ipmi_lab.USER}", f"password={ipmi_lab.PASSWORD}", "lanplus=1",
                 "power_wait=0"] + ([f"cipher={cipher}"] if cipher else [])
        return ("\n".join(lines) + "\n").encode()

    sim.set_power("on")
    status = {
        "bare": Cmd(["/usr/bin/python3", "-c", "pass"], env),
        "import": Cmd(["/usr/bin/python3", "-I", "-c", "import pyghmi.ipmi.private.session"],
                      env),
        "lsaa": Cmd([OURS], env, stdin("status")),
        "lsaa-auto": Cmd([OURS], env, stdin("status", None)),
        "ipmilan": Cmd([ANCHOR], env, stdin("status")),
    }
    s = medians(status, rounds)
    reboot = {
        "lsaa": Cmd([OURS], env, stdin("reboot")),
        "ipmilan": Cmd([ANCHOR], env, stdin("reboot")),
    }
    r = medians(reboot, max(10, rounds // 2))
    if sim.power() != "on":
        raise RuntimeError("the simulated machine is not on after the reboots")
    return [
        Row("ipmi status: fence_lsaa_ipmi vs fence_ipmilan", s["lsaa"],
            "fence_ipmilan status -C 3", s["ipmilan"], 0.5),
        Row("ipmi reboot: fence_lsaa_ipmi vs fence_ipmilan", r["lsaa"],
            "fence_ipmilan reboot -C 3", r["ipmilan"], 0.5),
        Row("ipmi status, cipher unset (17, then 3)", s["lsaa-auto"],
            "fence_ipmilan status -C 3", s["ipmilan"], None),
        Row("(floor) python3 importing pyghmi vs fence_ipmilan", s["import"],
            "fence_ipmilan status -C 3", s["ipmilan"], None),
        Row("(floor) fence_lsaa_ipmi status vs importing pyghmi", s["lsaa"],
            "python3 -I -c 'import pyghmi...session'", s["import"], None),
        Row("(floor) bare python3 vs fence_ipmilan", s["bare"], "fence_ipmilan status -C 3",
            s["ipmilan"], None),
    ]


if __name__ == "__main__":
    from run import print_table

    print_table(rows())
