"""Two lab guests running Corosync + Pacemaker, fenced through simulated BMCs.

Each node is a UML guest (tests/lab) with a small system disk (/dev/ubda: corosync.conf,
authkey, CIB, drbd.conf, lvmlocal.conf; it survives power cuts), DRBD's backing disk
(/dev/ubdb) and a NIC on the lab network.  The driver:

1. generates the cluster configuration on the host, as an administrator would on one node
   (``pcs cluster setup --corosync_conf``, local mode, no pcsd), an authkey and a CIB seeded
   with dc-deadtime=2s (lab-recipes A.1, A.3);
2. boots both guests, installs the configuration onto their system disks, initialises
   the replicated volume once (DRBD metadata, then PV/VG/LV/ext4 on node1) and runs
   ``node.sh start`` in each (corosync, then pacemakerd);
3. starts one ipmi_sim BMC per node on the host side of the lab network (bmc.py), whose
   power control really kills and boots the node's guest;
4. applies demo/stack.pcs.sh (fence devices, DRBD -> LVM -> Filesystem -> iSCSI target
   + LUN -> VIP -> LVS service VIP:80);
5. measures failovers (:meth:`Stack.failover`): SIGKILL of the active node's UML, then
   the survivor's corosync and pacemaker logs, the BMC's actions and HTTP GETs through the
   VIP give the timeline; the fenced node boots again and must rejoin.

The LVS service (ocf:lsaa:ipvs, resource ``web``) balances VIP:80 by direct routing to
an HTTP server on each node (``node.sh web`` at every boot: a page naming the node, the
VIP accepted as a local route on lo without ARP).  The director is the active node: its
own server is a local real server, the other node's gets the client's packets by MAC and
answers the client directly.  A node that is down fails the http health checks and is
quiesced; it gets its weight back once it has booted again.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from tests.lab.labctl import REPO, Lab, LabError

from .bmc import PASSWORD, USER, PowerController

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.lab.labctl import Guest, Network

HERE = Path(__file__).resolve().parent
NODE_SH = HERE / "node.sh"
PCS_SCRIPT = REPO / "demo" / "stack.pcs.sh"
NODES = ("node1", "node2")
BMC_PORT = 6230  # node N: 6230 + N
VIP_HOST = 100  # <prefix>.100
TOKEN_MS = 2000  # totem token; consensus defaults to 1.2 x token
POST_DELAY = 15.0  # seconds from a BMC power-on to the guest's boot (firmware, POST)
SERVICE = ("data", "vg", "fs", "target", "lun0", "vip", "web")  # data: where DRBD is Promoted
DISKS = ["64M", "160M"]  # /dev/ubda: system disk; /dev/ubdb: DRBD's backing disk
LV_SIZE = "96M"

DRBD_CONF = """\
global {{ usage-count no; }}
common {{
  net {{ protocol C; ping-int 1; ping-timeout 5; }}
  disk {{ c-plan-ahead 0; resync-rate 300M; }}
}}
resource r0 {{
  on node1 {{ device /dev/drbd0; disk /dev/ubdb; address {a1}:7788; meta-disk internal; }}
  on node2 {{ device /dev/drbd0; disk /dev/ubdb; address {a2}:7788; meta-disk internal; }}
}}
"""

# LVM on top of DRBD: scan only DRBD devices (the backing disk carries the same PV
# label), system ID from the node name, and no udev in the guests.
LVMLOCAL = """\
global { system_id_source = "uname" }
devices {
  global_filter = [ "a|^/dev/drbd|", "r|.*|" ]
  obtain_device_list_from_udev = 0
  use_devicesfile = 0
}
activation { udev_sync = 0  udev_rules = 0  monitoring = 0 }
"""

# One-time initialisation of the replicated volume, before the cluster manages it:
# metadata on both, skip the initial sync (both disks are empty), then on node1 only
# PV, VG (system ID node1), LV and filesystem; everything down again.
STORAGE_BOTH = "drbdadm -- --force create-md r0 >/dev/null 2>&1; drbdadm up r0"
STORAGE_NODE1 = f"""
wait() {{ i=0; until [ "$(drbdadm $1 r0)" = $2 ]; do i=$((i+1)); [ $i -lt 300 ]; sleep 0.1; done; }}
wait cstate Connected
drbdadm -- --clear-bitmap new-current-uuid r0
wait dstate UpToDate/UpToDate
drbdadm primary r0
pvcreate -q /dev/drbd0
vgcreate -q vg0 /dev/drbd0
lvcreate -q -y -L {LV_SIZE} -n data vg0
mkfs.ext4 -q /dev/vg0/data
mount /dev/vg0/data /mnt && truncate -s 32M /mnt/lun0.img && umount /mnt
vgchange -q -an vg0
drbdadm secondary r0
"""


def fence_agent() -> str:
    """fence_lsaa_ipmi when it is installed and answers metadata, else fence_ipmilan."""
    want = os.environ.get("STACK_FENCE_AGENT")
    if want:
        return want
    r = subprocess.run(["/usr/sbin/fence_lsaa_ipmi", "-o", "metadata"], capture_output=True,
                       check=False, timeout=30)
    return "fence_lsaa_ipmi" if r.returncode == 0 and b"<resource-agent" in r.stdout \
        else "fence_ipmilan"


@dataclass
class Stack:
    """The running two-node cluster.  Use as a context manager (tears everything down)."""

    lab: Lab
    mem: str = "384M"
    lifetime: float = 3600
    token_ms: int = TOKEN_MS
    post_delay: float = POST_DELAY
    agent: str = field(default_factory=fence_agent)
    net: Network | None = None
    guests: dict[str, Guest] = field(default_factory=dict)
    power: PowerController | None = None
    t_online: float | None = None

    # -- lifecycle --------------------------------------------------------
    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.power:
            self.power.closing()
        try:
            self.lab.close()
        finally:
            if self.power:
                self.power.stop()

    @property
    def vip(self) -> str:
        assert self.net is not None
        return self.net.addr(VIP_HOST)

    def bmc_port(self, node: str) -> int:
        return BMC_PORT + NODES.index(node) + 1

    def node_ip(self, node: str) -> str:
        assert self.net is not None
        return self.net.addr(NODES.index(node) + 1)

    def boot(self) -> float:
        """Boot both guests and start the cluster; return seconds until both nodes online."""
        t0 = time.monotonic()
        self.net = self.lab.network("lan")
        self.guests = dict(zip(NODES, self.lab.boot(*[
            {"name": n, "mem": self.mem, "disks": DISKS, "nics": [(self.net, i + 1)],
             "lifetime": self.lifetime} for i, n in enumerate(NODES)])))
        prov = self._provision()
        self._on_both(lambda g: g.run(["/bin/sh", str(NODE_SH), "install", str(prov)],
                                      check=True, timeout=120))
        self._init_storage()
        self.power = PowerController(self.lab, self.guests, self.lab.workdir / "bmc",
                                     on_boot=self.start_node, post_delay=self.post_delay)
        self.power.start_bmcs(self.net.host_ip, {n: self.bmc_port(n) for n in NODES})
        self._on_both(self.start_node)
        self.wait_online(list(NODES), timeout=180)
        self.t_online = time.monotonic() - t0
        return self.t_online

    def _provision(self) -> Path:
        """corosync.conf (pcs, local mode), authkey and seeded CIB, in a host directory."""
        assert self.net is not None
        d = self.lab.workdir / "provision"
        d.mkdir()
        conf = d / "corosync.conf"
        addrs = [f"{n} addr={self.node_ip(n)}" for n in NODES]
        subprocess.run(["pcs", "cluster", "setup", "lsaa-stack", *" ".join(addrs).split(),
                        "totem", f"token={self.token_ms}", "--corosync_conf", str(conf)],
                       check=True, capture_output=True)
        text = conf.read_text().replace("to_syslog: yes", "to_syslog: no").replace(
            "timestamp: on", "timestamp: hires")
        conf.write_text(text)
        (d / "authkey").write_bytes(os.urandom(256))
        (d / "drbd.conf").write_text(DRBD_CONF.format(a1=self.node_ip("node1"),
                                                      a2=self.node_ip("node2")))
        (d / "lvmlocal.conf").write_text(LVMLOCAL)
        cib = d / "cib.xml"
        with cib.open("w") as f:
            subprocess.run(["cibadmin", "--empty"], stdout=f, check=True)
        env = dict(os.environ, CIB_file=str(cib))
        # lab-only settings: a first DC election without the 20 s wait (lab-recipes A.7),
        # and no job throttling: a one-CPU UML guest always looks "highly loaded" (load
        # ~1.3 at rest), which makes Pacemaker run one action at a time on it
        for name, value in (("dc-deadtime", "2s"), ("stonith-enabled", "false"),
                            ("load-threshold", "400%")):
            subprocess.run(["crm_attribute", "--type", "crm_config", "-n", name, "-v", value],
                           env=env, check=True, capture_output=True)
        for g in self.guests.values():
            for sub in ("corosync", "pacemaker"):
                p = g.share / "log" / sub
                p.mkdir(parents=True, exist_ok=True)
                p.chmod(0o777)
        return d

    def _on_both(self, fn: Callable[[Guest], object]) -> None:
        """fn(guest) for both guests in parallel (each guest has a CPU of its own)."""
        errors: list[BaseException] = []

        def run(g: Guest) -> None:
            try:
                fn(g)
            except BaseException as e:  # re-raised below
                errors.append(e)
        threads = [threading.Thread(target=run, args=(g,)) for g in self.guests.values()]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]

    def _init_storage(self) -> None:
        """DRBD metadata on both nodes, then PV/VG/LV/filesystem from node1 (once)."""
        prov = self.lab.workdir / "provision"
        self._on_both(lambda g: g.sh(
            f"cp {prov}/drbd.conf /etc/drbd.conf; cp {prov}/lvmlocal.conf /etc/lvm/; "
            "modprobe drbd; modprobe dm-mod; " + STORAGE_BOTH, check=True, timeout=120))
        self.guests["node1"].sh(STORAGE_NODE1, check=True, timeout=300)
        self._on_both(lambda g: g.run(["drbdadm", "down", "r0"], check=True, timeout=60))

    def start_node(self, g: Guest) -> None:
        """What the node's init does at every boot: corosync, pacemakerd, the web server."""
        g.run(["/bin/sh", str(NODE_SH), "start", str(g.share / "log")], check=True,
              timeout=120)
        g.run(["/bin/sh", str(NODE_SH), "web", self.vip], check=True, timeout=120)

    # -- queries ------------------------------------------------------------
    def crm_mon(self, node: str, *extra: str) -> str:
        r = self.guests[node].run(["crm_mon", "-1", *extra], timeout=60)
        return r.stdout if r.ok else ""

    def online(self, node: str) -> list[str]:
        m = re.search(r"Online: \[ (.*?) \]", self.crm_mon(node))
        return m.group(1).split() if m else []

    def wait_online(self, nodes: list[str], timeout: float = 120, via: str | None = None
                    ) -> None:
        deadline = time.monotonic() + timeout
        via = via or nodes[0]
        while sorted(self.online(via)) != sorted(nodes):
            if time.monotonic() > deadline:
                raise LabError(f"nodes {nodes} not online after {timeout}s:\n"
                               + self.crm_mon(via))
            time.sleep(0.2)

    def pcs_env(self) -> dict[str, str]:
        """demo/stack.pcs.sh's parameters for this lab."""
        assert self.net is not None
        return {
            "NODE1": "node1", "NODE2": "node2",
            "BMC_IP": self.net.host_ip,
            "BMC1_PORT": str(self.bmc_port("node1")),
            "BMC2_PORT": str(self.bmc_port("node2")),
            "BMC_USER": USER, "BMC_PASSWORD": PASSWORD,
            "FENCE_AGENT": self.agent,
            "VIP": self.vip, "VIP_NIC": "eth0",
            "REAL_SERVERS": " ".join(self.node_ip(n) for n in NODES),
        }

    def pcs_script(self, node: str = "node1", script: Path = PCS_SCRIPT,
                   in_guest: bool = False) -> float:
        """Apply the administrator's pcs script to the cluster; return its duration.

        Every pcs command is a Python start, ~2.5 s under UML (far more when the host is
        busy), so by default the script edits a copy of the CIB with pcs on the host
        (``CIB=FILE``: same pcs, same agents' metadata) and ``node`` pushes it with
        ``pcs cluster cib-push --config``, as the script itself does at its end.
        ``in_guest=True`` runs the whole script on ``node``.
        """
        t0 = time.monotonic()
        g = self.guests[node]
        if in_guest:
            g.run(["/bin/sh", str(script)], env=self.pcs_env(), timeout=900).check()
            return time.monotonic() - t0
        cib = g.share / "stack-cib.xml"
        g.run(f"cibadmin --query > {cib}", timeout=120).check()  # = pcs cluster cib FILE
        r = subprocess.run(["/bin/sh", str(script)], env=dict(os.environ, **self.pcs_env(),
                           CIB=str(cib)), capture_output=True, text=True, check=False)
        if r.returncode:
            raise LabError(f"{script} failed (rc {r.returncode}):\n{r.stdout}{r.stderr}")
        g.run(["pcs", "cluster", "cib-push", str(cib), "--config"], timeout=120).check()
        return time.monotonic() - t0

    def wait_steady(self, via: str | None = None, timeout: float = 180) -> str:
        """Wait until the service runs on one node, everything else too; return that node."""
        deadline = time.monotonic() + timeout
        while True:
            for node in [via] if via else [n for n in NODES if self.guests[n].alive]:
                mon = self.crm_mon(node)
                active = steady_on(mon)
                if active:
                    return active
            if time.monotonic() > deadline:
                raise LabError(f"cluster not steady after {timeout}s:\n{mon}")
            time.sleep(0.3)

    def lvs_weights(self, node: str) -> dict[str, int] | None:
        """Real server address -> weight of the VIP:80 service on ``node`` (None: absent)."""
        r = self.guests[node].run(["ipvsadm", "-Ln", "-t", f"{self.vip}:80"], timeout=60)
        if not r.ok:
            return None
        return {m.group(1): int(m.group(2)) for m in re.finditer(
            r"->\s+([\d.]+):\d+\s+\w+\s+(\d+)", r.stdout)}

    def fence_history(self, node: str, target: str) -> str:
        return self.guests[node].run(["stonith_admin", "--history", target], timeout=60).stdout

    def log(self, node: str, which: str = "pacemaker") -> str:
        p = self.guests[node].share / "log" / which / f"{which}.log"
        try:
            return p.read_text(errors="replace")
        except OSError:
            return ""

    def failover(self, victim: str, timeout: float = 180, hold: bool = True) -> Failover:
        """Power-cut ``victim`` (SIGKILL of its UML) and measure the takeover and its rejoin.

        ``hold``: the fenced node's firmware "POST" lasts until the survivor has taken over
        (a real server takes minutes to boot, and a node that rejoins in the middle of the
        takeover adds its probes to the survivor's transition); False lets it boot after
        ``post_delay`` whatever the survivor is doing.
        """
        survivor = next(n for n in NODES if n != victim)
        assert self.power is not None
        prober = HttpProber(self.lab, self.vip)
        try:
            time.sleep(0.5)
            f = Failover(victim, survivor, time.time())
            self.guests[victim].kill()  # SIGKILL of the guest's UML: a power cut
            f.mark("victim's UML killed", time.time())
            deadline = time.monotonic() + timeout
            while True:
                mon = self.crm_mon(survivor)
                if settled_on(mon) == survivor and prober.first_after(f.t_kill):
                    break
                if time.monotonic() > deadline:
                    raise LabError(f"no takeover by {survivor} after {timeout}s:\n{mon}")
                time.sleep(0.2)
            f.settled = survivor
            self.power.held.discard(victim)
            # the fenced node comes back (BMC power on -> boot -> node.sh start) and rejoins;
            # meanwhile the survivor's LVS health checks quiesce the victim's web server
            victim_ip, quiesced = self.node_ip(victim), False
            while True:
                if not quiesced and (self.lvs_weights(survivor) or {}).get(victim_ip) == 0:
                    quiesced = True
                    f.mark(f"web: {victim}'s real server quiesced (weight 0)", time.time())
                ev = [e.what for e in self.power.events_of(victim, f.t_kill)]
                if any(e.startswith("start-failed") for e in ev):
                    raise LabError(f"{victim} did not restart: {ev}")
                if "started" in ev and sorted(self.online(survivor)) == sorted(NODES):
                    break
                if time.monotonic() > deadline:
                    raise LabError(f"{victim} did not rejoin after {timeout}s: {ev}\n"
                                   + self.crm_mon(survivor))
                time.sleep(0.2)
            f.rejoined = True
            f.mark("rejoined: both nodes online", time.time())
        finally:
            self.power.held.discard(victim)
            prober.stop()
        labels = {"off": f"BMC: power off {victim} (fencing)", "on": f"BMC: power on {victim}",
                  "reset": f"BMC: reset {victim}", "boot": f"{victim}'s guest boots (after POST)",
                  "booted": f"{victim} booted",
                  "started": f"{victim} started corosync + pacemaker"}
        for e in self.power.events_of(victim, f.t_kill):
            f.bmc.append(e.what)
            f.mark(labels.get(e.what, e.what), e.t)
        queries = [t for t, what in self.power.chassis_log(victim, f.t_kill) if what == "get power"]
        if queries:
            f.mark("BMC: first power status query", queries[0])
            f.mark("BMC: last power status query", queries[-1])
        f.mark(ANSWERING, prober.first_after(f.t_kill))
        f.served = prober.served_by_after(f.t_kill)
        f.http_failures = prober.failures
        v, s = re.escape(victim), re.escape(survivor)
        for name, t in _log_marks(self.log(survivor, "corosync"), f.t_kill, [
                ("corosync: token lost", r"Token has not been received"),
                (f"corosync: new membership without {victim}", r"Members\[1\]:"),
        ]).items():
            f.mark(name, t)
        for name, t in _log_marks(self.log(survivor, "pacemaker"), f.t_kill, [
                (f"pacemaker: {victim} lost", rf"Node {v} state is now lost"),
                ("fencer: fencing requested", rf"(?i)requesting.*fenc.*{v}|fenc.*{v}.*request"),
                (f"fencer: {victim} fenced", rf"Operation '\w+'.* targeting {v}.*: OK"),
                (f"data promoted on {survivor}",
                 rf"Result of promote operation for data on {s}: ok"),
                *[(f"{r} started on {survivor}",
                   rf"Result of start operation for {r} on {s}: ok") for r in SERVICE[1:]],
        ]).items():
            f.mark(name, t)
        # the survivor's own web server answers on the VIP as soon as IPaddr2 has put it up
        # (the director is one of its real servers, served locally): this mark is the first
        # GET started once the LVS service is there too
        t_web = f.marks.get(f"web started on {survivor}")
        if t_web is not None:
            f.mark("HTTP GET through the VIP with the LVS service up",
                   prober.first_after(f.t_kill + t_web))
        return f


