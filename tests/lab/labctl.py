"""The kernel lab: User-Mode Linux guests that boot the host's own userland.

The host kernel lacks ip_vs, drbd, device-mapper, LIO and iscsi_tcp; Debian's
``user-mode-linux`` kernel (6.1) has them all as modules.  A guest boots the host's
``/`` through hostfs, stacks an overlay on it (guest writes stay in guest RAM) and
runs a small command server (``guest/server.py``) that the host drives through a
spool directory shared over hostfs.  One boot (~2 s) serves any number of
commands.

Isolation and teardown (nothing may be left behind, even after SIGKILL of the
driving process):

* A lab owns one private network namespace, held by ``unshare --net sleep``.
  Every guest and every host-side helper runs inside it, each in its own PID
  namespace (``unshare --pid --fork --kill-child``): killing that one ``unshare``
  process kills the whole tree, UML's per-process helpers included.
* Every process we start gets ``PR_SET_PDEATHSIG=SIGKILL``, so if the driver
  dies the holder and all guests die with it and the namespace disappears.
* A guest also has a lifetime watchdog (``timeout -s KILL``) inside its PID
  namespace, independent of the host-side Python.
* All files (disks, UML umid dirs, guest RAM backing files) live in one work
  directory that is removed on close.  Nothing is mounted on the host and no
  loop device is used.

Shared storage: :meth:`Lab.shared_disk` makes one disk file that several guests
attach (UML's ``ubd<n>c=`` flag: no host flock).  Every ubd write is a
``pwrite`` on the host file, so the other guest sees it as soon as it reads the
disk past its own page cache (O_DIRECT, as LVM does, or after
``blockdev --flushbufs``); what a guest still holds in its page cache is lost
when it is killed, as on a real crash.  :meth:`Guest.restart` boots a stopped
or killed guest again with the same disks.

Networking: each lab network is a Linux bridge in the lab's namespace with the
address ``<prefix>.254``; each guest NIC is a tap device on that bridge, used by
UML's ``tuntap`` transport.  Host-side processes that must talk to guests (BMC
simulators, clients) run with :meth:`Lab.host_popen` / :meth:`Lab.host_run`,
which put them in the same namespace, where the bridge address routes to the
guests.  The host's own network is never touched.

CLI: ``python -m tests.lab --help``.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import hashlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

REPO = Path(__file__).resolve().parents[2]
INIT = REPO / "tests" / "lab" / "guest" / "init.sh"
UML = "linux"
PR_SET_PDEATHSIG = 1
ST_NOEXEC = 8


class LabError(RuntimeError):
    """The lab itself failed (boot, guest death, teardown)."""


class GuestDied(LabError):
    """The guest's kernel exited while the host was waiting for it."""


@dataclass
class Result:
    """Outcome of one command: like ``subprocess.CompletedProcess``, plus timing."""

    argv: list[str]
    rc: int
    stdout: str
    stderr: str
    duration: float = 0.0
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.rc == 0 and not self.timed_out

    def check(self) -> Result:
        """Return self if rc is 0, else raise LabError with the output."""
        if not self.ok:
            raise LabError(
                "command {} failed: rc={}{}\n--- stdout\n{}--- stderr\n{}".format(
                    shlex.join(self.argv), self.rc, " (timed out)" if self.timed_out else "",
                    self.stdout, self.stderr))
        return self


