"""ocf:lsaa:ipvs in-process with the strict fake runner and recorded ipvsadm outputs."""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from ocfrun import ocf

from lsaa.agents import ipvs
from lsaa.agents.ipvs import AGENT, SPEC, parse_entry, plan
from lsaa.backends.ipvsadm import Dest, parse_list
from lsaa.healthcheck import Check, Health, probe, run_checks
from lsaa.testing.fakerun import Call, FakeRunner

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "ipvsadm"
LN = ["ipvsadm", "-Ln", "-t", "192.0.2.10:80"]
LNT = ["ipvsadm", "-Ln", "--thresholds", "-t", "192.0.2.10:80"]
BASE = {"vip": "192.0.2.10", "port": "80", "scheduler": "wlc", "persistent": "300",
        "real_servers": "10.0.0.11:80 10.0.0.12:8080/weight=3"}


def fixture(name: str) -> str:
    return (FIX / name).read_text()


@pytest.fixture(autouse=True)
def _local(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(ipvs, "kernel_module_present", lambda name: True)
    # the ipvsadm path (the netlink path: tests at the end of this file)
    monkeypatch.setattr(ipvs, "open_netlink", lambda ctx, required: None)
    monkeypatch.setattr("shutil.which", lambda name, path=None: f"/usr/sbin/{name}")


def run(action: str, params: dict[str, str], calls: list[Call], tmp_path: Path,
        **meta: str) -> tuple[int, list[str]]:
    runner = FakeRunner(calls)
    out = ocf(AGENT, action, params, runner=runner, env={"HA_RSCTMP": str(tmp_path)}, **meta)
    runner.assert_done()
    return out.rc, out.reasons


# ----- real_servers syntax ---------------------------------------------------------------

@pytest.mark.parametrize(("text", "want"), [
    ("10.0.0.2:8080", ("10.0.0.2", 8080, "nat", 1, 0, 0)),
    ("10.0.0.2", ("10.0.0.2", 80, "nat", 1, 0, 0)),
    ("10.0.0.2/weight=0", ("10.0.0.2", 80, "nat", 0, 0, 0)),
    ("10.0.0.2:80/method=dr,w=4", ("10.0.0.2", 80, "dr", 4, 0, 0)),
    ("10.0.0.2/m=TUNNEL,u=100,l=10", ("10.0.0.2", 80, "tun", 1, 100, 10)),
])
def test_entries(text: str, want: tuple[object, ...]) -> None:
    d = parse_entry(text, 80, False, "nat", 1, False)
    assert (d.addr, d.port, d.method, d.weight, d.upper, d.lower) == want


def test_ipv6_entries() -> None:
    d = parse_entry("[2001:DB8:0::5]:8080/weight=2", 80, True, "nat", 1, False)
    assert (d.addr, d.port, d.weight) == ("2001:db8::5", 8080, 2)
    assert parse_entry("2001:db8::6", 80, True, "dr", 1, False).key == ("2001:db8::6", 80)
    assert parse_entry("[2001:db8::7]", 0, True, "dr", 1, True).key == ("2001:db8::7", 0)


@pytest.mark.parametrize(("text", "why"), [
    ("10.0.0.300:80", "invalid address"),
    ("10.0.0.2:", "invalid port"),
    ("10.0.0.2:65536", "port 65536 out of range"),
    ("10.0.0.2:+80", "invalid port"),
    ("10.0.0.2:\uff18\uff10", "invalid port"),  # fullwidth digits
    ("010.0.0.2:80", "invalid address"),
    ("0.0.0.0:80", "not a unicast"),
    ("224.0.0.1:80", "not a unicast"),
    ("[10.0.0.2]:80", "brackets are for IPv6"),
    ("[2001:db8::1:80", "missing ]"),
    ("[2001:db8::1]80", "expected :PORT"),
    ("[fe80::1%eth0]:80", "invalid address"),
    ("2001:db8::1", "IPv6 server in an IPv4 service"),
    ("10.0.0.2/", "empty options"),
    ("10.0.0.2/weight", "unknown option"),
    ("10.0.0.2/weight=1,weight=2", "weight given twice"),
    ("10.0.0.2/weight=65536", "weight 65536 out of range"),
    ("10.0.0.2/weight=-1", "invalid weight"),
    ("10.0.0.2/weight=1e3", "invalid weight"),
    ("10.0.0.2/method=bogus", "unknown method"),
    ("10.0.0.2/colour=red", "unknown option"),
    ("10.0.0.2/u=5,l=6", "lower threshold above upper"),
    ("10.0.0.2:8080/method=dr", "port must be the service port 80"),
    ("$(reboot)", "invalid address"),
    ("10.0.0.2;-C", "invalid address"),
])
def test_hostile_entries(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why.replace("+", r"\+")):
        parse_entry(text, 80, False, "nat", 1, False)


def test_validate_names_the_entry(tmp_path: Path) -> None:
    params = dict(BASE, real_servers="10.0.0.2:80 10.0.0.3:80 10.0.0.300:80 10.0.0.2:80")
    rc, reasons = run("validate-all", params, [], tmp_path)
    assert rc == 6
    assert 'real_servers: entry 3 "10.0.0.300:80": invalid address' in reasons[0]
    assert "entry 4" in reasons[0]


@pytest.mark.parametrize(("extra", "why"), [
    ({"vip": "192.0.2.300"}, "vip:"),
    ({"port": "70000"}, "port:"),
    ({"scheduler": "bogus"}, "scheduler:"),
    ({"weight": "-1"}, "weight:"),
    ({"scheduler_flags": "sh-port"}, "sh-port needs scheduler sh"),
    ({"scheduler_flags": "nope"}, "unknown flag"),
    ({"netmask": "255.0.255.0"}, "contiguous"),
    ({"persistent": "0", "netmask": "24"}, "netmask: needs persistent"),
    ({"persistent": "0", "port": "0"}, "needs persistent"),
    ({"one_packet": "true"}, "only for protocol udp"),
    ({"fwmark": "5"}, "either fwmark or vip"),
    ({"check_type": "http", "check_expect": "(", "check_regex": "yes"}, "regular expression"),
    ({"check_type": "http", "check_path": "no-slash"}, "check_path"),
    ({"check_status": "200,700"}, "check_status"),
    ({"check_timeout": "0"}, "check_timeout"),
    ({"sorry_server": "10.0.0.9:80"}, "sorry_server: needs check_type"),
    ({"check_type": "tcp", "sorry_server": "10.0.0.11:80"}, "also a real server"),
    ({"node_attribute": "bad name"}, "node_attribute"),
    ({"real_servers": "   "}, "real_servers"),
])
def test_invalid_configurations_exit_6(tmp_path: Path, extra: dict[str, str], why: str) -> None:
    rc, reasons = run("start", dict(BASE, **extra), [], tmp_path)
    assert rc == 6
    assert why in reasons[0]


def test_fwmark_with_port_zero_needs_check_port(tmp_path: Path) -> None:
    p = {"fwmark": "10", "real_servers": "10.0.0.21/method=tun", "check_type": "tcp"}
    rc, reasons = run("validate-all", p, [], tmp_path)
    assert rc == 6 and "check_port" in reasons[0]
    assert run("validate-all", dict(p, check_port="80"), [], tmp_path) == (0, [])


def test_reloadable_parameters() -> None:
    fixed = {p.name for p in SPEC.params if not p.reloadable}
    assert fixed == {"vip", "port", "protocol", "fwmark", "family"}


# ----- diff -----------------------------------------------------------------------------

def cfg_of(tmp_path: Path, params: dict[str, str]) -> ipvs.Config:
    from lsaa.ocf.agent import Context
    from lsaa.testing.fakerun import env_for

    env = env_for(params)
    values, problems = SPEC.parse(env)
    assert not problems
    from lsaa.deadline import Deadline
    from lsaa.log import Log

    ctx = Context(SPEC, "start", env, values, Log("t", env), Deadline(10))
    cfg, problems = ipvs.build_config(ctx)
    assert cfg is not None, problems
    return cfg


def test_plan_converged_is_empty(tmp_path: Path) -> None:
    cfg = cfg_of(tmp_path, BASE)
    cur = parse_list(fixture("Ln-t-v4.txt"))[0]
    assert plan(cfg, cur, cfg.servers, False) == ([], [])


def test_plan_applies_only_differences(tmp_path: Path) -> None:
    cfg = cfg_of(tmp_path, dict(BASE, scheduler="rr",
                                real_servers="10.0.0.12:8080/weight=5 10.0.0.13:80"))
    cur = parse_list(fixture("Ln-t-v4.txt"))[0]
    lines, diffs = plan(cfg, cur, cfg.servers, False)
    svc = ["-t", "192.0.2.10:80"]
    assert lines == [
        ["-E", *svc, "-s", "rr", "-p", "300"],
        ["-e", *svc, "-r", "10.0.0.12:8080", "-m", "-w", "5"],
        ["-a", *svc, "-r", "10.0.0.13:80", "-m", "-w", "1"],
        ["-d", *svc, "-r", "10.0.0.11:80"],  # deletions last
    ]
    assert any("scheduler wlc" in d for d in diffs)


def test_plan_ipv6_persistence_mask(tmp_path: Path) -> None:
    p = {"vip": "2001:db8::10", "port": "80", "scheduler": "lc", "persistent": "120",
         "netmask": "64", "real_servers": "[2001:db8::11]:80 [2001:db8::12]:8080/weight=2"}
    cfg = cfg_of(tmp_path, p)
    cur = parse_list(fixture("Ln-t-v6.txt"))[0]
    assert plan(cfg, cur, cfg.servers, False) == ([], [])
    lines, _ = plan(cfg, None, cfg.servers, False)
    assert lines[0] == ["-A", "-t", "[2001:db8::10]:80", "-s", "lc", "-p", "120", "-M", "64"]
    assert lines[2] == ["-a", "-t", "[2001:db8::10]:80", "-r", "[2001:db8::12]:8080", "-m",
                        "-w", "2"]


def test_plan_fwmark_ipv6_flags(tmp_path: Path) -> None:
    p = {"fwmark": "11", "family": "ipv6", "scheduler": "mh",
         "scheduler_flags": "mh-port,mh-fallback", "real_servers": "2001:db8::21/method=dr"}
    cfg = cfg_of(tmp_path, p)
    cur = parse_list(fixture("Ln-f6.txt"))[0]
    assert plan(cfg, cur, cfg.servers, False) == ([], [])
    lines, _ = plan(cfg, None, cfg.servers, False)
    assert lines == [["-A", "-f", "11", "-6", "-s", "mh", "-b", "mh-fallback,mh-port"],
                     ["-a", "-f", "11", "-6", "-r", "[2001:db8::21]:0", "-g", "-w", "1"]]


def test_plan_sh_flags_netmask(tmp_path: Path) -> None:
    p = {"vip": "192.0.2.10", "port": "443", "scheduler": "sh", "persistent": "600",
         "netmask": "/24", "scheduler_flags": "sh-fallback,sh-port", "method": "dr",
         "real_servers": "10.0.0.11/weight=5 10.0.0.12/weight=0"}
    cur = parse_list(fixture("Ln.txt"))
    svc = next(s for s in cur if s.port == 443)
    cfg = cfg_of(tmp_path, p)
    assert plan(cfg, svc, cfg.servers, False) == ([], [])


def test_plan_thresholds(tmp_path: Path) -> None:
    cfg = cfg_of(tmp_path, dict(BASE, real_servers="10.0.0.11:80 10.0.0.12:8080/w=3,u=100,l=10"))
    cur = parse_list(fixture("Ln-t-v4.txt"))[0]
    limits = {d.key: d for d in parse_list(fixture("Ln-t-thresholds.txt"))[0].dests}
    for d in cur.dests:
        d.upper, d.lower = limits[d.key].upper, limits[d.key].lower
    assert plan(cfg, cur, cfg.servers, True) == ([], [])
    cfg2 = cfg_of(tmp_path, BASE)
    lines, _ = plan(cfg2, cur, cfg2.servers, True)
    assert lines == [["-e", "-t", "192.0.2.10:80", "-r", "10.0.0.12:8080", "-m", "-w", "3"]]


# ----- actions --------------------------------------------------------------------------

def test_start_creates_in_one_restore_and_reads_back(tmp_path: Path) -> None:
    stdin = ("-A -t 192.0.2.10:80 -s wlc -p 300\n"
             "-a -t 192.0.2.10:80 -r 10.0.0.11:80 -m -w 1\n"
             "-a -t 192.0.2.10:80 -r 10.0.0.12:8080 -m -w 3\n")
    calls = [Call(LN, 1, stderr="No such service\n"),
             Call(["ipvsadm", "-R"], input=stdin),
             Call(LN, stdout=fixture("Ln-t-v4.txt"))]
    assert run("start", BASE, calls, tmp_path) == (0, [])


def test_start_converges_and_keeps_other_services(tmp_path: Path) -> None:
    params = dict(BASE, real_servers="10.0.0.11:80")
    after = "\n".join(ln for ln in fixture("Ln-t-v4.txt").splitlines() if "8080" not in ln)
    calls = [Call(LN, stdout=fixture("Ln-t-v4.txt")),
             Call(LNT, stdout=fixture("Ln-t-thresholds.txt")),
             Call(["ipvsadm", "-R"], input="-d -t 192.0.2.10:80 -r 10.0.0.12:8080\n"),
             Call(LN, stdout=after), Call(LNT, stdout=fixture("Ln-t-thresholds.txt"))]
    # the second read-back shows thresholds of the deleted server only: converged
    rc, reasons = run("start", params, calls, tmp_path)
    assert (rc, reasons) == (0, [])


def test_start_fails_when_the_kernel_refuses(tmp_path: Path) -> None:
    calls = [Call(LN, 1, stderr="No such service\n"),
             Call(["ipvsadm", "-R"], stderr="Memory allocation problem\n"),
             Call(LN, 1, stderr="No such service\n")]
    rc, reasons = run("start", BASE, calls, tmp_path)
    assert rc == 1 and "Memory allocation problem" in reasons[0]


def test_start_names_missing_scheduler_module(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ipvs, "kernel_module_present", lambda name: name != "ip_vs_twos")
    rc, reasons = run("start", dict(BASE, scheduler="twos"), [], tmp_path)
    assert rc == 5 and "ip_vs_twos" in reasons[0]
    rc, reasons = run("validate-all", dict(BASE, scheduler="twos"), [], tmp_path)
    assert rc == 0  # level 0 never looks at the node
    runner = FakeRunner([])
    out = ocf(AGENT, "validate-all", dict(BASE, scheduler="twos"), runner=runner,
              env={"HA_RSCTMP": str(tmp_path), "OCF_CHECK_LEVEL": "10"})
    assert out.rc == 5 and "ip_vs_twos" in out.reasons[0]
    # the kernel's own answer is mapped the same way
    monkeypatch.setattr(ipvs, "kernel_module_present", lambda name: None)
    calls = [Call(LN, 1, stderr="No such service\n"),
             Call(["ipvsadm", "-R"], stderr=fixture("A-twos.err"))]
    rc, reasons = run("start", dict(BASE, scheduler="twos"), calls, tmp_path)
    assert rc == 5 and "ip_vs_twos" in reasons[0]


def test_stop(tmp_path: Path) -> None:
    d = ["ipvsadm", "-D", "-t", "192.0.2.10:80"]
    assert run("stop", BASE, [Call(d), Call(LN, 1, stderr="No such service\n")],
               tmp_path) == (0, [])
    assert run("stop", BASE, [Call(d, 255, stderr="No such service\n"),
                              Call(LN, 1, stderr="No such service\n")], tmp_path) == (0, [])
    no_ipvs = fixture("host-no-ipvs.err")
    assert run("stop", BASE, [Call(d, 2, stderr=no_ipvs)], tmp_path) == (0, [])
    rc, reasons = run("stop", BASE, [Call(d, 255, stderr="Permission denied\n"),
                                     Call(LN, stdout=fixture("Ln-t-v4.txt"))], tmp_path)
    assert rc == 1 and "still present" in reasons[0]


def test_monitor(tmp_path: Path) -> None:
    assert run("monitor", BASE, [Call(LN, 1, stderr="No such service\n")], tmp_path)[0] == 7
    no_ipvs = fixture("host-no-ipvs.err")
    assert run("monitor", BASE, [Call(LN, 2, stderr=no_ipvs)], tmp_path)[0] == 7  # probe
    assert run("monitor", BASE, [Call(LN, stdout=fixture("Ln-t-v4.txt"))], tmp_path,
               interval="10000") == (0, [])
    rc, reasons = run("monitor", dict(BASE, scheduler="rr"),
                      [Call(LN, stdout=fixture("Ln-t-v4.txt"))], tmp_path, interval="10000")
    assert rc == 1 and "scheduler wlc (configured rr)" in reasons[0]
    # a probe reports what exists, whatever its settings
    assert run("monitor", dict(BASE, scheduler="rr"),
               [Call(LN, stdout=fixture("Ln-t-v4.txt"))], tmp_path)[0] == 0


def test_monitor_repairs_a_server_edited_by_hand(tmp_path: Path) -> None:
    edited = fixture("Ln-t-v4.txt").replace("Masq    3", "Masq    9")
    calls = [Call(LN, stdout=edited), Call(LN, stdout=edited),
             Call(["ipvsadm", "-R"], input="-e -t 192.0.2.10:80 -r 10.0.0.12:8080 -m -w 3\n"),
             Call(LN, stdout=fixture("Ln-t-v4.txt"))]
    assert run("monitor", BASE, calls, tmp_path, interval="10000") == (0, [])


# ----- health checks --------------------------------------------------------------------

class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        code = 200 if self.path.startswith("/ok") else 503
        body = b"status: all good\n" if code == 200 else b"down\n"
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def _serving(srv: ThreadingHTTPServer) -> Iterator[int]:
    """Serve in a thread while the test runs; the port."""
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def http_port() -> Iterator[int]:
    yield from _serving(ThreadingHTTPServer(("127.0.0.1", 0), _Handler))


@pytest.fixture
def https_port(tmp_path: Path) -> Iterator[int]:
    """The same server behind TLS, with a self-signed certificate made by openssl."""
    import ssl
    import subprocess

    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=rs1.example", "-keyout", str(tmp_path / "key.pem"),
                    "-out", str(tmp_path / "cert.pem")], check=True, capture_output=True,
                   timeout=60)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    yield from _serving(srv)


