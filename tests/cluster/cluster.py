"""Drive real Corosync + Pacemaker nodes, each in its own set of namespaces, on one machine.

Layout (everything under one run directory, nothing in the host's cluster paths)::

    RUN/cluster.json                 PIDs and settings, so another process can tear down
    RUN/corosync.conf                the cluster's configuration (copied into every node)
    RUN/switch/                      the "switch": a network namespace holding bridge br0
    RUN/nodes/NAME/etc-corosync      bind-mounted on /etc/corosync inside the node
                   var-lib-corosync  ... /var/lib/corosync
                   log-corosync      ... /var/log/corosync      (corosync.log)
                   var-lib-pacemaker ... /var/lib/pacemaker     (the CIB survives a kill)
                   log-pacemaker     ... /var/log/pacemaker     (pacemaker.log)
                   var-lib-pcsd      ... /var/lib/pcsd
                   init.json         what the namespace init sets up (nsinit.py)
                   init.out          the namespace init's output

A node is a process tree under ``unshare --mount --uts --ipc --net --pid --fork``, whose PID 1
is ``nsinit.py`` (a reaper that mounts a fresh ``/run`` and ``/dev/shm``).  Its network
namespace holds ``eth0`` with ``10.213.0.<nodeid>/24``, the peer end of a veth pair whose other
end is a port of bridge ``br0`` in the switch's namespace; that address range exists only in
namespaces this module creates.  Pacemaker's IPC is per network namespace, so every node has its
own ``crm_mon``/``pcs`` view, reached with ``nsenter``.  The host's ``/usr`` is shared, so the
agents installed by ``make dev-install`` run inside the nodes unchanged.

Killing a node's init with SIGKILL is a power cut: the kernel kills everything in its PID
namespace, its mounts and its network namespace (and with it the veth pair) disappear.  Its
directories stay, so :meth:`Node.boot` brings it back with its CIB, like a reboot.

Processes are stopped only by the PIDs recorded here; before signalling a recorded PID after it
has been read back from ``cluster.json``, its start time is compared, so a reused PID is never hit.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

# The daemons pass their environment on to the agents: start them (and every command run in a
# node) with a known, minimal one, never the test runner's (PYTHONPATH, venv PATH, ...).
CLEAN_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/root"}

NSINIT = Path(__file__).with_name("nsinit.py")
SUBNET = "10.213.0"  # a private /24 that only ever exists inside our network namespaces
PACEMAKERD_PIDFILE = "/run/lsaa-pacemakerd.pid"  # inside the node; written by the starter
PYTHON = "/usr/bin/python3"

# Bind mounts: node-directory name -> path inside the node.  Every path a daemon writes to.
BINDS = {
    "etc-corosync": "/etc/corosync",
    "var-lib-corosync": "/var/lib/corosync",
    "log-corosync": "/var/log/corosync",
    "var-lib-pacemaker": "/var/lib/pacemaker",
    "log-pacemaker": "/var/log/pacemaker",
    "var-lib-pcsd": "/var/lib/pcsd",
}


class ClusterError(Exception):
    """The cluster did not reach a state in time, or a node could not be driven."""


class CommandError(ClusterError):
    """A command run in a node exited with an unexpected status."""

    def __init__(self, node: str, result: subprocess.CompletedProcess[str]) -> None:
        self.result = result
        argv = " ".join(str(a) for a in result.args)
        super().__init__(f"[{node}] {argv!r} exited {result.returncode}\n"
                         f"stdout: {result.stdout.strip()}\nstderr: {result.stderr.strip()}")


# ---------------------------------------------------------------------------------------------
# Process bookkeeping


def _start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (start time in clock ticks), or None if PID does not exist."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _alive(pid: int, start_time: int | None) -> bool:
    """True while the process recorded as (pid, start_time) exists and is not a zombie."""
    st = _start_time(pid)
    if st is None or (start_time is not None and st != start_time):
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _ns_inode(pid: int, ns: str) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/{ns}").st_ino
    except OSError:
        return None


def processes_in_pidns(inode: int) -> list[int]:
    """Host PIDs of every live process whose PID namespace has this inode."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and _ns_inode(int(entry), "pid") == inode \
                and _alive(int(entry), None):
            found.append(int(entry))
    return found


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def wait_until(predicate: Callable[[], T | None], timeout: float, what: str,
               interval: float = 0.1) -> T:
    """Poll ``predicate`` until it returns something truthy and return that.

    Raises ClusterError naming ``what`` (and the predicate's last exception, if any) when
    ``timeout`` seconds pass first.  Exceptions from the predicate count as "not yet": a daemon
    that is starting refuses connections for a while.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
            last_error = None
        except (ClusterError, OSError, ET.ParseError) as e:
            last_error = e
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error})" if last_error else ""
            raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        time.sleep(interval)


# ---------------------------------------------------------------------------------------------
# Status


@dataclass
class ResourceState:
    """One resource (or clone instance) as crm_mon reports it."""

    id: str
    agent: str
    role: str  # Started, Stopped, Promoted, Unpromoted, Starting, ...
    nodes: list[str]
    failed: bool
    clone: str | None = None  # the clone's id for a clone instance


@dataclass
class ClusterStatus:
    """The parsed output of ``crm_mon -1 --output-as xml`` on one node."""

    dc: str | None
    quorate: bool
    online: set[str]
    offline: set[str]
    resources: list[ResourceState]
    fail_counts: dict[tuple[str, str], int] = field(default_factory=dict)  # (node, rsc) -> n
    xml: str = ""

    @classmethod
    def parse(cls, text: str) -> ClusterStatus:
        root = ET.fromstring(text)
        dc_el = root.find("summary/current_dc")
        dc = dc_el.get("name") if dc_el is not None and dc_el.get("present") == "true" else None
        quorate = dc_el is not None and dc_el.get("with_quorum") == "true"
        online: set[str] = set()
        offline: set[str] = set()
        for n in root.iterfind("nodes/node"):
            (online if n.get("online") == "true" else offline).add(n.get("name", ""))
        resources = []
        for res in root.iter("resource"):
            resources.append(ResourceState(
                id=res.get("id", ""), agent=res.get("resource_agent", ""),
                role=res.get("role", ""), nodes=[n.get("name", "") for n in res.iter("node")],
                failed=res.get("failed") == "true", clone=None))
        for clone in root.iter("clone"):
            for res in clone.iter("resource"):
                for r in resources:
                    if r.id == res.get("id") and r.nodes == [
                            n.get("name", "") for n in res.iter("node")]:
                        r.clone = clone.get("id")
        fail_counts = {}
        for n in root.iterfind("node_history/node"):
            for rh in n.iterfind("resource_history"):
                count = rh.get("fail-count")
                if count is not None:
                    fail_counts[(n.get("name", ""), rh.get("id", ""))] = int(
                        1000000 if count == "INFINITY" else count)
        return cls(dc, quorate, online, offline, resources, fail_counts, text)

    def where(self, rsc: str, role: str | None = None) -> set[str]:
        """Nodes where resource ``rsc`` (or an instance of it) is active, in ``role`` if given.

        Active means started in any role; a failed or stopped instance does not count.
        """
        return {node for r in self.resources if r.id == rsc
                and r.role not in ("Stopped", "Stopping", "Starting")
                and (role is None or r.role == role) and not r.failed
                for node in r.nodes}

    def fail_count(self, rsc: str, node: str | None = None) -> int:
        """Sum of the fail-counts of ``rsc`` (on ``node`` if given)."""
        return sum(n for (nd, r), n in self.fail_counts.items()
                   if r == rsc and (node is None or nd == node))


# ---------------------------------------------------------------------------------------------
# Nodes


class Node:
    """One cluster node: a set of namespaces with Corosync and Pacemaker running inside.

    ``init_pid`` is the host PID of the node's namespace init while the node is up, else None.
    """

    def __init__(self, cluster: Cluster, name: str, nodeid: int) -> None:
        self.cluster = cluster
        self.name = name
        self.nodeid = nodeid
        self.addr = f"{SUBNET}.{nodeid}"
        self.dir = cluster.run_dir / "nodes" / name
        self.init_pid: int | None = None
        self.init_start: int | None = None
        self.unshare_pid: int | None = None
        self.pidns: int | None = None
        self._unshare: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"<Node {self.name} init={self.init_pid}>"

    # -- lifecycle ------------------------------------------------------------------------

    def prepare(self) -> None:
        """Create the node's directories and seed its CIB (only if it has none yet)."""
        for d in BINDS:
            (self.dir / d).mkdir(parents=True, exist_ok=True)
        for d in ("cib", "pengine", "blackbox", "cores"):
            (self.dir / "var-lib-pacemaker" / d).mkdir(exist_ok=True)
        (self.dir / "log-pacemaker" / "bundles").mkdir(exist_ok=True)
        shutil.copy(self.cluster.run_dir / "corosync.conf",
                    self.dir / "etc-corosync" / "corosync.conf")
        # pacemakerd fixes the ownership of its own directories; the log directory and the
        # CIB must already be writable by hacluster.
        modes: dict[Path, int] = {p: 0o750 for p in (self.dir / "var-lib-pacemaker").iterdir()}
        modes[self.dir / "log-pacemaker"] = modes[self.dir / "log-pacemaker" / "bundles"] = 0o770
        for path, mode in modes.items():
            shutil.chown(path, "hacluster", "haclient")
            path.chmod(mode)
        cib = self.dir / "var-lib-pacemaker" / "cib" / "cib.xml"
        if not cib.exists():
            self.cluster.seed_cib(cib)
            shutil.chown(cib, "hacluster", "haclient")
            cib.chmod(0o600)

    def boot(self, start_cluster: bool = True) -> None:
        """Start the namespaces, plug the node into the switch and (by default) start
        Corosync and Pacemaker.  Does not wait for the node to be online: see
        :meth:`wait_online`."""
        if self.init_pid is not None:
            raise ClusterError(f"{self.name} is already up")
        self.prepare()
        self.init_pid, self.init_start, self.unshare_pid, self._unshare = _start_namespaces(
            self.dir, self.name, [(str(self.dir / d), t) for d, t in BINDS.items()],
            self.cluster.die_with_parent)
        self.pidns = _ns_inode(self.init_pid, "pid")
        self.cluster.save()
        self.cluster.plug(self)
        if start_cluster:
            self.start_cluster()

    def start_cluster(self) -> None:
        """Start corosync (it daemonises) and, once it answers, pacemakerd."""
        self.run(["corosync"])
        wait_until(lambda: self.run(["corosync-cfgtool", "-s"], check=False).returncode == 0,
                   10, f"corosync on {self.name}", 0.05)
        # pacemakerd stays in the foreground: a double fork (setsid -f) hands it to the
        # node's init, so nothing on the host has to wait for it.  The shell writes its own
        # PID (which pacemakerd inherits through exec) to a file inside the node.
        self.run(["setsid", "-f", "sh", "-c",
                  f"echo $$ > {PACEMAKERD_PIDFILE}; exec pacemakerd "
                  "</dev/null >>/var/log/pacemaker/pacemakerd.out 2>&1"])

    def pacemakerd_pid(self) -> int | None:
        """pacemakerd's PID inside the node (as recorded at start), or None."""
        try:
            return int(self.path(PACEMAKERD_PIDFILE).read_text().strip())
        except (OSError, ValueError):
            return None

    def stop_cluster(self, timeout: float = 60) -> None:
        """Graceful stop: pacemakerd stops every resource here, then corosync leaves.

        Raises ClusterError if either daemon is still running after ``timeout`` seconds.
        """
        pid = self.pacemakerd_pid()
        if pid is not None and self.run(["kill", "-TERM", str(pid)], check=False).returncode == 0:
            wait_until(lambda: self.run(["kill", "-0", str(pid)], check=False).returncode != 0,
                       timeout, f"pacemakerd to stop on {self.name}", 0.1)
        with contextlib.suppress(OSError):
            self.path(PACEMAKERD_PIDFILE).unlink()
        if self.run(["corosync-cfgtool", "-s"], check=False).returncode == 0:
            self.run(["corosync-cfgtool", "-H", "--force"], check=False)
            wait_until(lambda: not self.path("/run/corosync.pid").exists()
                       and self.run(["corosync-cfgtool", "-s"], check=False).returncode != 0,
                       timeout, f"corosync to stop on {self.name}", 0.1)

    def kill(self, timeout: float = 10) -> None:
        """Power cut: SIGKILL the node's init, so the kernel kills everything in the node, and
        wait until it is gone (its network namespace and veth pair go with it)."""
        if self.init_pid is None:
            return
        _kill_recorded(self.init_pid, self.init_start, signal.SIGKILL)
        if self._unshare is not None:
            try:
                self._unshare.wait(timeout)
            except subprocess.TimeoutExpired:
                raise ClusterError(f"unshare of {self.name} survived its init") from None
        else:
            wait_until(lambda: not _alive(self.init_pid or 0, self.init_start), timeout,
                       f"init of {self.name} to die")
        if self.pidns is not None:
            wait_until(lambda: not processes_in_pidns(self.pidns or 0), timeout,
                       f"processes of {self.name} to die")
        self.init_pid = self.init_start = self.unshare_pid = None
        self._unshare = None
        self.cluster.save()

    def shutdown(self, timeout: float = 60) -> None:
        """Graceful stop of the cluster stack, then of the namespaces."""
        if self.init_pid is None:
            return
        try:
            self.stop_cluster(timeout)
        finally:
            self.kill()

    @property
    def up(self) -> bool:
        return self.init_pid is not None and _alive(self.init_pid, self.init_start)

    # -- commands -------------------------------------------------------------------------

    def nsenter(self) -> list[str]:
        """The argv prefix that runs a command inside this node."""
        if self.init_pid is None:
            raise ClusterError(f"{self.name} is down")
        return ["nsenter", "-t", str(self.init_pid), "-m", "-u", "-i", "-n", "-p", "--"]

    def run(self, argv: Sequence[str], check: bool = True, timeout: float = 60,
            input: str | None = None, env: dict[str, str] | None = None,
            ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside the node with CLEAN_ENV (plus ``env``), capture its output.

        Raises CommandError if ``check`` and it exits non-zero, ClusterError on timeout.
        """
        full_env = dict(CLEAN_ENV)
        if env:
            full_env.update(env)
        try:
            res = subprocess.run([*self.nsenter(), *argv], input=input, capture_output=True,
                                 text=True, env=full_env, cwd="/", timeout=timeout,
                                 check=False)
        except subprocess.TimeoutExpired:
            raise ClusterError(f"[{self.name}] {list(argv)} timed out after {timeout}s") \
                from None
        res.args = list(argv)
        if check and res.returncode != 0:
            raise CommandError(self.name, res)
        return res

    def crm_mon(self) -> str:
        """``crm_mon -1`` as an administrator reads it."""
        return self.run(["crm_mon", "-1", "-r"]).stdout

    def status(self) -> ClusterStatus:
        """This node's view of the cluster (``crm_mon -1 --output-as xml``)."""
        return ClusterStatus.parse(
            self.run(["crm_mon", "-1", "--output-as", "xml", "--include=all"],
                     timeout=20).stdout)

    def path(self, inside: str) -> Path:
        """Host path of ``inside`` as this node sees it (through /proc/PID/root)."""
        if self.init_pid is None:
            raise ClusterError(f"{self.name} is down")
        return Path(f"/proc/{self.init_pid}/root") / inside.lstrip("/")

    def pacemaker_log(self) -> str:
        """The node's pacemaker.log (kept across kills)."""
        try:
            return (self.dir / "log-pacemaker" / "pacemaker.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_online(self, timeout: float = 60) -> ClusterStatus:
        """Wait until this node sees every up node of the cluster online and a DC elected."""
        want = {n.name for n in self.cluster.nodes if n.init_pid is not None}

        def ready() -> ClusterStatus | None:
            st = self.status()
            return st if st.dc and want <= st.online else None

        return wait_until(ready, timeout, f"{sorted(want)} online as seen by {self.name}", 0.2)

    # -- network --------------------------------------------------------------------------

    def disconnect(self) -> None:
        """Pull the node's cable (its switch port goes down); the node keeps running."""
        self.cluster.switch_run(["ip", "link", "set", f"sw{self.nodeid}", "down"])

    def connect(self) -> None:
        """Plug the cable back in."""
        self.cluster.switch_run(["ip", "link", "set", f"sw{self.nodeid}", "up"])


def _start_namespaces(base: Path, hostname: str, binds: list[tuple[str, str]],
                      die_with_parent: bool,
                      ) -> tuple[int, int | None, int, subprocess.Popen[bytes]]:
    """Start ``nsinit.py`` as PID 1 of new namespaces; return (host PID of the init, its start
    time, unshare's PID, unshare's Popen) once the init says it is ready.

    ``die_with_parent``: if this process dies (a test runner killed with SIGKILL), unshare gets
    SIGKILL and, through --kill-child, so does the init: no node outlives its driver.
    """
    base.mkdir(parents=True, exist_ok=True)
    ready = base / "init.ready"
    with contextlib.suppress(FileNotFoundError):
        ready.unlink()
    spec = base / "init.json"  # a file rather than argv keeps `ps` readable
    spec.write_text(json.dumps({"hostname": hostname, "binds": binds, "ready": str(ready)}))
    with open(base / "init.out", "ab") as out:
        # start_new_session: a Ctrl-C in the test runner's terminal must not reach the node
        # (the runner's own teardown stops it).  --kill-child: if unshare itself is killed,
        # the node dies with it rather than becoming invisible to us.
        # setpriv sets the parent-death signal, then execs unshare (which keeps it)
        pdeathsig = ["setpriv", "--pdeathsig", "KILL", "--"] if die_with_parent else []
        proc = subprocess.Popen(
            [*pdeathsig, "unshare", "--mount", "--uts", "--ipc", "--net", "--pid", "--fork",
             "--mount-proc", "--kill-child", "--", PYTHON, "-I", str(NSINIT), str(spec)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=CLEAN_ENV, cwd="/",
            start_new_session=True)

    def init_ready() -> int | None:
        if proc.poll() is not None:
            raise ClusterError(f"namespaces for {hostname} exited {proc.returncode}: "
                               f"{(base / 'init.out').read_text(errors='replace')[-2000:]}")
        kids = _children(proc.pid)
        return kids[0] if kids and ready.exists() else None

    try:
        init = wait_until(init_ready, 15, f"namespace init of {hostname}", 0.02)
    except ClusterError:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        raise
    return init, _start_time(init), proc.pid, proc


def _kill_recorded(pid: int, start_time: int | None, sig: int) -> None:
    """Signal a recorded PID, unless it has exited or been reused since it was recorded."""
    if _start_time(pid) is None or (start_time is not None and _start_time(pid) != start_time):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


# ---------------------------------------------------------------------------------------------
# The cluster


class Cluster:
    """N nodes on a private switch, with one shared corosync.conf.

    ``run_dir``: where everything lives (a new temporary directory by default; removed by
    :meth:`teardown` unless ``keep_dir``).  ``token_ms``: Corosync's token timeout, which
    with consensus (1.2 times the token) sets how fast a dead node is noticed; 1000 ms keeps
    tests quick on a loaded 2-CPU machine without false membership changes.
    ``die_with_parent``: the nodes die with the process that booted them (the default, for
    tests); False lets them outlive it (``make demo KEEP=1``).
    """

    def __init__(self, names: Iterable[str] = ("node1",), run_dir: str | Path | None = None,
                 cluster_name: str = "lsaa-test", token_ms: int = 1000,
                 properties: dict[str, str] | None = None, keep_dir: bool = False,
                 die_with_parent: bool = True) -> None:
        self.names = list(names)
        if not self.names or len(set(self.names)) != len(self.names):
            raise ValueError("node names must be unique and at least one")
        self._own_dir = run_dir is None
        self.run_dir = Path(run_dir) if run_dir else Path(tempfile.mkdtemp(prefix="lsaa-cluster-"))
        self.cluster_name = cluster_name
        self.token_ms = token_ms
        # dc-deadtime: without it the first DC election waits 20 s.  stonith-enabled=false:
        # with no fence device nothing would start (fencing agents come later).
        self.properties = {"dc-deadtime": "2s", "stonith-enabled": "false",
                           **(properties or {})}
        self.keep_dir = keep_dir
        self.die_with_parent = die_with_parent
        self.nodes = [Node(self, n, i + 1) for i, n in enumerate(self.names)]
        self.switch_pid: int | None = None
        self.switch_start: int | None = None
        self.switch_unshare_pid: int | None = None
        self.switch_pidns: int | None = None
        self._switch: subprocess.Popen[bytes] | None = None

    # -- context manager ------------------------------------------------------------------

    def __enter__(self) -> Cluster:
        try:
            self.start()
        except BaseException:
            self.teardown()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        left = self.teardown()
        if left and exc[0] is None:
            raise ClusterError(f"teardown left things behind: {left}")

    # -- set-up ---------------------------------------------------------------------------

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def corosync_conf(self) -> str:
        """The corosync.conf every node gets: knet over the private switch, no crypto (nothing
        else is on that network), logging to a file (there is no syslog)."""
        nodes = "".join(
            f"    node {{\n        ring0_addr: {n.addr}\n        name: {n.name}\n"
            f"        nodeid: {n.nodeid}\n    }}\n" for n in self.nodes)
        # two_node: a 2-node cluster keeps quorum when one node dies (and implies
        # wait_for_all: the first start waits until both nodes have seen each other).
        two_node = "    two_node: 1\n" if len(self.nodes) == 2 else ""
        return (
            "totem {\n    version: 2\n"
            f"    cluster_name: {self.cluster_name}\n"
            "    transport: knet\n    crypto_cipher: none\n    crypto_hash: none\n"
            f"    token: {self.token_ms}\n}}\n"
            f"nodelist {{\n{nodes}}}\n"
            f"quorum {{\n    provider: corosync_votequorum\n{two_node}}}\n"
            "logging {\n    to_logfile: yes\n    logfile: /var/log/corosync/corosync.log\n"
            "    to_stderr: no\n    to_syslog: no\n    timestamp: on\n}\n")

    def seed_cib(self, path: Path) -> None:
        """Write an empty CIB with the cluster properties already set (offline, CIB_file)."""
        env = {**CLEAN_ENV, "CIB_file": str(path)}
        res = subprocess.run(["cibadmin", "--empty"], capture_output=True, text=True,
                             env=env, check=True)
        path.write_text(res.stdout)
        for name, value in self.properties.items():
            subprocess.run(["crm_attribute", "--type", "crm_config", "--name", name,
                            "--update", value], capture_output=True, env=env, check=True)

    def start(self, wait: bool = True, timeout: float = 60) -> None:
        """Create the switch and boot every node; with ``wait``, return once every node sees
        all of them online (a 2-node cluster waits for both: two_node implies wait_for_all)."""
        (self.run_dir / "nodes").mkdir(parents=True, exist_ok=True)
        (self.run_dir / "corosync.conf").write_text(self.corosync_conf())
        self._start_switch()
        for n in self.nodes:
            n.boot(start_cluster=False)
        for n in self.nodes:  # corosync first everywhere: pacemakerd would only retry CMAP
            n.start_cluster()
        if wait:
            self.wait_online(timeout)

    def wait_online(self, timeout: float = 60) -> ClusterStatus:
        """Wait until every up node sees every up node online; return the last status."""
        deadline = time.monotonic() + timeout
        st = None
        for n in self.nodes:
            if n.init_pid is not None:
                st = n.wait_online(max(1.0, deadline - time.monotonic()))
        if st is None:
            raise ClusterError("no node is up")
        return st

    def _start_switch(self) -> None:
        if self.switch_pid is not None:
            return
        (self.switch_pid, self.switch_start, self.switch_unshare_pid,
         self._switch) = _start_namespaces(self.run_dir / "switch", "switch", [],
                                           self.die_with_parent)
        self.switch_pidns = _ns_inode(self.switch_pid, "pid")
        self.save()
        self.switch_run(["ip", "link", "add", "br0", "type", "bridge"])
        self.switch_run(["ip", "link", "set", "br0", "up"])

    def switch_run(self, argv: Sequence[str]) -> None:
        """Run a command in the switch's network namespace (raises on failure)."""
        if self.switch_pid is None:
            raise ClusterError("the switch is not running")
        subprocess.run(["nsenter", "-t", str(self.switch_pid), "-n", "--", *argv],
                       check=True, capture_output=True, env=CLEAN_ENV)

    def plug(self, node: Node) -> None:
        """Connect a freshly booted node: veth pair eth0 (node) <-> swN (a bridge port)."""
        port = f"sw{node.nodeid}"
        # The veth is created in the switch and its peer moved straight into the node's
        # network namespace (named by the init's host PID): the host namespace never sees it.
        self.switch_run(["ip", "link", "add", port, "type", "veth", "peer", "name", "eth0",
                         "netns", str(node.init_pid)])
        self.switch_run(["ip", "link", "set", port, "master", "br0", "up"])
        node.run(["ip", "addr", "add", f"{node.addr}/24", "dev", "eth0"])
        node.run(["ip", "link", "set", "eth0", "up"])

    # -- status ---------------------------------------------------------------------------

    def any_up(self) -> Node:
        for n in self.nodes:
            if n.up:
                return n
        raise ClusterError("no node is up")

    def status(self, via: Node | None = None) -> ClusterStatus:
        """The cluster as ``via`` (default: the first node that is up) sees it."""
        return (via or self.any_up()).status()

    def wait_for(self, predicate: Callable[[ClusterStatus], T | None], what: str,
                 timeout: float = 60, via: Node | None = None, interval: float = 0.2) -> T:
        """Poll the status (seen from ``via``) until ``predicate(status)`` is truthy."""
        return wait_until(lambda: predicate(self.status(via)), timeout, what, interval)

    def wait_resource(self, rsc: str, nodes: Iterable[str], role: str | None = None,
                      timeout: float = 60, via: Node | None = None) -> ClusterStatus:
        """Wait until ``rsc`` is active (in ``role`` if given) on exactly ``nodes`` (an empty
        iterable: stopped everywhere); return that status."""
        want = set(nodes)
        where = f"on {sorted(want)}" if want else "stopped"
        return self.wait_for(lambda st: st if st.where(rsc, role) == want else None,
                             f"{rsc} {role or 'active'} {where}", timeout, via)

    # -- persistence, so `demo.py --teardown` can find a kept cluster ---------------------

    def save(self) -> None:
        state = {
            "names": self.names, "cluster_name": self.cluster_name, "token_ms": self.token_ms,
            "properties": self.properties,
            "switch": [self.switch_pid, self.switch_start, self.switch_unshare_pid,
                       self.switch_pidns],
            "nodes": {n.name: [n.init_pid, n.init_start, n.unshare_pid, n.pidns]
                      for n in self.nodes},
        }
        tmp = self.run_dir / "cluster.json.tmp"
        tmp.write_text(json.dumps(state, indent=1))
        tmp.replace(self.run_dir / "cluster.json")

    @classmethod
    def attach(cls, run_dir: str | Path) -> Cluster:
        """A Cluster for a run directory created by another process (for status or teardown).

        Commands work through nsenter as usual; the processes are not our children, so kills
        are confirmed through /proc instead of wait().
        """
        run_dir = Path(run_dir)
        state = json.loads((run_dir / "cluster.json").read_text())
        c = cls(state["names"], run_dir=run_dir, cluster_name=state["cluster_name"],
                token_ms=state["token_ms"], properties=state["properties"])
        c._own_dir = True
        (c.switch_pid, c.switch_start, c.switch_unshare_pid, c.switch_pidns) = state["switch"]
        for n in c.nodes:
            n.init_pid, n.init_start, n.unshare_pid, n.pidns = state["nodes"][n.name]
            if n.init_pid is not None and not _alive(n.init_pid, n.init_start):
                n.init_pid = None
        return c

    # -- teardown -------------------------------------------------------------------------

    def teardown(self, graceful: bool = True, timeout: float = 60) -> list[str]:
        """Stop everything and remove the run directory (unless ``keep_dir``).

        ``graceful``: stop Pacemaker (and so every resource) and Corosync on each node first.
        Then every init is killed, which ends everything inside.  Returns what was left behind
        (processes in the nodes' PID namespaces, mounts under the run directory, a host
        /run/crm); an empty list is the contract.  Errors in the graceful stop are reported
        there too, and never prevent the kills.
        """
        problems: list[str] = []
        if graceful:
            for n in self.nodes:
                if n.up:
                    try:
                        n.stop_cluster(timeout)
                    except ClusterError as e:
                        problems.append(f"graceful stop of {n.name}: {e}")
        namespaces = [n.pidns for n in self.nodes] + [self.switch_pidns]
        for n in self.nodes:
            try:
                n.kill()
            except ClusterError as e:
                problems.append(str(e))
        if self.switch_pid is not None:
            _kill_recorded(self.switch_pid, self.switch_start, signal.SIGKILL)
            if self._switch is not None:
                self._switch.wait(10)
            with contextlib.suppress(ClusterError):
                wait_until(lambda: not _alive(self.switch_pid or 0, self.switch_start), 10,
                           "the switch to die")
            self.switch_pid = self.switch_start = self.switch_unshare_pid = None
            self._switch = None
        problems.extend(self.leftovers([ns for ns in namespaces if ns is not None]))
        if not self.keep_dir and self._own_dir and not problems:
            shutil.rmtree(self.run_dir, ignore_errors=True)
        elif self.run_dir.exists():
            self.save()
        return problems

    def leftovers(self, namespaces: Sequence[int]) -> list[str]:
        """Anything of ours still on the host (see :meth:`teardown`)."""
        left = []
        for ns in namespaces:
            for pid in processes_in_pidns(ns):
                try:
                    cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                except OSError:
                    continue
                left.append(f"process {pid} in a node namespace: {cmd.decode(errors='replace')}")
        with open("/proc/self/mountinfo", encoding="utf-8") as f:
            for line in f:
                if str(self.run_dir) in line:
                    left.append(f"host mount: {line.strip()}")
        if os.path.exists("/run/crm") and not self._host_run_crm_before:
            left.append("/run/crm exists on the host")
        return left

    # Whether the host had a /run/crm before we started (then it is not ours to report).
    _host_run_crm_before = os.path.exists("/run/crm")


def main(argv: list[str] | None = None) -> int:
    """``python3 -m tests.cluster {status|teardown} RUN_DIR``: inspect or stop a kept cluster."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] not in ("status", "teardown"):
        print(main.__doc__, file=sys.stderr)
        return 2
    c = Cluster.attach(args[1])
    if args[0] == "status":
        print(c.any_up().crm_mon())
        return 0
    left = c.teardown()
    for item in left:
        print(f"left behind: {item}", file=sys.stderr)
    return 1 if left else 0