def _die_with_parent() -> None:
    """preexec_fn: SIGKILL this child when the thread that started it exits.

    Only one async-signal-safe call, so preexec_fn's thread hazard (locks held
    in the fork) does not apply.  The death signal follows the *thread* that
    forked: start lab processes from the thread that lives as long as the lab.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def _ns_inode(pid: int, ns: str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/{ns}")
    except OSError:
        return None


def _all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _pick_base() -> str:
    """A work-directory base that allows exec (UML maps guest RAM from TMPDIR)."""
    for base in (os.environ.get("LAB_WORKDIR"), "/var/tmp", tempfile.gettempdir()):
        if base and os.path.isdir(base) and not os.statvfs(base).f_flag & ST_NOEXEC:
            return base
    raise LabError("no exec-capable directory for the lab (set LAB_WORKDIR)")


def _cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0))


@dataclass
class Network:
    """A guest network: a bridge in the lab namespace, host side at ``<prefix>.254``."""

    name: str
    bridge: str
    prefix: str

    @property
    def host_ip(self) -> str:
        return f"{self.prefix}.254"

    def addr(self, n: int) -> str:
        return f"{self.prefix}.{n}"


@dataclass(frozen=True)
class SharedDisk:
    """A disk file several guests attach: create it with :meth:`Lab.shared_disk`.

    List it in :meth:`Lab.guest`'s ``disks`` (next to sizes) of each guest that
    sees it.  ``sync``: also open it O_SYNC on the host (UML flag ``s``).
    """

    name: str
    path: Path
    size: str
    sync: bool = False

    @property
    def ubd_flags(self) -> str:
        """UML ubd flags: ``c`` (shared: no host flock), plus ``s`` (O_SYNC) if asked."""
        return "c" + ("s" if self.sync else "")

    def __fspath__(self) -> str:
        return str(self.path)


@dataclass
class Guest:
    """One UML guest.  Create it with :meth:`Lab.guest`; it boots on creation."""

    lab: Lab
    name: str
    index: int
    mem: str
    cpu: int
    lifetime: float
    tmp_size: str
    disks: list[Path] = field(default_factory=list)
    nics: list[tuple[Network, int]] = field(default_factory=list)
    ubd_flags: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    boot_seconds: float | None = None
    guest_uptime_at_ready: float | None = None
    _seq: int = 0
    _t0: float = 0.0
    _pidns: str | None = None

    # -- paths ------------------------------------------------------------
    @property
    def share(self) -> Path:
        """Host directory visible read-write at the same path in the guest (results)."""
        return self.lab.results / self.name

    @property
    def ctl(self) -> Path:
        return self.share / "ctl"

    @property
    def console_log(self) -> Path:
        return self.share / "console.log"

    def ip(self, nic: int = 0) -> str:
        net, n = self.nics[nic]
        return net.addr(n)

    # -- lifecycle --------------------------------------------------------
    def _start(self) -> None:
        self.ctl.mkdir(parents=True, exist_ok=True)
        # a previous boot's spool (restart, or a reused results dir) must not answer
        # this boot's requests: request ids start again at 1 in a new Lab
        for p in self.ctl.iterdir():
            if p.name == "ready" or p.name.lstrip(".").startswith(("req-", "resp-")):
                p.unlink(missing_ok=True)
        argv = [
            "timeout", "-s", "KILL", str(int(self.lifetime)),
            "taskset", "-c", str(self.cpu), UML,
            f"umid=lab-{self.name}", "uml_dir=%s" % (self.lab.workdir / "uml"),
            f"mem={self.mem}", "root=/dev/root", "rootfstype=hostfs", "rootflags=/", "rw",
            "quiet", "con=null", "con0=null,fd:1",
            f"init={INIT}", f"LAB_SHARE={self.share}", f"LAB_REPO={REPO}",
            f"LAB_HOSTNAME={self.name}", f"LAB_TMP_SIZE={self.tmp_size}",
        ]
        flags = self.ubd_flags or [""] * len(self.disks)
        argv += [f"ubd{i}{f}={d}" for i, (d, f) in enumerate(zip(self.disks, flags))]
        ips = []
        for i, (net, n) in enumerate(self.nics):
            tap = self.lab._add_tap(net, f"lg{self.index}n{i}")
            mac = f"fe:fd:0a:{self.lab._nets.index(net):02x}:{self.index:02x}:{i:02x}"
            argv.append(f"eth{i}=tuntap,{tap},{mac}")
            ips.append(f"{net.addr(n)}/24")
        if ips:
            argv.append("LAB_NICS={}".format(",".join(ips)))
        self._t0 = time.monotonic()
        # append: a restarted guest keeps the console of its previous boots
        with self.console_log.open("ab") as console:
            self.proc = self.lab._popen_isolated(argv, stdout=console)

    def restart(self, timeout: float = 60) -> Guest:
        """Boot this guest again once it has stopped (:meth:`kill`, :meth:`shutdown`,
        a crash): same name, disks, NICs and CPU, a fresh RAM overlay.  Returns
        when it is ready.  ``kill()`` then ``restart()`` is a node that died and
        came back with its disks.
        """
        if self.alive:
            raise LabError(f"guest {self.name} is still running: kill() or shutdown() first")
        # the old kernel must be gone before its disks (host flock) and umid are reused
        deadline = time.monotonic() + 10
        while self.leftover_pids():
            if time.monotonic() > deadline:
                raise LabError(f"guest {self.name}: old processes {self.leftover_pids()} "
                               "still there, cannot restart")
            time.sleep(0.05)
        # UML would take a stale umid dir whose recorded pid is reused in the new
        # PID namespace for a live instance
        shutil.rmtree(self.lab.workdir / "uml" / f"lab-{self.name}", ignore_errors=True)
        self.boot_seconds = self.guest_uptime_at_ready = None
        self._pidns = None
        self._start()
        return self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 60) -> Guest:
        """Block until the command server answers; raise GuestDied/LabError otherwise."""
        ready = self.ctl / "ready"
        deadline = time.monotonic() + timeout
        while not ready.exists():
            self._check_alive("booting")
            if time.monotonic() > deadline:
                raise LabError(f"guest {self.name} not ready after {timeout}s\n"
                               + self.console_tail())
            time.sleep(0.01)
        if self.boot_seconds is None:
            self.boot_seconds = time.monotonic() - self._t0
            self.guest_uptime_at_ready = json.loads(ready.read_text())["uptime"]
            assert self.proc is not None
            uml = _children(self.proc.pid)
            self._pidns = _ns_inode(uml[0], "pid") if uml else None
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _check_alive(self, doing: str) -> None:
        if not self.alive:
            rc = self.proc.returncode if self.proc else None
            raise GuestDied(f"guest {self.name} died while {doing} (rc {rc})\n"
                            + self.console_tail())

    def console_tail(self, lines: int = 30) -> str:
        try:
            text = self.console_log.read_text(errors="replace")
        except OSError:
            return "(no console log)"
        return "--- {} console (last {} lines)\n{}".format(
            self.name, lines, "\n".join(text.splitlines()[-lines:]))

    def _request(self, req: dict[str, Any], timeout: float) -> dict[str, Any]:
        self._seq += 1
        rid = f"{self._seq:06d}"
        tmp = self.ctl / (f".req-{rid}.tmp")
        tmp.write_text(json.dumps(req))
        tmp.rename(self.ctl / (f"req-{rid}.json"))
        resp = self.ctl / (f"resp-{rid}.json")
        # UML is slow under load: the guest enforces the command timeout, the host
        # only guards against a guest that stopped answering altogether.
        deadline = time.monotonic() + timeout + 30
        delay = 0.002
        while not resp.exists():
            self._check_alive("running {}".format(req.get("argv", req["kind"])))
            if time.monotonic() > deadline:
                raise LabError(f"guest {self.name} did not answer request {rid}"
                               f" within {timeout + 30}s")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.02)
        data: dict[str, Any] = json.loads(resp.read_text())
        resp.unlink()
        if "error" in data:
            raise LabError("guest {}: {}".format(self.name, data["error"]))
        return data

    def run(self, argv: Sequence[str] | str, *, env: Mapping[str, str] | None = None,
            input: str | None = None, timeout: float = 120, cwd: str | None = None,
            check: bool = False) -> Result:
        """Run a command in the guest and return its Result.

        ``argv`` is a list (exec'd directly: cheapest under UML) or a string (run by
        ``/bin/sh -c``).  ``env`` adds to the guest's base environment (PATH, HOME,
        LC_ALL).  On timeout the command's whole session is SIGKILLed and the Result
        has ``timed_out=True``.  ``check=True`` raises LabError unless rc is 0.
        Daemons must not keep stdout/stderr open: start them with :meth:`spawn`.
        """
        args = ["/bin/sh", "-c", argv] if isinstance(argv, str) else list(argv)
        data = self._request({"kind": "run", "argv": args, "env": dict(env or {}),
                              "input": input, "timeout": timeout, "cwd": cwd}, timeout)
        res = Result(args, data["rc"], data["stdout"], data["stderr"], data["duration"],
                     data["timed_out"])
        return res.check() if check else res

    def sh(self, script: str, **kw: Any) -> Result:
        """Run a shell script (``set -e``) in the guest; same keywords as :meth:`run`."""
        return self.run(["/bin/sh", "-ec", script], **kw)

    def spawn(self, argv: Sequence[str], *, log: str | None = None,
              env: Mapping[str, str] | None = None, cwd: str | None = None) -> int:
        """Start a background process (own session); return its guest PID.

        Output goes to ``log`` (a guest path; default: ``<share>/<argv0>-<n>.log``,
        which is readable from the host).
        """
        self._seq += 0  # ids come from _request
        if log is None:
            log = str(self.share / f"{Path(argv[0]).name}-{self._seq + 1}.log")
        data = self._request({"kind": "spawn", "argv": list(argv), "log": log,
                              "env": dict(env or {}), "cwd": cwd}, 30)
        return int(data["pid"])

    def agent(self, type_: str, action: str, params: Mapping[str, Any] | None = None, *,
              instance: str | None = None, timeout: float = 60,
              env: Mapping[str, str] | None = None, agent_dir: str | None = None) -> Result:
        """Run OCF agent ``<repo>/ocf/<type_>`` with ``action`` as Pacemaker would.

        Sets OCF_ROOT, OCF_RA_VERSION_*, OCF_RESOURCE_INSTANCE (default: ``type_``),
        OCF_RESOURCE_TYPE, OCF_RESOURCE_PROVIDER=lsaa, OCF_RESKEY_CRM_meta_timeout
        (ms) and ``OCF_RESKEY_<name>`` for each parameter.  ``agent_dir`` replaces
        ``<repo>/ocf`` (a guest path).
        """
        full = {
            "OCF_ROOT": "/usr/lib/ocf",
            "OCF_RA_VERSION_MAJOR": "1",
            "OCF_RA_VERSION_MINOR": "1",
            "OCF_RESOURCE_INSTANCE": instance or type_,
            "OCF_RESOURCE_TYPE": type_,
            "OCF_RESOURCE_PROVIDER": "lsaa",
            "OCF_RESKEY_CRM_meta_timeout": str(int(timeout * 1000)),
        }
        for k, v in (params or {}).items():
            full[f"OCF_RESKEY_{k}"] = v if isinstance(v, str) else str(v)
        full.update(env or {})
        path = os.path.join(agent_dir or str(REPO / "ocf"), type_)
        return self.run([path, action], env=full, timeout=timeout)

    def put_file(self, name: str, content: str | bytes, mode: int = 0o644) -> str:
        """Write a file into this guest's share; return its path (same in the guest)."""
        p = self.share / name
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            p.write_text(content)
        else:
            p.write_bytes(content)
        p.chmod(mode)
        return str(p)

    def shutdown(self, timeout: float = 20) -> int | None:
        """Power the guest off cleanly (kill it if it does not stop); return UML's rc."""
        if self.alive:
            self.request_poweroff()
        return self.wait_stopped(timeout)

    def request_poweroff(self) -> None:
        """Ask the server to power off, without waiting (see :meth:`wait_stopped`)."""
        if not self.alive:
            return
        self._seq += 1
        tmp = self.ctl / f".req-{self._seq:06d}.tmp"
        tmp.write_text(json.dumps({"kind": "poweroff"}))
        tmp.rename(self.ctl / f"req-{self._seq:06d}.json")

    def wait_stopped(self, timeout: float) -> int | None:
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL the guest: its PID namespace and every UML helper go with it."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def leftover_pids(self) -> list[int]:
        """Processes still in this guest's PID namespace (should be none once stopped)."""
        if self._pidns is None:
            return []
        return [p for p in _all_pids() if _ns_inode(p, "pid") == self._pidns]


