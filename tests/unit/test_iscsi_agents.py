"""iscsi-target, iscsi-lun and iscsi-initiator driven in process.

tgt and iscsiadm through the strict fake runner (recorded outputs in
tests/fixtures); LIO monitors against a tmp tree shaped like configfs (they
only read files).  LIO changes (rtslib) need the kernel: tests/lab.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest
from ocfrun import ocf

from lsaa.agents.iscsi_initiator import AGENT as INITIATOR
from lsaa.agents.iscsi_lun import AGENT as LUN
from lsaa.agents.iscsi_lun import default_serial
from lsaa.agents.iscsi_target import AGENT as TARGET
from lsaa.backends import iscsiadm as ia
from lsaa.backends import lio, tgt, tgtd_socket
from lsaa.testing.fakerun import Call, FakeRunner

FIX = Path(__file__).resolve().parents[1] / "fixtures"
IQN = "iqn.2024-01.org.example:tgt1"
INI = "iqn.1994-05.com.example:client1"
PW = "secretpass1"
TGT_PARAMS = {"implementation": "tgt", "iqn": IQN, "portals": "127.0.0.1:3260 [::1]:3261",
              "allowed_initiators": INI, "incoming_username": "chapuser",
              "incoming_password": PW, "tid": "1", "tgt_control_port": "7"}


def fixture(*parts: str) -> str:
    return (FIX.joinpath(*parts)).read_text()


MODES = {0: "system", 1: "target", 2: "logicalunit", 3: "portal", 6: "connection",
         7: "account"}
OPS = {0: "new", 1: "delete", 2: "show", 3: "bind", 4: "unbind", 5: "update"}


class Req:
    """One request the agent must send to tgtd, and tgtd's answer (err, text)."""

    def __init__(self, mode: str, op: str, params: str = "", *, tid: int = -1,
                 lun: int | None = None, sid: int = 0, cid: int = 0, force: bool = False,
                 outgoing: bool = False, err: int = 0, text: str = "") -> None:
        self.want = (mode, op, params, tid, lun, sid, cid, force, outgoing)
        self.err = err
        self.text = text


class FakeTgtdError(BaseException):
    """A request the test did not expect (a BaseException: the agent framework's
    catch-all must not turn it into an exit code)."""


