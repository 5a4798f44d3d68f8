"""IPMI peers for fence_lsaa_ipmi's tests and benchmark (lab-recipes.md B).

* :class:`IpmiSim` -- OpenIPMI's ``ipmi_sim`` on 127.0.0.1, power kept in a
  file by a ``chassis_control`` script (``0``/``1``), so it survives a restart;
* :class:`PyghmiBmc` -- ``ipmi_bmc.py``, pyghmi's BMC class without the
  server-side SHA-1 patch (what VirtualBMC runs);
* :class:`Relay` -- ``udp_relay.py``, a lossy UDP relay in front of either;
* :class:`VirtualBmc` -- VirtualBMC 3.3.0 (from PyPI, in a venv that reuses the
  system's python3-libvirt and pyghmi) in front of a libvirt domain.

Power is always read back independently of the agent: from the state file or
with ``ipmitool -I lanplus -C 3`` (password through ``IPMI_PASSWORD``).
Every process is started here, recorded, and stopped by its PID.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
IPMI_SIM = "/usr/bin/ipmi_sim"
IPMITOOL = "/usr/bin/ipmitool"
SYSPY = "/usr/bin/python3"
AGENT = "/usr/sbin/fence_lsaa_ipmi"
VBMC_VERSION = "3.3.0"
# The other pyghmi the agent is checked against (Debian 12 ships 1.5.34): the
# version the notes describe, installed with pip --target into a cache directory.
PYGHMI_OTHER = "1.6.19"
PYGHMI_DIR = Path(os.environ.get("LSAA_PYGHMI_DIR", f"/var/cache/lsaa-test/pyghmi-{PYGHMI_OTHER}"))
VBMC_VENV = Path(os.environ.get("LSAA_VBMC_VENV", "/var/cache/lsaa-test/vbmc-venv"))
USER = "admin"
PASSWORD = "s3cret-BMC#pw"

CHASSIS_SH = """#!/bin/sh
# chassis.sh <statefile> get power... | set power <0|1> ...   (lab-recipes.md B.1)
state="$1"; shift; op="$1"; shift
case "$op" in
  get) for p in "$@"; do case "$p" in
         power) echo "power:$(cat "$state" 2>/dev/null || echo 0)";;
         boot)  echo "boot:default";;
         *) echo "Invalid parameter: $p"; exit 1;; esac; done;;
  set) while [ $# -ge 2 ]; do case "$1" in
         power) echo "$2" > "$state.tmp" && mv "$state.tmp" "$state";;
         reset|boot|shutdown) : ;;
         identify) shift;;
         *) echo "Invalid parameter: $1"; exit 1;; esac; shift 2; done;;
  check) exit 1;;
  *) echo "Unknown op $op"; exit 1;;
esac
"""

LAN_CONF = """name "bmc1"
set_working_mc 0x20
  startlan 1
    addr 127.0.0.1 {port}
    priv_limit admin
    allowed_auths_callback none md2 md5 straight
    allowed_auths_user none md2 md5 straight
    allowed_auths_operator none md2 md5 straight
    allowed_auths_admin none md2 md5 straight
    guid a123456789abcdefa123456789abcdef
  endlan
  chassis_control "{dir}/chassis.sh {dir}/power"
  user 2 true "{user}" "{password}" admin 10 none md2 md5 straight
  user 3 true "viewer" "{password}" user 10 none md2 md5 straight
