"""Pure parsers and checks of the iSCSI backends, on recorded tool output."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lsaa.backends import iscsiadm as ia
from lsaa.backends import tgt
from lsaa.backends.iscsiname import check_name, check_portals, parse_portal, portal_of_listing

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