@contextlib.contextmanager
def running_stack(results: str | os.PathLike[str] | None = None, keep: bool = False,
                  stack_class: type[Stack] | None = None, **kw: object) -> Iterator[Stack]:
    """A lab with a booted two-node cluster; everything is torn down on exit.

    ``results``: a directory under which this run's shares and logs are kept (in a new
    subdirectory: a guest's command spool must start empty).  ``stack_class``: a
    subclass of :class:`Stack` to boot instead (e.g. one whose nodes start more at boot).
    """
    if results is not None:
        results = Path(results) / time.strftime("stack-%Y%m%d-%H%M%S")
    lab = Lab(results=results, keep=keep)
    st = (stack_class or Stack)(lab, **kw)  # type: ignore[arg-type]
    try:
        st.boot()
        yield st
    except BaseException:
        for g in st.guests.values():
            print(g.console_tail(15), file=sys.stderr)
        raise
    finally:
        st.close()


def stamp(line: str, year: int | None = None) -> float | None:
    """Wall-clock time of a corosync (hires) or pacemaker log line, or None."""
    m = re.match(r"(\w{3} \d+ \d\d:\d\d:\d\d)(\.\d+)?", line)
    if not m:
        return None
    y = year or datetime.now().year
    t = datetime.strptime(f"{y} {m.group(1)}", "%Y %b %d %H:%M:%S").timestamp()
    return t + (float(m.group(2)) if m.group(2) else 0.0)


