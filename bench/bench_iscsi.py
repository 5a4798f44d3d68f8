"""ocf:lsaa:iscsi-target + iscsi-lun against resource-agents' iSCSITarget +
iSCSILogicalUnit, both resources together, on the same backend.

* LIO: inside one lab guest (bench/iscsi_guest.py; the anchor's lio-t runs
  targetcli, which needs the system D-Bus started here), interleaved round by
  round; plus lsaa's monitor with 1, 32 and 256 LUNs and ACLs.  The guest gets
  1.5 GB: 256 ACLs x 256 LUNs are 65,536 mapped LUNs in configfs, which the
  default 256 MB could not hold (the guest's python was OOM-killed, rc -9).
  The anchor's start/stop run targetcli 4-8 times at ~1 s each in UML, so the
  start/stop part has few rounds (ROUNDS_LIO); monitors are alternated one by
  one between both started pairs (MONITORS_LIO each).
* tgt: on the host, tgtd (control port 0, as the anchor cannot choose one) in a
  network namespace of its own, interleaved round by round.  Only our own tgtd
  is stopped (tgtadm's "delete system" on port 0, which it holds, then SIGKILL
  to its PID: tgtd ignores SIGTERM); a live tgtd on port 0 (the lock it holds
  on socket.0.lock) stops the benchmark, a stale socket file does not.

Backing stores are sparse files (tgt, and LIO's extra LUNs) or the guest's
sparse ubd disks: nothing is written to them.
"""

from __future__ import annotations

import json
import os
import shutil
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


GUEST_MEM = "1536M"  # 256 ACLs x 256 LUNs = 65,536 mapped LUNs: ~200 MB of kernel memory
ROUNDS_LIO = 5        # the anchor's start/stop run targetcli 4-8 times, ~1 s each in UML
ROUNDS_TGT = 30       # tgt: ~0.3 s a round on the host
MONITORS = 3          # tgt: monitors per start/stop round
MONITORS_LIO = 30     # LIO: alternated monitors of the started pairs, and scale rounds


def measure_lio(rounds: int, monitors: int) -> dict[str, float]:
    """LIO figures from inside one lab guest (bench/iscsi_guest.py)."""
    sys.path.insert(0, ROOT)
    from tests.lab.labctl import Lab

    with Lab() as lab:
        # ubda/ubde: lsaa's/resource-agents' LUN; ubdb..ubdd: LUN 0 of the 1/32/256 targets
        g = lab.guest("node1", mem=GUEST_MEM, disks=["64M"] * 5, lifetime=3000).wait_ready()
        g.sh("mkdir -p /run/dbus /run/ra", check=True)
        g.spawn(["dbus-daemon", "--system", "--nofork", "--nopidfile"])  # for targetcli
        g.run(["sh", "-c", "for i in $(seq 100); do test -S /run/dbus/system_bus_socket && "
               "exit 0; sleep 0.1; done; exit 1"], check=True)
        r = g.run(["python3", os.path.join(ROOT, "bench", "iscsi_guest.py"), str(rounds),
                   str(monitors)], timeout=2700)
        if r.rc != 0:
            mem = g.run(["sh", "-c", "free -m; dmesg | tail -20"]).stdout
            raise RuntimeError(f"iscsi_guest.py rc={r.rc} timed_out={r.timed_out}\n"
                               f"{r.stderr[-3000:]}\n{mem}")
    print(r.stderr, end="", file=sys.stderr)
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


TGT_SOCK = "/var/run/tgtd/socket.0"


def _tgtd_port0_free() -> bool:
    """True unless a live tgtd holds control port 0 (it keeps a lock on socket.0.lock;
    a file left by a killed tgtd is not a live one)."""
    import fcntl

    try:
        fd = os.open(TGT_SOCK + ".lock", os.O_RDWR)
    except FileNotFoundError:
        return True
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    finally:
        os.close(fd)  # also drops the lock
    return True