class Lab:
    """A set of guests sharing one private network namespace and one work directory.

    Use as a context manager; :meth:`close` always tears everything down.
    ``results``: where guest shares and console logs go (kept after close);
    default: inside the work directory (removed on close unless ``keep``).
    """

    def __init__(self, results: str | os.PathLike[str] | None = None, keep: bool = False,
                 cpus: Sequence[int] | None = None) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="lsaa-lab-", dir=_pick_base()))
        self.keep = keep
        self.results = Path(results) if results else self.workdir / "results"
        self.results.mkdir(parents=True, exist_ok=True)
        for d in ("tmp", "uml"):
            (self.workdir / d).mkdir()
        self.cpus = list(cpus) if cpus else _cpus()
        self.guests: list[Guest] = []
        self._nets: list[Network] = []
        self._host_procs: list[subprocess.Popen[bytes]] = []
        self._taps: set[str] = set()
        self._shared: dict[str, SharedDisk] = {}
        self._closed = False
        # The holder keeps the netns alive.  It blocks on a pipe from us, so it also
        # exits when we die; its argv names the work dir so leftovers are findable.
        self._holder: subprocess.Popen[bytes] | None = subprocess.Popen(
            ["unshare", "--net", "--", "/bin/sh", "-c",
             "ip link set lo up && echo up && read _", "lsaa-lab-holder", str(self.workdir)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True,
            preexec_fn=_die_with_parent)  # noqa: PLW1509 (only prctl; see _die_with_parent)
        assert self._holder.stdout is not None
        line = self._holder.stdout.readline()
        if line.strip() != b"up":
            self.close()
            raise LabError("could not create the lab network namespace")
        self.netns = f"/proc/{self._holder.pid}/ns/net"
        self.netns_inode = _ns_inode(self._holder.pid, "net")

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- processes --------------------------------------------------------
    def _popen_isolated(self, argv: Sequence[str], stdout: IO[bytes] | int | None = None,
                        stderr: IO[bytes] | int | None = subprocess.STDOUT,
                        stdin: IO[bytes] | int | None = subprocess.DEVNULL,
                        ) -> subprocess.Popen[bytes]:
        """Start argv in the lab netns, in a PID namespace of its own that dies with it."""
        full = ["nsenter", f"--net={self.netns}", "unshare", "--pid", "--mount", "--fork",
                "--kill-child", "--mount-proc", "--", *argv]
        env = dict(os.environ, TMPDIR=str(self.workdir / "tmp"))
        return subprocess.Popen(full, stdin=stdin, stdout=stdout, stderr=stderr, env=env,
                                start_new_session=True,
                                preexec_fn=_die_with_parent)  # noqa: PLW1509

    def host_popen(self, argv: Sequence[str], **kw: Any) -> subprocess.Popen[bytes]:
        """Start a host-side helper that can reach the guests (lab netns); stopped on close.

        Keywords: stdin, stdout, stderr as for Popen.
        """
        p = self._popen_isolated(argv, **kw)
        self._host_procs.append(p)
        return p

    def host_run(self, argv: Sequence[str], *, input: str | None = None,
                 timeout: float = 60) -> Result:
        """Run a host-side command in the lab netns (e.g. ping/curl a guest)."""
        t0 = time.monotonic()
        p = self._popen_isolated(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 stdin=subprocess.PIPE if input is not None else None)
        timed_out = False
        try:
            out, err = p.communicate(input.encode() if input is not None else None, timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            p.kill()
            out, err = p.communicate()
        return Result(list(argv), p.returncode, out.decode(errors="replace"),
                      err.decode(errors="replace"), time.monotonic() - t0, timed_out)

    def _ns_exec(self, script: str) -> None:
        r = subprocess.run(["nsenter", f"--net={self.netns}", "/bin/sh", "-ec", script],
                           capture_output=True, text=True, check=False)
        if r.returncode:
            raise LabError(f"lab netns setup failed: {script}\n{r.stderr}")

    # -- networks and guests ----------------------------------------------
    def network(self, name: str = "lan", prefix: str | None = None) -> Network:
        """Create (or return) a guest network; its host side is ``<prefix>.254``."""
        for n in self._nets:
            if n.name == name:
                return n
        net = Network(name, f"lb{len(self._nets)}",
                      prefix or f"192.168.{77 + len(self._nets)}")
        self._ns_exec(f"ip link add {net.bridge} type bridge forward_delay 0 stp_state 0; "
                      f"ip addr add {net.host_ip}/24 dev {net.bridge}; ip link set {net.bridge} up")
        self._nets.append(net)
        return net

    def _add_tap(self, net: Network, tap: str) -> str:
        """Create tap ``tap`` on ``net``'s bridge once (a restarted guest reuses it)."""
        if tap not in self._taps:
            self._ns_exec(f"ip tuntap add dev {tap} mode tap; "
                          f"ip link set {tap} master {net.bridge} up")
            self._taps.add(tap)
        return tap

    def shared_disk(self, name: str, size: str, *, sync: bool = False) -> SharedDisk:
        """Create a sparse disk file that several guests can attach at once.

        Pass the returned handle in ``disks`` of :meth:`guest` (each guest numbers
        its disks itself: it is /dev/ubdX by its position there).  UML attaches it
        with the shared flag ``c`` (no host flock, which would refuse the second
        guest), plus ``s`` (O_SYNC on the host file) when ``sync``.  Created once
        in the work dir, removed on close.  Same ``name`` again returns the same
        disk (the size must match).
        """
        if name in self._shared:
            disk = self._shared[name]
            if disk.size != size or disk.sync != sync:
                raise LabError(f"shared disk {name} exists as {disk.size} sync={disk.sync}")
            return disk
        if not name or "/" in name or name.startswith("."):
            raise LabError(f"bad shared disk name {name!r}")
        d = self.workdir / "shared"
        d.mkdir(exist_ok=True)
        path = d / f"{name}.img"
        subprocess.run(["truncate", "-s", size, str(path)], check=True)
        disk = SharedDisk(name, path, size, sync)
        self._shared[name] = disk
        return disk

    def guest(self, name: str, *, mem: str = "256M",
              disks: Iterable[str | SharedDisk] = (),
              nics: Iterable[tuple[Network, int]] = (), cpu: int | None = None,
              lifetime: float = 600, tmp_size: str = "128m") -> Guest:
        """Start booting a guest (returns at once; see :meth:`Guest.wait_ready`).

        ``disks``: sizes of sparse disk files (``"256M"``) private to this guest, or
        :class:`SharedDisk` handles from :meth:`shared_disk`; seen as /dev/ubda,
        ubdb... in this order.
        ``nics``: ``(network, n)`` pairs: ethI gets ``<prefix>.n/24``.
        ``cpu``: host CPU to pin to (default: round-robin).  ``lifetime``: seconds
        after which the guest is SIGKILLed whatever happens.
        """
        idx = len(self.guests)
        gdir = self.workdir / name
        gdir.mkdir()
        paths, flags = [], []
        for i, spec in enumerate(disks):
            if isinstance(spec, SharedDisk):
                if self._shared.get(spec.name) is not spec:
                    raise LabError(f"shared disk {spec.name} is not from this lab")
                paths.append(spec.path)
                flags.append(spec.ubd_flags)
                continue
            p = gdir / f"disk{i}.img"
            subprocess.run(["truncate", "-s", spec, str(p)], check=True)
            paths.append(p)
            flags.append("")
        g = Guest(self, name, idx, mem, cpu if cpu is not None else self.cpus[idx % len(self.cpus)],
                  lifetime, tmp_size, paths, list(nics), flags)
        self.guests.append(g)
        g._start()
        return g

    def boot(self, *specs: Mapping[str, Any], timeout: float = 60) -> list[Guest]:
        """Boot several guests in parallel: each spec is ``guest()`` keywords with 'name'."""
        guests = [self.guest(**dict(s)) for s in specs]
        for g in guests:
            g.wait_ready(timeout)
        return guests

    # -- teardown ---------------------------------------------------------
    def close(self) -> None:
        """Stop everything and remove the work directory.  Idempotent.

        Guests get a clean poweroff (all in parallel), then SIGKILL; raises LabError
        if any process of the lab is still there afterwards.
        """
        if self._closed:
            return
        self._closed = True
        try:
            for g in self.guests:
                with contextlib.suppress(OSError):
                    g.request_poweroff()
            for g in self.guests:
                g.wait_stopped(15)
            for p in self._host_procs:
                if p.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(p.pid, signal.SIGKILL)
                p.wait()
        finally:
            for g in self.guests:
                g.kill()
            if self._holder is not None:
                if self._holder.poll() is None:
                    os.kill(self._holder.pid, signal.SIGKILL)
                self._holder.wait()
                for pipe in (self._holder.stdin, self._holder.stdout):
                    if pipe:
                        pipe.close()
            left = self._wait_gone(10)
            if self.keep:
                # keep results and logs, but never the guest disks or RAM files
                for g in self.guests:
                    for d in g.disks:
                        d.unlink(missing_ok=True)
                for disk in self._shared.values():
                    disk.path.unlink(missing_ok=True)
            else:
                shutil.rmtree(self.workdir, ignore_errors=True)
            if left:
                raise LabError(f"lab processes survived teardown: {left}")

    def _wait_gone(self, timeout: float) -> list[int]:
        deadline = time.monotonic() + timeout
        while True:
            left = self.leftover_pids()
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.05)

    def leftover_pids(self) -> list[int]:
        """PIDs of anything this lab started that still exists (netns or PID ns members)."""
        left = set()
        nsset = {g._pidns for g in self.guests if g._pidns}
        for p in _all_pids():
            if p == os.getpid():
                continue
            if (_ns_inode(p, "net") == self.netns_inode and self.netns_inode) or (
                    _ns_inode(p, "pid") in nsset):
                left.add(p)
        return sorted(left)


# -- host state snapshots (used by the lab's own tests) -----------------------

def host_snapshot() -> dict[str, Any]:
    """Global host state a lab must not change: mounts and loop devices.

    (Network namespaces and processes are checked per lab with
    :func:`processes_mentioning` and :func:`netns_holders`, because other work on
    the same machine creates and removes its own at any time.)
    """
    mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    loops = sorted(str(p) for p in Path("/sys/block").glob("loop*/loop/backing_file"))
    return {"mounts": sorted(m.split()[4] for m in mounts), "loops": loops}


def processes_mentioning(fragment: str) -> list[int]:
    """PIDs whose command line contains ``fragment`` (e.g. a lab work dir)."""
    out = []
    needle = fragment.encode()
    for p in _all_pids():
        if p == os.getpid():
            continue
        try:
            if needle in Path(f"/proc/{p}/cmdline").read_bytes():
                out.append(p)
        except OSError:
            continue
    return out


def netns_holders(inode: str) -> list[int]:
    """PIDs in network namespace ``inode`` (``net:[N]``): none once a lab is closed."""
    return [p for p in _all_pids() if _ns_inode(p, "net") == inode]


def hash_tree(root: str) -> dict[str, str]:
    """sha256 of every regular file and the target of every symlink under root."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        dirs.sort()
        for name in files:
            p = os.path.join(dirpath, name)
            try:
                if os.path.islink(p):
                    out[p] = "-> " + os.readlink(p)
                elif os.path.isfile(p):
                    with open(p, "rb") as f:
                        out[p] = hashlib.sha256(f.read()).hexdigest()
            except OSError as e:
                out[p] = f"error: {e.strerror}"
        for name in dirs:
            p = os.path.join(dirpath, name)
            if os.path.islink(p):
                out[p] = "-> " + os.readlink(p)
    return out


# -- CLI ----------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m tests.lab",
        description="Boot lab guests (UML), run a command in each, tear everything down.")
    ap.add_argument("-n", "--guests", type=int, default=1, help="number of guests (node1..N)")
    ap.add_argument("--mem", default="256M")
    ap.add_argument("--disk", action="append", default=[], help="disk size, repeatable")
    ap.add_argument("--net", action="store_true", help="connect guests on 192.168.77.0/24")
    ap.add_argument("--timeout", type=float, default=300, help="per command, seconds")
    ap.add_argument("--results", help="keep shares and console logs here")
    ap.add_argument("command", nargs=argparse.REMAINDER,
                    help="command run in every guest (default: uname -a)")
    args = ap.parse_args(argv)
    cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
    cmd = cmd or ["uname", "-a"]

    def on_term(_sig: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    t0 = time.monotonic()
    try:
        rc = _cli_run(args, cmd)
    except KeyboardInterrupt:
        # the Lab context manager has already torn everything down
        print("lab: interrupted, everything torn down", file=sys.stderr, flush=True)
        return 130
    print("lab: total %.2fs" % (time.monotonic() - t0), flush=True)
    return rc


def _cli_run(args: argparse.Namespace, cmd: list[str]) -> int:
    rc = 0
    with Lab(results=args.results, keep=bool(args.results)) as lab:
        print(f"lab: workdir {lab.workdir}", flush=True)
        net = lab.network() if args.net else None
        guests = lab.boot(*[
            {"name": f"node{i}", "mem": args.mem, "disks": args.disk,
             "nics": [(net, i)] if net else []} for i in range(1, args.guests + 1)])
        for g in guests:
            print(f"lab: {g.name} ready in {g.boot_seconds:.2f}s"
                  f" (guest uptime {g.guest_uptime_at_ready:.2f}s)", flush=True)
        for g in guests:
            r = g.run(cmd, timeout=args.timeout)
            sys.stdout.write(r.stdout)
            sys.stderr.write(r.stderr)
            print(f"lab: {g.name} rc={r.rc} in {r.duration:.2f}s", flush=True)
            if not r.ok and not rc:
                rc = r.rc if r.rc > 0 else 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