"""

SIM_EMU = """mc_setbmc 0x20
mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr
sel_enable 0x20 1000 0x0a
mc_enable 0x20
"""


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env() -> dict[str, str]:
    return {"PATH": PATH, "LC_ALL": "C"}


def missing() -> str | None:
    """Why this machine cannot run the IPMI tests, or None."""
    if not os.path.exists(AGENT):
        return f"{AGENT} is missing (make dev-install)"
    for tool in (IPMI_SIM, IPMITOOL):
        if not os.path.exists(tool):
            return f"{tool} is not installed (scripts/setup/apt-ipmi.txt)"
    r = subprocess.run([SYSPY, "-c", "import pyghmi.ipmi.bmc"], capture_output=True,
                       check=False, timeout=30)
    if r.returncode:
        return "python3-pyghmi is not installed (scripts/setup/apt-ipmi.txt)"
    return None


def ipmitool_power(port: int, user: str = USER, password: str = PASSWORD) -> str:
    """``on``/``off`` as ipmitool (lanplus, suite 3) reads it: the independent read-back."""
    r = subprocess.run([IPMITOOL, "-I", "lanplus", "-C", "3", "-H", "127.0.0.1", "-p", str(port),
                        "-U", user, "-E", "-N", "1", "-R", "3", "chassis", "power", "status"],
                       capture_output=True, text=True, timeout=30, check=False,
                       env={**env(), "IPMI_PASSWORD": password})
    out = r.stdout.strip()
    if r.returncode or not out.startswith("Chassis Power is "):
        raise RuntimeError(f"ipmitool: rc={r.returncode} {out} {r.stderr.strip()}")
    return out.rsplit(" ", 1)[1]


class Run:
    """One agent run: exit code, stdout, stderr, and everything it logged (debug_file)."""

    def __init__(self, r: subprocess.CompletedProcess[str], log: str) -> None:
        self.returncode = r.returncode
        self.stdout = r.stdout
        self.stderr = r.stderr
        self.log = log

    @property
    def text(self) -> str:
        """stdout, stderr and the log together: what an administrator could ever see."""
        return self.stdout + self.stderr + self.log


def fence(port: int, action: str, *, timeout: float = 120, pyghmi: Path | None = None,
          **options: object) -> Run:
    """The agent as the fencer runs it: options on stdin, clean environment, with its
    log written to a debug_file.  ``pyghmi``: a directory holding another pyghmi,
    put first on the agent's sys.path."""
    opts: dict[str, object] = {"ip": "127.0.0.1", "ipport": port, "username": USER,
                               "password": PASSWORD, "lanplus": 1, "power_wait": 0}
    opts.update(options)
    with tempfile.TemporaryDirectory(prefix="lsaa-ipmi-run-") as d:
        log = Path(d, "debug.log")
        opts.setdefault("debug_file", log)
        lines = [f"action={action}"] + [f"{k}={v}" for k, v in opts.items() if v is not None]
        argv = [AGENT]
        if pyghmi is not None:
            argv = [SYSPY, "-I", "-c",
                    f"import sys; sys.path.insert(0, {str(pyghmi)!r}); import pyghmi; "
                    f"assert pyghmi.__file__.startswith({str(pyghmi)!r}); "
                    "from lsaa.fence_agents.ipmi import main; main()"]
        r = subprocess.run(argv, input="\n".join(lines) + "\n", capture_output=True,
                           text=True, timeout=timeout, env=env(), check=False)
        text = log.read_text(errors="replace") if log.exists() else ""
    return Run(r, text)


