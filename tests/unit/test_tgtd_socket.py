"""lsaa.backends.tgtd_socket on recorded bytes: what tgtadm 1.0.85 sent and tgtd answered.

tests/fixtures/tgtd/exchanges.json holds each exchange as captured with strace
(tests/fixtures/tgtd/record.py): tgtadm's argv, its exit code and output, the
request bytes it wrote to tgtd's socket and the response bytes it read.  Each
client method must send exactly tgtadm's bytes for the same operation, and read
the response as tgtadm printed it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from lsaa.backends import tgtd_socket
from lsaa.backends.iscsiname import parse_portal
from lsaa.backends.tgtd_socket import Tgtd, TgtdError, decode_response, encode
from lsaa.deadline import Deadline
from lsaa.errors import ConfigError

# the recording is of an x86_64 tgtadm; the protocol is in native byte order
pytestmark = pytest.mark.skipif(sys.byteorder != "little", reason="recorded little-endian")
RECORDED = json.loads((Path(__file__).resolve().parents[1] / "fixtures" / "tgtd" /
                       "exchanges.json").read_text())["exchanges"]
IQN = "iqn.2024-01.org.example:rec9"
INI = "iqn.1994-05.com.example:client1"
IMG = "/tmp/iscsiprof/lun1.img"

# the client call for each recorded tgtadm command, in the recorded order
CALLS: list[Callable[[Tgtd], object]] = [
    lambda t: t.new_target(9, IQN),
    lambda t: t.new_target(9, IQN),  # refused: this target already exists
    lambda t: t.bind_initiator(9, INI),
    lambda t: t.bind_initiator(9, "ALL"),
    lambda t: t.unbind_initiator(9, "ALL"),
    lambda t: t.new_account("recuser", "recsecret1"),
    lambda t: t.new_account("recmutual", "recsecret2"),
    lambda t: t.bind_account(9, "recuser", False),
    lambda t: t.bind_account(9, "recmutual", True),
    lambda t: t.new_lun(9, 1, IMG, "rdwr"),
    lambda t: t.update_lun(9, 1, [("scsi_sn", "rec-sn-1"), ("scsi_id", "recid1"),
                                  ("readonly", "0"), ("vendor_id", "LSAA"),
                                  ("product_id", "p_rec")]),
    lambda t: t.update_target(9, "MaxRecvDataSegmentLength", "65536"),
    lambda t: t.new_portal(parse_portal("127.0.0.1:3260")),  # refused: exists
    lambda t: t.new_portal(parse_portal("[::1]:3261")),
    lambda t: t.show(),
    lambda t: t.portals(),
    lambda t: t.accounts(),
    lambda t: t.delete_lun(9, 1),
    lambda t: t.delete_target(9, True),
    lambda t: t.delete_target(9, False),  # refused: can't find the target
    lambda t: t.delete_account("recmutual"),
    lambda t: t.delete_account("recuser"),
    lambda t: t.delete_account("recuser"),  # refused: can't find the account
    lambda t: t.delete_connection(9, 77, 3),  # refused: can't find the target
]


def test_every_recording_has_a_call() -> None:
    assert len(CALLS) == len(RECORDED)


@pytest.mark.parametrize("i", range(len(RECORDED)))
def test_requests_are_tgtadms_bytes(i: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rec = RECORDED[i]
    sent: list[bytes] = []

    def replay(path: str, request: bytes, timeout: float) -> bytes:
        assert path == "/var/run/tgtd/socket.4711"
        sent.append(request)
        return bytes.fromhex(rec["response"])

    monkeypatch.setattr(tgtd_socket, "exchange", replay)
    client = Tgtd(4711, Deadline(10))
    try:
        CALLS[i](client)
        refused = 0
    except TgtdError as e:
        refused = e.err
    assert sent == [bytes.fromhex(rec["request"])], " ".join(rec["tgtadm"])
    err, text = decode_response(bytes.fromhex(rec["response"]))
    assert text == rec["stdout"]
    # tgtadm exits 22 on any refusal; the methods that tolerate one return it instead
    assert (rec["rc"] == 22) == (err != 0)
    assert refused in (0, err)


def test_show_reads_the_recorded_target() -> None:
    show = next(r for r in RECORDED if r["tgtadm"][-1] == "show" and "target" in r["tgtadm"])
    _, text = decode_response(bytes.fromhex(show["response"]))
    assert "Target 9: iqn.2024-01.org.example:rec9" in text


def test_refusals_name_tgtds_reason() -> None:
    with pytest.raises(TgtdError, match="this target already exists") as e:
        raise TgtdError("target new tid 9", 9)
    assert e.value.err == tgtd_socket.TARGET_EXIST
    assert tgtd_socket.strerror(99) == "tgtd error 99"


def test_commas_and_nuls_are_refused_without_showing_the_value() -> None:
    for bad in ("se,cret", "sec\0ret"):
        with pytest.raises(ConfigError) as e:
            encode("account", "new", tgtd_socket.param("password", bad))
        assert bad not in e.value.reason and "password" in e.value.reason


def test_malformed_responses() -> None:
    with pytest.raises(ValueError, match="short"):
        decode_response(b"\0\0\0")
    with pytest.raises(ValueError, match="says 20 bytes"):
        decode_response(b"\0\0\0\0\x14\0\0\0abc")