# -- where things run ----------------------------------------------------------

def placement(mon: str) -> dict[str, str]:
    """From ``crm_mon -1`` text: resource -> node (data: where it is Promoted)."""
    out: dict[str, str] = {}
    m = re.search(r"Promoted: \[ (\S+) \]", mon)
    if m:
        out["data"] = m.group(1)
    for m in re.finditer(r"\* (\S+)\s+\(([^)]+)\):\s+Started (\S+)", mon):
        out[m.group(1)] = m.group(3)
    return out


def settled_on(mon: str) -> str | None:
    """The node where db is Promoted and every service resource runs, if there is one."""
    p = placement(mon)
    nodes = {p.get(r) for r in SERVICE}
    if len(nodes) == 1 and None not in nodes:
        return nodes.pop()
    return None


def steady_on(mon: str) -> str | None:
    """Like settled_on, and the other node runs data Unpromoted and both fence devices run."""
    node = settled_on(mon)
    if node is None:
        return None
    other = next(n for n in NODES if n != node)
    p = placement(mon)
    if re.search(rf"Unpromoted: \[ {other} \]", mon) and all(
            f"fence-{n}" in p for n in NODES):
        return node
    return None


ANSWERING = "service answering (HTTP GET through the VIP)"

# One GET after another (a new TCP connection each, so each is scheduled by LVS), each
# line "START END ok|fail BODY"; a short timeout, so a request that went to a dead real
# server (before the health checks quiesce it) costs half a second.
HTTP_PROBE = """
import sys, time, urllib.request
url, timeout = sys.argv[1], float(sys.argv[2])
while True:
    t0 = time.time()
    try:
        body = urllib.request.urlopen(url, timeout=timeout).read().decode().strip()
        print(f"{t0:.3f} {time.time():.3f} ok {body}", flush=True)
    except Exception as e:
        print(f"{t0:.3f} {time.time():.3f} fail {type(e).__name__}", flush=True)
    time.sleep(0.1)
"""


