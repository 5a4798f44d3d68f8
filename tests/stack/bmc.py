"""Simulated BMCs whose power control really stops and starts a lab guest.

One ``ipmi_sim`` (OpenIPMI's BMC simulator, a real IPMI 2.0 LAN stack) per node runs
on the host side of the lab network (``<prefix>.254``, one UDP port each), started with
``lab.host_popen``.  Its chassis control program (``chassis.sh``) cannot touch the guest:
it runs in a PID namespace of its own.  So it drops a request file in the BMC's
directory and waits; :class:`PowerController`, a thread of the test driver, answers:

* power off: SIGKILL the guest's UML (already dead after a hard kill: nothing to do);
* power on: the power is on at once; after ``post_delay`` seconds (a real server's
  firmware takes minutes before the OS boots; without a delay the node would rejoin
  in the middle of the survivor's takeover, which real nodes never do), boot the guest
  again with the same disks and NIC, then (in a helper thread) wait for it and run the
  node's start script, as a real node's init would;
* reset: both.

It also keeps ``<dir>/power`` equal to whether the guest's UML is running, which is
what "chassis power status" reports.  Every action is recorded with its time
(:attr:`PowerController.events`) so tests and the demo can show that fencing happened.

The thread that boots a guest must live as long as the guest: lab processes die with
the thread that started them (PR_SET_PDEATHSIG), so the controller thread runs until
:meth:`PowerController.stop`, which is called after the lab is closed.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from tests.lab.labctl import Guest, Lab

HERE = Path(__file__).resolve().parent
CHASSIS = HERE / "chassis.sh"
USER = "admin"
PASSWORD = "lsaa-bmc-secret"

LAN_CONF = """\
name "{name}"
set_working_mc 0x20
  startlan 1
    addr {addr} {port}
    priv_limit admin
    allowed_auths_callback none md2 md5 straight
    allowed_auths_user none md2 md5 straight
    allowed_auths_operator none md2 md5 straight
    allowed_auths_admin none md2 md5 straight
    guid {guid}
  endlan
  chassis_control "{chassis} {dir}"
  user 2 true "{user}" "{password}" admin 10 none md2 md5 straight
