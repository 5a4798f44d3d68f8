"""lsaa.backends.ipvs_netlink: encoding and decoding against traffic recorded from the
lab kernel (tests/fixtures/ipvs_netlink/, see capture.py there), plus hand-built
acks and errors the kernel is not easily made to send."""

from __future__ import annotations

import json
import socket
import struct
from pathlib import Path

import pytest

from lsaa.backends import ipvs_netlink as nl
from lsaa.backends.ipvsadm import Dest, Service, parse_list

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "ipvs_netlink"
TRAFFIC: dict[str, list[list[str]]] = json.loads((FIX / "traffic.json").read_text())["traffic"]


class Replay:
    """A socket that answers with recorded datagrams and records what is sent."""

    def __init__(self, recv: list[bytes], rcvbuf: int = 8 << 20) -> None:
        self.recv_queue = list(recv)
        self.sent: list[bytes] = []
        self.rcvbuf = rcvbuf
        self.closed = False

    def getsockopt(self, level: int, opt: int) -> int:
        return self.rcvbuf

    def settimeout(self, t: float | None) -> None:
        pass

    def send(self, data: bytes) -> int:
        self.sent.append(bytes(data))
        return len(data)

    def recv(self, n: int) -> bytes:
        item = self.recv_queue.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    def close(self) -> None:
        self.closed = True


def recorded(name: str) -> tuple[list[bytes], list[bytes]]:
    sends = [bytes.fromhex(h) for d, h in TRAFFIC[name] if d == "send"]
    recvs = [bytes.fromhex(h) for d, h in TRAFFIC[name] if d == "recv"]
    return sends, recvs


def replay(name: str) -> tuple[nl.Client, Replay]:
    _sends, recvs = recorded(name)
    sock = Replay(recvs)
    return nl.Client(sock=sock), sock  # type: ignore[arg-type]


def services() -> dict[int, Service]:
    """The table capture.py built, as ipvsadm listed it (thresholds merged)."""
    listed = parse_list((FIX / "Ln.txt").read_text())
    limits = {(s.port, d.key): d for s in parse_list((FIX / "Ln-thresholds.txt").read_text())
              for d in s.dests}
    for s in listed:
        for d in s.dests:
            d.upper, d.lower = limits[(s.port, d.key)].upper, limits[(s.port, d.key)].lower
    return {s.port: s for s in listed}


def same(a: Service, b: Service) -> bool:
    key = lambda s: (s.key, s.scheduler, sorted(s.flags), s.persistent, s.netmask, s.ops,  # noqa: E731
                     s.pe, sorted(map(repr, s.dests)))
    return key(a) == key(b)


# ----- encoding: byte-exact against what the kernel accepted --------------------------------

def test_family_request_is_byte_exact() -> None:
    for name in TRAFFIC:
        assert recorded(name)[0][0] == nl.family_request(1)


@pytest.mark.parametrize("name", [n for n in TRAFFIC if n.startswith("create-")])
def test_create_requests_are_byte_exact_and_acked(name: str) -> None:
    want = services()[int(name.rsplit("-", 1)[1])]
    client, sock = replay(name)
    assert client.family == 28 or client.family > 16
    changes = [nl.Change(nl.NEW_SERVICE, want)]
    # the capture added its servers in configuration order; ipvsadm lists them sorted
    order = {"443": ["10.0.0.11", "10.0.0.12"], "53": ["2001:db8::11", "2001:db8::12"]}
    by_addr = {d.addr: d for d in want.dests}
    for addr in order.get(name.rsplit("-", 1)[1], list(by_addr)):
        changes.append(nl.Change(nl.NEW_DEST, want, by_addr[addr]))
    assert client.apply(changes) == []
    assert sock.sent == recorded(name)[0]
    assert not sock.recv_queue


def test_request_layout() -> None:
    svc = Service("tcp", "192.0.2.10", 80, False, "wlc")
    msg = nl.request(28, nl.Change(nl.DEL_SERVICE, svc), 7)
    size, kind, flags, seq, pid, cmd, version = struct.unpack_from("=IHHIIBB", msg)
    assert (size, kind, flags, seq, pid, cmd, version) == (len(msg), 28, 5, 7, 0, 3, 1)
    top = nl.attributes(msg[20:])
    inner = nl.attributes(top[nl.CMD_ATTR_SERVICE])
    assert inner[nl.SVC_AF] == struct.pack("=H", 2)
    assert inner[nl.SVC_PORT] == b"\x00\x50"  # big-endian
    assert inner[nl.SVC_ADDR] == bytes([192, 0, 2, 10]) + b"\0" * 12
    assert nl.SVC_SCHED_NAME not in inner  # DEL names the service only


def test_netmask_and_flags_encoding() -> None:
    v4 = Service("tcp", "192.0.2.10", 80, False, "sh")
    assert nl.netmask_bytes(v4) == b"\xff" * 4
    v4.netmask = "255.255.255.0"
    assert nl.netmask_bytes(v4) == b"\xff\xff\xff\x00"
    v6 = Service("tcp", "2001:db8::1", 80, True, "mh")
    assert nl.netmask_bytes(v6) == struct.pack("=I", 128)
    v6.netmask = "64"
    assert nl.netmask_bytes(v6) == struct.pack("=I", 64)
    v4.persistent, v4.ops = 300, True
    v4.flags = frozenset({"sh-port", "sh-fallback"})
    assert nl.flags_of(v4) == nl.F_PERSISTENT | nl.F_ONEPACKET | nl.F_SCHED1 | nl.F_SCHED2


