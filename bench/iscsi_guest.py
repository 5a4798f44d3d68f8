"""In-guest half of bench_iscsi: LIO timings taken inside the lab guest, printed as JSON.

Run by bench_iscsi.py as ``python3 bench/iscsi_guest.py ROUNDS MONITORS``.

* Side by side: one "operation" is both resources together (target then LUN
  on start/monitor, LUN then target on stop), lsaa and resource-agents
  (implementation lio-t, which runs targetcli) on the same configuration.
  Start/stop: ROUNDS rounds of start, monitor, stop on the same block device,
  interleaved, the order alternating every round.  Monitor: both pairs started
  at once (each on its own IQN and disk), MONITORS monitors each, alternated
  one by one (UML timings swing 2-3x with host load within a minute).  The
  result is the median per operation.
* Scale: lsaa's target+LUN monitor (one monitor of the iscsi-target, one of an
  iscsi-lun) on a target with N ACLs and N LUNs, every LUN mapped in every ACL
  (what N iscsi-lun resources leave behind), N = 1, 32, 256.  The target and
  its LUN 0 are started by the agents; the other N-1 LUNs and the N*N mapped
  LUNs are set up with plain configfs/rtslib calls (setup, not measured: 65,536
  mapped LUNs through rtslib would take most of an hour in UML).  The three
  sizes are measured interleaved, round by round: their targets coexist, each
  with its own backstores, so every monitor sees the same system (289
  backstores).  That does not flatter the 1-LUN figure: timed alone and with
  the 256-LUN target present, its target and LUN monitors cost the same
  (163/201 ms vs 163/193 ms in one quiet lab run); only the monitored target's
  ACLs and mapped LUNs are read.  MONITORS interleaved rounds.

Progress goes to stderr; the last stdout line is the JSON result.
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
IQN2 = "iqn.2024-01.lsaa.bench:t2"
DEV2 = "/dev/ubde"
SCALE_DEVS = {1: "/dev/ubdb", 32: "/dev/ubdc", 256: "/dev/ubdd"}
CFS = "/sys/kernel/config/target"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def meminfo() -> str:
    with open("/proc/meminfo") as f:
        m = {k: v.strip() for k, _, v in (line.partition(":") for line in f)}
    return f"MemAvailable {m['MemAvailable']}, Slab {m['Slab']}"


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
        raise RuntimeError(f"{argv} rc={r.returncode}: {r.stderr.decode()[-600:]}")
    return elapsed


Pair = tuple[str, dict[str, str], str, dict[str, str]]


def pair(kind: str, iqn: str = IQN, dev: str = DEV) -> Pair:
    """(target agent, its env, LUN agent, its env): the same target, LUN and ACL."""
    if kind == "lsaa":
        t, lu = os.path.join(ROOT, "ocf", "iscsi-target"), os.path.join(ROOT, "ocf", "iscsi-lun")
        tp = {"implementation": "lio", "iqn": iqn, "portals": "127.0.0.1:3260",
              "allowed_initiators": INI}
        lp = {"implementation": "lio", "target_iqn": iqn, "lun": "0", "path": dev}
    else:
        t, lu = os.path.join(HB, "iSCSITarget"), os.path.join(HB, "iSCSILogicalUnit")
        tp = {"implementation": "lio-t", "iqn": iqn, "portals": "127.0.0.1:3260",
              "allowed_initiators": INI}
        lp = {"implementation": "lio-t", "target_iqn": iqn, "lun": "0", "path": dev,
              "allowed_initiators": INI}
    return t, env(tp, f"{kind}_t"), lu, env(lp, f"{kind}_lu")


def monitor_pair(p: Pair) -> float:
    t, te, lu, le = p
    return (timed([t, "monitor"], {**te, "OCF_RESKEY_CRM_meta_interval": "10000"}) +
            timed([lu, "monitor"], {**le, "OCF_RESKEY_CRM_meta_interval": "10000"}))


def cycle(kind: str) -> tuple[float, float]:
    t, te, lu, le = p = pair(kind)
    start = timed([t, "start"], te) + timed([lu, "start"], le)
    monitor_pair(p)  # running, as start said
    stop = timed([lu, "stop"], le) + timed([t, "stop"], te)
    if os.path.isdir(os.path.join(CFS, "iscsi", IQN)):
        raise RuntimeError(f"{kind} stop left {IQN} in configfs")
    return start, stop


def monitors_side_by_side(n: int) -> dict[str, list[float]]:
    """Both pairs started at once (lsaa on IQN/ubda, resource-agents on IQN2/ubde),
    their monitors alternated n times: load changes hit both alike."""
    pairs = {"lsaa": pair("lsaa"), "anchor": pair("anchor", IQN2, DEV2)}
    for t, te, lu, le in pairs.values():
        timed([t, "start"], te)
        timed([lu, "start"], le)
    out: dict[str, list[float]] = {k: [] for k in pairs}
    for p in pairs.values():
        monitor_pair(p)  # warm-up
    for r in range(n):
        for k in ("lsaa", "anchor") if r % 2 == 0 else ("anchor", "lsaa"):
            out[k].append(monitor_pair(pairs[k]))
    for t, te, lu, le in pairs.values():
        timed([lu, "stop"], le)
        timed([t, "stop"], te)
    return out


def scale_params(n: int) -> tuple[dict[str, str], dict[str, str]]:
    iqn = f"iqn.2024-01.lsaa.bench:scale{n}"
    tp = {"implementation": "lio", "iqn": iqn, "portals": "127.0.0.1:3260",
          "allowed_initiators": " ".join(f"{INI}{i}" for i in range(n))}
    lp = {"implementation": "lio", "target_iqn": iqn, "lun": "0", "path": SCALE_DEVS[n]}
    return tp, lp


def scale_setup(n: int) -> None:
    """Target with n ACLs, LUN 0 by the agents; LUNs 1..n-1 on sparse files, all mapped."""
    import rtslib_fb as rts

    tp, lp = scale_params(n)
    iqn = tp["iqn"]
    timed([os.path.join(ROOT, "ocf", "iscsi-target"), "start"], env(tp, f"scale{n}_t"))
    tpg = rts.TPG(rts.Target(rts.FabricModule("iscsi"), iqn, "lookup"), 1, "lookup")
    for i in range(1, n):
        path = f"/tmp/bench-s{n}-lun{i}.img"
        with open(path, "wb") as f:
            f.truncate(1 << 20)  # sparse: no guest memory until written
        so = rts.FileIOStorageObject(f"bench_s{n}_{i}", dev=path, size=1 << 20, write_back=False)
        rts.LUN(tpg, i, so)
    acls = os.path.join(CFS, "iscsi", iqn, "tpgt_1", "acls")
    for acl in os.listdir(acls):
        for i in range(1, n):  # what rtslib's MappedLUN does: a directory and a link
            d = os.path.join(acls, acl, f"lun_{i}")
            os.mkdir(d)
            os.symlink(os.path.join(CFS, "iscsi", iqn, "tpgt_1", "lun", f"lun_{i}"),
                       os.path.join(d, "lun"))
    timed([os.path.join(ROOT, "ocf", "iscsi-lun"), "start"], env(lp, f"scale{n}_lu"))
    mapped = sum(len([e for e in os.listdir(os.path.join(acls, a)) if e.startswith("lun_")])
                 for a in os.listdir(acls))
    if mapped != n * n:
        raise RuntimeError(f"scale {n}: {mapped} mapped LUNs, expected {n * n}")


def scale_monitor(n: int) -> float:
    tp, lp = scale_params(n)
    return (timed([os.path.join(ROOT, "ocf", "iscsi-target"), "monitor"],
                  env(tp, f"scale{n}_t", True)) +
            timed([os.path.join(ROOT, "ocf", "iscsi-lun"), "monitor"],
                  env(lp, f"scale{n}_lu", True)))


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    monitors = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    res: dict[str, list[float]] = {}
    log("warm-up")
    cycle("lsaa")  # module loading, first configfs use, page cache
    cycle("anchor")
    for r in range(rounds):
        for kind in ("lsaa", "anchor") if r % 2 == 0 else ("anchor", "lsaa"):
            s, p = cycle(kind)
            res.setdefault(f"{kind}_start", []).append(s)
            res.setdefault(f"{kind}_stop", []).append(p)
        log(f"round {r + 1}/{rounds}: " + ", ".join(
            f"{k} {v[-1] * 1000:.0f}ms" for k, v in sorted(res.items())))
    for k, v in monitors_side_by_side(monitors).items():
        res[f"{k}_monitor"] = v
    out: dict[str, float] = {k: statistics.median(v) for k, v in res.items()}
    out.update({f"n_{k}": float(len(v)) for k, v in res.items()})
    log("monitor: " + ", ".join(f"{k} {out[f'{k}_monitor'] * 1000:.0f}ms"
                                for k in ("lsaa", "anchor")))

    sizes = (1, 32, 256)
    log(f"before scale set-up: {meminfo()}")
    for n in sizes:
        t = time.perf_counter()
        scale_setup(n)
        log(f"scale {n}: set up in {time.perf_counter() - t:.1f}s; {meminfo()}")
    samples: dict[int, list[float]] = {n: [] for n in sizes}
    for n in sizes:
        scale_monitor(n)  # warm-up
    for r in range(monitors):
        for n in sizes if r % 2 == 0 else reversed(sizes):
            samples[n].append(scale_monitor(n))
    for n in sizes:
        out[f"scale{n}"] = statistics.median(samples[n])
        out[f"n_scale{n}"] = float(len(samples[n]))
    log("scale: " + ", ".join(f"{n}: {out[f'scale{n}'] * 1000:.0f}ms" for n in sizes))
    # no teardown of the scale targets: 65,536 mapped LUNs go with the guest
    print(json.dumps(out))


if __name__ == "__main__":
    main()
