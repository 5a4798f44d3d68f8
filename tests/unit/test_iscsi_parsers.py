"""Pure parsers and checks of the iSCSI backends, on recorded tool output."""

from __future__ import annotations

import ipaddress
import os
import random
import re
from pathlib import Path

import pytest

from lsaa.backends import iscsiadm as ia
from lsaa.backends import tgt
from lsaa.backends.iscsiname import (
    check_name,
    check_portals,
    parse_portal,
    portal_of_listing,
    split_list,
)

FIX = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.mark.parametrize("name", ["iqn.2024-01.org.example:tgt1", "iqn.1994-05.com.redhat",
                                  "iqn.2003-01.org.linux-iscsi.host.x8664:sn.8b1c2e3d4f5a",
                                  "eui.02004567a425678d", "naa.52004567ba64678d",
                                  "naa.6001405c3d9e4f0b8a7d6e5f4a3b2c1d"])
def test_valid_names(name: str) -> None:
    assert check_name(name) == name


def test_eui_and_naa_are_lowercased() -> None:
    assert check_name("eui.02004567A425678D") == "eui.02004567a425678d"


@pytest.mark.parametrize("name", ["iqn.2024-13.org.example", "iqn.24-01.org.example",
                                  "IQN.2024-01.org.example", "iqn.2024-01.Org.example",
                                  "iqn.2024-01.org.example:a b", "eui.1234", "naa.xyz",
                                  "target1", "iqn.2024-01.-bad.example", "iqn.2024-01."])
def test_invalid_names(name: str) -> None:
    with pytest.raises(ValueError):
        check_name(name)


# The checks were regular expressions; they are character-set code now (importing re
# cost every monitor 4-10 ms).  These patterns are the former definition, kept here as
# the oracle: the new code must accept and refuse exactly the same names.
_LABEL = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
_IQN_RE = re.compile(r"iqn\.[0-9]{4}-(?:0[1-9]|1[0-2])\." + _LABEL + r"(?:\." + _LABEL + r")*"
                     r"(?::[a-z0-9.:_-]+)?\Z")
_EUI_RE = re.compile(r"eui\.[0-9a-f]{16}\Z")
_NAA_RE = re.compile(r"naa\.(?:[0-9a-f]{16}|[0-9a-f]{32})\Z")


def _old_check_name(raw: str) -> str | None:
    name = raw.strip()
    if len(name.encode()) > 223:
        return None
    low = name.lower()
    if low.startswith(("eui.", "naa.")):
        return low if (_EUI_RE if low.startswith("eui.") else _NAA_RE).match(low) else None
    if not low.startswith("iqn.") or name != low or not _IQN_RE.match(name):
        return None
    return name


def _new_check_name(raw: str) -> str | None:
    try:
        return check_name(raw)
    except ValueError:
        return None


def _names(rng: random.Random) -> list[str]:
    """Valid names, each mutated at random: characters at the edges of every class
    (digits, '-', '.', ':', '_', upper case, non-ASCII, blanks), cut or doubled."""
    seeds = ["iqn.2024-01.org.example:tgt1", "iqn.1994-05.com.redhat", "iqn.2000-12.a",
             "iqn.2003-01.org.linux-iscsi.host.x8664:sn.8b1c2e3d4f5a", "iqn.2024-10.a-b.c:x:y",
             "eui.02004567a425678d", "naa.52004567ba64678d",
             "naa.6001405c3d9e4f0b8a7d6e5f4a3b2c1d", "EUI.02004567A425678D"]
    alphabet = "iqneuaxz0123456789-.:_ AZaf\tÄ٣\u212a"
    out = list(seeds)
    for _ in range(20000):
        s = list(rng.choice(seeds))
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(s) + 1)
            op = rng.randrange(4)
            if op == 0 and i < len(s):
                s[i] = rng.choice(alphabet)
            elif op == 1:
                s.insert(i, rng.choice(alphabet))
            elif op == 2 and i < len(s):
                del s[i]
            else:
                s = s[:i]
        out.append("".join(s))
    return out


def test_name_checks_accept_exactly_what_the_former_patterns_accepted() -> None:
    names = _names(random.Random(6))
    accepted = 0
    for name in names:
        assert _new_check_name(name) == _old_check_name(name), name
        accepted += _old_check_name(name) is not None
    # the generated set exercises both outcomes, not just one
    assert 1000 < accepted < len(names) - 1000