@pytest.fixture
def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return int(port)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """Accepts connections (the kernel does) and never answers."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    yield s.getsockname()[1]
    s.close()


def test_probes(http_port: int, closed_port: int, silent_port: int) -> None:
    import time

    far = time.monotonic() + 30
    assert probe(Check("tcp", 2), "127.0.0.1", http_port, far) == (True, "")
    ok, why = probe(Check("tcp", 2), "127.0.0.1", closed_port, far)
    assert not ok and "refused" in why
    assert probe(Check("http", 2, path="/ok"), "127.0.0.1", http_port, far)[0]
    assert probe(Check("http", 2, path="/bad"), "127.0.0.1", http_port, far) == (False,
                                                                                 "status 503")
    assert probe(Check("http", 2, path="/bad", statuses=range(500, 600)), "127.0.0.1",
                 http_port, far)[0]
    assert probe(Check("http", 2, path="/ok", expect="all good"), "127.0.0.1", http_port,
                 far)[0]
    assert not probe(Check("http", 2, path="/ok", expect="nope"), "127.0.0.1", http_port,
                     far)[0]
    assert probe(Check("http", 2, path="/ok", expect=r"status: \w+ good", regex=True),
                 "127.0.0.1", http_port, far)[0]
    ok, why = probe(Check("http", 0.3), "127.0.0.1", silent_port, far)
    assert not ok and "timed out" in why
    assert not probe(Check("https", 0.5), "127.0.0.1", http_port, far)[0]


def test_https_probes_a_real_tls_server(https_port: int, http_port: int) -> None:
    """Status and content through TLS; a self-signed certificate passes without
    check_verify and fails with it (naming the certificate); plain HTTP on a TLS port
    and TLS on a plain port both fail."""
    import time

    far = time.monotonic() + 30
    assert probe(Check("https", 2, path="/ok", expect="all good"), "127.0.0.1", https_port,
                 far) == (True, "")
    assert probe(Check("https", 2, path="/bad"), "127.0.0.1", https_port, far) == (
        False, "status 503")
    ok, why = probe(Check("https", 2, path="/ok", verify=True, host="rs1.example"),
                    "127.0.0.1", https_port, far)
    assert not ok and "certificate" in why.lower(), why
    assert not probe(Check("http", 2, path="/ok"), "127.0.0.1", https_port, far)[0]
    assert not probe(Check("https", 2, path="/ok"), "127.0.0.1", http_port, far)[0]


def test_run_checks_parallel_and_unknown_at_deadline(http_port: int, silent_port: int) -> None:
    import time

    targets = [("127.0.0.1", http_port)] * 5 + [("127.0.0.1", silent_port)] * 5
    res = run_checks(Check("http", 30, path="/ok"), targets, time.monotonic() + 2)
    assert [r[0] if r else None for r in res] == [True] * 5 + [None] * 5


def test_health_hysteresis() -> None:
    h = Health()
    assert not h.update(False, "refused", 2, 2)
    assert h.update(False, "refused", 2, 2) and h.down
    assert not h.update(None, "", 2, 2) and h.down  # unknown changes nothing
    assert not h.update(True, "", 2, 2) and h.down
    assert not h.update(False, "refused", 2, 2) and h.down and h.oks == 0
    assert not h.update(True, "", 2, 2)
    assert h.update(True, "", 2, 2) and not h.down
    assert Health.from_json(h.to_json()).to_json() == h.to_json()
    assert Health.from_json("garbage").to_json() == [0, 0, 0, ""]


def listing(servers: list[tuple[str, int, int]]) -> str:
    lines = ["Prot LocalAddress:Port Scheduler Flags",
             "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn",
             "TCP  192.0.2.10:80 wlc"]
    lines += [f"  -> {a}:{p}  Masq    {w}      0          0         " for a, p, w in servers]
    return "\n".join(lines) + "\n"


def test_monitor_quiesces_restores_and_publishes(tmp_path: Path, http_port: int,
                                                 closed_port: int) -> None:
    p = {"vip": "192.0.2.10", "port": "80",
         "real_servers": f"127.0.0.1:{http_port}/weight=2 127.0.0.1:{closed_port}/weight=3",
         "check_type": "tcp", "failure_count": "2", "recovery_count": "1",
         "node_attribute": "web-ok"}
    both = listing([("127.0.0.1", http_port, 2), ("127.0.0.1", closed_port, 3)])
    quiet = listing([("127.0.0.1", http_port, 2), ("127.0.0.1", closed_port, 0)])
    attr = ["crm_attribute", "--node", "n1", "--name", "web-ok", "--lifetime", "reboot",
            "--update"]
    # first failure: counted, nothing changes; the count (2) is published once
    assert run("monitor", p, [Call(LN, stdout=both), Call([*attr, "2"])], tmp_path,
               interval="10000", on_node="n1") == (0, [])
    state = json.loads((tmp_path / "lsaa-ipvs-test.health").read_text())
    assert state["servers"][f"127.0.0.1 {closed_port}"][:2] == [0, 1]
    # second failure: quiesced, count 1 published
    calls = [Call(LN, stdout=both), Call(LN, stdout=both),
             Call(["ipvsadm", "-R"], input=f"-e -t 192.0.2.10:80 -r 127.0.0.1:{closed_port} "
                                           "-m -w 0\n"),
             Call(LN, stdout=quiet), Call([*attr, "1"])]
    assert run("monitor", p, calls, tmp_path, interval="10000", on_node="n1") == (0, [])
    # still down: one read, no change, nothing published
    assert run("monitor", p, [Call(LN, stdout=quiet)], tmp_path, interval="10000",
               on_node="n1") == (0, [])
    # it comes back: restored with its configured weight
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", closed_port))
    srv.listen(4)
    try:
        calls = [Call(LN, stdout=quiet), Call(LN, stdout=quiet),
                 Call(["ipvsadm", "-R"], input=f"-e -t 192.0.2.10:80 -r 127.0.0.1:{closed_port}"
                                               " -m -w 3\n"),
                 Call(LN, stdout=both), Call([*attr, "2"])]
        assert run("monitor", p, calls, tmp_path, interval="10000", on_node="n1") == (0, [])
    finally:
        srv.close()


def test_remove_policy_and_sorry_server(tmp_path: Path, closed_port: int) -> None:
    p = {"vip": "192.0.2.10", "port": "80", "real_servers": f"127.0.0.1:{closed_port}",
         "check_type": "tcp", "failure_count": "1", "on_failure": "remove",
         "sorry_server": "127.0.0.2:80"}
    one = listing([("127.0.0.1", closed_port, 1)])
    sorry = listing([("127.0.0.2", 80, 1)])
    calls = [Call(LN, stdout=one), Call(LN, stdout=one),
             Call(["ipvsadm", "-R"], input="-a -t 192.0.2.10:80 -r 127.0.0.2:80 -m -w 1\n"
                                           f"-d -t 192.0.2.10:80 -r 127.0.0.1:{closed_port}\n"),
             Call(LN, stdout=sorry)]
    assert run("monitor", p, calls, tmp_path, interval="10000") == (0, [])


def test_dest_repr() -> None:
    assert "10.0.0.1" in repr(Dest("10.0.0.1", 80, "nat", 1))


def test_monitor_survives_a_failing_node_attribute_update(tmp_path: Path, http_port: int) -> None:
    p = {"vip": "192.0.2.10", "port": "80", "real_servers": f"127.0.0.1:{http_port}",
         "check_type": "tcp", "node_attribute": "web-ok"}
    one = listing([("127.0.0.1", http_port, 1)])
    attr = ["crm_attribute", "--node", "n1", "--name", "web-ok", "--lifetime", "reboot",
            "--update", "1"]
    calls = [Call(LN, stdout=one), Call(attr, 1, stderr="Could not connect to the CIB\n")]
    assert run("monitor", p, calls, tmp_path, interval="10000", on_node="n1") == (0, [])
    state = json.loads((tmp_path / "lsaa-ipvs-test.health").read_text())
    assert state["published"] is None
    # not recorded as published: the next monitor publishes it
    calls = [Call(LN, stdout=one), Call(attr)]
    assert run("monitor", p, calls, tmp_path, interval="10000", on_node="n1") == (0, [])
    state = json.loads((tmp_path / "lsaa-ipvs-test.health").read_text())
    assert state["published"] == 1


def test_stop_without_ipvsadm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No ipvsadm: stop succeeds only when the kernel has no ip_vs at all."""
    d = ["ipvsadm", "-D", "-t", "192.0.2.10:80"]

    class Missing(FakeRunner):
        def _execute(self, argv, input, timeout, env, shown):  # type: ignore[no-untyped-def]
            from lsaa.errors import NotInstalledError

            raise NotInstalledError(f"{argv[0]} not found")

    real_exists = os.path.exists
    for present, want in ((False, 0), (True, 5)):
        monkeypatch.setattr(os.path, "exists", lambda p, present=present: present
                            if p == "/proc/net/ip_vs" else real_exists(p))
        out = ocf(AGENT, "stop", BASE, runner=Missing([Call(d)]),
                  env={"HA_RSCTMP": str(tmp_path)})
        assert out.rc == want


