"""fence_lsaa_ipmi without a BMC: its declaration (fence_ipmilan's names), validation,
completion codes, the cipher-suite negotiation hooks driven with crafted packets, and
meta-data without pyghmi.  The real exchanges are in tests/functional/test_fence_ipmi.py."""

from __future__ import annotations

import hashlib
import io
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from lsaa.fence_agents import ipmi as agent
from lsaa.fencing.main import run
from lsaa.fencing.options import parse_stdin, typed

ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = ROOT / "fence" / "fence_lsaa_ipmi"


def values(text: str) -> tuple[dict[str, object], list[str]]:
    raw, _ = parse_stdin(agent.SPEC, text.encode())
    return typed(agent.SPEC, raw)


# --- the declaration --------------------------------------------------------------------


def test_fence_ipmilan_names_and_aliases() -> None:
    names = {n for o in agent.SPEC.options for n in (o.name, *o.aliases)}
    for name in ("ip", "ipaddr", "ipport", "username", "login", "password", "passwd",
                 "password_script", "passwd_script", "lanplus", "cipher", "privlvl",
                 "hexadecimal_kg", "auth", "target", "method", "power_wait", "power_timeout",
                 "login_timeout", "delay", "retry_on", "plug", "port", "verbose", "debug_file",
                 "debug"):
        assert name in names, name
    short = {o.short: o.name for o in agent.SPEC.options if o.short}
    for flag, name in (("a", "ip"), ("u", "ipport"), ("l", "username"), ("p", "password"),
                       ("S", "password_script"), ("P", "lanplus"), ("C", "cipher"),
                       ("L", "privlvl"), ("y", "hexadecimal_kg"), ("m", "method"),
                       ("o", "action"), ("n", "plug")):
        assert short[flag] == name  # fence_ipmilan's getopt letters
    assert "list" not in agent.SPEC.actions and "reboot" in agent.SPEC.actions


def test_every_fence_ipmilan_option_is_declared_with_its_type() -> None:
    """fence_ipmilan's own meta-data (fence-agents, installed by the set-up): each of
    its parameters is one of ours, of the same content type, so its configuration
    passes pcs and the command line unchanged."""
    from lxml import etree

    out = subprocess.run(["fence_ipmilan", "-o", "metadata"], capture_output=True,
                         check=True, timeout=60).stdout
    theirs = {p.get("name"): p.find("content").get("type")
              for p in etree.fromstring(out).iter("parameter")}
    ours = {n: o.type for o in agent.SPEC.options for n in (o.name, *o.aliases)}
    assert len(theirs) > 40
    assert {n: t for n, t in theirs.items() if ours.get(n, "missing") != t} == {}


def test_ignored_ipmitool_options_and_refused_port_as_ip() -> None:
    v, problems = values("ip=b\nipmitool_path=/usr/bin/ipmitool\nsudo=1\nquiet=1\n"
                         "stonith_status_sleep=2\nverbose_level=3\ndisable_timeout=true\n")
    assert problems == [] and agent.validate(v, "status") == []
    assert v["use_sudo"] is True and v["quiet"] is True
    v, problems = values("ip=b\nport_as_ip=1\n")
    assert problems == []
    assert agent.validate(v, "status") == [
        "port_as_ip: not supported; configure one stonith device per BMC"]


def test_defaults() -> None:
    v, problems = values("ip=bmc1\n")
    assert problems == []
    assert v["ipport"] == 623 and v["lanplus"] is True and v["privlvl"] == "administrator"
    assert v["method"] == "onoff" and v["power_wait"] == 2.0 and v["cipher"] is None
    assert v["shell_timeout"] == 5.0 and v["login_timeout"] == 5.0


def test_ip_is_required() -> None:
    _, problems = values("username=a\n")
    assert any(p.startswith("ip:") for p in problems)


@pytest.mark.parametrize("cipher,ok", [("3", True), ("17", True), (" 3 ", True), ("0", False),
                                       ("1", False), ("2", False), ("x", False)])