class FakeTgtd:
    """Stands in for tgtd's socket: decodes each request with its own reading of
    tgtadm.h's layout (not the client's code), compares it with the next expected
    Req, answers with the recorded text.  Unexpected or missing requests fail."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.expected: list[Req] = []
        self.seen: list[bytes] = []

    def expect(self, *reqs: Req) -> None:
        self.expected = list(reqs)
        self.seen = []

    def exchange(self, path: str, request: bytes, timeout: float) -> bytes:
        try:
            return self._answer(path, request, timeout)
        except AssertionError as e:
            raise FakeTgtdError(str(e)) from None

    def _answer(self, path: str, request: bytes, timeout: float) -> bytes:
        assert path == self.path and timeout > 0
        self.seen.append(request)
        (mode, op, lld, length, tid, sid, lun, cid, host, dev, ac_dir, pack,
         force) = struct.unpack("=II64sIiQQIIIIII", request[:120])
        assert lld.rstrip(b"\0") == b"iscsi" and length == len(request)
        assert (host, dev, pack) == (0, 0, 0)
        body = request[120:]
        assert not body or body.endswith(b"\0")
        got = (MODES[mode], OPS[op], body[:-1].decode(), tid,
               None if lun == (1 << 64) - 1 else lun, sid, cid, bool(force), bool(ac_dir))
        assert self.expected, f"unexpected request {got}"
        req = self.expected.pop(0)
        assert got == req.want
        text = req.text.encode() + b"\0" if req.text else b""
        return struct.pack("=II", req.err, 8 + len(text)) + text

    def assert_done(self) -> None:
        assert not self.expected, f"requests never sent: {[r.want for r in self.expected]}"


@pytest.fixture
def tgtd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeTgtd:
    """tgtd on control port 7: its socket file, and a fake behind it."""
    sock = tmp_path / "socket.7"
    sock.write_text("")
    monkeypatch.setattr(tgt, "socket_path", lambda port=0: str(tmp_path / f"socket.{port}"))
    fake = FakeTgtd(str(sock))
    monkeypatch.setattr(tgtd_socket, "exchange", fake.exchange)
    return fake


def run(agent: object, action: str, params: dict[str, str], calls: list[Call],
        tmp_path: Path, **meta: str) -> tuple[int, str, list[str]]:
    fake = FakeRunner(calls)
    out = ocf(agent, action, params, runner=fake,  # type: ignore[arg-type]
              env={"HA_RSCTMP": str(tmp_path / "run")}, **meta)
    fake.assert_done()
    return out.rc, out.stderr, out.reasons


# --- validation ------------------------------------------------------------------------

def test_empty_acl_needs_explicit_open_access(tmp_path: Path) -> None:
    params = {"implementation": "lio", "iqn": IQN}
    rc, _, reasons = run(TARGET, "start", params, [], tmp_path)
    assert rc == 6 and "open_access" in reasons[0]
    rc, _, _ = run(TARGET, "validate-all", {**params, "open_access": "true"}, [], tmp_path)
    assert rc == 0


def test_invalid_config_is_6_and_masks_passwords(tmp_path: Path) -> None:
    params = {**TGT_PARAMS, "iqn": "IQN.bad", "incoming_username": "", "tid": ""}
    rc, err, reasons = run(TARGET, "start", params, [], tmp_path)
    assert rc == 6 and "iqn:" in reasons[0]
    assert PW not in err


def test_tgt_needs_tid_and_lun_1(tmp_path: Path) -> None:
    rc, _, reasons = run(TARGET, "validate-all", {**TGT_PARAMS, "tid": ""}, [], tmp_path)
    assert rc == 6 and "tid" in reasons[0]
    lun = {"implementation": "tgt", "target_iqn": IQN, "lun": "0", "path": "/x"}
    rc, _, reasons = run(LUN, "validate-all", lun, [], tmp_path)
    assert rc == 6 and "LUN 0" in reasons[0]


# --- tgt target (requests to tgtd's socket, answers recorded from tgt 1.0.85) -----------

SHOW = Req("target", "show", text=fixture("tgtadm", "target-show.txt"))
PORTALS = Req("portal", "show", text=fixture("tgtadm", "portal-show.txt"))


def run_tgt(fake: FakeTgtd, agent: object, action: str, params: dict[str, str],
            reqs: list[Req], **meta: str) -> tuple[int, str, list[str]]:
    """Run the agent against the fake tgtd; it must run no command at all."""
    fake.expect(*reqs)
    out = run(agent, action, params, [], Path(fake.path).parent, **meta)
    fake.assert_done()
    return out


def test_tgt_monitor_running(tgtd: FakeTgtd) -> None:
    assert run_tgt(tgtd, TARGET, "monitor", TGT_PARAMS, [SHOW, PORTALS], interval="10000")[0] == 0


def test_tgt_monitor_missing_acl_and_portal_is_1(tgtd: FakeTgtd) -> None:
    params = {**TGT_PARAMS, "allowed_initiators": f"{INI} iqn.1994-05.com.example:client2",
              "portals": "127.0.0.1:3260 127.0.0.2:3260"}
    rc, err, reasons = run_tgt(tgtd, TARGET, "monitor", params, [SHOW, PORTALS],
                               interval="10000")
    assert rc == 1
    assert "client2 missing" in reasons[0] and "portal 127.0.0.2:3260 missing" in reasons[0]
    assert PW not in err


def test_tgt_monitor_absent_and_no_tgtd(tgtd: FakeTgtd) -> None:
    assert run_tgt(tgtd, TARGET, "monitor", TGT_PARAMS, [Req("target", "show")])[0] == 7
    os.unlink(tgtd.path)
    assert run_tgt(tgtd, TARGET, "monitor", TGT_PARAMS, [])[0] == 7
    assert run_tgt(tgtd, TARGET, "stop", TGT_PARAMS, [])[0] == 0


def test_tgt_start_sends_the_password_only_to_the_socket(tgtd: FakeTgtd) -> None:
    reqs = [
        Req("target", "show"),
        Req("portal", "show", text="Portal: 127.0.0.1:3260,1\n"),
        Req("portal", "new", "portalOps portal=[::1]:3261,"),
        Req("target", "new", f"targetname={IQN}", tid=1),
        Req("target", "bind", f"initiator-name={INI}", tid=1),
        Req("account", "delete", "user=chapuser", err=15),  # can't find the account
        Req("account", "new", f"user=chapuser,password={PW}"),
        Req("account", "bind", "user=chapuser", tid=1),
        SHOW, PORTALS,
    ]
    rc, err, _ = run_tgt(tgtd, TARGET, "start", TGT_PARAMS, reqs)  # no command: FakeRunner([])
    assert rc == 0
    assert PW not in err
    assert sum(PW.encode() in r for r in tgtd.seen) == 1


def test_tgt_mutual_chap_and_parameters(tgtd: FakeTgtd) -> None:
    params = {**TGT_PARAMS, "portals": "127.0.0.1:3260", "outgoing_username": "mutualu",
              "outgoing_password": "mutualsecret9",
              "additional_parameters": "MaxRecvDataSegmentLength=65536"}
    shown = fixture("tgtadm", "target-show.txt").replace(
        "        chapuser\n", "        chapuser\n        mutualu (outgoing)\n")
    reqs = [
        SHOW, PORTALS,
        Req("account", "delete", "user=chapuser"),
        Req("account", "new", f"user=chapuser,password={PW}"),
        Req("account", "bind", "user=chapuser", tid=1),
        Req("account", "delete", "user=mutualu", err=15),
        Req("account", "new", "user=mutualu,password=mutualsecret9"),
        Req("account", "bind", "user=mutualu", tid=1, outgoing=True),
        Req("target", "update", "MaxRecvDataSegmentLength=65536", tid=1),
        Req("target", "show", text=shown), PORTALS,
    ]
    rc, err, _ = run_tgt(tgtd, TARGET, "start", params, reqs)
    assert rc == 0 and "mutualsecret9" not in err


def test_tgt_refuses_a_comma_in_chap_fields(tgtd: FakeTgtd) -> None:
    rc, err, reasons = run_tgt(tgtd, TARGET, "start", {**TGT_PARAMS,
                                                       "incoming_password": "pass,word1"}, [])
    assert rc == 6 and "incoming_password" in reasons[0] and "pass,word1" not in err


def test_tgt_start_refuses_a_foreign_tid(tgtd: FakeTgtd) -> None:
    rc, _, reasons = run_tgt(tgtd, TARGET, "start",
                             {**TGT_PARAMS, "iqn": "iqn.2024-01.org.example:other"}, [SHOW])
    assert rc == 1 and "tid 1 is taken" in reasons[0]


def test_tgt_stop_with_sessions_refuse_and_close(tgtd: FakeTgtd) -> None:
    session = Req("target", "show", text=fixture("tgtadm", "target-show-session.txt"))
    rc, _, reasons = run_tgt(tgtd, TARGET, "stop", {**TGT_PARAMS, "on_active_sessions": "refuse"},
                             [session])
    assert rc == 1 and "refuse" in reasons[0] and INI in reasons[0]
    reqs = [session,
            Req("target", "unbind", "initiator-address=192.0.2.50", tid=1),
            Req("target", "unbind", f"initiator-name={INI}", tid=1),
            Req("connection", "delete", tid=1, sid=2, cid=0),
            Req("target", "delete", tid=1, force=True),
            Req("target", "show"),
            Req("account", "delete", "user=chapuser")]
    assert run_tgt(tgtd, TARGET, "stop", TGT_PARAMS, reqs)[0] == 0


def test_tgt_stop_fails_when_the_target_survives(tgtd: FakeTgtd) -> None:
    reqs = [SHOW, Req("target", "delete", tid=1, err=19), SHOW]  # still active
    rc, _, reasons = run_tgt(tgtd, TARGET, "stop", TGT_PARAMS, reqs)
    assert rc == 1 and "still has" in reasons[0]


def test_tgt_unreachable_socket_is_an_error(tgtd: FakeTgtd,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(path: str, request: bytes, timeout: float) -> bytes:
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(tgtd_socket, "exchange", refused)
    rc, _, reasons = run(TARGET, "monitor", TGT_PARAMS, [], Path(tgtd.path).parent)
    assert rc == 1 and "Connection refused" in reasons[0]


# --- tgt LUN -----------------------------------------------------------------------------

def lun_params(path: str) -> dict[str, str]:
    return {"implementation": "tgt", "target_iqn": IQN, "lun": "1", "path": path,
            "tgt_control_port": "7", "scsi_sn": "ebc6fd18-ab80-21a8-2b2c-794780144c46"}


def test_tgt_lun_monitor(tgtd: FakeTgtd) -> None:
    path = "/tmp/iscsi-cap/lun1.img"
    assert run_tgt(tgtd, LUN, "monitor", lun_params(path), [SHOW])[0] == 0
    rc, _, reasons = run_tgt(tgtd, LUN, "monitor", lun_params("/srv/other.img"), [SHOW],
                             interval="10000")
    assert rc == 1 and "exports" in reasons[0]
    wrong_sn = {**lun_params(path), "scsi_sn": "0000"}
    rc, _, reasons = run_tgt(tgtd, LUN, "monitor", wrong_sn, [SHOW])
    assert rc == 1 and "serial" in reasons[0]
    assert run_tgt(tgtd, LUN, "monitor", {**lun_params(path), "lun": "2"}, [SHOW])[0] == 7


def test_tgt_lun_start_and_stop(tgtd: FakeTgtd) -> None:
    img = Path(tgtd.path).parent / "lun1.img"
    img.write_bytes(b"\0" * 4096)
    params = {**lun_params(str(img)), "scsi_sn": ""}
    serial = default_serial("test")
    shown = Req("target", "show", text=fixture("tgtadm", "target-show.txt")
                .replace("/tmp/iscsi-cap/lun1.img", str(img))
                .replace("ebc6fd18-ab80-21a8-2b2c-794780144c46", serial))
    without = Req("target", "show", text=fixture("tgtadm", "target-show.txt")
                  .split("        LUN: 1")[0] + "    Account information:\n")
    reqs = [
        without,
        Req("logicalunit", "new", f"path={img},bstype=rdwr", tid=1, lun=1),
        Req("logicalunit", "update", f"targetOps scsi_sn={serial},"
            f"scsi_id={serial.replace('-', '')[:24]},readonly=0,vendor_id=LSAA,"
            "product_id=test,", tid=1, lun=1),
        shown,
    ]
    assert run_tgt(tgtd, LUN, "start", params, reqs)[0] == 0
    reqs = [shown,
            Req("logicalunit", "delete", tid=1, lun=1, err=20),  # still active: retried
            shown,
            Req("logicalunit", "delete", tid=1, lun=1),
            without]
    assert run_tgt(tgtd, LUN, "stop", params, reqs)[0] == 0


def test_tgt_lun_stop_under_io_closes_the_connections(tgtd: FakeTgtd) -> None:
    """With an initiator doing I/O tgtd refuses the delete for as long as it runs;
    the stop closes the target's connections and deletes before they are back."""
    img = Path(tgtd.path).parent / "lun1.img"
    img.write_bytes(b"\0" * 4096)
    text = fixture("tgtadm", "target-show-session.txt")
    assert "LUN: 1" in text and "I_T nexus: 2" in text
    params = lun_params(text.split("Backing store path: ")[2].split("\n")[0])
    busy = Req("target", "show", text=text)
    reqs = [busy,
            Req("logicalunit", "delete", tid=1, lun=1, err=20),
            Req("connection", "delete", tid=1, sid=2, cid=0),
            Req("logicalunit", "delete", tid=1, lun=1),
            Req("target", "show")]
    assert run_tgt(tgtd, LUN, "stop", params, reqs)[0] == 0