class _Process:
    """One child process, recorded by PID, stopped by PID."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def _spawn(self, argv: list[str], log: Path, wait_line: bool = False) -> None:
        out = open(log, "ab")  # noqa: SIM115 - the child keeps writing to it
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE if wait_line else out,
                                     stderr=out, env=env())
        out.close()
        if wait_line:
            assert self.proc.stdout is not None
            line = self.proc.stdout.readline().strip()
            if not line.startswith(b"ready"):
                self.kill()
                raise RuntimeError(f"{argv[1]} did not start: {log.read_text(errors='replace')}")

    def kill(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()
        self.proc = None

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)


class IpmiSim(_Process):
    """``ipmi_sim`` with a user ``admin`` (administrator) and ``viewer`` (user level)."""

    def __init__(self, base: Path, port: int | None = None) -> None:
        super().__init__()
        self.dir = base
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "state").mkdir(exist_ok=True)
        self.port = port or free_udp_port()
        script = self.dir / "chassis.sh"
        script.write_text(CHASSIS_SH)
        script.chmod(0o755)
        (self.dir / "lan.conf").write_text(LAN_CONF.format(
            port=self.port, dir=self.dir, user=USER, password=PASSWORD))
        (self.dir / "sim.emu").write_text(SIM_EMU)
        self.set_power("off")

    def start(self) -> None:
        self._spawn([IPMI_SIM, "-c", str(self.dir / "lan.conf"), "-f", str(self.dir / "sim.emu"),
                     "-s", str(self.dir / "state"), "-n"], self.dir / "out.log")
        end = time.monotonic() + 20
        while True:
            try:
                ipmitool_power(self.port)
                return
            except RuntimeError:
                if time.monotonic() > end or self.proc is None or self.proc.poll() is not None:
                    raise
                time.sleep(0.05)

    def power(self) -> str:
        """The state file: what the simulated machine is doing."""
        return {"1": "on", "0": "off"}[(self.dir / "power").read_text().strip()]

    def set_power(self, state: str) -> None:
        (self.dir / "power").write_text("1\n" if state == "on" else "0\n")


class PyghmiBmc(_Process):
    """``ipmi_bmc.py``: pyghmi's BMC, as VirtualBMC uses it (no SHA-1 patch)."""

    def __init__(self, base: Path, port: int | None = None, kg: str | None = None) -> None:
        super().__init__()
        self.dir = base
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_udp_port()
        self.kg = kg
        self.state = self.dir / "power.json"
        self.set_power("off")

    def start(self) -> None:
        argv = [SYSPY, str(HERE / "ipmi_bmc.py"), str(self.port), str(self.state), USER, PASSWORD]
        if self.kg:
            argv.append(self.kg)
        self._spawn(argv, self.dir / "out.log", wait_line=True)

    def power(self) -> str:
        return str(json.loads(self.state.read_text())["power"])

    def set_power(self, state: str) -> None:
        self.state.write_text(json.dumps({"power": state}))


class Relay(_Process):
    """``udp_relay.py`` in front of ``target_port``, dropping ``loss`` of the datagrams
    sent to it (``both``: of the replies too)."""

    def __init__(self, base: Path, target_port: int, loss: float, seed: int = 1,
                 lifetime: float = 600, both: bool = False) -> None:
        super().__init__()
        self.dir = base
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_udp_port()
        self.argv = [SYSPY, str(HERE / "udp_relay.py"), str(self.port), str(target_port),
                     str(loss), str(seed), str(lifetime), "both" if both else "in"]

    def start(self) -> None:
        self._spawn(self.argv, self.dir / "relay.log", wait_line=True)


def vbmc_venv(timeout: float = 600) -> Path | str:
    """The VirtualBMC venv (created on first use: pip from PyPI), or why there is none.

    ``--system-site-packages`` reuses Debian's python3-libvirt and python3-pyghmi,
    so nothing is compiled.
    """
    vbmc = VBMC_VENV / "bin" / "vbmc"
    if vbmc.exists():
        return VBMC_VENV
    try:
        VBMC_VENV.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([SYSPY, "-m", "venv", "--system-site-packages", str(VBMC_VENV)],
                       check=True, capture_output=True, timeout=120)
        r = subprocess.run([str(VBMC_VENV / "bin" / "pip"), "install", "-q",
                            f"virtualbmc=={VBMC_VERSION}"], capture_output=True, text=True,
                           timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError) as e:
        return f"cannot create {VBMC_VENV}: {e}"
    if r.returncode or not vbmc.exists():
        shutil.rmtree(VBMC_VENV, ignore_errors=True)
        tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or [""]
        return f"pip install virtualbmc=={VBMC_VERSION} failed: {tail[0]}"
    return VBMC_VENV