@pytest.mark.parametrize("raw", ["a b,c", " a,,b  c ", "a\u2003b", "", " , "])
def test_split_list_is_the_former_pattern(raw: str) -> None:
    assert split_list(raw) == [w for w in re.split(r"[\s,]+", raw.strip()) if w]


def test_plain_ipv4_fast_path_agrees_with_ipaddress() -> None:
    rng = random.Random(4)
    hosts = ["0.0.0.0", "255.255.255.255", "1.2.3.04", "256.1.1.1", "1.2.3", "1.2.3.4.5",
             "01.2.3.4", "1..2.3", "+1.2.3.4", "1.2.3.٣", " 1.2.3.4", "1.2.3.4 "]
    hosts += [".".join(rng.choice(["0", "00", "7", "010", "99", "199", "255", "256", "1000", ""])
                       for _ in range(rng.choice([3, 4, 4, 5]))) for _ in range(3000)]
    for host in hosts:
        try:
            want: str | None = str(ipaddress.ip_address(host.strip()))
        except ValueError:
            want = None
        if want is not None and ":" not in want:
            assert str(parse_portal(host)) == f"{want}:3260", host
        else:
            with pytest.raises(ValueError):
                parse_portal(host)


@pytest.mark.parametrize(("raw", "text"), [
    ("192.0.2.20", "192.0.2.20:3260"), ("192.0.2.20:3261", "192.0.2.20:3261"),
    ("[fe80::1]:3260", "[fe80::1]:3260"), ("[FE80:0::1]", "[fe80::1]:3260"),
    ("fd00::20", "[fd00::20]:3260"), ("0.0.0.0:3260", "0.0.0.0:3260"), ("[::]", "[::]:3260"),
])
def test_portals(raw: str, text: str) -> None:
    assert str(parse_portal(raw)) == text


@pytest.mark.parametrize("raw", ["host.example:3260", "192.0.2.1:0", "192.0.2.1:99999",
                                 "[fe80::1", "[fe80::1]3260", "1.2.3:3260", "192.0.2.1:x"])
def test_bad_portals(raw: str) -> None:
    with pytest.raises(ValueError):
        parse_portal(raw)


def test_portal_list_refuses_duplicates() -> None:
    assert [str(p) for p in check_portals("192.0.2.1 [::1]:3261")] == \
        ["192.0.2.1:3260", "[::1]:3261"]
    with pytest.raises(ValueError, match="twice"):
        check_portals("192.0.2.1:3260 192.0.2.1")


def test_listing_splits_ipv6_at_the_last_colon() -> None:
    portal, tag = portal_of_listing("[fe80::1]:3260,1")
    assert (portal.host, portal.port, tag) == ("fe80::1", 3260, 1)


# --- tgtadm (tests/fixtures/tgtadm, captured from tgt 1.0.85) ---------------------------

def test_tgt_show_with_lun_chap_acl() -> None:
    targets = tgt.parse_show((FIX / "tgtadm" / "target-show.txt").read_text())
    t = targets[1]
    assert t.iqn == "iqn.2024-01.org.example:tgt1" and t.state == "ready"
    assert sorted(t.luns) == [0, 1]
    lu = t.luns[1]
    assert lu.path.endswith("lun1.img") and lu.type == "disk" and not lu.readonly
    assert lu.scsi_sn and len(lu.scsi_sn) == 36
    assert t.users == ["chapuser"] and t.outgoing == []
    assert t.acls == ["iqn.1994-05.com.example:client1"]
    assert t.connections == []


def test_tgt_show_with_a_session_and_outgoing_account() -> None:
    t = tgt.parse_show((FIX / "tgtadm" / "target-show-session.txt").read_text())[1]
    assert t.connections == [(2, "iqn.1994-05.com.example:client1", 0)]
    assert t.outgoing == ["mutualu"] and t.users == ["chapuser"]
    assert t.acls == ["192.0.2.50", "iqn.1994-05.com.example:client1"]


def test_tgt_empty_show_and_params_show() -> None:
    assert tgt.parse_show("") == {}
    assert tgt.parse_show((FIX / "tgtadm" / "target-show-tid1-params.txt").read_text()) == {}


def test_tgt_portals_ipv6() -> None:
    portals = tgt.parse_portals((FIX / "tgtadm" / "portal-show.txt").read_text())
    assert [str(p) for p in portals] == ["[::1]:3261", "127.0.0.1:3260"]


def test_tgt_accounts() -> None:
    assert sorted(tgt.parse_accounts((FIX / "tgtadm" / "account-show.txt").read_text())) == \
        ["chapuser"]


