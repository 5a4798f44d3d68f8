"""ocf:lsaa:ipvs against real ip_vs, NAT and DR, inside ONE guest with network namespaces.

Why one guest: ip_vs lives in the director's kernel only; clients and real
servers just need their own network stacks, which `ip netns` gives inside the
same UML kernel at no boot cost (a second guest would add ~2 s and a network).

    netns client 10.30.0.2 ─┐
    netns rs1    10.20.0.11 ├─ br0 (guest root netns = director: 10.20.0.1, 10.30.0.1,
    netns rs2    10.20.0.12 ┘       VIP 10.10.0.100 on lo, ip_forward=1)

* NAT (VIP:80 -> rsN:8080): real servers' default route is the director, which
  rewrites the replies back.
* DR (VIP:8081 -> rsN:8081, same port): the real servers hold the VIP on lo
  (arp_ignore=1, arp_announce=2) and answer from it; a source rule sends those
  replies straight to the client on the shared segment (an L2 neighbour), so
  they never go back through the director, as DR must.

Each real server runs one small HTTP server answering its name on 8080 and
8081.  The agent runs in the director's netns, as Pacemaker would run it.

Every test runs twice, once per backend (the hidden ``backend`` parameter):
netlink (lsaa.backends.ipvs_netlink, no child process) and ipvsadm.  The
tables are always checked with ``ipvsadm -Ln``, so netlink writes are read
by ipvsadm; the tests editing the table with ipvsadm by hand have netlink
read ipvsadm's writes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from lsaa.backends.ipvsadm import Service, parse_list

from .labctl import Lab

if TYPE_CHECKING:
    from collections.abc import Iterator

    from .labctl import Guest, Result

VIP = "10.10.0.100"
RS = {"rs1": "10.20.0.11", "rs2": "10.20.0.12"}
NAT = {"vip": VIP, "port": "80", "scheduler": "rr",
       "real_servers": "10.20.0.11:8080 10.20.0.12:8080"}
DR = {"vip": VIP, "port": "8081", "scheduler": "rr", "method": "dr",
      "real_servers": "10.20.0.11 10.20.0.12"}
INTERVAL = {"OCF_RESKEY_CRM_meta_interval": "10000"}

SETUP = f"""
sysctl -qw net.ipv4.ip_forward=1
ip link set lo up
ip addr add {VIP}/32 dev lo
ip link add br0 type bridge
ip addr add 10.20.0.1/24 dev br0
ip addr add 10.30.0.1/24 dev br0
ip link set br0 up
for ns in client rs1 rs2; do
  ip netns add $ns
  ip link add v-$ns type veth peer name eth0 netns $ns
  ip link set v-$ns master br0 up
  ip -n $ns link set lo up
  ip -n $ns link set eth0 up
done
ip -n client addr add 10.30.0.2/24 dev eth0
ip -n client route add default via 10.30.0.1
for ns in rs1 rs2; do
  case $ns in rs1) a=10.20.0.11;; rs2) a=10.20.0.12;; esac
  ip -n $ns addr add $a/24 dev eth0
  ip -n $ns route add default via 10.20.0.1
  ip -n $ns addr add {VIP}/32 dev lo
  ip netns exec $ns sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2
  ip -n $ns rule add from {VIP} table 100
  ip -n $ns route add 10.30.0.0/24 dev eth0 table 100
done
"""

BACKEND = """
import socketserver, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
NAME = sys.argv[1].encode()
class S(ThreadingHTTPServer):
    def server_bind(self):  # HTTPServer's getfqdn() would wait for DNS in the netns
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "rs", self.server_address[1]
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(NAME) + 1))
        self.end_headers()
        self.wfile.write(NAME + b"\\n")
    def log_message(self, *a):
        pass
servers = [S(("0.0.0.0", p), H) for p in (8080, 8081)]
for s in servers[1:]:
    threading.Thread(target=s.serve_forever, daemon=True).start()
servers[0].serve_forever()
"""

CLIENT = f"""
import sys, urllib.request
out = {{}}
for port in sys.argv[1:]:
    url = "http://{VIP}:%s/" % port
    out[port] = [urllib.request.urlopen(url, timeout=5).read().decode().strip()
                 for _ in range(6)]