def test_serial_is_the_same_on_every_node() -> None:
    assert default_serial("p_lun") == default_serial("p_lun")
    assert default_serial("p_lun") != default_serial("p_lun2")
    assert len(default_serial("p_lun")) == 36


# --- LIO monitors on a configfs-shaped tree ------------------------------------------------

def make_lio(root: Path, *, portals: tuple[str, ...] = ("192.0.2.1:3260", "[fd00::1]:3260"),
             password: str = PW) -> Path:
    tpg = root / "iscsi" / IQN / "tpgt_1"
    for p in portals:
        (tpg / "np" / p).mkdir(parents=True)
    (tpg / "enable").write_text("1\n")
    (tpg / "attrib").mkdir()
    (tpg / "attrib" / "authentication").write_text("1\n")
    (tpg / "attrib" / "generate_node_acls").write_text("0\n")
    (tpg / "auth").mkdir()
    acl = tpg / "acls" / INI
    (acl / "auth").mkdir(parents=True)
    (acl / "auth" / "userid").write_text("chapuser\n")
    (acl / "auth" / "password").write_text(password + "\n")
    (acl / "info").write_text("No active iSCSI Session for Initiator Endpoint: " + INI + "\n")
    (tpg / "lun").mkdir()
    return tpg


LIO_PARAMS = {"implementation": "lio", "iqn": IQN, "portals": "192.0.2.1 [fd00::1]:3260",
              "allowed_initiators": INI, "incoming_username": "chapuser",
              "incoming_password": PW}


