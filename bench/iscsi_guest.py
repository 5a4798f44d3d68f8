"""In-guest half of bench_iscsi: LIO timings taken inside the lab guest, printed as JSON.

Run by bench_iscsi.py as ``python3 bench/iscsi_guest.py ROUNDS``.  One
"operation" is both resources together (target then LUN on start/monitor, LUN
then target on stop), lsaa and resource-agents (implementation lio-t, which
runs targetcli) interleaved round by round on the same device.  Then the
monitor cost of lsaa with 1, 32 and 256 LUNs and ACLs.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "lib"))
HB = "/usr/lib/ocf/resource.d/heartbeat"
IQN = "iqn.2024-01.lsaa.bench:t1"
INI = "iqn.2024-01.lsaa.bench:ini"
DEV = "/dev/ubda"


def env(params: dict[str, str], instance: str, interval: bool = False) -> dict[str, str]:
    e = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "OCF_ROOT": "/usr/lib/ocf",
         "OCF_RESOURCE_INSTANCE": instance, "HA_LOGFACILITY": "none", "HA_RSCTMP": "/run/ra",
         "OCF_RESKEY_CRM_meta_timeout": "120000"}
    e.update({"OCF_RESKEY_" + k: v for k, v in params.items()})
    if interval:
        e["OCF_RESKEY_CRM_meta_interval"] = "10000"
    return e


def timed(argv: list[str], e: dict[str, str], ok: tuple[int, ...] = (0,)) -> float:
    t = time.perf_counter()
    r = subprocess.run(argv, env=e, capture_output=True, check=False)
    elapsed = time.perf_counter() - t
    if r.returncode not in ok:
        raise RuntimeError(f"{argv} rc={r.returncode}: {r.stderr.decode()[-300:]}")
    return elapsed


def pair(kind: str) -> dict[str, tuple[list[str], dict[str, str], list[str], dict[str, str]]]:
    if kind == "lsaa":
        t = [os.path.join(ROOT, "ocf", "iscsi-target")]
        lu = [os.path.join(ROOT, "ocf", "iscsi-lun")]
        tp = {"implementation": "lio", "iqn": IQN, "portals": "127.0.0.1:3260",
              "allowed_initiators": INI}
        lp = {"implementation": "lio", "target_iqn": IQN, "lun": "0", "path": DEV}
    else:
        t, lu = [os.path.join(HB, "iSCSITarget")], [os.path.join(HB, "iSCSILogicalUnit")]
        tp = {"implementation": "lio-t", "iqn": IQN, "portals": "127.0.0.1:3260",
              "allowed_initiators": INI}
        lp = {"implementation": "lio-t", "target_iqn": IQN, "lun": "0", "path": DEV,
              "allowed_initiators": INI}
    return {"t": (t, env(tp, f"{kind}_t"), lu, env(lp, f"{kind}_lu"))}


def cycle(kind: str) -> tuple[float, float, float]:
    t, te, lu, le = pair(kind)["t"]
    start = timed([*t, "start"], te) + timed([*lu, "start"], le)
    mon = timed([*t, "monitor"], {**te, "OCF_RESKEY_CRM_meta_interval": "10000"}) + \
        timed([*lu, "monitor"], {**le, "OCF_RESKEY_CRM_meta_interval": "10000"})
    stop = timed([*lu, "stop"], le) + timed([*t, "stop"], te)
    return start, mon, stop


def scaled_monitor(n: int, rounds: int) -> float:
    """lsaa target+LUN monitor with n ACLs on the target and n LUNs in it."""
    from lsaa.backends import lio

    names = [f"{INI}{i}" for i in range(n)]
    tp = {"implementation": "lio", "iqn": IQN, "portals": "127.0.0.1:3260",
          "allowed_initiators": " ".join(names)}
    t = [os.path.join(ROOT, "ocf", "iscsi-target")]
    timed([*t, "start"], env(tp, "scale_t"))
    for i in range(1, n):  # n-1 extra LUNs, made in this one process through rtslib
        path = f"/tmp/bench-lun{i}.img"
        with open(path, "wb") as f:
            f.truncate(1 << 20)
        lio.ensure_lun(IQN, i, f"bench{i}", path, "fileio", f"bench-{i}", "LSAA", "b", False)
    lu = [os.path.join(ROOT, "ocf", "iscsi-lun")]
    lp = {"implementation": "lio", "target_iqn": IQN, "lun": "0", "path": DEV}
    timed([*lu, "start"], env(lp, "scale_lu"))
    samples = []
    for _ in range(rounds):
        samples.append(timed([*t, "monitor"], env(tp, "scale_t", True)) +
                       timed([*lu, "monitor"], env(lp, "scale_lu", True)))
    timed([*lu, "stop"], env(lp, "scale_lu"))
    for i in range(1, n):
        lio.remove_lun(IQN, i, f"bench{i}")
    timed([*t, "stop"], env(tp, "scale_t"))
    return statistics.median(samples)


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    res: dict[str, list[float]] = {}
    cycle("lsaa")  # warm-up: module loading, first configfs use
    cycle("anchor")
    for _ in range(rounds):
        for kind in ("lsaa", "anchor"):
            s, m, p = cycle(kind)
            for op, v in (("start", s), ("monitor", m), ("stop", p)):
                res.setdefault(f"{kind}_{op}", []).append(v)
    out = {k: statistics.median(v) for k, v in res.items()}
    for n in (1, 32, 256):
        out[f"scale{n}"] = scaled_monitor(n, max(rounds, 5))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