print(__import__("json").dumps(out))
"""


class Bed:
    """The director guest with its namespaces and backends."""

    def __init__(self, g: Guest, mode: str = "auto") -> None:
        self.g = g
        self.mode = mode  # the agent's backend parameter
        self.pids: dict[str, int] = {}

    def backend(self, ns: str) -> None:
        self.pids[ns] = self.g.spawn(["ip", "netns", "exec", ns, "python3", "-c", BACKEND, ns])

    def kill(self, ns: str) -> None:
        self.g.run(["kill", str(self.pids.pop(ns))], check=True)

    def wait_backends(self) -> None:
        probe = ("import time, urllib.request as u\nfor a in %r:\n  for i in range(300):\n"
                 "    try:\n      [u.urlopen('http://%%s:%%d/' %% (a, p), timeout=2).read() "
                 "for p in (8080, 8081)]; break\n"
                 "    except OSError: time.sleep(0.05)\n  else: raise SystemExit(a)\n")
        self.g.run(["python3", "-c", probe % sorted(RS[n] for n in self.pids)], check=True)

    def fetch(self, *ports: str) -> dict[str, list[str]]:
        r = self.g.run(["ip", "netns", "exec", "client", "python3", "-c", CLIENT, *ports],
                       timeout=60)
        assert r.rc == 0, r.stderr
        out: dict[str, list[str]] = json.loads(r.stdout)
        return out

    def table(self, port: str) -> dict[str, int]:
        """Real server -> weight of VIP:port."""
        out = self.g.run(["ipvsadm", "-Ln", "-t", f"{VIP}:{port}"], check=True).stdout
        return {ln.split()[1]: int(ln.split()[3]) for ln in out.splitlines()
                if ln.strip().startswith("->") and "RemoteAddress" not in ln}

    def run_agent(self, action: str, params: dict[str, str], **kw: object) -> Result:
        return self.g.agent("ipvs", action, dict(params, backend=self.mode),  # type: ignore[arg-type]
                            **kw)

    def agent(self, action: str, params: dict[str, str], **kw: object) -> Result:
        r = self.run_agent(action, params, **kw)
        assert r.rc == 0, f"{action}: rc={r.rc} {r.stderr}"
        return r


@pytest.fixture(scope="module", params=["netlink", "ipvsadm"])
def bed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[Bed]:
    from .conftest import _lab_unavailable

    reason = _lab_unavailable()
    if reason:
        pytest.skip(reason)
    lab = Lab(results=tmp_path_factory.mktemp(f"ipvs-lab-{request.param}"))
    try:
        g = lab.guest("node1").wait_ready()
        g.sh(SETUP, check=True)
        b = Bed(g, request.param)
        for ns in RS:
            b.backend(ns)
        b.wait_backends()
        yield b
    finally:
        lab.close()


def test_nat_and_dr_round_robin_across_both_servers(bed: Bed) -> None:
    bed.agent("start", NAT)
    bed.agent("start", DR)
    try:
        got = bed.fetch("80", "8081")
        for port in ("80", "8081"):
            assert sorted(set(got[port])) == ["rs1", "rs2"], got
            # rr alternates
            assert all(a != b for a, b in zip(got[port], got[port][1:])), got
        assert bed.table("80") == {"10.20.0.11:8080": 1, "10.20.0.12:8080": 1}
        dr = bed.g.run(["ipvsadm", "-Ln", "-t", f"{VIP}:8081"], check=True).stdout
        assert dr.count("Route") == 2, dr
    finally:
        bed.agent("stop", NAT)
        bed.agent("stop", DR)
    assert bed.g.run(["ipvsadm", "-Ln", "-t", f"{VIP}:80"]).rc == 1


def test_dead_server_quiesced_then_restored(bed: Bed) -> None:
    params = dict(NAT, check_type="http", check_timeout="1", failure_count="2",
                  recovery_count="1")
    bed.agent("start", params)
    try:
        bed.agent("monitor", params, env=INTERVAL)
        assert bed.table("80") == {"10.20.0.11:8080": 1, "10.20.0.12:8080": 1}
        bed.kill("rs2")
        bed.agent("monitor", params, env=INTERVAL)  # one failure: counted only
        bed.agent("monitor", params, env=INTERVAL)  # second: quiesced
        assert bed.table("80") == {"10.20.0.11:8080": 1, "10.20.0.12:8080": 0}
        assert bed.fetch("80")["80"] == ["rs1"] * 6
        bed.backend("rs2")
        bed.wait_backends()
        bed.agent("monitor", params, env=INTERVAL)
        assert bed.table("80") == {"10.20.0.11:8080": 1, "10.20.0.12:8080": 1}
        assert sorted(set(bed.fetch("80")["80"])) == ["rs1", "rs2"]
    finally:
        bed.agent("stop", params)


def test_dead_server_removed_sorry_server_then_restored(bed: Bed) -> None:
    """on_failure=remove takes the dead server out of the table; with every real server
    down the sorry server answers for the VIP; the recovered server replaces it."""
    params = {"vip": VIP, "port": "80", "scheduler": "rr", "real_servers": "10.20.0.11:8080",
              "sorry_server": "10.20.0.12:8081", "on_failure": "remove",
              "check_type": "http", "check_timeout": "1", "failure_count": "1",
              "recovery_count": "1"}
    bed.agent("start", params)
    try:
        bed.agent("monitor", params, env=INTERVAL)
        assert set(bed.table("80")) == {"10.20.0.11:8080"}
        assert bed.fetch("80")["80"] == ["rs1"] * 6
        bed.kill("rs1")
        bed.agent("monitor", params, env=INTERVAL)
        assert set(bed.table("80")) == {"10.20.0.12:8081"}  # removed; the sorry server in
        assert bed.fetch("80")["80"] == ["rs2"] * 6
        bed.backend("rs1")
        bed.wait_backends()
        bed.agent("monitor", params, env=INTERVAL)
        assert set(bed.table("80")) == {"10.20.0.11:8080"}
        assert bed.fetch("80")["80"] == ["rs1"] * 6
    finally:
        bed.agent("stop", params)


def test_start_converges_and_spares_other_services(bed: Bed) -> None:
    bed.g.sh(f"ipvsadm -A -t {VIP}:9000 -s wlc\nipvsadm -a -t {VIP}:9000 -r 10.20.0.11:80 -m",
             check=True)
    bed.agent("start", NAT)
    try:
        bed.g.sh(f"ipvsadm -a -t {VIP}:80 -r 10.20.0.13:8080 -m -w 4\n"
                 f"ipvsadm -e -t {VIP}:80 -r 10.20.0.11:8080 -m -w 9\n"
                 f"ipvsadm -E -t {VIP}:80 -s wlc", check=True)
        r = bed.run_agent("monitor", NAT, env=INTERVAL)
        assert r.rc == 1 and "scheduler wlc (configured rr)" in r.stderr
        bed.agent("start", NAT)
        assert bed.table("80") == {"10.20.0.11:8080": 1, "10.20.0.12:8080": 1}
        bed.agent("monitor", NAT, env=INTERVAL)
    finally:
        bed.agent("stop", NAT)
    bed.agent("stop", NAT)  # stop of an absent service
    other = bed.g.run(["ipvsadm", "-Ln", "-t", f"{VIP}:9000"], check=True).stdout
    assert "10.20.0.11:80" in other
    bed.g.run(["ipvsadm", "-D", "-t", f"{VIP}:9000"], check=True)


HOLD = f"""
import socket, sys, os, time
s = socket.create_connection(("{VIP}", 80), 5)
open(sys.argv[1] + ".up", "w").close()
while not os.path.exists(sys.argv[1] + ".go"):
    time.sleep(0.05)