def other_pyghmi(timeout: float = 300) -> Path | str:
    """pyghmi PYGHMI_OTHER (pip --target, no dependencies: it needs only cryptography and
    python-dateutil, which Debian has), or why there is none."""
    if (PYGHMI_DIR / "pyghmi" / "ipmi" / "private" / "session.py").exists():
        return PYGHMI_DIR
    try:
        PYGHMI_DIR.parent.mkdir(parents=True, exist_ok=True)
        r = subprocess.run([SYSPY, "-m", "pip", "install", "-q", "--no-deps", "--target",
                            str(PYGHMI_DIR), f"pyghmi=={PYGHMI_OTHER}"], capture_output=True,
                           text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError) as e:
        return f"cannot install pyghmi {PYGHMI_OTHER}: {e}"
    if r.returncode:
        shutil.rmtree(PYGHMI_DIR, ignore_errors=True)
        tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or [""]
        return f"pip install pyghmi=={PYGHMI_OTHER} failed: {tail[0]}"
    return PYGHMI_DIR


class VirtualBmc:
    """``vbmcd`` (foreground, its own process group) with one BMC in front of a domain."""

    def __init__(self, venv: Path, base: Path) -> None:
        self.venv = venv
        self.dir = base
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "conf").mkdir(exist_ok=True)
        self.port = free_udp_port()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.control_port = int(s.getsockname()[1])
        self.config = self.dir / "virtualbmc.conf"
        self.config.write_text(
            f"[default]\nconfig_dir = {self.dir / 'conf'}\npid_file = {self.dir / 'vbmcd.pid'}\n"
            f"server_port = {self.control_port}\n[log]\nlogfile = {self.dir / 'vbmcd.log'}\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def _env(self) -> dict[str, str]:
        return {**env(), "VIRTUALBMC_CONFIG": str(self.config), "HOME": str(self.dir)}

    def vbmc(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.venv / "bin" / "vbmc"), *args], capture_output=True,
                              text=True, timeout=60, env=self._env(), check=False)

    def start(self, domain: str, libvirt_uri: str) -> None:
        with open(self.dir / "vbmcd.out", "ab") as out:
            self.proc = subprocess.Popen([str(self.venv / "bin" / "vbmcd"), "--foreground"],
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                         env=self._env(), start_new_session=True)
        end = time.monotonic() + 30
        while self.vbmc("list").returncode != 0:
            if time.monotonic() > end or self.proc.poll() is not None:
                raise RuntimeError("vbmcd did not start: " + self.log_tail())
            time.sleep(0.2)
        for args in (("add", domain, "--address", "127.0.0.1", "--port", str(self.port),
                      "--username", USER, "--password", PASSWORD, "--libvirt-uri", libvirt_uri),
                     ("start", domain)):
            r = self.vbmc(*args)
            if r.returncode:
                raise RuntimeError(f"vbmc {args[0]}: {r.stderr.strip()} {self.log_tail()}")
        end = time.monotonic() + 30
        while True:
            try:
                ipmitool_power(self.port)
                return
            except RuntimeError:
                if time.monotonic() > end:
                    raise
                time.sleep(0.2)

    def log_tail(self) -> str:
        text = ""
        for name in ("vbmcd.out", "vbmcd.log"):
            try:
                text += (self.dir / name).read_text(errors="replace")[-1500:]
            except OSError:
                pass
        return text

    def stop(self) -> list[str]:
        """Stop vbmcd and its per-BMC children (its own process group)."""
        left: list[str] = []
        if self.proc is None:
            return left
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                left.append(f"vbmcd {self.proc.pid} ignored SIGTERM; killed")
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the per-BMC children, if any
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.proc = None
        return left


def scratch(prefix: str = "lsaa-ipmi-") -> Path:
    d = Path(tempfile.mkdtemp(prefix=prefix))
    d.chmod(0o755)
    return d


if __name__ == "__main__":  # manual use: python3 ipmi_lab.py -> an ipmi_sim until Enter
    sim = IpmiSim(scratch())
    sim.start()
    print(f"ipmi_sim on 127.0.0.1:{sim.port}, user {USER}, state {sim.dir / 'power'}")
    try:
        sys.stdin.readline()
    finally:
        sim.kill()
