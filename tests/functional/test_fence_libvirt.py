"""fence_lsaa_libvirt against a real libvirtd (QEMU/TCG domains, SASL over TCP,
the test driver shared through the daemon) and through the real fencer.

Every action's result is read back independently with ``virsh domstate``.
The lab (tests/functional/libvirt_lab.py) runs libvirtd in its own mount
namespace under a subreaper and removes everything it started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.functional.libvirt_lab import LibvirtLab, missing  # noqa: E402
from tests.functional.procscan import process_texts  # noqa: E402

from lsaa.tester.fence import run_fence_checks  # noqa: E402

pytestmark = pytest.mark.functional

AGENT = "/usr/sbin/fence_lsaa_libvirt"
FENCED = "/usr/lib/pacemaker/pacemaker-fenced"


@pytest.fixture(scope="module")
def lab() -> Iterator[LibvirtLab]:
    reason = missing()
    if reason:
        pytest.skip(reason)
    lab = LibvirtLab()
    try:
        lab.start()
        lab.define("node1")
        lab.define("node2")
    except BaseException:
        lab.stop()
        raise
    yield lab
    left = lab.stop()
    assert left == [], f"the libvirt lab left things behind: {left}"


def fence(lab: LibvirtLab, action: str, plug: str | None = "node2", uri: str | None = None,
          **extra: str) -> subprocess.CompletedProcess[str]:
    """The agent as the fencer runs it: stdin only, clean environment."""
    lines = [f"action={action}", f"uri={uri or lab.uri}"]
    if plug is not None:
        lines.append(f"plug={plug}")
    lines += [f"{k}={v}" for k, v in extra.items()]
    return subprocess.run([AGENT], input="\n".join(lines) + "\n", capture_output=True,
                          text=True, timeout=120, env=lab.env(), check=False)


def qemu_pid(lab: LibvirtLab, name: str) -> int | None:
    try:
        return int((lab.base / "run" / "qemu" / f"{name}.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def ensure_running(lab: LibvirtLab, name: str) -> None:
    if lab.domstate(name) != "running":
        lab.virsh("start", name)


def later(seconds: float, fn: object) -> threading.Thread:
    t = threading.Thread(target=lambda: (time.sleep(seconds), fn()))  # type: ignore[operator]
    t.start()
    return t


def wait_state(lab: LibvirtLab, name: str, state: str, limit: float = 30) -> None:
    end = time.monotonic() + limit
    while lab.domstate(name) != state:
        assert time.monotonic() < end, f"{name} never became {state}"
        time.sleep(0.05)


# --- the conformance harness and plain actions -----------------------------------

def test_conformance_harness(lab: LibvirtLab) -> None:
    ensure_running(lab, "node1")
    report = run_fence_checks(AGENT, {"uri": lab.uri}, plug="node1", unknown_plug="nosuch",
                              delay=1, timeout=60)
    assert report.ok, report.render()
    assert lab.domstate("node1") == "running"  # left as found


def test_actions_read_back_with_virsh(lab: LibvirtLab) -> None:
    ensure_running(lab, "node2")
    r = fence(lab, "status")
    assert (r.returncode, r.stdout) == (0, "Status: ON\n")
    before = qemu_pid(lab, "node2")
    r = fence(lab, "off")
    assert (r.returncode, r.stdout, r.stderr) == (0, "Success: Powered OFF\n", "")
    assert lab.domstate("node2") == "shut off"
    assert fence(lab, "status").returncode == 2
    assert fence(lab, "off").returncode == 0  # already off
    assert lab.domstate("node2") == "shut off"
    r = fence(lab, "on")
    assert (r.returncode, r.stdout) == (0, "Success: Powered ON\n")
    assert lab.domstate("node2") == "running"
    pid = qemu_pid(lab, "node2")
    assert pid is not None and pid != before
    uuid = lab.virsh("domuuid", "node2").stdout.strip()
    r = fence(lab, "reboot", plug=uuid)
    assert (r.returncode, r.stdout) == (0, "Success: Rebooted\n")
    assert lab.domstate("node2") == "running"
    assert qemu_pid(lab, "node2") != pid  # a new QEMU: it really was destroyed


def test_unknown_domain_is_an_error(lab: LibvirtLab) -> None:
    for action in ("status", "off", "reboot"):
        r = fence(lab, action, plug="nosuch")
        assert r.returncode == 1, action
        assert "no such domain 'nosuch'" in r.stderr
    r = fence(lab, "status", plug="nosuch", missing_as_off="1")
    assert r.returncode == 2


def test_transient_domain(lab: LibvirtLab) -> None:
    lab.define("tr1", transient=True)
    try:
        r = fence(lab, "reboot", plug="tr1")
        # off confirmed (it vanished after our destroy), on impossible: logged, still 0
        assert (r.returncode, r.stdout) == (0, "Success: Powered OFF (power on failed)\n")
        assert lab.domstate("tr1") == "missing"
        assert fence(lab, "status", plug="tr1").returncode == 1
    finally:
        lab.remove("tr1")


def test_list_on_the_qemu_driver(lab: LibvirtLab) -> None:
    r = fence(lab, "list-status", plug=None)
    assert r.returncode == 0
    names = {line.split(",")[0]: line.split(",")[2] for line in r.stdout.splitlines()}
    assert names.get("node1") == ("ON" if lab.domstate("node1") == "running" else "OFF")
    assert "node2" in names


# --- authentication --------------------------------------------------------------

def test_sasl_password_through_the_auth_callback(lab: LibvirtLab, tmp_path: Path) -> None:
    ensure_running(lab, "node2")
    secret = lab.sasl_password
    debug = tmp_path / "debug.log"
    stdin = "\n".join([
        "action=off", f"uri={lab.tcp_uri}", "plug=node2", f"username={lab.sasl_user}",
        f"password={secret}", "delay=1", "verbose=1", f"debug_file={debug}"]) + "\n"
    # What `ps` shows of the agent and its children while it sleeps in delay.
    # Only its own process tree: other processes on a shared machine (a CI
    # runner's scripts) may say "word" for reasons of their own.
    proc = subprocess.Popen([AGENT], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=lab.env())
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    proc.stdin.write(stdin)
    proc.stdin.close()
    seen: list[str] = []
    end = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < end:
        seen += [t.decode(errors="replace") for t in process_texts(proc.pid)]
        time.sleep(0.05)
    proc.wait(timeout=60)  # its output is a few lines: the pipes cannot fill
    r = subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.read(),
                                    proc.stderr.read())
    assert (r.returncode, r.stdout) == (0, "Success: Powered OFF\n"), r.stderr
    assert lab.domstate("node2") == "shut off"
    assert any("fence_lsaa_libvirt" in c for c in seen)  # the scan did see the agent
    for text in (r.stdout, r.stderr, debug.read_text(), *seen):
        assert secret not in text
        assert "word" not in text

    # password_script: the password from a command, not the CIB
    script = tmp_path / "pw.sh"
    script.write_text(f"#!/bin/sh\necho '{secret}'\n")
    script.chmod(0o700)
    r = fence(lab, "on", uri=lab.tcp_uri, username=lab.sasl_user, password_script=str(script))
    assert r.returncode == 0, r.stderr
    assert lab.domstate("node2") == "running"


def test_wrong_password_fails_fast_and_clearly(lab: LibvirtLab, tmp_path: Path) -> None:
    ensure_running(lab, "node2")
    debug = tmp_path / "debug.log"
    r = fence(lab, "off", uri=lab.tcp_uri, username=lab.sasl_user, password="wrong pw 1",
              debug_file=str(debug))
    assert r.returncode == 1
    assert "authentication failed" in r.stderr
    assert "wrong pw 1" not in r.stderr + r.stdout + debug.read_text()
    assert "attempt" not in r.stderr  # not retried: retrying cannot help
    r = fence(lab, "status", uri=lab.tcp_uri, username=lab.sasl_user)
    assert r.returncode == 1
    assert "no password is configured" in r.stderr
    assert lab.domstate("node2") == "running"  # nothing happened


def test_tls_with_client_certificates(lab: LibvirtLab, tmp_path: Path) -> None:
    """qemu+tls:// with the CA and client certificate from the URI's pkipath: off, on
    and status confirmed by virsh over the unix socket; a client that trusts another CA
    gets an error, never a power state."""
    from tests.functional.libvirt_lab import make_pki

    ensure_running(lab, "node2")
    r = fence(lab, "off", uri=lab.tls_uri())
    assert (r.returncode, r.stdout) == (0, "Success: Powered OFF\n"), r.stderr
    assert lab.domstate("node2") == "shut off"
    r = fence(lab, "status", uri=lab.tls_uri())
    assert (r.returncode, r.stdout) == (2, "Status: OFF\n"), r.stderr
    r = fence(lab, "on", uri=lab.tls_uri())
    assert r.returncode == 0, r.stderr
    assert lab.domstate("node2") == "running"
    r = fence(lab, "list", plug=None, uri=lab.tls_uri())
    assert r.returncode == 0 and "node2," in r.stdout, r.stderr

    make_pki(tmp_path / "other", ca_name="another-ca")  # a CA libvirtd never heard of
    other = lab.tls_uri(str(tmp_path / "other" / "client"))
    for action in ("status", "off"):
        r = fence(lab, action, uri=other, login_timeout="3")
        assert r.returncode == 1 and r.stdout == "", (action, r.stdout, r.stderr)
        assert len(r.stderr.splitlines()) == 1, r.stderr  # one clear line, no libvirt noise
        assert "certificate" in r.stderr and "password" not in r.stderr, r.stderr
    assert lab.domstate("node2") == "running"


# --- faults ----------------------------------------------------------------------

def test_domain_deleted_before_destroy_fails(lab: LibvirtLab) -> None:
    lab.define("gone1")
    later(0.5, lambda: lab.remove("gone1"))
    r = fence(lab, "off", plug="gone1", delay="2")
    assert r.returncode == 1
    assert "no such domain 'gone1'" in r.stderr
    assert lab.domstate("gone1") == "missing"


def test_domain_deleted_after_our_destroy_is_off(lab: LibvirtLab) -> None:
    lab.define("gone2")
    waiter = later(0, lambda: (wait_state(lab, "gone2", "shut off"),
                                lab.virsh("undefine", "gone2")))
    r = fence(lab, "off", plug="gone2", power_wait="2")
    waiter.join()
    assert (r.returncode, r.stdout) == (0, "Success: Powered OFF\n"), r.stderr
    assert lab.domstate("gone2") == "missing"


def test_libvirtd_restarted_while_polling(lab: LibvirtLab) -> None:
    ensure_running(lab, "node2")

    def restart() -> None:
        wait_state(lab, "node2", "shut off")
        lab.kill_libvirtd()
        lab.start()

    t = later(0, restart)
    r = fence(lab, "off", power_wait="1")
    t.join()
    assert (r.returncode, r.stdout) == (0, "Success: Powered OFF\n"), r.stderr
    assert lab.domstate("node2") == "shut off"


def test_libvirtd_down_then_back_during_reboot(lab: LibvirtLab) -> None:
    ensure_running(lab, "node2")
    before = qemu_pid(lab, "node2")
    lab.kill_libvirtd()
    t = later(1.0, lab.start)
    r = fence(lab, "reboot")
    t.join()
    assert (r.returncode, r.stdout) == (0, "Success: Rebooted\n"), r.stderr
    assert "retrying" not in r.stderr  # retries are logged, not printed
    assert lab.domstate("node2") == "running"
    assert qemu_pid(lab, "node2") != before


def test_libvirtd_unreachable_fails_within_the_deadline(lab: LibvirtLab) -> None:
    uri = f"qemu+unix:///system?socket={lab.base}/no-such-sock"
    started = time.monotonic()
    r = fence(lab, "off", uri=uri, login_timeout="1", power_timeout="1")
    assert r.returncode == 1
    assert "Failed to connect socket" in r.stderr and "gave up after" in r.stderr
    assert "no such domain" not in r.stderr
    assert time.monotonic() - started < 60


def test_hung_libvirtd_is_bounded(lab: LibvirtLab) -> None:
    ensure_running(lab, "node2")
    pid = lab.libvirtd_pid()
    os.kill(pid, signal.SIGSTOP)
    try:
        r = fence(lab, "off", login_timeout="1", power_timeout="1")
    finally:
        os.kill(pid, signal.SIGCONT)
    assert r.returncode == 1
    assert "no answer from libvirt" in r.stderr
    assert lab.domstate("node2") == "running"  # nothing was done, and nothing was claimed


# --- the test driver shared through libvirtd ---------------------------------------

def test_test_driver_state_persists_between_processes(lab: LibvirtLab) -> None:
    lab.anchor(lab.test_uri)
    names = [f"vm{i:02d}" for i in range(6)]
    lab.define_test_domains(names, running={"vm00", "vm01", "vm02"})
    r = fence(lab, "list-status", plug=None, uri=lab.test_uri)
    assert r.returncode == 0
    rows = {line.split(",")[0]: line.split(",")[2] for line in r.stdout.splitlines()}
    assert {n: rows[n] for n in names} == {"vm00": "ON", "vm01": "ON", "vm02": "ON",
                                          "vm03": "OFF", "vm04": "OFF", "vm05": "OFF"}
    assert fence(lab, "off", plug="vm01", uri=lab.test_uri).returncode == 0
    assert lab.domstate("vm01", uri=lab.test_uri) == "shut off"
    assert fence(lab, "status", plug="vm01", uri=lab.test_uri).returncode == 2
    assert fence(lab, "on", plug="vm04", uri=lab.test_uri).returncode == 0
    assert lab.domstate("vm04", uri=lab.test_uri) == "running"


# --- the real fencer, pcs, stonith_admin ------------------------------------------

FENCER_SCRIPT = r'''
set -u
ip link set lo up
"$FENCED" --stand-alone --logfile "$DIR/fenced.log" &
F=$!
trap 'kill $F 2>/dev/null; wait $F 2>/dev/null' EXIT
for i in $(seq 100); do stonith_admin -L >/dev/null 2>&1 && break; sleep 0.1; done
step() { echo "== $*"; "$@"; echo "rc=$?"; }
step stonith_admin -R fence-vms -a fence_lsaa_libvirt -o "uri=$URI" \
    -o pcmk_host_check=dynamic-list
step stonith_admin --list node2 -t 30
step stonith_admin --list ghost -t 30
step stonith_admin --reboot node2 -t 60
echo "state=$(virsh -q -c "$URI" domstate node2)"
step stonith_admin --fence node2 -t 60
echo "state=$(virsh -q -c "$URI" domstate node2)"
step stonith_admin --unfence node2 -t 60
echo "state=$(virsh -q -c "$URI" domstate node2)"
step stonith_admin --fence ghost -t 30
'''


def test_through_the_fencer(lab: LibvirtLab) -> None:
    if not os.path.exists(FENCED):
        pytest.skip(f"{FENCED} is not installed")
    ensure_running(lab, "node2")
    before = qemu_pid(lab, "node2")
    with tempfile.TemporaryDirectory(prefix="lsaa-fenced-") as d:
        # its own network namespace: the fencer's IPC sockets are abstract, per netns
        r = subprocess.run(["unshare", "-n", "bash", "-c", FENCER_SCRIPT], capture_output=True,
                           text=True, timeout=240, check=False,
                           env={**lab.env(), "FENCED": FENCED, "DIR": d, "URI": lab.uri})
        log = Path(d, "fenced.log").read_text(errors="replace")
    out = r.stdout
    steps = {}
    for block in out.split("== ")[1:]:
        head, _, rest = block.partition("\n")
        steps[head.split()[1] + " " + head.split()[2]] = rest
    assert "rc=0" in steps["-R fence-vms"], out
    assert "fence-vms" in steps["--list node2"], out
    assert "0 fence devices found" in steps["--list ghost"], out
    assert "rc=0\nstate=running" in steps["--reboot node2"], out
    assert "rc=0\nstate=shut off" in steps["--fence node2"], out
    assert "rc=0\nstate=running" in steps["--unfence node2"], out
    assert "rc=105" in steps["--fence ghost"], out
    assert qemu_pid(lab, "node2") != before
    # libvirt printed nothing: no stderr line of the agent became a fencer warning
    assert "fence_lsaa_libvirt" not in "\n".join(
        line for line in log.splitlines() if "stderr" in line), log


def test_pcs_and_stonith_admin_metadata(lab: LibvirtLab, tmp_path: Path) -> None:
    cib = tmp_path / "cib.xml"
    subprocess.run(["cibadmin", "--empty"], stdout=cib.open("w"), check=True, timeout=30)
    env = {**lab.env(), "CIB_file": str(cib)}
    r = subprocess.run(["pcs", "-f", str(cib), "stonith", "create", "fence-vms",
                        "fence_lsaa_libvirt", "uri=qemu+ssh://root@hv1/system?no_tty=1",
                        "pcmk_host_map=node1:vm-node1;node2:vm-node2"],
                       capture_output=True, text=True, timeout=60, env=env, check=False)
    assert r.returncode == 0, r.stderr
    assert 'value="qemu+ssh://root@hv1/system?no_tty=1"' in cib.read_text()
    r = subprocess.run(["pcs", "-f", str(cib), "stonith", "create", "f2", "fence_lsaa_libvirt",
                        "uri=qemu:///system", "bogus_param=1"],
                       capture_output=True, text=True, timeout=60, env=env, check=False)
    assert r.returncode != 0 and "bogus_param" in r.stderr
    r = subprocess.run(["stonith_admin", "--metadata", "-a", "fence_lsaa_libvirt"],
                       capture_output=True, text=True, timeout=30, env=lab.env(), check=False)
    assert r.returncode == 0
    for name in ("uri", "plug", "port", "username", "password", "password_script",
                 "missing_as_off", "login_timeout", "power_timeout"):
        assert f'<parameter name="{name}"' in r.stdout, name
    # the agent's own XML (stonith_admin's copy has the fencer's start/stop added,
    # with timeouts the strict schema does not allow)
    meta = subprocess.run([AGENT, "-o", "metadata"], capture_output=True, text=True,
                          timeout=30, env=lab.env(), check=True).stdout
    r = subprocess.run(["xmllint", "--noout", "--relaxng",
                        "/usr/share/cluster/relaxng/metadata.rng", "-"], input=meta,
                       capture_output=True, text=True, timeout=30, check=False)
    assert r.returncode == 0, r.stderr


SSH_STUB = """#!/bin/sh
# ssh stand-in: record argv, run the remote command (virt-ssh-helper) locally,
# in a mount namespace where /run/libvirt is the lab's.
printf '%s\\n' "$@" > {base}/ssh-args
for last; do :; done
exec unshare -m --propagation private sh -c "mount -t tmpfs tmpfs /run && \
mkdir -p /run/libvirt && mount --bind {base}/run /run/libvirt && exec sh -c \\"\\$0\\"" "$last"
"""


def test_qemu_ssh_uri_with_keyfile_and_no_tty(lab: LibvirtLab) -> None:
    """qemu+ssh:// as documented (keyfile=, no_tty=1), through an ssh stand-in
    (command=): libvirt turns them into -i and BatchMode=yes; no password on argv."""
    ensure_running(lab, "node2")
    stub = lab.base / "ssh"
    stub.write_text(SSH_STUB.format(base=lab.base))
    stub.chmod(0o755)
    uri = (f"qemu+ssh://root@hv1/system?command={stub}&keyfile=/etc/cluster/hv1_key"
           "&no_tty=1&no_verify=1")
    r = fence(lab, "off", uri=uri, password="not-for-ssh-9")
    assert (r.returncode, r.stdout) == (0, "Success: Powered OFF\n"), r.stderr
    assert lab.domstate("node2") == "shut off"
    args = (lab.base / "ssh-args").read_text().splitlines()
    assert args[:4] == ["-l", "root", "-i", "/etc/cluster/hv1_key"]
    assert "BatchMode=yes" in args
    assert "not-for-ssh-9" not in "\n".join(args)
    assert fence(lab, "on", uri=uri).returncode == 0
    assert lab.domstate("node2") == "running"