@pytest.fixture
def configfs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "target"
    root.mkdir()
    monkeypatch.setattr(lio, "ROOT", str(root))
    return root


def test_lio_target_monitor(configfs: Path, tmp_path: Path) -> None:
    assert run(TARGET, "monitor", LIO_PARAMS, [], tmp_path)[0] == 7
    tpg = make_lio(configfs)
    assert run(TARGET, "monitor", LIO_PARAMS, [], tmp_path, interval="10000")[0] == 0
    (tpg / "np" / "0.0.0.0:3260").mkdir()  # targetcli's surprise default portal
    rc, _, reasons = run(TARGET, "monitor", LIO_PARAMS, [], tmp_path, interval="10000")
    assert rc == 1 and "unexpected portal 0.0.0.0:3260" in reasons[0]
    (tpg / "np" / "0.0.0.0:3260").rmdir()
    (tpg / "np" / "[fd00::1]:3260").rmdir()
    rc, _, reasons = run(TARGET, "monitor", LIO_PARAMS, [], tmp_path, interval="10000")
    assert rc == 1 and "portal [fd00::1]:3260 missing" in reasons[0]


def test_lio_target_monitor_acl_chap_enable(configfs: Path, tmp_path: Path) -> None:
    tpg = make_lio(configfs, password="other-secret")
    rc, err, reasons = run(TARGET, "monitor", LIO_PARAMS, [], tmp_path, interval="10000")
    assert rc == 1 and "CHAP password of" in reasons[0]
    assert "other-secret" not in err and PW not in err
    (tpg / "acls" / INI / "auth" / "password").write_text(PW)
    (tpg / "enable").write_text("0\n")
    rc, _, reasons = run(TARGET, "monitor", LIO_PARAMS, [], tmp_path, interval="10000")
    assert rc == 1 and "not enabled" in reasons[0]
    (tpg / "enable").write_text("1\n")
    two = {**LIO_PARAMS, "allowed_initiators": f"{INI} iqn.1994-05.com.example:client2"}
    rc, _, reasons = run(TARGET, "monitor", two, [], tmp_path, interval="10000")
    assert rc == 1 and "client2 missing" in reasons[0]