def http_get(lab: Lab, ip: str, timeout: float = 5) -> str | None:
    """The body of one HTTP GET of http://IP/ from the host side of the lab, or None."""
    r = lab.host_run([sys.executable, "-c",
                      "import sys, urllib.request; print(urllib.request.urlopen("
                      "sys.argv[1], timeout=float(sys.argv[2])).read().decode().strip())",
                      f"http://{ip}/", str(timeout)], timeout=timeout + 30)
    return r.stdout.strip() if r.ok else None


class HttpProber:
    """HTTP GETs of http://VIP/ from the host side of the lab network; records successes.

    A success counts from the end of a request that started after the given time (a GET
    begun before a power cut cannot count as the service being back).
    """

    def __init__(self, lab: Lab, ip: str, timeout: float = 0.5) -> None:
        self.replies: list[tuple[float, float, str]] = []  # (start, end, body)
        self.failures = 0
        self.proc = lab.host_popen([sys.executable, "-u", "-c", HTTP_PROBE, f"http://{ip}/",
                                    str(timeout)],
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            parts = raw.decode(errors="replace").split(maxsplit=3)
            if len(parts) >= 3 and parts[2] == "ok":
                self.replies.append((float(parts[0]), float(parts[1]),
                                     parts[3].strip() if len(parts) > 3 else ""))
            elif len(parts) >= 3:
                self.failures += 1

    def first_after(self, t: float) -> float | None:
        return next((end for start, end, _ in list(self.replies) if start > t), None)

    def served_by_after(self, t: float) -> list[str]:
        return [body for start, _, body in list(self.replies) if start > t]

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self._t.join(5)


@dataclass
class Failover:
    """One measured failover.  Times are seconds after the kill."""

    victim: str
    survivor: str
    t_kill: float  # time.time() just before SIGKILL
    marks: dict[str, float] = field(default_factory=dict)
    bmc: list[str] = field(default_factory=list)  # the victim's BMC actions, in order
    rejoined: bool = False
    settled: str | None = None  # where the service runs at the end
    served: list[str] = field(default_factory=list)  # bodies of the GETs after the kill
    http_failures: int = 0  # GETs through the VIP that failed (whole probe)

    def mark(self, what: str, t: float | None) -> None:
        if t is not None and what not in self.marks:
            self.marks[what] = t - self.t_kill

    @property
    def mttr(self) -> float | None:
        return self.marks.get(ANSWERING)

    def table(self) -> str:
        rows = sorted(self.marks.items(), key=lambda kv: kv[1])
        return "\n".join(f"  {t:7.2f} s  {what}" for what, t in rows)


def _log_marks(text: str, since: float, patterns: list[tuple[str, str]]) -> dict[str, float]:
    """First time each pattern matches a log line stamped at or after ``since``."""
    found: dict[str, float] = {}
    rx = [(name, re.compile(p)) for name, p in patterns]
    for line in text.splitlines():
        t = stamp(line)
        if t is None or t < since - 0.5:
            continue
        for name, r in rx:
            if name not in found and r.search(line):
                found[name] = t
    return found