s.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
data = b""
while True:
    chunk = s.recv(4096)
    if not chunk:
        break
    data += chunk
open(sys.argv[1] + ".tmp", "wb").write(data)
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
"""

WATCH = f"""
import subprocess, sys, os
lost = 0
n = 0
while not os.path.exists(sys.argv[1] + ".stop"):
    n += 1
    if subprocess.run(["ipvsadm", "-Ln", "-t", "{VIP}:80"], capture_output=True).returncode:
        lost += 1
open(sys.argv[1], "w").write("%d %d" % (n, lost))
"""


def test_reload_keeps_service_and_established_connection(bed: Bed) -> None:
    bed.agent("start", NAT)
    share = bed.g.share
    hold, watch = str(share / "hold"), str(share / "watch")
    try:
        bed.g.spawn(["ip", "netns", "exec", "client", "python3", "-c", HOLD, hold])
        bed.g.spawn(["python3", "-c", WATCH, watch])
        bed.g.run(["sh", "-c", f"for i in $(seq 200); do [ -e {hold}.up ] && exit 0; "
                   "sleep 0.05; done; exit 1"], check=True)
        changed = dict(NAT, scheduler="wrr", real_servers="10.20.0.11:8080/weight=3 "
                       "10.20.0.12:8080/weight=5", check_type="tcp")
        bed.agent("reload-agent", changed)
        assert bed.table("80") == {"10.20.0.11:8080": 3, "10.20.0.12:8080": 5}
        assert " wrr" in bed.g.run(["ipvsadm", "-Ln", "-t", f"{VIP}:80"]).stdout
        bed.g.run(["touch", f"{hold}.go", f"{watch}.stop"], check=True)
        bed.g.run(["sh", "-c", f"for i in $(seq 200); do [ -e {hold} ] && [ -e {watch} ] && "
                   "exit 0; sleep 0.05; done; exit 1"], check=True)
        reply = (share / "hold").read_bytes()
        assert reply.startswith(b"HTTP/1.0 200") and reply.rstrip().endswith((b"rs1", b"rs2"))
        polls, lost = map(int, (share / "watch").read_text().split())
        assert polls > 0 and lost == 0
    finally:
        bed.agent("stop", NAT)


def test_conformance_harness_in_the_guest(bed: Bed) -> None:
    params = ["-o", f"backend={bed.mode}", "-o", f"vip={VIP}", "-o", "port=8090",
              "-o", "real_servers=10.20.0.11:8080", "-o", "check_type=tcp",
              "-o", "check_timeout=1"]
    r = bed.g.run(["python3", "-m", "lsaa.tester", "ocf", "/work/main/ocf/ipvs", *params,
                   "--hostile", "--invalid", "real_servers=10.20.0.300:80",
                   "--invalid", "scheduler=nope"], timeout=300)
    assert r.rc == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert bed.g.run(["ipvsadm", "-Ln", "-t", f"{VIP}:8090"]).rc == 1


# ----- both backends build the same table; ipvsadm and netlink read it the same ------------

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "ipvs_netlink"
# the services tests/fixtures/ipvs_netlink/Ln.txt lists (written there by netlink)
CROSS = {
    443: {"vip": "192.0.2.10", "port": "443", "scheduler": "sh", "persistent": "600",
          "netmask": "24", "scheduler_flags": "sh-fallback,sh-port", "method": "dr",
          "real_servers": "10.0.0.11/weight=5 10.0.0.12/method=tun,weight=0,u=100,l=10"},
    53: {"vip": "2001:db8::10", "port": "53", "protocol": "udp", "scheduler": "wrr",
         "persistent": "120", "netmask": "64", "one_packet": "true",
         "real_servers": "[2001:db8::11]:5353/w=2,u=500,l=400 [2001:db8::12]/method=dr,w=1"},
    0: {"fwmark": "11", "family": "ipv6", "scheduler": "mh",
        "scheduler_flags": "mh-port,mh-fallback", "real_servers": "2001:db8::21/method=dr"},
}
NL_READ = """
import sys
sys.path.insert(0, sys.argv[1])
from lsaa.backends.ipvs_netlink import Client
from lsaa.backends.ipvsadm import Service
proto, addr, port, v6 = sys.argv[2:6]
with Client() as c:
    s = c.read(Service(proto, addr, int(port), v6 == "1", ""))
