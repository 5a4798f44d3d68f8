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
from .client import CHAP_PASSWORD, CHAP_USER, CLIENT_HOST, INITIATOR, IQN, Client

if TYPE_CHECKING:
    from .client import Verification

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

# Resource-level fencing (DRBD 8.4 syntax, the guest kernel's DRBD): a node that is to be
# promoted while its peer's disk state is unknown (the peer was lost), or a Primary that
# loses its peer, first runs crm-fence-peer.sh, which puts a location constraint in the
# CIB: the promotable clone may be Promoted only on this node.  The lost peer, once back,
# cannot be promoted with its stale data; when it has resynced (it was the SyncTarget),
# crm-unfence-peer.sh removes the constraint (ocf:lsaa:drbd's monitor on the Primary
# would too, unfence=true, whichever comes first).  With STONITH the survivor is promoted only
# after the peer is confirmed fenced, so the handler finds it "fenced" (down, expected
# down) at once and exits 7 (DRBD 8.4 logs that 7 is meant for resource-and-stonith and
# treats it as the peer outdated, as for 4).
# The handlers log through logger (node.sh start runs a syslog daemon).
DRBD_FENCING = {"fencing": " fencing resource-only;", "handlers": """
  handlers {
    fence-peer "/usr/lib/drbd/crm-fence-peer.sh";
    after-resync-target "/usr/lib/drbd/crm-unfence-peer.sh";
  }"""}