"""

SIM_EMU = """\
mc_setbmc 0x20
mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr
sel_enable 0x20 1000 0x0a
mc_enable 0x20
"""


@dataclass
class Event:
    t: float  # time.time()
    node: str
    what: str  # "off", "on", "reset", "booted", "started", "start-failed"


def _tap_state(lab: Lab, tap: str) -> str:
    """``ip -br link`` line of a tap in the lab netns ("" if there is none)."""
    r = subprocess.run(["nsenter", f"--net={lab.netns}", "ip", "-br", "link", "show", tap],
                       capture_output=True, text=True, check=False)
    return r.stdout if r.returncode == 0 else ""


def reboot_guest(guest: Guest) -> None:
    """Start a stopped guest again with the same disks and NICs (the Lab API boots once).

    Its tap devices are persistent and stay on the lab bridge: the new UML attaches to
    them again (Guest._start would add them, so it is told they exist), once the dying
    UML has let go of them (``NO-CARRIER``).  Deleting and re-adding a tap while a
    killed UML still holds it does not work: the new tap vanishes and UML creates a
    private one outside the bridge ("uml_net_start_xmit: failed").  The old umid
    directory goes too (its pid file would name a live PID of the new guest's PID
    namespace).
    """
    assert not guest.alive
    lab = guest.lab
    taps = [f"lg{guest.index}n{i}" for i in range(len(guest.nics))]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (
            guest.leftover_pids() or any("NO-CARRIER" not in _tap_state(lab, t)
                                         for t in taps)):
        time.sleep(0.02)
    shutil.rmtree(lab.workdir / "uml" / f"lab-{guest.name}", ignore_errors=True)
    ctl = guest.ctl
    for p in list(ctl.glob("*")):
        with contextlib.suppress(OSError):
            p.unlink()
    log = guest.console_log
    if log.exists():
        log.replace(log.with_name(f"console.{int(time.time())}.log"))
    guest.boot_seconds = None
    add_tap = lab._add_tap
    lab._add_tap = lambda net, tap: tap if _tap_state(lab, tap) else add_tap(net, tap)
    try:
        guest._start()
    finally:
        del lab._add_tap  # back to the class's method


class PowerController:
    """Answers the BMCs' power requests for a set of guests (see module docstring)."""

    def __init__(self, lab: Lab, guests: dict[str, Guest], root: Path,
                 on_boot: Callable[[Guest], None], post_delay: float = 0.0) -> None:
        self.lab = lab
        self.post_delay = post_delay
        self._pending: dict[str, float] = {}  # node -> monotonic time its boot is due
        self.held: set[str] = set()  # nodes whose POST lasts until released
        self.guests = guests
        self.root = root
        self.on_boot = on_boot
        self.events: list[Event] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._closing = False
        self._procs: list[subprocess.Popen[bytes]] = []
        for name in guests:
            (root / name).mkdir(parents=True, exist_ok=True)
            self._write_power(name)
        self._thread = threading.Thread(target=self._loop, name="bmc-power", daemon=True)
        self._thread.start()

    # -- the BMC processes ----------------------------------------------------
    def start_bmcs(self, addr: str, ports: dict[str, int]) -> None:
        """Start one ipmi_sim per guest on ``addr:port`` and wait until each answers."""
        for name, port in ports.items():
            d = self.root / name
            (d / "state").mkdir(exist_ok=True)
            (d / "lan.conf").write_text(LAN_CONF.format(
                name=f"bmc-{name}", addr=addr, port=port, guid=f"a1{port:030x}",
                chassis=CHASSIS, dir=d, user=USER, password=PASSWORD))
            (d / "sim.emu").write_text(SIM_EMU)
            out = (d / "ipmi_sim.log").open("wb")
            self._procs.append(self.lab.host_popen(
                ["ipmi_sim", "-n", "-c", str(d / "lan.conf"), "-f", str(d / "sim.emu"),
                 "-s", str(d / "state")], stdout=out))
        for name, port in ports.items():
            deadline = time.monotonic() + 20
            while True:
                r = self.lab.host_run(self.ipmitool(addr, port, "chassis", "power", "status"),
                                      timeout=10)
                if r.ok:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"BMC of {name} does not answer: {r.stdout}{r.stderr}")
                time.sleep(0.1)

    @staticmethod
    def ipmitool(addr: str, port: int, *cmd: str) -> list[str]:
        return ["ipmitool", "-I", "lanplus", "-C", "3", "-N", "1", "-R", "2", "-H", addr,
                "-p", str(port), "-U", USER, "-P", PASSWORD, *cmd]

    # -- the controller thread ------------------------------------------------
    def _write_power(self, name: str) -> None:
        state = "1" if self.guests[name].alive or name in self._pending else "0"
        p = self.root / name / "power"
        try:
            if p.read_text().strip() == state:
                return
        except OSError:
            pass
        tmp = p.with_name(".power.tmp")
        tmp.write_text(state + "\n")
        tmp.replace(p)

    def _record(self, node: str, what: str) -> None:
        with self._lock:
            self.events.append(Event(time.time(), node, what))

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._tick()
            except OSError:
                if not self._closing:  # the lab's work dir goes away when it is closed
                    raise
            self._stop.wait(0.02)

    def _tick(self) -> None:
        for name, guest in self.guests.items():
            d = self.root / name
            for req in sorted(d.glob("req-*")):
                try:
                    value = req.read_text().strip()
                    req.unlink()
                except OSError:
                    continue
                self._act(guest, value)
                (d / ("ack-" + req.name[4:])).touch()
            due = self._pending.get(name)
            if due is not None and time.monotonic() >= due and name not in self.held:
                del self._pending[name]
                self._boot(guest)
            self._write_power(name)

    def _act(self, guest: Guest, value: str) -> None:
        if value in ("0", "reset"):
            self._record(guest.name, "off" if value == "0" else "reset")
            self._pending.pop(guest.name, None)
            guest.kill()
            self._write_power(guest.name)
        if value in ("1", "reset") and not guest.alive and guest.name not in self._pending:
            if value == "1":
                self._record(guest.name, "on")
            self._pending[guest.name] = time.monotonic() + self.post_delay
            self._write_power(guest.name)

    def _boot(self, guest: Guest) -> None:
        if self._closing:
            return
        self._record(guest.name, "boot")
        reboot_guest(guest)
        threading.Thread(target=self._finish_boot, args=(guest,), daemon=True).start()

    def _finish_boot(self, guest: Guest) -> None:
        try:
            guest.wait_ready(90)
            self._record(guest.name, "booted")
            self.on_boot(guest)
            self._record(guest.name, "started")
        except Exception as e:  # reported through the events
            if not self._closing:
                self._record(guest.name, f"start-failed: {e}")

    def events_of(self, node: str, since: float = 0.0) -> list[Event]:
        with self._lock:
            return [e for e in self.events if e.node == node and e.t >= since]

    def chassis_log(self, node: str, since: float = 0.0) -> list[tuple[float, str]]:
        """What ``node``'s BMC was asked (``get power``, ``set power 1``...), with times."""
        out = []
        try:
            text = (self.root / node / "chassis.log").read_text()
        except OSError:
            return []
        for line in text.splitlines():
            t, _, what = line.partition(" ")
            try:
                if float(t) >= since:
                    out.append((float(t), what))
            except ValueError:
                continue
        return out

    def closing(self) -> None:
        """No more power-ons (the lab is being closed)."""
        self._closing = True

    def stop(self) -> None:
        self._closing = True
        self._stop.set()
        self._thread.join(5)