def test_cipher_suites_pyghmi_speaks(cipher: str, ok: bool) -> None:
    v, problems = values(f"ip=b\ncipher={cipher}\n")
    assert (problems == []) == ok, problems
    if ok:
        assert v["cipher"] == cipher.strip()


@pytest.mark.parametrize("kg,ok", [("00ff", True), ("0x00FF", True), ("ab" * 20, True),
                                   ("ab" * 21, False), ("abc", False), ("zz", False)])
def test_kg(kg: str, ok: bool) -> None:
    _, problems = values(f"ip=b\nhexadecimal_kg={kg}\n")
    assert (problems == []) == ok, problems


@pytest.mark.parametrize("extra,problem", [
    ("lanplus=0", "lanplus"), ("target=0x72", "target"), ("username=" + "u" * 17, "username"),
    ("password=" + "p" * 21, "password"), ("ipport=70000", "ipport"),
])
def test_validate(extra: str, problem: str) -> None:
    v, problems = values(f"ip=b\n{extra}\n")
    problems += agent.validate(v, "status")
    assert any(p.startswith(problem + ":") for p in problems), problems
    assert not any("p" * 21 in p for p in problems)  # never the password itself


def test_validate_all_through_the_framework() -> None:
    out, err = io.StringIO(), io.StringIO()
    rc = run(agent.SPEC, agent.factory, ["x"], b"action=validate-all\nip=b\nlanplus=0\n",
             {"HA_LOGFACILITY": "none"}, validate=agent.validate, stdout=out, stderr=err)
    assert rc == 1 and "lanplus" in err.getvalue()


def test_metadata_and_validate_all_need_no_pyghmi(tmp_path: Path) -> None:
    """Run the agent with pyghmi made unimportable: meta-data and validate-all still work."""
    code = ("import sys\nsys.modules['pyghmi'] = None\nsys.argv[0] = 'fence_lsaa_ipmi'\n"
            "from lsaa.fence_agents.ipmi import main\nmain()\n")
    env = {"PATH": "/usr/sbin:/usr/bin:/bin", "PYTHONPATH": str(ROOT / "lib"),
           "HA_LOGFACILITY": "none"}
    r = subprocess.run([sys.executable, "-c", code, "-o", "metadata"], capture_output=True,
                       text=True, env=env, timeout=60, check=False)
    assert r.returncode == 0 and '<parameter name="cipher"' in r.stdout, r.stderr
    r = subprocess.run([sys.executable, "-c", code], input="action=validate-all\nip=b\n",
                       capture_output=True, text=True, env=env, timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, "-c", code], input="action=status\nip=127.0.0.1\n",
                       capture_output=True, text=True, env=env, timeout=60, check=False)
    assert r.returncode == 1 and "install python3-pyghmi" in r.stderr, r.stderr


def test_launcher_is_thin() -> None:
    text = LAUNCHER.read_text()
    assert text.startswith("#!/usr/bin/python3") and "lsaa.fence_agents.ipmi" in text
    assert os.access(LAUNCHER, os.X_OK)


# --- the pyghmi adapter ------------------------------------------------------------------

ipmi = pytest.importorskip("lsaa.backends.ipmi")


def test_completion_codes() -> None:
    assert ipmi.describe_code(0xD4) == "0xd4 (insufficient privilege level)"
    assert ipmi.describe_code(0x42).startswith("0x42 (unknown")
    assert 0xC0 in ipmi.TRANSIENT_CODES and 0xD4 not in ipmi.TRANSIENT_CODES
    assert 0xCC not in ipmi.TRANSIENT_CODES  # VirtualBMC's "no power cycle": permanent


class Sent(Exception):
    """What a stubbed send_payload would have put on the wire."""


def bare(suite: int | None) -> object:
    """An Rmcp that never touched the network, in the state before Open Session."""
    s = object.__new__(ipmi.Rmcp)
    s.lsaa_suite = suite
    s.lsaa_sha1 = suite == ipmi.SUITE_SHA1
    s.lsaa_result = None
    s.lsaa_notes = []
    s.attemptedhash = 256  # what pyghmi's _initsession sets
    s.localsid = 1
    s.rmcptag = 1
    s.privlevel = 4
    s.lastpayload = None
    s.sessioncontext = None
    s.logonwaiters = [s._lsaa_logon]
    sent: list[bytes] = []
    s.send_payload = lambda payload, payload_type=None, **kw: sent.append(bytes(payload))
    s._mark_broken = lambda error=None: None
    s.lsaa_sent = sent
    return s


