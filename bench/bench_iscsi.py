"""ocf:lsaa:iscsi-target + iscsi-lun against resource-agents' iSCSITarget +
iSCSILogicalUnit, both resources together, on the same backend.

* LIO: inside one lab guest (bench/iscsi_guest.py; the anchor's lio-t runs
  targetcli, which needs the system D-Bus started here), interleaved round by
  round; plus lsaa's monitor with 1, 32 and 256 LUNs and ACLs.
* tgt: on the host, tgtd (control port 0, as the anchor cannot choose one) in a
  network namespace of its own, interleaved round by round.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import Row, once, Cmd  # noqa: I001

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HB = "/usr/lib/ocf/resource.d/heartbeat"
IQN = "iqn.2024-01.lsaa.bench:tgt"
INI = "iqn.2024-01.lsaa.bench:ini"


def measure_lio(rounds: int) -> dict[str, float]:
    sys.path.insert(0, ROOT)
    from tests.lab.labctl import Lab

    with Lab() as lab:
        g = lab.guest("node1", disks=["128M"], cpu=1).wait_ready()
        g.sh("mkdir -p /run/dbus /run/ra", check=True)
        g.spawn(["dbus-daemon", "--system", "--nofork", "--nopidfile"])
        g.run(["sh", "-c", "for i in $(seq 100); do test -S /run/dbus/system_bus_socket && "
               "exit 0; sleep 0.1; done; exit 1"], check=True)
        r = g.run(["python3", os.path.join(ROOT, "bench", "iscsi_guest.py"), str(rounds)],
                  timeout=1800, check=True)
    data: dict[str, float] = json.loads(r.stdout.strip().splitlines()[-1])
    return data


def _env(params: dict[str, str], instance: str, rsctmp: str,
         interval: bool = False) -> dict[str, str]:
    e = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "OCF_ROOT": "/usr/lib/ocf",
         "OCF_RESOURCE_INSTANCE": instance, "HA_LOGFACILITY": "none", "HA_RSCTMP": rsctmp,
         "OCF_RESKEY_CRM_meta_timeout": "60000"}
    e.update({"OCF_RESKEY_" + k: v for k, v in params.items()})
    if interval:
        e["OCF_RESKEY_CRM_meta_interval"] = "10000"
    return e


def measure_tgt(rounds: int) -> dict[str, float]:
    tmp = tempfile.mkdtemp(prefix="lsaa-bench-iscsi-")
    img = os.path.join(tmp, "lun1.img")
    with open(img, "wb") as f:
        f.truncate(64 << 20)
    if os.path.exists("/var/run/tgtd/socket.0"):
        raise RuntimeError("a tgtd already uses control port 0")
    proc = subprocess.Popen(["unshare", "--net", "sh", "-c", "ip link set lo up && exec tgtd "
                             "-f -C 0 --iscsi portal=127.0.0.1:3260"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if os.path.exists("/var/run/tgtd/socket.0"):
                break
            time.sleep(0.05)
        chap = {"incoming_username": "benchuser", "incoming_password": "benchsecret1"}
        ops = {
            "lsaa": (os.path.join(ROOT, "ocf", "iscsi-target"),
                     {"implementation": "tgt", "iqn": IQN, "tid": "1",
                      "portals": "127.0.0.1:3260", "allowed_initiators": INI, **chap},
                     os.path.join(ROOT, "ocf", "iscsi-lun"),
                     {"implementation": "tgt", "target_iqn": IQN, "lun": "1", "path": img}),
            "anchor": (os.path.join(HB, "iSCSITarget"),
                       {"implementation": "tgt", "iqn": IQN, "tid": "1",
                        "portals": "127.0.0.1:3260", "allowed_initiators": "ALL", **chap},
                       os.path.join(HB, "iSCSILogicalUnit"),
                       {"implementation": "tgt", "target_iqn": IQN, "lun": "1", "path": img}),
        }
        samples: dict[str, list[float]] = {}
        for i in range(rounds + 2):
            for kind, (t, tp, lu, lp) in ops.items():
                te, le = _env(tp, f"{kind}_t", tmp), _env(lp, f"{kind}_lu", tmp)
                tm, lm = _env(tp, f"{kind}_t", tmp, True), _env(lp, f"{kind}_lu", tmp, True)
                start = once(Cmd([t, "start"], te)) + once(Cmd([lu, "start"], le))
                mon = once(Cmd([t, "monitor"], tm)) + once(Cmd([lu, "monitor"], lm))
                stop = once(Cmd([lu, "stop"], le)) + once(Cmd([t, "stop"], te))
                if i >= 2:
                    for op, v in (("start", start), ("monitor", mon), ("stop", stop)):
                        samples.setdefault(f"{kind}_{op}", []).append(v)
        return {k: statistics.median(v) for k, v in samples.items()}
    finally:
        proc.terminate()  # tgtd ignores SIGTERM while it still has targets
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for leftover in ("/var/run/tgtd/socket.0", "/var/run/tgtd/socket.0.lock"):
            if os.path.exists(leftover):
                os.unlink(leftover)


def rows(rounds: int = 5) -> list[Row]:
    lio = measure_lio(rounds)
    tgt = measure_tgt(max(rounds, 10))
    out = [Row(f"LIO {op}: iscsi-target+iscsi-lun vs iSCSITarget+iSCSILogicalUnit (lio-t)",
               lio[f"lsaa_{op}"], f"resource-agents lio-t {op}", lio[f"anchor_{op}"], limit)
           for op, limit in (("start", 0.2), ("stop", 0.2), ("monitor", 0.5))]
    out += [Row(f"tgt {op}: iscsi-target+iscsi-lun vs iSCSITarget+iSCSILogicalUnit (tgt)",
                tgt[f"lsaa_{op}"], f"resource-agents tgt {op}", tgt[f"anchor_{op}"], 1.0)
            for op in ("start", "stop", "monitor")]
    out += [Row(f"LIO monitor (target+LUN), {n} LUNs and ACLs vs 1", lio[f"scale{n}"],
                "the same with 1 LUN and ACL", lio["scale1"], 2.0 if n == 256 else None)
            for n in (32, 256)]
    return out


if __name__ == "__main__":
    from run import print_table

    print_table(rows())