def test_lio_stop_refuses_with_sessions(configfs: Path, tmp_path: Path) -> None:
    tpg = make_lio(configfs)
    (tpg / "acls" / INI / "info").write_text(f"InitiatorName: {INI}\nSession ID: 1\n")
    params = {**LIO_PARAMS, "on_active_sessions": "refuse"}
    rc, _, reasons = run(TARGET, "stop", params, [], tmp_path)
    assert rc == 1 and INI in reasons[0] and "refuse" in reasons[0]


def make_lun(root: Path, name: str, path: str, serial: str) -> Path:
    so = root / "core" / "iblock_0" / name
    (so / "wwn").mkdir(parents=True)
    (so / "udev_path").write_text(path + "\n")
    (so / "enable").write_text("1\n")
    (so / "wwn" / "vpd_unit_serial").write_text(f"T10 VPD Unit Serial Number: {serial}\n")
    (so / "wwn" / "vendor_id").write_text("LSAA\n")
    return so


def test_lio_lun_monitor(configfs: Path, tmp_path: Path) -> None:
    dev = tmp_path / "disk"
    dev.write_text("")
    params = {"implementation": "lio", "target_iqn": IQN, "lun": "0", "path": str(dev)}
    assert run(LUN, "monitor", params, [], tmp_path)[0] == 7
    tpg = make_lio(configfs)
    so = make_lun(configfs, "test", str(dev), default_serial("test"))
    rc, _, reasons = run(LUN, "monitor", params, [], tmp_path)
    assert rc == 1 and "left without its LUN" in reasons[0]  # leftover backstore
    (tpg / "lun" / "lun_0").mkdir()
    os.symlink(so, tpg / "lun" / "lun_0" / "abc123")
    rc, _, reasons = run(LUN, "monitor", params, [], tmp_path)
    assert rc == 1 and f"not mapped for {INI}" in reasons[0]
    mapped = tpg / "acls" / INI / "lun_0"
    mapped.mkdir()
    os.symlink(tpg / "lun" / "lun_0", mapped / "def456")
    (mapped / "write_protect").write_text("0\n")
    assert run(LUN, "monitor", params, [], tmp_path)[0] == 0
    rc, _, reasons = run(LUN, "monitor", {**params, "scsi_sn": "abc"}, [], tmp_path)
    assert rc == 1 and "serial" in reasons[0]