def proposed_auth(packet: bytes) -> int:
    """The authentication algorithm of an Open Session request (IPMI 2.0 table 13-16)."""
    return packet[12]


@pytest.mark.parametrize("suite,auth", [(None, 3), (17, 3), (3, 1)])
def test_open_session_proposes_the_suite_asked_for(suite: int | None, auth: int) -> None:
    s = bare(suite)
    s._open_rmcpplus_request()
    assert proposed_auth(s.lsaa_sent[-1]) == auth  # 1 = RAKP-HMAC-SHA1, 3 = -SHA256


def test_pyghmis_own_fallback_is_kept_and_remembered() -> None:
    s = bare(None)
    s.attemptedhash = 1  # what pyghmi's _got_rmcp_response does when 17 is refused
    s._open_rmcpplus_request()
    assert proposed_auth(s.lsaa_sent[-1]) == 1 and s.lsaa_sha1
    s.attemptedhash = 256  # a re-login resets it; we stay on SHA-1
    s._open_rmcpplus_request()
    assert proposed_auth(s.lsaa_sent[-1]) == 1


def rakp2(tag: int, hmac_len: int) -> bytearray:
    """A successful RAKP message 2 whose key exchange code has ``hmac_len`` bytes."""
    return bytearray([tag, 0, 0, 0]) + struct.pack("<I", 1) + bytes(32) + bytes(hmac_len)


def test_sha1_answer_to_a_sha256_proposal_restarts_with_sha1() -> None:
    s = bare(None)
    s._open_rmcpplus_request()  # proposes 17
    s.sessioncontext = "EXPECTINGRAKP2"
    s._got_rakp2(rakp2(s.rmcptag, 20))  # pyghmi's BMC: "OK", then HMAC-SHA1
    assert s.lsaa_sha1 and s.lsaa_result is None  # not a failure: a new attempt
    assert proposed_auth(s.lsaa_sent[-1]) == 1
    assert s.currhashlib is hashlib.sha1
    assert any("HMAC-SHA1" in n for n in s.lsaa_notes)


def test_sha1_answer_with_cipher_17_is_a_clear_failure() -> None:
    s = bare(17)
    s._open_rmcpplus_request()
    s.sessioncontext = "EXPECTINGRAKP2"
    s.onlogon = lambda p: s._lsaa_logon(p)
    s._got_rakp2(rakp2(s.rmcptag, 20))
    assert "use cipher=3" in s.lsaa_result["error"]
    assert len(s.lsaa_sent) == 1  # nothing more sent


def test_cipher_17_refused_is_not_silently_downgraded() -> None:
    s = bare(17)
    s._open_rmcpplus_request()
    s.onlogon = lambda p: s._lsaa_logon(p)
    response = bytearray([s.rmcptag, 0x11, 0, 0]) + bytes(8)  # "no cipher suite match"
    s._got_rmcp_response(response)
    assert "refused cipher suite 17" in s.lsaa_result["error"]
    assert len(s.lsaa_sent) == 1


def test_a_stale_rakp2_is_left_to_pyghmi() -> None:
    s = bare(None)
    s._open_rmcpplus_request()
    s.sessioncontext = "EXPECTINGRAKP2"
    assert s._got_rakp2(rakp2(s.rmcptag + 5, 20)) == -9  # wrong tag: pyghmi ignores it
    assert not s.lsaa_sha1


def test_a_stalled_login_says_where() -> None:
    s = bare(None)
    s.lsaa_stage = 0
    assert "no answer at all" in s.stall()
    s._got_rmcp_response(bytearray([s.rmcptag, 0, 0, 0]) + bytes(4))  # short: pyghmi drops it
    assert "unknown user" in s.stall()
    s.sessioncontext = "ESTABLISHED"
    assert "Set Session Privilege Level" in s.stall()