# --- iscsiadm (tests/fixtures/iscsiadm, captured in the kernel lab) -----------------------

def test_sessions_ipv4_and_ipv6() -> None:
    sessions = ia.parse_sessions((FIX / "iscsiadm" / "session.txt").read_text())
    assert len(sessions) == 2
    by_portal = {str(s.portal): s for s in sessions}
    v6 = by_portal["[fd77::1]:3260"]
    assert v6.target == "iqn.2024-01.lsaa.lab:disk0" and v6.tpgt == 1 and v6.transport == "tcp"
    assert ia.find_session(sessions, v6.target, parse_portal("[fd77::1]:3260")) is v6
    assert ia.find_session(sessions, v6.target, parse_portal("[fd77::1]:3261")) is None
    assert ia.find_session(sessions, "iqn.2024-01.lsaa.lab:other",
                           parse_portal("[fd77::1]")) is None


def test_no_sessions_message() -> None:
    assert ia.parse_sessions("iscsiadm: No active sessions.\n") == []


def test_nodes() -> None:
    nodes = ia.parse_nodes((FIX / "iscsiadm" / "node.txt").read_text())
    assert {str(p) for p, _, _ in nodes} >= {"192.168.77.1:3260", "[fd77::1]:3260"}
    assert all(t == "iqn.2024-01.lsaa.lab:disk0" for _, _, t in nodes)


RECORD = """# BEGIN RECORD 2.1.8
node.name = iqn.2024-01.lsaa.lab:disk0
node.startup = automatic
node.session.auth.authmethod = None
node.conn[0].address = fd77::1
# END RECORD
"""


def test_record_files_and_update(tmp_path: Path) -> None:
    d = tmp_path / "iqn.2024-01.lsaa.lab:disk0" / "fd77::1,3260,1"
    d.mkdir(parents=True)
    rec = d / "default"
    rec.write_text(RECORD)
    os.chmod(rec, 0o600)
    files = ia.record_files("iqn.2024-01.lsaa.lab:disk0", parse_portal("[fd77::1]"), str(tmp_path))
    assert files == [str(rec)]
    other_port = parse_portal("[fd77::1]:3261")
    assert ia.record_files("iqn.2024-01.lsaa.lab:disk0", other_port, str(tmp_path)) == []
    changed = ia.update_record(str(rec), {"node.startup": "manual",
                                          "node.session.auth.authmethod": "CHAP",
                                          "node.session.auth.username": "u",
                                          "node.session.auth.password": "s3cret",
                                          "node.session.auth.username_in": ""})
    assert changed
    values = ia.read_record(str(rec))
    assert values["node.startup"] == "manual" and values["node.session.auth.password"] == "s3cret"
    assert "node.session.auth.username_in" not in values
    assert rec.read_text().rstrip().endswith("# END RECORD")
    assert os.stat(rec).st_mode & 0o777 == 0o600
    assert not ia.update_record(str(rec), {"node.startup": "manual"})


def test_session_disks_from_sysfs(tmp_path: Path) -> None:
    base = tmp_path / "class" / "iscsi_session" / "session3"
    (base / "device" / "target2:0:0" / "2:0:0:1" / "block" / "sdc").mkdir(parents=True)
    (base / "device" / "target2:0:0" / "2:0:0:0" / "block" / "sdb").mkdir(parents=True)
    (base / "state").write_text("LOGGED_IN\n")
    assert ia.session_disks(3, str(tmp_path)) == [(0, "sdb"), (1, "sdc")]
    assert ia.session_state(3, str(tmp_path)) == "LOGGED_IN"
    assert ia.session_state(4, str(tmp_path)) == ""


def test_lun_identity_checks_are_the_former_patterns() -> None:
    from lsaa.agents.iscsi_lun import _ascii_field, _serial, backstore_name

    rng = random.Random(8)
    alphabet = "aZ09._:- /,\tÄ\u212a"
    for _ in range(5000):
        raw = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        assert backstore_name(raw) == (re.sub(r"[^A-Za-z0-9_.:-]", "_", raw)[:64] or "lsaa")
        ok = re.fullmatch(r"[A-Za-z0-9._:-]{1,36}", raw) is not None
        try:
            _serial(raw)
            assert ok, raw
        except ValueError:
            assert not ok, raw
        ok = len(raw) <= 16 and re.fullmatch(r"[A-Za-z0-9 ._-]*", raw) is not None
        try:
            _ascii_field(16)(raw)
            assert ok, raw
        except ValueError:
            assert not ok, raw