s.dests.sort(key=repr)
print(repr(s))
"""


def logged(bed: Bed, action: str, params: dict[str, str], env: dict[str, str] | None = None
           ) -> str:
    """Run an action that must succeed; its log lines (HA_LOGFILE in the share)."""
    path = bed.g.share / "agent.log"
    path.write_text("")
    bed.agent(action, params, env={**(env or {}), "HA_LOGFILE": str(path)})
    return path.read_text()


def expected() -> dict[int, Service]:
    listed = parse_list((FIX / "Ln.txt").read_text())
    limits = {(s.port, d.key): d for s in parse_list((FIX / "Ln-thresholds.txt").read_text())
              for d in s.dests}
    for s in listed:
        for d in s.dests:
            d.upper, d.lower = limits[(s.port, d.key)].upper, limits[(s.port, d.key)].lower
        s.dests.sort(key=repr)
    return {s.port: s for s in listed}


def svc_args(s: Service) -> list[str]:
    from lsaa.backends.ipvsadm import service_args

    return service_args(s.proto, s.addr, s.port, s.ipv6)


def listed(bed: Bed, s: Service) -> Service:
    """The service as ``ipvsadm -Ln`` and ``-Ln --thresholds`` show it."""
    out = bed.g.run(["ipvsadm", "-Ln", *svc_args(s)], check=True).stdout
    thr = bed.g.run(["ipvsadm", "-Ln", "--thresholds", *svc_args(s)], check=True).stdout
    (got,) = parse_list(out)
    limits = {d.key: d for d in parse_list(thr)[0].dests}
    for d in got.dests:
        d.upper, d.lower = limits[d.key].upper, limits[d.key].lower
    got.dests.sort(key=repr)
    return got


def netlink_read(bed: Bed, s: Service) -> str:
    lib = str(Path(__file__).resolve().parents[2] / "lib")
    r = bed.g.run(["python3", "-c", NL_READ, lib, s.proto, s.addr, str(s.port),
                   "1" if s.ipv6 else "0"], check=True)
    return r.stdout.strip()


def test_table_as_configured_read_alike_by_ipvsadm_and_netlink(bed: Bed) -> None:
    want = expected()
    for port, params in CROSS.items():
        s = want[port]
        bed.agent("start", params)
        try:
            assert repr(listed(bed, s)) == repr(s)  # what the agent wrote, seen by ipvsadm
            assert netlink_read(bed, s) == repr(s)  # ... and by netlink
            for action, env in (("monitor", INTERVAL), ("reload-agent", {}), ("start", {})):
                log = logged(bed, action, params, env)
                assert "converging" not in log, (action, log)
        finally:
            bed.agent("stop", params)
        assert bed.g.run(["ipvsadm", "-Ln", *svc_args(s)]).rc != 0


def test_table_written_by_ipvsadm_is_converged_already(bed: Bed) -> None:
    """ipvsadm -R writes, the agent reads (netlink or ipvsadm): nothing to change."""
    want = expected()
    lines = [
        "-A -t 192.0.2.10:443 -s sh -p 600 -M 255.255.255.0 -b sh-fallback,sh-port",
        "-a -t 192.0.2.10:443 -r 10.0.0.11:443 -g -w 5",
        "-a -t 192.0.2.10:443 -r 10.0.0.12:443 -i -w 0 -x 100 -y 10",
        "-A -u [2001:db8::10]:53 -s wrr -p 120 -M 64 -o",
        "-a -u [2001:db8::10]:53 -r [2001:db8::11]:5353 -m -w 2 -x 500 -y 400",
        "-a -u [2001:db8::10]:53 -r [2001:db8::12]:53 -g -w 1",
        "-A -f 11 -6 -s mh -b mh-fallback,mh-port",
        "-a -f 11 -6 -r [2001:db8::21]:0 -g -w 1",
    ]
    share = bed.g.put_file("cross.rules", "\n".join(lines) + "\n")
    bed.g.sh(f"ipvsadm -R < {share}", check=True)
    try:
        for port, params in CROSS.items():
            assert netlink_read(bed, want[port]) == repr(want[port])
            log = logged(bed, "start", params)
            assert "converging" not in log, log
            bed.agent("monitor", params, env=INTERVAL)
        # one hand edit: start names it and puts it back
        bed.g.sh("ipvsadm -e -t 192.0.2.10:443 -r 10.0.0.11:443 -g -w 7", check=True)
        log = logged(bed, "start", CROSS[443])
        assert "converging: 10.0.0.11:443 weight 7->5" in log, log
        assert repr(listed(bed, want[443])) == repr(want[443])
    finally:
        for params in CROSS.values():
            bed.agent("stop", params)


def test_missing_scheduler_is_named(bed: Bed) -> None:
    r = bed.run_agent("start", dict(NAT, port="7001", scheduler="twos"))  # twos: Linux 6.2+
    assert r.rc == 5 and "ip_vs_twos" in r.stderr, r.stderr
    assert bed.g.run(["ipvsadm", "-Ln", "-t", f"{VIP}:7001"]).rc != 0


def test_netlink_path_runs_no_ipvsadm(bed: Bed) -> None:
    """With backend=netlink every action works with ipvsadm replaced by /bin/false."""
    if bed.mode != "netlink":
        pytest.skip("netlink backend only")
    from .labctl import REPO

    env = {"OCF_ROOT": "/usr/lib/ocf", "OCF_RESOURCE_INSTANCE": "nl", "OCF_RESOURCE_TYPE":
           "ipvs", "OCF_RESOURCE_PROVIDER": "lsaa", "OCF_RESKEY_CRM_meta_timeout": "30000",
           "OCF_RA_VERSION_MAJOR": "1", "OCF_RA_VERSION_MINOR": "1",
           **{f"OCF_RESKEY_{k}": v for k, v in dict(NAT, backend="netlink",
                                                    check_type="tcp").items()}}
    script = ('mount --bind /bin/false "$(command -v ipvsadm)" || exit 99\n'
              'for a in start monitor reload-agent stop monitor; do\n'
              '  OCF_RESKEY_CRM_meta_interval=$([ $a = monitor ] && echo 10000 || echo 0) '
              f'{REPO}/ocf/ipvs $a; echo "$a=$?"\ndone\n')
    r = bed.g.run(["unshare", "-m", "sh", "-c", script], env=env, timeout=120)
    assert r.stdout.split() == ["start=0", "monitor=0", "reload-agent=0", "stop=0",
                                "monitor=7"], r.stdout + r.stderr
