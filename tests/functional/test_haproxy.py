"""ocf:lsaa:haproxy with the real haproxy on loopback: lifecycle, depth-10 monitor of backends,
graceful reload under a client load, broken configurations refused while the old instance keeps
serving, the conformance harness, and the agent under a real Pacemaker node.

Every haproxy is started by the agent and stopped by it (or, if a test fails half-way, by the
PIDs the agent recorded); every wait is a bounded poll; nothing asserts on elapsed time.
"""

from __future__ import annotations

import http.client
import http.server
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lsaa.backends.haproxy import cli, parse_show_proc
from lsaa.tester.ocf import run_ocf_checks

pytestmark = pytest.mark.functional

ROOT = Path(__file__).resolve().parents[2]
AGENT = str(ROOT / "ocf" / "haproxy")
INSTALLED = "/usr/lib/ocf/resource.d/lsaa/haproxy"
ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "OCF_ROOT": "/usr/lib/ocf",
       "HA_LOGFACILITY": "none", "OCF_RESKEY_CRM_meta_timeout": "20000"}

if shutil.which("haproxy", path=ENV["PATH"]) is None:
    pytest.skip("haproxy is not installed (scripts/setup/apt-haproxy.txt)",
                allow_module_level=True)
if not os.access("/usr/bin/python3", os.X_OK) or os.geteuid() != 0:
    pytest.skip("needs root and /usr/bin/python3", allow_module_level=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Quiet(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def backend() -> Iterator[int]:
    """A live HTTP server on 127.0.0.1; its port."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def config(fe: int, live: int, gen: int = 0, extra: str = "") -> str:
    dead = free_port()  # nothing listens there
    return f"""\
global
    maxconn 500
defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s
frontend fe
    bind 127.0.0.1:{fe}
    http-response set-header X-Gen {gen}
    default_backend live
backend live
    server s1 127.0.0.1:{live} check inter 200 rise 1 fall 1
backend down
    server s1 127.0.0.1:{dead} check inter 200 rise 1 fall 1
{extra}"""


class Instance:
    """One resource instance driven through the agent's launcher, like pacemaker-execd."""

    def __init__(self, state: Path, name: str, params: dict[str, str]) -> None:
        self.state = state
        self.name = name
        self.params = dict(params)

    def env(self, params: dict[str, str] | None = None, level: int = 0,
            interval: int = 0) -> dict[str, str]:
        env = {**ENV, "HA_RSCTMP": str(self.state), "OCF_RESOURCE_INSTANCE": self.name,
               "OCF_RESKEY_CRM_meta_interval": str(interval)}
        env.update({f"OCF_RESKEY_{k}": v for k, v in (params or self.params).items()})
        if level:
            env["OCF_CHECK_LEVEL"] = str(level)
        return env

    def run(self, action: str, params: dict[str, str] | None = None, level: int = 0,
            interval: int = 0) -> tuple[int, str]:
        res = subprocess.run([AGENT, action], env=self.env(params, level, interval),
                             capture_output=True, text=True, timeout=30, check=False)
        reasons = [ln.split(":", 1)[1] for ln in res.stderr.splitlines()
                   if ln.startswith("ocf-exit-reason:")]
        return res.returncode, reasons[-1] if reasons else ""

    @property
    def sock(self) -> str:
        return str(self.state / f"lsaa-haproxy-{self.name}.sock")

    def master(self) -> int:
        return int((self.state / f"lsaa-haproxy-{self.name}.pid").read_text())

    def workers(self) -> list[int]:
        return [w.pid for w in parse_show_proc(cli(self.sock, "show proc", 5)).all_workers]

    def processes(self) -> list[int]:
        """PIDs whose argv names this instance's socket (what the agent would stop)."""
        found = []
        for name in os.listdir("/proc"):
            try:
                with open(f"/proc/{name}/cmdline", "rb") as f:
                    if self.sock.encode() in f.read():
                        found.append(int(name))
            except (OSError, ValueError):
                pass
        return found

    def cleanup(self) -> None:
        """Stop through the agent; kill what a failed test may have left, by recorded PID."""
        self.run("stop")
        for pid in self.processes():
            os.kill(pid, 9)


@pytest.fixture
def instances(tmp_path: Path) -> Iterator[list[Instance]]:
    made: list[Instance] = []
    yield made
    for inst in made:
        inst.cleanup()


def new(instances: list[Instance], tmp_path: Path, name: str, **params: str) -> Instance:
    inst = Instance(tmp_path / "state", name, params)
    instances.append(inst)
    return inst


def get(port: int) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/", headers={"Connection": "close"})
        resp = conn.getresponse()
        resp.read()
        return resp.status, resp.getheader("X-Gen") or ""
    finally:
        conn.close()


def poll(predicate: object, what: str, timeout: float = 10) -> None:
    end = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


# -- lifecycle --------------------------------------------------------------------------------


def test_start_monitor_stop(tmp_path: Path, instances: list[Instance], backend: int) -> None:
    fe = free_port()
    h = new(instances, tmp_path, "h1", config_text=config(fe, backend), backends="live")
    assert h.run("monitor") == (7, "")
    assert h.run("start") == (0, "")
    master = h.master()
    # haproxy -D left the agent's session (and process group): a SIGKILL of the agent's group
    # by pacemaker-execd cannot reach it
    assert os.getsid(master) == master
    assert os.stat(h.state / "lsaa-haproxy-h1.cfg").st_mode & 0o777 == 0o600
    assert h.run("monitor", interval=10000) == (0, "")
    assert h.run("monitor", level=10, interval=10000) == (0, "")
    assert get(fe) == (200, "0")
    assert h.run("start") == (0, "")  # already running
    assert h.master() == master

    # "down" has its only server on a port nobody listens on
    down = {**h.params, "backends": "live down"}
    poll(lambda: h.run("monitor", down, level=10, interval=10000)[0] != 0, "backend down")
    rc, reason = h.run("monitor", down, level=10, interval=10000)
    assert (rc, reason) == (1, "backend down has no server up (s1 DOWN)")
    assert h.run("monitor", down, interval=10000) == (0, "")  # depth 0 does not look

    assert h.run("stop") == (0, "")
    assert h.processes() == []
    assert sorted(p.name for p in h.state.iterdir()) == []
    assert h.run("stop") == (0, "")
    assert h.run("monitor") == (7, "")
    assert h.run("monitor", interval=10000) == (7, "")


def test_stale_pid_file_of_a_dead_master(tmp_path: Path, instances: list[Instance],
                                         backend: int) -> None:
    h = new(instances, tmp_path, "h2", config_text=config(free_port(), backend))
    assert h.run("start") == (0, "")
    procs = h.processes()
    for pid in procs:
        os.kill(pid, 9)  # the whole instance dies behind the agent's back
    poll(lambda: h.processes() == [], "haproxy gone")
    assert h.run("monitor", interval=10000)[0] == 7
    assert h.run("stop") == (0, "")
    assert h.run("start") == (0, "")
    assert h.master() not in procs


# -- reload -------------------------------------------------------------------------------------


def test_graceful_reload_under_load(tmp_path: Path, instances: list[Instance],
                                    backend: int) -> None:
    fe = free_port()
    h = new(instances, tmp_path, "h3", config_text=config(fe, backend, gen=0))
    assert h.run("start") == (0, "")
    master = h.master()
    stop = threading.Event()
    results: list[tuple[int, str]] = []
    failures: list[str] = []

    def client() -> None:
        end = time.monotonic() + 60
        while not stop.is_set() and len(results) < 20000 and time.monotonic() < end:
            try:
                results.append(get(fe))
            except OSError as e:
                failures.append(f"request {len(results) + len(failures)}: {e!r}")

    thread = threading.Thread(target=client)
    thread.start()
    try:
        for gen in range(1, 6):
            poll(lambda n=50 * gen: len(results) + len(failures) >= n,  # type: ignore[misc]
                 "requests between reloads")
            params = {**h.params, "config_text": config(fe, backend, gen=gen)}
            assert h.run("reload-agent", params) == (0, "")
            poll(lambda g=gen: bool(results) and results[-1][1] == str(g),  # type: ignore[misc]
                 f"responses of generation {gen}")
    finally:
        stop.set()
        thread.join(70)
    print(f"\n{len(results)} requests through 5 reloads, {len(failures)} failed")
    assert failures == []
    assert {status for status, _ in results} == {200}
    assert {g for _, g in results} == {"0", "1", "2", "3", "4", "5"}
    assert h.master() == master  # reloaded, never restarted


def test_broken_config_never_replaces_a_running_one(tmp_path: Path, instances: list[Instance],
                                                    backend: int) -> None:
    fe = free_port()
    good = config(fe, backend)
    broken = good + "    bogus_keyword on\n"
    h = new(instances, tmp_path, "h4", config_text=good)
    assert h.run("start") == (0, "")
    master, workers = h.master(), h.workers()
    installed = (h.state / "lsaa-haproxy-h4.cfg").read_text()

    rc, reason = h.run("reload-agent", {"config_text": broken})
    assert rc == 6  # the same text is broken on every node
    assert reason == ("invalid configuration: haproxy -c: parsing [config_text:16] : unknown "
                      "keyword 'bogus_keyword' in 'backend' section")
    assert (h.master(), h.workers()) == (master, workers)  # untouched, not even reloaded
    assert (h.state / "lsaa-haproxy-h4.cfg").read_text() == installed
    assert get(fe) == (200, "0")

    cfg = tmp_path / "site.cfg"
    cfg.write_text(broken)
    rc, reason = h.run("reload-agent", {"config": str(cfg)})
    assert rc == 2  # a file on this node: another node's copy may be fine
    assert reason == ("config: haproxy -c: parsing [site.cfg:16] : unknown keyword "
                      "'bogus_keyword' in 'backend' section")
    assert (h.master(), h.workers()) == (master, workers)
    assert get(fe) == (200, "0")

    # the same configurations refused at start, nothing left behind
    other = new(instances, tmp_path, "h5", config_text=broken)
    assert other.run("start")[0] == 6
    assert other.run("start", {"config": str(cfg)})[0] == 2
    assert other.run("monitor") == (7, "")
    assert other.processes() == []

    # and a good file reloads (through the symlink the master reads)
    cfg.write_text(config(fe, backend, gen=7))
    assert h.run("reload-agent", {"config": str(cfg)}) == (0, "")
    assert h.master() == master
    poll(lambda: get(fe) == (200, "7"), "the file's configuration serving")


# -- the conformance harness ----------------------------------------------------------------------


def test_conformance(tmp_path: Path, backend: int) -> None:
    state = tmp_path / "state"
    report = run_ocf_checks(
        INSTALLED if os.path.exists(INSTALLED) else AGENT,
        params={"config_text": config(free_port(), backend), "backends": "live"},
        timeout=20, extra_env={"HA_RSCTMP": str(state)},
        invalid={"backends": "nosuch"}, hostile=True,
        hang_params={"binary": "{hang_bin}"})
    assert report.ok, report.render()


# -- under Pacemaker -----------------------------------------------------------------------------


def test_pacemaker_create_and_reload_without_restart(pcmk_node: object, resources: object) -> None:
    from tests.cluster import Node
    from tests.cluster.resources import Resources

    assert isinstance(pcmk_node, Node) and isinstance(resources, Resources)
    port = free_port()

    def text(gen: int) -> str:
        return (f"defaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n"
                f"    timeout server 5s\nfrontend fe\n    bind 127.0.0.1:{port}\n"
                f"    http-request return status 200 content-type text/plain string gen{gen}\n")

    def fetch() -> str:
        code = f"import urllib.request as u; print(u.urlopen('http://127.0.0.1:{port}/').read())"
        return str(pcmk_node.run(["python3", "-c", code], check=False).stdout.strip())

    def count(op: str) -> int:
        return len(re.findall(rf"Result of {op} operation for hp1 on ", pcmk_node.pacemaker_log()))

    resources.create("hp1", "ocf:lsaa:haproxy", f"config_text={text(1)}",
                     "op", "monitor", "interval=2s")
    resources.wait("hp1 started", lambda st: st.where("hp1") == {"node1"})
    pidfile = pcmk_node.path("/run/resource-agents/lsaa-haproxy-hp1.pid")
    master = pidfile.read_text()
    assert fetch() == "b'gen1'"
    starts, stops = count("start"), count("stop")

    # pcs 0.11.5's "resource update" turns the newlines into spaces (the agent refuses such a
    # value with a reason saying so); crm_resource keeps them
    pcmk_node.run(["crm_resource", "-r", "hp1", "--set-parameter", "config_text",
                   "--parameter-value", text(2)])
    resources.wait("hp1 reloaded", lambda st: count("reload-agent") == 1
                   and st.where("hp1") == {"node1"})
    assert "Result of reload-agent operation for hp1 on node1: ok" in pcmk_node.pacemaker_log()
    assert (count("start"), count("stop")) == (starts, stops)
    assert pidfile.read_text() == master  # same master: reloaded, not restarted
    assert fetch() == "b'gen2'"