def _stop_tgtd(proc: subprocess.Popen[bytes]) -> None:
    """Stop the tgtd we started, whose PID we hold (unshare and sh exec into it).

    tgtd ignores SIGTERM (with or without targets); ``tgtadm --op delete --mode
    system`` ends it at once.  SIGKILL to our PID is the fallback."""
    if proc.poll() is None:
        subprocess.run(["tgtadm", "-C", "0", "--op", "delete", "--mode", "system"],
                       capture_output=True, timeout=10, check=False)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for leftover in (TGT_SOCK, TGT_SOCK + ".lock"):
        if os.path.exists(leftover):
            os.unlink(leftover)


def measure_tgt(rounds: int, monitors: int) -> dict[str, float]:
    """tgt figures on the host: tgtd on control port 0 (the anchor cannot choose one),
    portal 127.0.0.1:3260 in a network namespace of its own."""
    if shutil.which("tgtd") is None:
        raise RuntimeError("tgtd is not installed (scripts/setup/apt-iscsi.txt)")
    if not _tgtd_port0_free():
        raise RuntimeError(f"a live tgtd already holds control port 0 ({TGT_SOCK}.lock)")
    for stale in (TGT_SOCK, TGT_SOCK + ".lock"):  # left by a killed tgtd
        if os.path.exists(stale):
            os.unlink(stale)
    tmp = tempfile.mkdtemp(prefix="lsaa-bench-iscsi-")
    img = os.path.join(tmp, "lun1.img")
    with open(img, "wb") as f:
        f.truncate(64 << 20)  # sparse
    logf = open(os.path.join(tmp, "tgtd.log"), "wb")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(["unshare", "--net", "sh", "-c", "ip link set lo up && exec tgtd "
                             "-f -C 0 --iscsi portal=127.0.0.1:3260"],
                            stdout=logf, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while not os.path.exists(TGT_SOCK):
            if proc.poll() is not None or time.monotonic() > deadline:
                logf.flush()
                with open(os.path.join(tmp, "tgtd.log"), errors="replace") as f:
                    raise RuntimeError(f"tgtd did not come up (rc {proc.poll()}): {f.read()}")
            time.sleep(0.05)
        chap = {"incoming_username": "benchuser", "incoming_password": "benchsecret1"}
        tparams = {"implementation": "tgt", "iqn": IQN, "tid": "1",
                   "portals": "127.0.0.1:3260", "allowed_initiators": INI, **chap}
        lparams = {"implementation": "tgt", "target_iqn": IQN, "lun": "1", "path": img}
        ops = {
            "lsaa": (os.path.join(ROOT, "ocf", "iscsi-target"),
                     os.path.join(ROOT, "ocf", "iscsi-lun")),
            "anchor": (os.path.join(HB, "iSCSITarget"), os.path.join(HB, "iSCSILogicalUnit")),
        }
        samples: dict[str, list[float]] = {}
        for i in range(rounds + 2):  # two warm-up rounds
            for kind in ("lsaa", "anchor") if i % 2 == 0 else ("anchor", "lsaa"):
                t, lu = ops[kind]
                te, le = _env(tparams, f"{kind}_t", tmp), _env(lparams, f"{kind}_lu", tmp)
                tm = _env(tparams, f"{kind}_t", tmp, True)
                lm = _env(lparams, f"{kind}_lu", tmp, True)
                start = once(Cmd([t, "start"], te)) + once(Cmd([lu, "start"], le))
                mons = [once(Cmd([t, "monitor"], tm)) + once(Cmd([lu, "monitor"], lm))
                        for _ in range(monitors)]
                stop = once(Cmd([lu, "stop"], le)) + once(Cmd([t, "stop"], te))
                once(Cmd([t, "monitor"], tm, ok=(7,)))  # really stopped
                if i >= 2:
                    samples.setdefault(f"{kind}_start", []).append(start)
                    samples.setdefault(f"{kind}_monitor", []).extend(mons)
                    samples.setdefault(f"{kind}_stop", []).append(stop)
        return {k: statistics.median(v) for k, v in samples.items()}
    finally:
        _stop_tgtd(proc)
        logf.close()
        shutil.rmtree(tmp, ignore_errors=True)


def rows(rounds: int = ROUNDS_LIO) -> list[Row]:
    tgt = measure_tgt(ROUNDS_TGT, MONITORS)  # first: cheap, and fails fast
    lio = measure_lio(rounds, MONITORS_LIO)
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