# ----- decoding: what netlink reads equals what ipvsadm lists --------------------------------

@pytest.mark.parametrize("name", [n for n in TRAFFIC if n.startswith("read-")
                                  and n != "read-absent"])
def test_read_decodes_like_ipvsadm_lists(name: str) -> None:
    want = services()[int(name.rsplit("-", 1)[1])]
    client, sock = replay(name)
    got = client.read(want)
    assert got is not None
    assert same(got, want), (got, want)
    assert sock.sent == recorded(name)[0]  # GET_SERVICE + GET_DEST dump in one datagram
    assert len(sock.sent) == 2 and len(list(nl.messages(sock.sent[1]))) == 2


def test_read_absent_service() -> None:
    client, sock = replay("read-absent")
    assert client.read(Service("tcp", "192.0.2.99", 80, False, "rr")) is None
    assert not sock.recv_queue


def test_refused_requests_are_each_reported() -> None:
    client, _sock = replay("errors")
    svc = services()[80]
    missing = Service("tcp", "192.0.2.99", 80, False, "rr")
    changes = [nl.Change(nl.NEW_DEST, missing, Dest("10.0.0.1", 80, "nat", 1)),
               nl.Change(nl.NEW_DEST, svc, Dest("10.0.0.21", 8080, "nat", 3)),
               nl.Change(nl.SET_DEST, svc, Dest("10.0.0.22", 80, "nat", 1)),
               nl.Change(nl.SET_DEST, svc, Dest("10.0.0.21", 8080, "nat", 4)),
               nl.Change(nl.DEL_SERVICE, missing)]
    assert client.apply(changes) == [(0, 3, "Service not defined"),
                                     (1, 17, "Destination already exists"),
                                     (2, 2, "No such destination"),
                                     (4, 3, "No such service")]
    assert client.seq == 6


# ----- hand-built cases --------------------------------------------------------------------

def ack(seq: int, err: int = 0, flags: int = nl.NLM_F_CAPPED, tlvs: bytes = b"") -> bytes:
    payload = struct.pack("=i", -err) + struct.pack("=IHHII", 36, 28, 5, seq, 0) + tlvs
    return struct.pack("=IHHII", 16 + len(payload), nl.NLMSG_ERROR, flags, seq, 1234) + payload


def test_extended_ack_message_is_kept() -> None:
    tlv = nl.attr(nl.NLMSGERR_ATTR_MSG, b"Attribute failed policy validation\0")
    data = ack(2, 22, nl.NLM_F_CAPPED | nl.NLM_F_ACK_TLVS, tlv)
    (kind, flags, seq, payload), = nl.messages(data)
    assert (kind, seq) == (nl.NLMSG_ERROR, 2)
    assert nl.error_of(flags, payload) == (22, "Attribute failed policy validation")
    assert nl.error_of(0, struct.pack("=i", 0) + b"\0" * 16) == (0, "")
    assert nl.describe(nl.NEW_SERVICE, 2) == "Scheduler or persistence engine not found"
    assert nl.describe(nl.NEW_DEST, 22, "why") == "Invalid argument (why)"


def test_batches_acks_out_of_order_and_one_failure() -> None:
    svc = Service("tcp", "192.0.2.10", 80, False, "rr")
    changes = [nl.Change(nl.NEW_DEST, svc, Dest(f"10.0.0.{i}", 80, "nat", 1)) for i in range(5)]
    sock = Replay([ack(2), ack(1), ack(3, 17) + ack(4), ack(5)])
    client = nl.Client(sock=sock, family=28)  # type: ignore[arg-type]
    client.batch = 2
    assert client.apply(changes) == [(2, 17, "Destination already exists")]
    assert [len(list(nl.messages(s))) for s in sock.sent] == [2, 2, 1]
    assert [m[2] for s in sock.sent for m in nl.messages(s)] == [1, 2, 3, 4, 5]


def test_lost_acks_and_missing_family() -> None:
    svc = Service("tcp", "192.0.2.10", 80, False, "rr")
    sock = Replay([OSError(105, "No buffer space available")])
    client = nl.Client(sock=sock, family=28)  # type: ignore[arg-type]
    with pytest.raises(nl.NetlinkError, match="acknowledgements lost"):
        client.apply([nl.Change(nl.DEL_SERVICE, svc)])
    nack = ack(1, 2)
    with pytest.raises(nl.FamilyMissing):
        nl.Client(sock=Replay([nack]))  # type: ignore[arg-type]


def test_malformed_datagrams() -> None:
    with pytest.raises(nl.NetlinkError):
        list(nl.messages(struct.pack("=IHHII", 400, 2, 0, 1, 0)))
    assert nl.attributes(b"\x02\x00\x01\x00") == {}  # size below 4: ignored


def test_timeouts_come_from_the_deadline() -> None:
    from lsaa.deadline import Deadline
    from lsaa.errors import DeadlineExceeded

    sock = Replay([socket.timeout("timed out")])
    client = nl.Client(Deadline(5), sock=sock, family=28)  # type: ignore[arg-type]
    with pytest.raises(DeadlineExceeded):
        client.read(Service("tcp", "192.0.2.10", 80, False, "rr"))
    with pytest.raises(DeadlineExceeded):
        nl.Client(Deadline(0), sock=Replay([]), family=28).read(  # type: ignore[arg-type]
            Service("fwmark", "5", 0, False, "rr"))
