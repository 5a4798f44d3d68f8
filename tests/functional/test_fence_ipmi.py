"""fence_lsaa_ipmi against real BMCs on loopback: OpenIPMI's ipmi_sim, a BMC built on
pyghmi (no SHA-1 patch), VirtualBMC in front of a libvirt domain; through the stand-alone
fencer and through a cluster node with pcs; and under faults (nothing listening, wrong
password, 30 % packet loss, a BMC restarted or frozen mid-fence).

After every action the power state is read back independently of the agent: from the
simulator's state file, with ipmitool, or with virsh.  Nothing asserts on elapsed time
except that a failing agent gives up inside its own deadline.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from procscan import process_texts

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.cluster import Node  # noqa: E402
from tests.functional import ipmi_lab  # noqa: E402
from tests.functional.ipmi_lab import (  # noqa: E402
    AGENT,
    PASSWORD,
    USER,
    IpmiSim,
    PyghmiBmc,
    Relay,
    fence,
    ipmitool_power,
)

pytestmark = pytest.mark.functional
FENCED = "/usr/lib/pacemaker/pacemaker-fenced"
STATUS_ON, STATUS_OFF = 0, 2


@pytest.fixture(scope="module")
def base() -> Iterator[Path]:
    reason = ipmi_lab.missing()
    if reason:
        pytest.skip(reason)
    d = ipmi_lab.scratch()
    yield d
    import shutil

    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def sim(base: Path) -> Iterator[IpmiSim]:
    s = IpmiSim(base / "sim")
    s.start()
    yield s
    s.kill()


@pytest.fixture(scope="module")
def pbmc(base: Path) -> Iterator[PyghmiBmc]:
    b = PyghmiBmc(base / "pbmc")
    b.start()
    yield b
    b.kill()


def later(seconds: float, fn: object) -> threading.Thread:
    t = threading.Thread(target=lambda: (time.sleep(seconds), fn()))  # type: ignore[operator]
    t.start()
    return t


# --- the conformance harness --------------------------------------------------------


@pytest.mark.parametrize("peer", ["sim", "pbmc"])
def test_conformance_harness(peer: str, request: pytest.FixtureRequest) -> None:
    from lsaa.tester.fence import run_fence_checks

    bmc = request.getfixturevalue(peer)
    params = {"ip": "127.0.0.1", "ipport": str(bmc.port), "username": USER,
              "password": PASSWORD, "lanplus": "1", "power_wait": "0"}
    seen: list[bytes] = []
    done = threading.Event()

    def scan() -> None:  # every agent process the harness starts (and its children)
        while not done.is_set():
            for pid in os.listdir("/proc"):
                with contextlib.suppress(OSError, ValueError):
                    if b"fence_lsaa_ipmi" in Path(f"/proc/{pid}/cmdline").read_bytes():
                        seen.extend(process_texts(int(pid)))
            time.sleep(0.02)

    t = threading.Thread(target=scan)
    t.start()
    try:
        report = run_fence_checks(str(ROOT / "fence" / "fence_lsaa_ipmi"), params=params,
                                  delay=1)
    finally:
        done.set()
        t.join()
    assert report.ok, report.render()
    assert report.status_of("delay") == "PASS"
    # the command-line half ran, with the password through password_script, never argv
    assert report.status_of("off.argv") == "PASS"
    assert report.status_of("status.after-off.argv-agrees") == "PASS"
    assert any(b"--password-script=" in c for c in seen)
    assert seen and not any(PASSWORD.encode() in text for text in seen)


# --- actions, read back independently -----------------------------------------------


@pytest.mark.parametrize("cipher", [None, "3"])
def test_actions_on_ipmi_sim(sim: IpmiSim, cipher: str | None) -> None:
    sim.set_power("on")
    for action, want in (("off", "off"), ("off", "off"), ("on", "on"), ("on", "on"),
                         ("reboot", "on")):
        r = fence(sim.port, action, cipher=cipher)
        assert r.returncode == 0, r.stderr
        assert sim.power() == want, action
        assert ipmitool_power(sim.port) == want
    r = fence(sim.port, "status", cipher=cipher)
    assert (r.returncode, r.stdout) == (STATUS_ON, "Status: ON\n")
    sim.set_power("off")
    assert fence(sim.port, "status", cipher=cipher).returncode == STATUS_OFF
    r = fence(sim.port, "reboot", cipher=cipher)  # from off: confirmed off, then on
    assert r.returncode == 0 and sim.power() == "on", r.stderr
    sim.set_power("on")
    r = fence(sim.port, "reboot", cipher=cipher)  # off, read back, on, read back ...
    assert r.returncode == 0 and sim.power() == "on", r.stderr
    assert r.log.count("logged in to") == 1, r.log  # ... all in one IPMI session
    assert fence(sim.port, "monitor", cipher=cipher).returncode == 0


def test_ipmi_sim_has_no_sha256(sim: IpmiSim) -> None:
    """cipher=17 means 17: no silent fall back to SHA-1 (ipmi_sim has no SHA-256)."""
    sim.set_power("on")
    r = fence(sim.port, "off", cipher="17")
    assert r.returncode == 1
    assert "refused cipher suite 17" in r.stderr
    assert "gave up" not in r.stderr  # not retried: a retry cannot help
    assert sim.power() == "on"


def test_pyghmi_bmc_breaks_pyghmis_own_client(pbmc: PyghmiBmc) -> None:
    """The precondition of the fallback: stock pyghmi cannot log in to a pyghmi BMC."""
    code = ("import sys\nfrom pyghmi.ipmi import command\n"
            f"command.Command('127.0.0.1', {USER!r}, sys.stdin.read(), port={pbmc.port})\n")
    r = subprocess.run(["/usr/bin/python3", "-c", code], input=PASSWORD, capture_output=True,
                       text=True, timeout=60, check=False)
    assert r.returncode != 0
    assert "struct.error" in r.stderr and "expected 32 items" in r.stderr, r.stderr


@pytest.mark.parametrize("cipher", [None, "3"])
def test_actions_on_pyghmi_bmc(pbmc: PyghmiBmc, cipher: str | None) -> None:
    pbmc.set_power("on")
    for action, want in (("off", "off"), ("on", "on"), ("reboot", "on")):
        r = fence(pbmc.port, action, cipher=cipher)
        assert r.returncode == 0, r.stderr
        assert pbmc.power() == want
        assert ipmitool_power(pbmc.port) == want
    if cipher is None:  # the negotiation says what it did (debug log)
        assert "answered RAKP2 with HMAC-SHA1" in r.log, r.log
    pbmc.set_power("off")
    assert fence(pbmc.port, "status", cipher=cipher).returncode == STATUS_OFF


def test_pyghmi_bmc_with_cipher_17_fails_clearly(pbmc: PyghmiBmc) -> None:
    pbmc.set_power("on")
    r = fence(pbmc.port, "off", cipher="17")
    assert r.returncode == 1
    assert "answered with SHA-1" in r.stderr and "use cipher=3" in r.stderr
    assert pbmc.power() == "on"


def test_method_cycle(pbmc: PyghmiBmc, sim: IpmiSim) -> None:
    pbmc.set_power("on")
    r = fence(pbmc.port, "reboot", method="cycle")
    assert r.returncode == 0, r.stderr
    assert "off phase not confirmed" in r.stdout
    assert "WARNING: method=cycle" in r.log and "cannot be confirmed" in r.log, r.log
    assert pbmc.power() == "on"
    sim.set_power("on")
    r = fence(sim.port, "reboot", method="cycle")
    assert r.returncode == 0, r.stderr
    end = time.monotonic() + 10  # ipmi_sim powers on again ~1 s after the cycle's off
    while sim.power() != "on":
        assert time.monotonic() < end
        time.sleep(0.1)


def test_privilege_levels(sim: IpmiSim) -> None:
    """A session at user level may read the state but not act: a clear failure, not
    retried, nothing changed.  (ipmi_sim does not enforce an account's maximum
    privilege -- ipmitool -L ADMINISTRATOR gets it too -- so that is not tested here.)"""
    sim.set_power("on")
    r = fence(sim.port, "status", username="viewer", privlvl="user")
    assert r.returncode == STATUS_ON, r.stderr
    r = fence(sim.port, "off", username="viewer", privlvl="user")
    assert r.returncode == 1
    assert "0xd4 (insufficient privilege level)" in r.stderr, r.stderr
    assert "gave up" not in r.stderr
    assert sim.power() == "on"
    r = fence(sim.port, "off", privlvl="operator")
    assert r.returncode == 0 and sim.power() == "off", r.stderr


def test_kg_key(base: Path) -> None:
    kg = "0123456789abcdef0123456789abcdef01234567"
    bmc = PyghmiBmc(base / "pbmc-kg", kg=kg)
    bmc.start()
    try:
        bmc.set_power("on")
        r = fence(bmc.port, "off", hexadecimal_kg=kg)
        assert r.returncode == 0 and bmc.power() == "off", r.stderr
        assert kg not in r.text  # a secret like the password
        bmc.set_power("on")
        r = fence(bmc.port, "off", hexadecimal_kg="ff" * 20)
        assert r.returncode == 1 and "Kg" in r.stderr, r.stderr
        assert "gave up" not in r.stderr
        assert bmc.power() == "on"
    finally:
        bmc.kill()


def test_option_names_of_fence_ipmilan(sim: IpmiSim) -> None:
    """Deprecated aliases, the command line, and options fence_ipmilan users set."""
    sim.set_power("on")
    lines = ["action=status", "ipaddr=127.0.0.1", f"ipport={sim.port}", f"login={USER}",
             f"passwd={PASSWORD}", "lanplus=1", "cipher=3", "auth=md5", "port=node1",
             "nodename=node1", "ipmitool_path=/usr/bin/ipmitool"]
    r = subprocess.run([AGENT], input="\n".join(lines) + "\n", capture_output=True, text=True,
                       timeout=60, env=ipmi_lab.env(), check=False)
    assert r.returncode == STATUS_ON and r.stderr == "", r.stderr
    with tempfile.NamedTemporaryFile("w", suffix=".sh", delete=False) as f:
        f.write(f"#!/bin/sh\necho '{PASSWORD}'\n")
    os.chmod(f.name, 0o700)
    try:
        r = subprocess.run([AGENT, "-a", "127.0.0.1", "-u", str(sim.port), "-l", USER,
                            "-S", f.name, "-P", "-C", "3", "-L", "operator", "-o", "off",
                            "--power-wait", "0"],
                           capture_output=True, text=True, timeout=60, env=ipmi_lab.env(),
                           check=False)
    finally:
        os.unlink(f.name)
    assert r.returncode == 0 and sim.power() == "off", r.stderr


@pytest.mark.parametrize("options,problem", [
    ({"lanplus": 0}, "lanplus"),
    ({"cipher": 1}, "cipher"),
    ({"target": "0x72"}, "target"),
    ({"hexadecimal_kg": "xyz"}, "hexadecimal_kg"),
    ({"privlvl": "root"}, "privlvl"),
])
def test_validate_all_refuses(sim: IpmiSim, options: dict[str, object], problem: str) -> None:
    r = fence(sim.port, "validate-all", **options)
    assert r.returncode == 1 and problem in r.stderr, r.stderr
    sim.set_power("on")
    r = fence(sim.port, "off", **options)
    assert r.returncode == 1 and sim.power() == "on"


def test_the_other_pyghmi_version(sim: IpmiSim, pbmc: PyghmiBmc, base: Path) -> None:
    """The same negotiation, actions and failures under pyghmi 1.6.19 (what the notes
    describe, and what RHEL's EPEL/RDO streams carry), against both BMCs and 30 % loss."""
    other = ipmi_lab.other_pyghmi()
    if isinstance(other, str):
        pytest.skip(other)
    for bmc in (sim, pbmc):
        bmc.set_power("on")
        for action, rc, want in (("status", STATUS_ON, "on"), ("off", 0, "off"),
                                 ("status", STATUS_OFF, "off"), ("reboot", 0, "on")):
            r = fence(bmc.port, action, pyghmi=other)
            assert r.returncode == rc, (action, r.stderr)
            assert bmc.power() == want and ipmitool_power(bmc.port) == want
        r = fence(bmc.port, "off", pyghmi=other, password="wrong")
        assert r.returncode == 1 and "Incorrect password" in r.stderr, r.stderr
        r = fence(bmc.port, "off", pyghmi=other, cipher="17")
        assert r.returncode == 1 and "cipher" in r.stderr, r.stderr
        assert bmc.power() == "on"
    assert "answered RAKP2 with HMAC-SHA1" in fence(pbmc.port, "status", pyghmi=other).log
    relay = Relay(base / "relay-other", sim.port, loss=0.3, seed=3)
    relay.start()
    try:
        sim.set_power("on")
        r = fence(relay.port, "off", pyghmi=other)
        assert r.returncode == 0 and sim.power() == "off", r.stderr
    finally:
        relay.kill()


# --- faults ---------------------------------------------------------------------------

QUICK = {"login_timeout": 1, "shell_timeout": 1, "power_timeout": 2}
QUICK_BUDGET = 2 * (1 + 0 + 2) + 5  # lsaa.fencing.main.budget() for QUICK


def test_nothing_listening_fails_inside_the_deadline() -> None:
    port = ipmi_lab.free_udp_port()
    for action in ("status", "off"):
        started = time.monotonic()
        r = fence(port, action, **QUICK)
        elapsed = time.monotonic() - started
        assert r.returncode == 1, action
        assert f"127.0.0.1:{port}" in r.stderr and "gave up after" in r.stderr, r.stderr
        assert elapsed < QUICK_BUDGET + 3, elapsed  # its own deadline, not the fencer's kill


def test_wrong_password_fails_fast_without_retries(sim: IpmiSim, pbmc: PyghmiBmc) -> None:
    for bmc in (sim, pbmc):
        bmc.set_power("on")
        r = fence(bmc.port, "off", password="not-the-password")
        assert r.returncode == 1
        assert "Incorrect password" in r.stderr or "Unauthorized name" in r.stderr, r.stderr
        assert "gave up" not in r.stderr and "retrying" not in r.log
        assert "not-the-password" not in r.text
        assert bmc.power() == "on"


def _lossy_rounds(bmc: IpmiSim | PyghmiBmc, relay: Relay, rounds: int,
                  **options: object) -> tuple[int, int]:
    """(successes, runs that had to retry); fails on any success the BMC does not show,
    and on any failure without a reason."""
    ok = retried = 0
    for i, action in enumerate(["off", "on", "reboot"] * (rounds // 3)):
        bmc.set_power("on" if action == "off" else "off")
        r = fence(relay.port, action, **options)
        want = "off" if action == "off" else "on"
        if r.returncode == 0:
            ok += 1
            assert bmc.power() == want, f"round {i}: success without {want}: {r.log}"
        else:
            assert r.stderr.startswith("ERROR: ") and len(r.stderr.splitlines()) == 1, r.stderr
        retried += "retrying" in r.log or "failed while waiting" in r.log
    return ok, retried


@pytest.mark.parametrize("peer", ["sim", "pbmc"])
def test_bmc_dropping_thirty_percent(peer: str, request: pytest.FixtureRequest,
                                     base: Path) -> None:
    """A BMC that drops 30 % of the datagrams it receives: the agent retransmits and
    retries inside its deadline, and succeeds with the state read back."""
    bmc = request.getfixturevalue(peer)
    relay = Relay(base / f"relay-{peer}", bmc.port, loss=0.3, seed=4)
    relay.start()
    try:
        ok, _ = _lossy_rounds(bmc, relay, 3)
    finally:
        relay.kill()
    assert ok >= 2, f"only {ok}/3 fences got through"


def test_thirty_percent_loss_both_ways(sim: IpmiSim, base: Path) -> None:
    """30 % loss of requests *and* replies (half of all round trips fail; a login needs
    about six in a row): some runs fail, each with one line saying why, and no run
    claims a power state the simulator does not show."""
    relay = Relay(base / "relay-both", sim.port, loss=0.3, seed=11, both=True)
    relay.start()
    try:
        # a shorter deadline (27 s instead of 55 s) keeps a failing round short
        ok, retried = _lossy_rounds(sim, relay, 3, login_timeout=3, power_timeout=8)
    finally:
        relay.kill()
    assert retried >= 1, "30% loss never needed a retry: is the relay dropping anything?"
    # how many got through is luck here (usually 2 or 3 of 3); correctness is the point
    print(f"{ok}/3 fences got through 30% loss both ways")


def test_bmc_restarted_mid_fence(sim: IpmiSim) -> None:
    """ipmi_sim dies after the power-off command and comes back 1.5 s later (its
    sessions gone): the agent logs in again and confirms, within its deadline."""
    sim.set_power("on")
    killed: list[str] = []

    def restart() -> None:
        sim.kill()
        killed.append("yes")
        time.sleep(1.5)
        sim.start()

    t = later(0.3, restart)
    # power_wait=1: the agent sleeps between the off command and its first read-back
    r = fence(sim.port, "reboot", power_wait=1, login_timeout=2, shell_timeout=2)
    t.join()
    assert killed
    assert r.returncode == 0, r.stderr + r.log
    assert sim.power() == "on" and ipmitool_power(sim.port) == "on"
    assert "retrying" in r.log or "state read failed" in r.log, r.log


def test_bmc_frozen_mid_fence_then_back(pbmc: PyghmiBmc, base: Path) -> None:
    """A BMC that stops answering (SIGSTOP) for 3 s in the middle of a reboot."""
    relay = Relay(base / "relay-freeze", pbmc.port, loss=0.0)
    relay.start()
    try:
        pbmc.set_power("on")
        later(0.4, lambda: (relay.signal(signal.SIGSTOP), time.sleep(3),
                            relay.signal(signal.SIGCONT)))
        r = fence(relay.port, "reboot", power_wait=1, login_timeout=2, shell_timeout=2)
        assert r.returncode == 0, r.stderr + r.log
        assert pbmc.power() == "on"
    finally:
        relay.signal(signal.SIGCONT)
        relay.kill()


def test_bmc_gone_for_good_is_a_failure(base: Path) -> None:
    """The BMC dies after powering off and never returns: the reboot still succeeds
    (off was confirmed before it died) -- or, if it dies before the read-back, fails.
    Either way the answer matches what the state file shows."""
    bmc = PyghmiBmc(base / "pbmc-gone")
    bmc.start()
    relay = Relay(base / "relay-gone", bmc.port, loss=0.0)
    relay.start()
    try:
        bmc.set_power("on")
        later(0.3, lambda: relay.signal(signal.SIGSTOP))
        r = fence(relay.port, "off", power_wait=1, **QUICK)
        assert r.returncode == 1, r.stderr  # off was sent but never confirmed: not a success
        assert "gave up" in r.stderr or "did not power off" in r.stderr, r.stderr
    finally:
        relay.signal(signal.SIGCONT)
        relay.kill()
        bmc.kill()


# --- secrets ----------------------------------------------------------------------------


@pytest.mark.parametrize("outcome", ["success", "failure"])
def test_password_never_leaves_stdin(sim: IpmiSim, tmp_path: Path, outcome: str) -> None:
    sim.set_power("on")
    debug = tmp_path / "debug.log"
    port = sim.port if outcome == "success" else ipmi_lab.free_udp_port()
    stdin = (f"action=reboot\nip=127.0.0.1\nipport={port}\nusername={USER}\n"
             f"password={PASSWORD}\nlanplus=1\npower_wait=0\ndelay=1\nverbose=1\n"
             f"debug_file={debug}\nlogin_timeout=1\nshell_timeout=1\npower_timeout=2\n")
    proc = subprocess.Popen([AGENT], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=ipmi_lab.env())
    assert proc.stdin is not None
    proc.stdin.write(stdin.encode())
    proc.stdin.close()
    seen: list[bytes] = []
    end = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < end:
        seen += process_texts(proc.pid)
        time.sleep(0.05)
    assert proc.stdout is not None and proc.stderr is not None
    out, err = proc.stdout.read(), proc.stderr.read()
    proc.wait(60)
    assert proc.returncode == (0 if outcome == "success" else 1), err
    assert seen, "never saw the running agent"
    secret = PASSWORD.encode()
    assert not any(secret in t for t in seen), "password in argv or environment"
    assert secret not in out and secret not in err
    assert debug.exists() and secret not in debug.read_bytes()
    assert b"ERROR: " in err or outcome == "success"


# --- the real fencer, pcs, stonith_admin ----------------------------------------------

FENCER_SCRIPT = r'''
set -u
ip link set lo up
"$IPMI_SIM" -c "$SIM/lan.conf" -f "$SIM/sim.emu" -s "$SIM/state" -n >"$DIR/sim.log" 2>&1 &
S=$!
"$FENCED" --stand-alone --logfile "$DIR/fenced.log" &
F=$!
trap 'kill $F $S 2>/dev/null; wait $F $S 2>/dev/null' EXIT
for i in $(seq 100); do stonith_admin -L >/dev/null 2>&1 && break; sleep 0.1; done
step() { echo "== $*"; "$@"; echo "rc=$?"; echo "power=$(cat "$SIM/power")"; }
step stonith_admin -R fence-n1 -a fence_lsaa_ipmi -o ip=127.0.0.1 -o "ipport=$PORT" \
    -o "username=$USER" -o "password=$PASSWORD" -o lanplus=1 -o power_wait=0 \
    -o pcmk_host_list=n1
step stonith_admin --list n1 -t 30
step stonith_admin --list ghost -t 30
step stonith_admin --reboot n1 -t 60
step stonith_admin --fence n1 -t 60
step stonith_admin --unfence n1 -t 60
step stonith_admin --fence ghost -t 30
'''


def test_through_the_stand_alone_fencer(base: Path) -> None:
    if not os.path.exists(FENCED):
        pytest.skip(f"{FENCED} is not installed")
    sim = IpmiSim(base / "sim-fenced")  # started by the script, in its network namespace
    sim.set_power("on")
    with tempfile.TemporaryDirectory(prefix="lsaa-fenced-") as d:
        r = subprocess.run(["unshare", "-n", "bash", "-c", FENCER_SCRIPT], capture_output=True,
                           text=True, timeout=300, check=False,
                           env={**ipmi_lab.env(), "FENCED": FENCED, "DIR": d,
                                "IPMI_SIM": ipmi_lab.IPMI_SIM, "SIM": str(sim.dir),
                                "PORT": str(sim.port), "USER": USER, "PASSWORD": PASSWORD})
        log = Path(d, "fenced.log").read_text(errors="replace")
    out = r.stdout
    steps = {}
    for block in out.split("== ")[1:]:
        head, _, rest = block.partition("\n")
        steps[" ".join(head.split()[1:3])] = rest
    assert "rc=0" in steps["-R fence-n1"], out
    assert "fence-n1" in steps["--list n1"], out
    assert "0 fence devices found" in steps["--list ghost"], out
    assert "rc=0\npower=1" in steps["--reboot n1"], out
    assert "rc=0\npower=0" in steps["--fence n1"], out
    assert "rc=0\npower=1" in steps["--unfence n1"], out
    assert "rc=0" not in steps["--fence ghost"], out
    assert PASSWORD not in log


def test_pcs_offline_and_metadata(tmp_path: Path) -> None:
    env = ipmi_lab.env()
    cib = tmp_path / "cib.xml"
    subprocess.run(["cibadmin", "--empty"], stdout=cib.open("w"), check=True, timeout=30)
    create = ["pcs", "-f", str(cib), "stonith", "create"]
    r = subprocess.run([*create, "fence-n1", "fence_lsaa_ipmi", "ip=10.0.0.1", "username=admin",
                        "password=x", "lanplus=1", "cipher=3", "privlvl=operator",
                        "hexadecimal_kg=00ff", "method=onoff", "power_wait=4",
                        "power_timeout=20", "delay=5", "pcmk_host_list=n1"],
                       capture_output=True, text=True, timeout=60, env=env, check=False)
    assert r.returncode == 0, r.stderr
    assert 'name="cipher" value="3"' in cib.read_text()
    # fence_ipmilan's spelling, deprecated aliases included: a warning, not an error
    r = subprocess.run([*create, "fence-n2", "fence_lsaa_ipmi", "ipaddr=10.0.0.2", "login=admin",
                        "passwd=x", "pcmk_host_list=n2"],
                       capture_output=True, text=True, timeout=60, env=env, check=False)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([*create, "f3", "fence_lsaa_ipmi", "ip=10.0.0.3", "bogus_param=1"],
                       capture_output=True, text=True, timeout=60, env=env, check=False)
    assert r.returncode != 0 and "bogus_param" in r.stderr
    r = subprocess.run(["stonith_admin", "--metadata", "-a", "fence_lsaa_ipmi"],
                       capture_output=True, text=True, timeout=30, env=env, check=False)
    assert r.returncode == 0
    for name in ("ip", "ipaddr", "ipport", "username", "login", "password", "passwd",
                 "password_script", "lanplus", "cipher", "privlvl", "hexadecimal_kg", "method",
                 "power_wait", "power_timeout", "delay", "login_timeout", "plug", "port"):
        assert f'<parameter name="{name}"' in r.stdout, name
    meta = subprocess.run([AGENT, "-o", "metadata"], capture_output=True, text=True,
                          timeout=30, env=env, check=True).stdout
    r = subprocess.run(["xmllint", "--noout", "--relaxng",
                        "/usr/share/cluster/relaxng/metadata.rng", "-"], input=meta,
                       capture_output=True, text=True, timeout=30, check=False)
    assert r.returncode == 0, r.stderr
    assert re.search(r'<action name="reboot"', meta) and 'name="list"' not in meta


# --- VirtualBMC in front of a libvirt domain -----------------------------------------


def test_virtualbmc_in_front_of_libvirt(base: Path) -> None:
    from tests.functional import libvirt_lab

    reason = libvirt_lab.missing()
    if reason:
        pytest.skip(reason)
    venv = ipmi_lab.vbmc_venv()
    if isinstance(venv, str):
        pytest.skip(venv)
    lab = libvirt_lab.LibvirtLab(prefix="lsaa-ipmi-libvirt-")
    vbmc = ipmi_lab.VirtualBmc(venv, base / "vbmc")
    try:
        lab.start()
        lab.define("vm1")
        vbmc.start("vm1", lab.uri)
        for action, want in (("status", "running"), ("off", "shut off"), ("status", "shut off"),
                             ("on", "running"), ("reboot", "running")):
            r = fence(vbmc.port, action, shell_timeout=10, power_timeout=30)
            assert r.returncode == (STATUS_OFF if want == "shut off" and action == "status"
                                    else 0), (action, r.stderr)
            assert lab.domstate("vm1") == want, action
        # VirtualBMC 3.3.0 has no power cycle: a clear, permanent failure, VM untouched
        r = fence(vbmc.port, "reboot", method="cycle")
        assert r.returncode == 1 and "0xcc" in r.stderr, r.stderr
        assert lab.domstate("vm1") == "running"
    finally:
        left = vbmc.stop()
        left += lab.stop()
    assert left == [], left


# --- a cluster node: pcs stonith create + pcs stonith fence ----------------------------


def test_pcs_stonith_fence_on_a_cluster_node(pcmk_node: Node, tmp_path: Path) -> None:
    """``pcs stonith create ... fence_lsaa_ipmi`` on a live node, then ``pcs stonith
    fence``: Pacemaker runs the agent, the simulator (in the node's network namespace)
    powers off.  The fenced name is not a cluster member, so the node survives."""
    node = pcmk_node
    sim = IpmiSim(tmp_path / "sim")
    sim.set_power("on")
    start = (f"{ipmi_lab.IPMI_SIM} -c {sim.dir}/lan.conf -f {sim.dir}/sim.emu "
             f"-s {sim.dir}/state -n >{sim.dir}/out.log 2>&1 </dev/null & echo $!")
    pid = node.run(["sh", "-c", start]).stdout.strip()
    try:
        end = time.monotonic() + 20
        while node.run([ipmi_lab.IPMITOOL, "-I", "lanplus", "-C", "3", "-H", "127.0.0.1",
                        "-p", str(sim.port), "-U", USER, "-E", "chassis", "power", "status"],
                       check=False, env={"IPMI_PASSWORD": PASSWORD}).returncode:
            assert time.monotonic() < end, "ipmi_sim did not start inside the node"
            time.sleep(0.1)
        # password_script keeps the password out of the CIB (pacemaker-based logs CIB
        # changes, password values included)
        script = tmp_path / "bmc-password"
        script.write_text(f"#!/bin/sh\necho '{PASSWORD}'\n")
        script.chmod(0o700)
        node.run(["pcs", "stonith", "create", "fence-ghost", "fence_lsaa_ipmi", "ip=127.0.0.1",
                  f"ipport={sim.port}", f"username={USER}", f"password_script={script}",
                  "lanplus=1", "power_wait=0", "pcmk_host_list=ghost2",
                  "op", "monitor", "interval=30s"])
        try:
            end = time.monotonic() + 60
            while "fence-ghost" not in node.run(["stonith_admin", "-L"], check=False).stdout:
                assert time.monotonic() < end, "the device was never registered"
                time.sleep(0.2)
            r = node.run(["pcs", "stonith", "fence", "ghost2", "--off"], check=False,
                         timeout=120)
            assert r.returncode == 0, r.stdout + r.stderr
            assert sim.power() == "off"
            hist = node.run(["stonith_admin", "--history", "ghost2"]).stdout
            assert "successful" in hist, hist
            assert PASSWORD not in node.pacemaker_log()
        finally:
            node.run(["pcs", "stonith", "delete", "fence-ghost"], check=False)
    finally:
        node.run(["kill", pid], check=False)