# ----- the netlink backend (lsaa.backends.ipvs_netlink; its wire format: test_ipvs_netlink) --

class FakeNetlink:
    """Stands in for ipvs_netlink.Client: reads answer from a list, applies are recorded."""

    def __init__(self, reads: list[object], failures: list[list[tuple[int, int, str]]]
                 | None = None) -> None:
        self.reads = list(reads)
        self.failures = list(failures or [])
        self.applied: list[list[str]] = []

    def read(self, svc: object) -> object:
        import copy

        return copy.deepcopy(self.reads.pop(0))

    def apply(self, changes: list[object]) -> list[tuple[int, int, str]]:
        self.applied.append([repr(c) for c in changes])
        return self.failures.pop(0) if self.failures else []


def use_netlink(monkeypatch: pytest.MonkeyPatch, client: FakeNetlink | None,
                missing: bool = False) -> None:
    def fake(ctx: object, required: bool) -> FakeNetlink | None:
        if missing:
            setattr(ctx, "lsaa_ipvs_family_missing", True)  # noqa: B010
        return client

    monkeypatch.setattr(ipvs, "open_netlink", fake)


def v4() -> ipvs.Service:
    return parse_list(fixture("Ln-t-v4.txt"))[0]


def test_netlink_start_creates_reads_back_and_runs_nothing(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    nl = FakeNetlink([None, v4()])
    use_netlink(monkeypatch, nl)
    monkeypatch.setattr("shutil.which", lambda name, path=None: None)  # no ipvsadm needed
    assert run("start", BASE, [], tmp_path) == (0, [])
    key = "('tcp', '192.0.2.10', 80, False)"
    assert nl.applied == [[f"Change(add service, {key}, None)",
                           f"Change(add destination, {key}, Dest('10.0.0.11', 80, 'nat', w=1, "
                           "u=0, l=0))",
                           f"Change(add destination, {key}, Dest('10.0.0.12', 8080, 'nat', w=3, "
                           "u=0, l=0))"]]
    assert not nl.reads


def test_netlink_refused_line_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    short = v4()
    short.dests = short.dests[:1]
    nl = FakeNetlink([None, short], [[(2, 17, "Destination already exists")]])
    use_netlink(monkeypatch, nl)
    rc, reasons = run("start", BASE, [], tmp_path)
    assert rc == 1
    assert reasons[0] == ("service still differs (10.0.0.12:8080 missing): -a -t 192.0.2.10:80 "
                          "-r 10.0.0.12:8080 -m -w 3: Destination already exists")


def test_netlink_missing_scheduler(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ipvs, "kernel_module_present", lambda name: None)
    use_netlink(monkeypatch, FakeNetlink(
        [None], [[(0, 2, "Scheduler or persistence engine not found")]]))
    rc, reasons = run("start", dict(BASE, scheduler="twos"), [], tmp_path)
    assert rc == 5 and "ip_vs_twos" in reasons[0]


def test_netlink_monitor_repairs_with_the_same_diff(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    edited = v4()
    edited.dests[1].weight = 9
    nl = FakeNetlink([edited, edited, v4()])
    use_netlink(monkeypatch, nl)
    assert run("monitor", BASE, [], tmp_path, interval="10000") == (0, [])
    assert nl.applied == [["Change(edit destination, ('tcp', '192.0.2.10', 80, False), "
                           "Dest('10.0.0.12', 8080, 'nat', w=3, u=0, l=0))"]]
    use_netlink(monkeypatch, FakeNetlink([v4()]))
    rc, reasons = run("monitor", dict(BASE, scheduler="rr"), [], tmp_path, interval="10000")
    assert rc == 1 and "scheduler wlc (configured rr)" in reasons[0]


def test_netlink_thresholds_only_when_asked(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A netlink read always has thresholds; without them in the configuration they
    read as 0, as with ipvsadm -Ln (hand-set thresholds are left alone by monitor)."""
    hand = v4()
    hand.dests[0].upper = 50
    use_netlink(monkeypatch, FakeNetlink([hand]))
    assert run("monitor", BASE, [], tmp_path, interval="10000") == (0, [])


def test_netlink_stop_and_family_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nl = FakeNetlink([None])
    use_netlink(monkeypatch, nl)
    assert run("stop", BASE, [], tmp_path) == (0, [])
    assert nl.applied == [["Change(delete service, ('tcp', '192.0.2.10', 80, False), None)"]]
    use_netlink(monkeypatch, FakeNetlink([v4()], [[(0, 1, "Operation not permitted")]]))
    rc, reasons = run("stop", BASE, [], tmp_path)
    assert rc == 1 and "still present after delete: Operation not permitted" in reasons[0]
    # no IPVS family: ip_vs is not loaded, so nothing runs and nothing is running
    use_netlink(monkeypatch, None, missing=True)
    assert run("stop", BASE, [], tmp_path) == (0, [])
    assert run("monitor", BASE, [], tmp_path, interval="10000")[0] == 7


def test_backend_netlink_required(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lsaa.backends import ipvs_netlink

    def missing(deadline: object) -> None:
        raise ipvs_netlink.FamilyMissing(2, "no family")

    monkeypatch.undo()
    monkeypatch.setattr(ipvs, "kernel_module_present", lambda name: True)
    monkeypatch.setattr(ipvs_netlink, "Client", missing)
    rc, reasons = run("start", dict(BASE, backend="netlink"), [], tmp_path)
    assert rc == 5 and "no IPVS netlink family" in reasons[0]
    assert run("stop", dict(BASE, backend="netlink"), [], tmp_path) == (0, [])
    # auto: no family means no ip_vs, so no service (and no ipvsadm run to load it)
    assert run("monitor", BASE, [], tmp_path)[0] == 7

    def unusable(deadline: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    # auto: netlink unusable (not just the family missing): ipvsadm does it all
    monkeypatch.setattr(ipvs_netlink, "Client", unusable)
    calls = [Call(LN, stdout=fixture("Ln-t-v4.txt"))]
    assert run("monitor", BASE, calls, tmp_path)[0] == 0


def test_netlink_changes_follow_plan_lines(tmp_path: Path) -> None:
    cfg = cfg_of(tmp_path, dict(BASE, real_servers="10.0.0.12:8080/w=5,u=9,l=2 10.0.0.13"))
    lines, _ = plan(cfg, v4(), cfg.servers, False)
    got = [repr(c) for c in ipvs.netlink_changes(cfg, lines)]
    key = "('tcp', '192.0.2.10', 80, False)"
    assert got == [f"Change(edit destination, {key}, Dest('10.0.0.12', 8080, 'nat', w=5, u=9, "
                   "l=2))",
                   f"Change(add destination, {key}, Dest('10.0.0.13', 80, 'nat', w=1, u=0, "
                   "l=0))",
                   f"Change(delete destination, {key}, Dest('10.0.0.11', 80, 'dr', w=1, u=0, "
                   "l=0))"]