# --- initiator ---------------------------------------------------------------------------

TARGET0 = "iqn.2024-01.lsaa.lab:disk0"
SESSION = ["iscsiadm", "-m", "session"]


@pytest.fixture
def node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(ia, "SYSFS", str(tmp_path / "sys"))
    monkeypatch.setattr(ia, "NODES_DIR", str(tmp_path / "nodes"))
    return tmp_path


def sysfs_session(root: Path, sid: int, state: str, disks: int = 1) -> None:
    base = root / "sys" / "class" / "iscsi_session" / f"session{sid}"
    base.mkdir(parents=True, exist_ok=True)
    (base / "state").write_text(state + "\n")
    for lun in range(disks):
        (base / "device" / "target2:0:0" / f"2:0:0:{lun}" / "block" / f"sd{'bc'[lun]}") \
            .mkdir(parents=True, exist_ok=True)


def sessions_fixture() -> tuple[str, dict[str, int]]:
    text = fixture("iscsiadm", "session.txt")
    return text, {str(s.portal): s.sid for s in ia.parse_sessions(text)}


def test_initiator_monitor_by_target_and_portal(node: Path) -> None:
    text, sids = sessions_fixture()
    v6 = {"portal": "[fd77::1]:3260", "target": TARGET0}
    assert run(INITIATOR, "monitor", v6, [Call(SESSION, stdout=text)], node)[0] == 1  # no sysfs
    sysfs_session(node, sids["[fd77::1]:3260"], "LOGGED_IN")
    assert run(INITIATOR, "monitor", v6, [Call(SESSION, stdout=text)], node)[0] == 0
    other_port = {**v6, "portal": "[fd77::1]:3261"}
    assert run(INITIATOR, "monitor", other_port, [Call(SESSION, stdout=text)], node)[0] == 7
    sysfs_session(node, sids["[fd77::1]:3260"], "FAILED")
    rc, _, reasons = run(INITIATOR, "monitor", v6, [Call(SESSION, stdout=text)], node,
                         interval="10000")
    assert rc == 1 and "FAILED" in reasons[0]
    none = Call(SESSION, rc=21, stderr="iscsiadm: No active sessions.\n")
    assert run(INITIATOR, "monitor", v6, [none], node)[0] == 7


