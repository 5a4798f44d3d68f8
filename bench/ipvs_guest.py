"""In-guest half of bench_ipvs: timings taken inside the lab guest, printed as JSON.

Run by bench_ipvs.py as ``python3 bench/ipvs_guest.py ROUNDS`` in a guest set up
by tests/lab/test_agent_ipvs.SETUP (director + netns real servers).  The agent
runs with its default backend (netlink, the IPVS module being loaded by the
first ``ipvsadm -D``); at 1,000 servers backend=ipvsadm is timed too.  Every
comparison is interleaved round by round; table resets between rounds are not
timed.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AGENT = os.path.join(ROOT, "ocf", "ipvs")
LDIRECTORD = "/usr/lib/ocf/resource.d/heartbeat/ldirectord"
VIP = "10.10.0.100"


def env(params: dict[str, str], interval: bool = False) -> dict[str, str]:
    e = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "OCF_ROOT": "/usr/lib/ocf",
         "OCF_RESOURCE_INSTANCE": "bench", "HA_LOGFACILITY": "none",
         "OCF_RESKEY_CRM_meta_timeout": "60000"}
    e.update({"OCF_RESKEY_" + k: v for k, v in params.items()})
    if interval:
        e["OCF_RESKEY_CRM_meta_interval"] = "10000"
    return e


def timed(argv: list[str], e: dict[str, str] | None = None, stdin: bytes | None = None,
          ok: tuple[int, ...] = (0,)) -> float:
    t = time.perf_counter()
    r = subprocess.run(argv, env=e, input=stdin, capture_output=True, check=False)
    elapsed = time.perf_counter() - t
    if r.returncode not in ok:
        raise RuntimeError(f"{argv[:2]} rc={r.returncode}: {r.stderr.decode()[-300:]}")
    return elapsed


def quiet(argv: list[str], e: dict[str, str] | None = None) -> None:
    subprocess.run(argv, env=e, capture_output=True, check=False)


def servers(n: int) -> list[tuple[str, int]]:
    return [(f"10.{40 + i // 60000}.{(i // 250) % 240}.{i % 250 + 1}", 8080) for i in range(n)]


def scale(rounds: int) -> dict[str, object]:
    out: dict[str, object] = {}
    for n in (1, 100, 1000):
        rs = servers(n)
        params = {"vip": VIP, "port": "7000", "scheduler": "wrr",
                  "real_servers": " ".join(f"{a}:{p}" for a, p in rs)}
        table = f"-A -t {VIP}:7000 -s wrr\n" + "".join(
            f"-a -t {VIP}:7000 -r {a}:{p} -m -w 1\n" for a, p in rs)
        ours, restore, mon, old, old_mon = [], [], [], [], []
        legacy = dict(params, backend="ipvsadm")
        for _ in range(rounds):
            quiet(["ipvsadm", "-D", "-t", f"{VIP}:7000"])
            ours.append(timed([AGENT, "start"], env(params)))
            mon.append(timed([AGENT, "monitor"], env(params, True)))
            quiet(["ipvsadm", "-D", "-t", f"{VIP}:7000"])
            restore.append(timed(["ipvsadm", "-R"], stdin=table.encode()))
            if n == 1000:  # the ipvsadm backend, for the record
                quiet(["ipvsadm", "-D", "-t", f"{VIP}:7000"])
                old.append(timed([AGENT, "start"], env(legacy)))
                old_mon.append(timed([AGENT, "monitor"], env(legacy, True)))
        quiet(["ipvsadm", "-D", "-t", f"{VIP}:7000"])
        out[f"start{n}"] = statistics.median(ours)
        out[f"restore{n}"] = statistics.median(restore)
        out[f"monitor{n}"] = statistics.median(mon)
        if old:
            out[f"start{n}_ipvsadm"] = statistics.median(old)
            out[f"monitor{n}_ipvsadm"] = statistics.median(old_mon)
    bare = [timed([sys.executable, "-c", "pass"]) for _ in range(rounds)]
    out["bare"] = statistics.median(bare)
    return out


LDIR_CF = f"""checktimeout=3
checkinterval=5
quiescent=yes
logfile="/tmp/ldirectord.log"
virtual={VIP}:80
\treal=10.20.0.11:8080 masq
\treal=10.20.0.12:8080 masq
\tservice=http
\trequest="/"
\treceive="rs"
\tscheduler=rr
\tprotocol=tcp
\tchecktype=negotiate
"""


def anchors(rounds: int) -> dict[str, object]:
    cf = "/tmp/ldirectord-bench.cf"
    with open(cf, "w") as f:
        f.write(LDIR_CF)
    ldir = env({"configfile": cf})
    ldir_mon = env({"configfile": cf}, True)
    ours_p = {"vip": VIP, "port": "80", "scheduler": "rr",
              "real_servers": "10.20.0.11:8080 10.20.0.12:8080", "check_type": "http",
              "check_expect": "rs"}
    s_l, s_o, m_l, m_o = [], [], [], []
    for _ in range(rounds):
        s_l.append(timed([LDIRECTORD, "start"], ldir))
        m_l.append(timed([LDIRECTORD, "monitor"], ldir_mon))
        quiet([LDIRECTORD, "stop"], ldir)
        for _i in range(100):  # ldirectord stop does not wait for the daemon
            if subprocess.run([LDIRECTORD, "monitor"], env=ldir_mon, check=False,
                              capture_output=True).returncode == 7:
                break
            time.sleep(0.05)
        quiet(["ipvsadm", "-D", "-t", f"{VIP}:80"])
        s_o.append(timed([AGENT, "start"], env(ours_p)))
        m_o.append(timed([AGENT, "monitor"], env(ours_p, True)))
        quiet([AGENT, "stop"], env(ours_p))
    return {"ldir_start": statistics.median(s_l), "ldir_monitor": statistics.median(m_l),
            "lsaa_start": statistics.median(s_o), "lsaa_monitor": statistics.median(m_o)}


def health(rounds: int) -> dict[str, object]:
    # 90 live servers: one process in rs1 listening on 90 ports; 10 dead ones:
    # addresses on the real-server segment nobody owns (ARP never answers)
    live = [f"10.20.0.11:{9000 + i}" for i in range(90)]
    dead = [f"10.20.0.{200 + i}:9000" for i in range(10)]
    listener = subprocess.Popen(
        ["ip", "netns", "exec", "rs1", "python3", "-c",
         "import socket, time\nss=[]\nfor p in range(9000, 9090):\n s=socket.socket()\n"
         " s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
         " s.bind(('0.0.0.0', p)); s.listen(64); ss.append(s)\nprint('up', flush=True)\n"
         "time.sleep(3600)\n"], stdout=subprocess.PIPE)
    try:
        assert listener.stdout is not None
        listener.stdout.readline()
        params = {"vip": VIP, "port": "7100", "scheduler": "rr",
                  "real_servers": " ".join(live + dead), "check_type": "tcp",
                  "check_timeout": "1", "failure_count": "1"}
        quiet([AGENT, "start"], env(params))
        times = []
        for _ in range(rounds):
            times.append(timed([AGENT, "monitor"], env(params, True)))
        out = subprocess.run(["ipvsadm", "-Ln", "-t", f"{VIP}:7100"], capture_output=True,
                             check=False, text=True).stdout
        zero = sum(1 for ln in out.splitlines() if ln.strip().startswith("->")
                   and ln.split()[3] == "0")
        quiet([AGENT, "stop"], env(params))
    finally:
        listener.kill()
        listener.wait()
    return {"health100": statistics.median(times), "quiesced": zero}


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    quiet(["ipvsadm", "-D", "-t", f"{VIP}:80"])
    result: dict[str, object] = {}
    result.update(scale(rounds))
    result.update(health(max(3, rounds // 2)))
    try:
        result.update(anchors(rounds))
    except (RuntimeError, OSError) as e:
        result["anchor_error"] = str(e)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
