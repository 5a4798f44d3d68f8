"""iscsi-target + iscsi-lun on a real tgtd (userspace: runs on the host kernel).

tgtd runs in a network namespace of its own on 127.0.0.1:3260, with a private
control port (tgtadm -C); libiscsi's userspace initiator (iscsi-ls, iscsi-inq,
iscsi-perf) logs in from inside that namespace.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lsaa.agents.iscsi_lun import default_serial
from lsaa.tester.ocf import run_ocf_checks

pytestmark = pytest.mark.functional
ROOT = Path(__file__).resolve().parents[2]
IQN = "iqn.2024-01.org.example:func1"
INI = "iqn.1994-05.com.example:client1"
USER, PASSWORD = "funcuser", "funcsecret1234"


class Tgtd:
    def __init__(self, proc: subprocess.Popen[bytes], port: int, tmp: Path) -> None:
        self.proc = proc
        self.port = port
        self.tmp = tmp

    def ns(self, argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["nsenter", "-t", str(self.proc.pid), "-n", *argv],
                              capture_output=True, text=True, timeout=30, check=False, **kw)  # type: ignore[call-overload]


@pytest.fixture
def tgtd(tmp_path: Path) -> Iterator[Tgtd]:
    for tool in ("tgtd", "tgtadm", "iscsi-ls", "unshare", "nsenter"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is not installed (scripts/setup/apt-iscsi.txt)")
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespace, tgtd)")
    port = 1000 + os.getpid() % 9000  # tgtd limits -C
    sock = Path(f"/var/run/tgtd/socket.{port}")
    proc = subprocess.Popen(["unshare", "--net", "sh", "-c",
                             "ip link set lo up && exec tgtd -f -C " + str(port) +
                             " --iscsi portal=127.0.0.1:3260"],
                            stdout=(tmp_path / "tgtd.log").open("w"), stderr=subprocess.STDOUT)
    try:
        for _ in range(100):
            if sock.exists():
                break
            if proc.poll() is not None:
                pytest.fail(f"tgtd exited: {(tmp_path / 'tgtd.log').read_text()}")
            time.sleep(0.05)
        yield Tgtd(proc, port, tmp_path)
    finally:
        # tgtd ignores SIGTERM while it has targets (and often without): ask it
        # to shut down through its own control socket first.
        subprocess.run(["tgtadm", "-C", str(port), "--op", "delete", "--mode", "system"],
                       capture_output=True, timeout=10, check=False)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for leftover in (sock, Path(str(sock) + ".lock")):
            if leftover.exists():
                leftover.unlink()


def agent(t: Tgtd, type_: str, action: str, params: dict[str, str],
          instance: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "OCF_ROOT": "/usr/lib/ocf",
           "OCF_RESOURCE_INSTANCE": instance, "HA_RSCTMP": str(t.tmp / "run"),
           "OCF_RESKEY_CRM_meta_timeout": "20000"}
    env.update({f"OCF_RESKEY_{k}": v for k, v in params.items()})
    return subprocess.run([str(ROOT / "ocf" / type_), action], env=env, capture_output=True,
                          text=True, timeout=30, check=False)


def target_params(t: Tgtd) -> dict[str, str]:
    return {"implementation": "tgt", "iqn": IQN, "tid": "3", "portals": "127.0.0.1:3260",
            "allowed_initiators": INI, "incoming_username": USER, "incoming_password": PASSWORD,
            "tgt_control_port": str(t.port)}


def lun_params(t: Tgtd, img: Path) -> dict[str, str]:
    return {"implementation": "tgt", "target_iqn": IQN, "lun": "1", "path": str(img),
            "tgt_control_port": str(t.port)}


def url(password: str, lun: str = "") -> str:
    return f"iscsi://{USER}%{password}@127.0.0.1:3260/" + (f"{IQN}/{lun}" if lun else "")


def test_tgt_target_and_lun_with_chap(tgtd: Tgtd) -> None:
    img = tgtd.tmp / "lun1.img"
    with img.open("wb") as f:
        f.truncate(16 << 20)
    tp, lp = target_params(tgtd), lun_params(tgtd, img)
    assert agent(tgtd, "iscsi-target", "monitor", tp, "p_tgt").returncode == 7
    r = agent(tgtd, "iscsi-target", "start", tp, "p_tgt")
    assert r.returncode == 0, r.stderr
    r = agent(tgtd, "iscsi-lun", "start", lp, "p_lun")
    assert r.returncode == 0, r.stderr
    assert agent(tgtd, "iscsi-lun", "monitor", lp, "p_lun").returncode == 0

    good = tgtd.ns(["iscsi-ls", "-s", "-i", INI, url(PASSWORD)])
    assert good.returncode == 0 and "Lun:1" in good.stdout and "DIRECT_ACCESS" in good.stdout
    bad = tgtd.ns(["iscsi-ls", "-s", "-i", INI, url("wrong-password")])
    assert bad.returncode != 0 and "Authentication failure" in bad.stdout + bad.stderr
    stranger = tgtd.ns(["iscsi-ls", "-s", "-i", "iqn.1994-05.com.example:stranger",
                        url(PASSWORD)])
    assert IQN not in stranger.stdout  # not in its ACL: the target is not even listed
    inq = tgtd.ns(["iscsi-inq", "-i", INI, "-e", "1", "-c", "128", url(PASSWORD, "1")])
    assert f"[{default_serial('p_lun')}]" in inq.stdout  # the same serial on every node

    # an initiator holds a session: refuse names it, close ends it
    perf = subprocess.Popen(["nsenter", "-t", str(tgtd.proc.pid), "-n", "iscsi-perf", "-i", INI,
                             url(PASSWORD, "1")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            shown = subprocess.run(["tgtadm", "-C", str(tgtd.port), "--lld", "iscsi", "--mode",
                                    "target", "--op", "show"], capture_output=True, text=True,
                                   check=True).stdout
            if "I_T nexus: " in shown:
                break
            time.sleep(0.05)
        refused = agent(tgtd, "iscsi-target", "stop", {**tp, "on_active_sessions": "refuse"},
                        "p_tgt")
        assert refused.returncode == 1 and INI in refused.stderr
        assert agent(tgtd, "iscsi-lun", "stop", lp, "p_lun").returncode == 0
        assert agent(tgtd, "iscsi-target", "stop", tp, "p_tgt").returncode == 0
    finally:
        perf.kill()
        perf.wait()
    for out in (refused,):
        assert PASSWORD not in out.stdout + out.stderr
    assert agent(tgtd, "iscsi-target", "monitor", tp, "p_tgt").returncode == 7
    accounts = subprocess.run(["tgtadm", "-C", str(tgtd.port), "--lld", "iscsi", "--mode",
                               "account", "--op", "show"], capture_output=True, text=True,
                              check=True).stdout
    assert USER not in accounts  # our global account went with the target


def test_harness_passes_both_agents_on_tgt(tgtd: Tgtd) -> None:
    img = tgtd.tmp / "lun1.img"
    with img.open("wb") as f:
        f.truncate(16 << 20)
    report = run_ocf_checks(str(ROOT / "ocf" / "iscsi-target"), params=target_params(tgtd),
                            timeout=20, invalid={"iqn": "not-an-iqn"}, hostile=True)
    assert report.ok, report.render()
    assert agent(tgtd, "iscsi-target", "start", target_params(tgtd), "p_tgt").returncode == 0
    report = run_ocf_checks(str(ROOT / "ocf" / "iscsi-lun"), params=lun_params(tgtd, img),
                            timeout=20, invalid={"lun": "-1"}, hostile=True)
    assert report.ok, report.render()
    assert agent(tgtd, "iscsi-target", "stop", target_params(tgtd), "p_tgt").returncode == 0


def test_socket_client_reads_what_tgtadm_prints_and_runs_no_command(tgtd: Tgtd) -> None:
    """The agents talk to tgtd's socket themselves: a start runs no process at all
    (so the CHAP password is on no command line), and the client's answers are
    tgtadm's text, byte for byte, on the real tgtd."""
    from lsaa.backends.tgtd_socket import Tgtd as Client
    from lsaa.deadline import Deadline

    if not shutil.which("strace"):
        pytest.skip("strace is not installed")
    img = tgtd.tmp / "lun1.img"
    with img.open("wb") as f:
        f.truncate(16 << 20)
    tp = {**target_params(tgtd), "outgoing_username": "mutualu",
          "outgoing_password": "mutualsecret77"}
    trace = tgtd.tmp / "start.strace"
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "OCF_ROOT": "/usr/lib/ocf",
           "OCF_RESOURCE_INSTANCE": "p_tgt", "HA_RSCTMP": str(tgtd.tmp / "run"),
           "OCF_RESKEY_CRM_meta_timeout": "20000",
           **{f"OCF_RESKEY_{k}": v for k, v in tp.items()}}
    r = subprocess.run(["strace", "-f", "-qq", "-s", "4096", "-e", "trace=execve", "-o",
                        str(trace), str(ROOT / "ocf" / "iscsi-target"), "start"],
                       env=env, capture_output=True, text=True, timeout=30, check=False)
    assert r.returncode == 0, r.stderr
    execs = [ln for ln in trace.read_text().splitlines() if "execve(" in ln]
    assert len(execs) == 1 and "ocf/iscsi-target" in execs[0], execs  # the agent only
    assert PASSWORD not in trace.read_text() and "mutualsecret77" not in trace.read_text()
    assert agent(tgtd, "iscsi-lun", "start", lun_params(tgtd, img), "p_lun").returncode == 0

    client = Client(tgtd.port, Deadline(10))
    for mode in ("target", "portal", "account"):
        printed = subprocess.run(["tgtadm", "-C", str(tgtd.port), "--lld", "iscsi", "--mode",
                                  mode, "--op", "show"], capture_output=True, text=True,
                                 check=True).stdout
        assert client.request(mode, "show")[1] == printed
    t = client.show()[3]
    assert t.users == [USER] and t.outgoing == ["mutualu"] and t.acls == [INI]
    assert t.luns[1].path == str(img)
    assert agent(tgtd, "iscsi-lun", "stop", lun_params(tgtd, img), "p_lun").returncode == 0
    assert agent(tgtd, "iscsi-target", "stop", tp, "p_tgt").returncode == 0
    assert client.show() == {} and client.accounts() == []