def test_initiator_start_uses_the_record_not_argv(node: Path) -> None:
    text, sids = sessions_fixture()
    rec_dir = node / "nodes" / TARGET0 / "192.168.77.1,3260,1"
    rec_dir.mkdir(parents=True)
    (rec_dir / "default").write_text(RECORD_TEXT)
    params = {"portal": "192.168.77.1", "target": TARGET0, "username": "labuser",
              "password": "labsecret123"}
    sysfs_session(node, sids["192.168.77.1:3260"], "LOGGED_IN")
    login = ["iscsiadm", "-m", "node", "-T", TARGET0, "-p", "192.168.77.1:3260", "--login"]
    calls = [Call(SESSION, rc=21), Call(login, rc=15, stderr="session exists"),
             Call(SESSION, stdout=text)]
    rc, err, _ = run(INITIATOR, "start", params, calls, node)
    assert rc == 0
    values = ia.read_record(str(rec_dir / "default"))
    assert values["node.session.auth.password"] == "labsecret123"
    assert values["node.session.auth.authmethod"] == "CHAP"
    assert values["node.startup"] == "manual"
    assert "labsecret123" not in err
    state = (node / "run" / "lsaa-iscsi-initiator-test.disks").read_text()
    assert "/dev/disk/by-path/ip-192.168.77.1:3260-iscsi-" + TARGET0 + "-lun-0" in state


def test_initiator_start_discovers_without_a_record(node: Path) -> None:
    params = {"portal": "192.168.77.1", "target": TARGET0}
    disc = ["iscsiadm", "-m", "discovery", "-t", "sendtargets", "-p", "192.168.77.1:3260"]
    calls = [Call(SESSION, rc=21), Call(disc, stdout="192.168.77.1:3260,1 iqn.2024-01.x:other\n")]
    rc, _, reasons = run(INITIATOR, "start", params, calls, node)
    assert rc == 1 and "does not offer" in reasons[0]


def test_initiator_auth_failure_and_stop(node: Path) -> None:
    rec_dir = node / "nodes" / TARGET0 / "192.168.77.1,3260,1"
    rec_dir.mkdir(parents=True)
    (rec_dir / "default").write_text(RECORD_TEXT)
    params = {"portal": "192.168.77.1", "target": TARGET0, "username": "u", "password": "badpass"}
    login = ["iscsiadm", "-m", "node", "-T", TARGET0, "-p", "192.168.77.1:3260", "--login"]
    rc, err, reasons = run(INITIATOR, "start", params,
                           [Call(SESSION, rc=21), Call(login, rc=24)], node)
    assert rc == 1 and "CHAP authentication" in reasons[0] and "badpass" not in err
    text, _ = sessions_fixture()
    logout = ["iscsiadm", "-m", "node", "-T", TARGET0, "-p", "192.168.77.1:3260", "--logout"]
    calls = [Call(SESSION, stdout=text), Call(logout, rc=21), Call(SESSION, rc=21)]
    assert run(INITIATOR, "stop", params, calls, node)[0] == 0
    assert run(INITIATOR, "stop", params, [Call(SESSION, rc=21)], node)[0] == 0


RECORD_TEXT = """# BEGIN RECORD 2.1.8
node.name = iqn.2024-01.lsaa.lab:disk0
node.tpgt = 1
node.startup = automatic
node.session.auth.authmethod = None
node.conn[0].address = 192.168.77.1
node.conn[0].port = 3260
# END RECORD
"""