DRBD_CONF = """\
global {{ usage-count no; }}
common {{
  net {{ protocol C; ping-int 1; ping-timeout 5; }}
  disk {{ c-plan-ahead 0; resync-rate 300M;{fencing} }}{handlers}
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
    with_client: bool = True  # the third guest writing through iSCSI (tests/stack/client.py)
    drbd_fencing: bool = True  # DRBD_FENCING in drbd.conf (False: to measure its cost)
    client: Client | None = None

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
        specs: list[dict[str, object]] = [
            {"name": n, "mem": self.mem, "disks": DISKS, "nics": [(self.net, i + 1)],
             "lifetime": self.lifetime} for i, n in enumerate(NODES)]
        if self.with_client:
            specs.append({"name": "client", "mem": "128M", "lifetime": self.lifetime,
                          "nics": [(self.net, CLIENT_HOST)]})
        booted = self.lab.boot(*specs)
        self.guests = dict(zip(NODES, booted))
        if self.with_client:
            self.client = Client(booted[2], self.vip)
            self.client.setup()
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
        (d / "drbd.conf").write_text(DRBD_CONF.format(
            a1=self.node_ip("node1"), a2=self.node_ip("node2"),
            **(DRBD_FENCING if self.drbd_fencing else dict.fromkeys(DRBD_FENCING, ""))))
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
            "IQN": IQN, "INITIATORS": INITIATOR,
            "CHAP_USER": CHAP_USER, "CHAP_PASSWORD": CHAP_PASSWORD,
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
        """A node's log: pacemaker, corosync or messages (syslog, node.sh start)."""
        p = self.guests[node].share / "log" / (which if which == "messages" else
                                               f"{which}/{which}.log")
        try:
            return p.read_text(errors="replace")
        except OSError:
            return ""

    def start_client(self) -> str:
        """Log the client in to the target through the VIP and start its writer."""
        assert self.client is not None
        dev = self.client.login()
        self.client.start_writer()
        return dev

    def lun_cache_mode(self, node: str) -> str:
        """How LIO's fileio backstore of lun0 writes: "Mode: O_DSYNC" is write-through
        (an acknowledged write has reached DRBD, hence both nodes), "Buffered-WCE" would
        leave acknowledged writes in the node's page cache."""
        r = self.guests[node].sh("cat /sys/kernel/config/target/core/fileio_*/lun0/info "
                                 "/sys/kernel/config/target/core/fileio_*/lun0/attrib/"
                                 "emulate_write_cache", timeout=60)
        m = re.search(r"Mode: (\S+)", r.stdout)
        wce = r.stdout.strip().splitlines()[-1] if r.ok and r.stdout.strip() else "?"
        return f"Mode: {m.group(1) if m else '?'}, emulate_write_cache={wce}"

    def drbd_states(self) -> dict[str, str]:
        """Node -> ``cs:... ro:... ds:...`` of r0 from /proc/drbd ('' if not there)."""
        out = {}
        for n in NODES:
            r = self.guests[n].run(["cat", "/proc/drbd"], timeout=60) if \
                self.guests[n].alive else None
            m = re.search(r"0: (cs:\S+ ro:\S+ ds:\S+)", r.stdout) if r and r.ok else None
            out[n] = m.group(1) if m else ""
        return out

    def fence_constraint(self, node: str) -> str | None:
        """The rsc_location crm-fence-peer.sh placed, as XML, or None."""
        r = self.guests[node].run(["cibadmin", "--query", "-o", "constraints"], timeout=60)
        m = re.search(r"<rsc_location [^>]*id=\"drbd-fence-by-handler-.*?</rsc_location>",
                      r.stdout, re.S)
        return m.group(0) if m else None

    def drbd_check(self, f: Failover, timeout: float = 120) -> DrbdCheck:
        """After a rejoin: wait for the resync and the fence constraint's removal, then
        check DRBD on both nodes (no split brain, both UpToDate, one Primary)."""
        deadline = time.monotonic() + timeout
        while True:
            states = self.drbd_states()
            if all(st.startswith("cs:Connected ") and st.endswith("ds:UpToDate/UpToDate")
                   for st in states.values()):
                f.mark("DRBD: resync done, both UpToDate", time.time())
                break
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
        constraint = self.fence_constraint(f.survivor)
        while constraint is not None and time.monotonic() < deadline:
            time.sleep(0.5)
            constraint = self.fence_constraint(f.survivor)
        # read and clear: each check sees the kernel log since the previous one (a node's
        # log also starts empty at every boot)
        kernel = {n: [line for line in self.guests[n].run(["dmesg", "-c"], timeout=60)
                      .stdout.splitlines() if "drbd" in line] for n in NODES}
        return DrbdCheck(
            states=states,
            primaries=[n for n, st in states.items() if " ro:Primary/" in st],
            split_brain=[f"{n}: {line}" for n in NODES for line in kernel[n]
                         if "split-brain" in line.lower()],
            handlers=[f"{n}: {line.split('] ', 1)[-1]}" for n in NODES for line in kernel[n]
                      if ("exit code" in line or "returned" in line) and (
                          "fence-peer" in line or "after-resync-target" in line)],
            handler_log=[line for n in NODES for line in self.log(n, "messages").splitlines()
                         if "-peer.sh[" in line and " INFO " in line
                         and (stamp(line) or 0) >= f.t_kill - 1],
            constraint_left=constraint)

    def failover(self, victim: str, timeout: float = 180, hold: bool = True) -> Failover:
        """Power-cut ``victim`` (SIGKILL of its UML) and measure the takeover and its rejoin.

        The takeover is complete when the survivor runs the service, an HTTP GET through
        the VIP and (with the client) an iSCSI write begun after the kill have been
        answered.  Then, the victim still powered off, the client reads the LUN back and
        checks every acknowledged write; after the victim's rejoin, DRBD is checked on
        both nodes (:meth:`drbd_check`).

        ``hold``: the fenced node's firmware "POST" lasts until the survivor has taken over
        (a real server takes minutes to boot, and a node that rejoins in the middle of the
        takeover adds its probes to the survivor's transition); False lets it boot after
        ``post_delay`` whatever the survivor is doing.
        """
        survivor = next(n for n in NODES if n != victim)
        assert self.power is not None
        # the client counts once its writer runs (start_client)
        client = self.client if self.client and self.client.writer_pid else None
        prober = HttpProber(self.lab, self.vip)
        try:
            time.sleep(0.5)
            f = Failover(victim, survivor, time.time(), iscsi_client=client is not None)
            if hold:
                self.power.held.add(victim)
            self.guests[victim].kill()  # SIGKILL of the guest's UML: a power cut
            f.mark("victim's UML killed", time.time())
            deadline = time.monotonic() + timeout
            while True:
                mon = self.crm_mon(survivor)
                if settled_on(mon) == survivor and prober.first_after(f.t_kill) and (
                        client is None or client.first_ack_after(f.t_kill)):
                    break
                if time.monotonic() > deadline:
                    raise LabError(f"no takeover by {survivor} after {timeout}s:\n{mon}")
                time.sleep(0.2)
            f.settled = survivor
            f.fence_constraint = self.fence_constraint(survivor)
            if client is not None:
                # the victim is still off: what is read back comes from the survivor alone
                f.iscsi = client.verify()
                f.mark("iSCSI: LUN read back, acknowledged writes checked", time.time())
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
            f.drbd = self.drbd_check(f)
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
        if client is not None:
            f.mark(ISCSI_LAST, client.last_ack_before(f.t_kill))
            f.mark(ISCSI_ANSWERING, client.first_ack_after(f.t_kill))
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
                (FENCE_PLACED, r"\+\+ .*<rsc_location .*drbd-fence-by-handler"),
                (FENCE_REMOVED, r"-- .*rsc_location.*drbd-fence-by-handler"),
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
    m = re.match(r"(\w{3} +\d+ \d\d:\d\d:\d\d)(\.\d+)?", line)  # syslog pads the day: "Dec  8"
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
ISCSI_ANSWERING = "iSCSI: first write acknowledged after the kill"
ISCSI_LAST = "iSCSI: last write acknowledged before the kill"
FENCE_PLACED = "DRBD fencing: crm-fence-peer.sh placed its constraint"
FENCE_REMOVED = "DRBD fencing: constraint removed (resync done)"

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
    iscsi_client: bool = False  # a client wrote through iSCSI during this failover
    iscsi: Verification | None = None  # its read-back after the takeover
    fence_constraint: str | None = None  # crm-fence-peer.sh's constraint after the takeover
    drbd: DrbdCheck | None = None  # DRBD on both nodes after the rejoin

    def mark(self, what: str, t: float | None) -> None:
        if t is not None and what not in self.marks:
            self.marks[what] = t - self.t_kill

    @property
    def mttr_http(self) -> float | None:
        return self.marks.get(ANSWERING)

    @property
    def mttr_iscsi(self) -> float | None:
        return self.marks.get(ISCSI_ANSWERING)

    @property
    def mttr(self) -> float | None:
        """Kill -> every service answers again: HTTP through the VIP and, with the
        client, an iSCSI write acknowledged (None if one of them never answered)."""
        got = [self.mttr_http] + ([self.mttr_iscsi] if self.iscsi_client else [])
        return None if None in got else max(t for t in got if t is not None)

    @property
    def lost_writes(self) -> int | None:
        return None if self.iscsi is None else self.iscsi.lost

    def table(self) -> str:
        rows = sorted(self.marks.items(), key=lambda kv: kv[1])
        return "\n".join(f"  {t:7.2f} s  {what}" for what, t in rows)


@dataclass
class DrbdCheck:
    """DRBD (resource r0) on both nodes after a failover and the rejoin's resync."""

    states: dict[str, str]  # node -> "cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate"
    primaries: list[str]
    split_brain: list[str]  # kernel log lines about a split brain, per node
    handlers: list[str]  # the fence-peer / after-resync-target handler runs (kernel log)
    handler_log: list[str]  # what crm-(un)fence-peer.sh said (syslog), since the kill
    constraint_left: str | None  # crm-fence-peer.sh's constraint, if still there

    @property
    def ok(self) -> bool:
        return (not self.split_brain and len(self.primaries) == 1
                and self.constraint_left is None and all(
                    st.startswith("cs:Connected ") and st.endswith(" ds:UpToDate/UpToDate")
                    for st in self.states.values()))

    def line(self) -> str:
        states = "; ".join(f"{n} {st or '(no DRBD)'}" for n, st in self.states.items())
        return (f"{states}; Primary on {', '.join(self.primaries) or 'no node'};"
                f" split brain: {'; '.join(self.split_brain) or 'none'}"
                + ("; fence constraint still in the CIB" if self.constraint_left else ""))


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
