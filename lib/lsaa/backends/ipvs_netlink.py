"""A small generic-netlink client for the kernel's IPVS family (no ipvsadm, no child).

Speaks the "IPVS" generic netlink family (include/uapi/linux/ip_vs.h, version 1)
with the ``socket`` and ``struct`` modules only, for the one service an
ocf:lsaa:ipvs resource owns:

* :meth:`Client.read` — that service and its real servers in one round trip
  (GET_SERVICE for the service, a GET_DEST dump for its destinations, both in
  one ``sendmsg``); thresholds come with the dump.
* :meth:`Client.apply` — a list of :class:`Change` sent many requests per
  ``sendmsg``, each with NLM_F_ACK; every ack is collected, so a failing
  request is reported by its index (``ipvsadm -R`` exits 0 after a failing
  line; this does not).

Messages are built and parsed by pure functions (:func:`request`,
:func:`messages`, :func:`attributes`, :func:`decode_service`,
:func:`decode_dest`), tested against bytes recorded from the lab kernel
(tests/fixtures/ipvs_netlink/).  Services and destinations are the ipvsadm
adapter's :class:`Service` and :class:`Dest`, filled exactly as its
``ipvsadm -Ln`` parser fills them, so the agent's diff does not care which
backend read the table.

Wire details worth knowing:

* the IPVS family parses attributes the old way: nests carry no NLA_F_NESTED
  flag (none is sent; the flag is masked off when parsing);
* addresses are 16 bytes (``union nf_inet_addr``), IPv4 in the first 4;
  ports are big-endian, everything else host order;
* the persistence netmask is the raw ``__be32`` of the kernel's struct: the
  four mask bytes for IPv4, the prefix length as a host-order u32 for IPv6;
* NEW/SET need every attribute of the entry (service: scheduler, flags,
  timeout, netmask; destination: method, weight, both thresholds), as the
  kernel refuses partial entries with EINVAL;
* the dest dump of an absent service is empty (not an error).
"""

from __future__ import annotations

import socket
import struct

from lsaa.backends.ipvsadm import Dest, Service

TYPE_CHECKING = False  # see lsaa.errors
if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from lsaa.deadline import Deadline

NETLINK_GENERIC = 16
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10
NETLINK_EXT_ACK = 11
SO_SNDBUFFORCE = 32
SO_RCVBUFFORCE = 33

NLM_F_REQUEST = 0x1
NLM_F_MULTI = 0x2
NLM_F_ACK = 0x4
NLM_F_DUMP = 0x300
NLM_F_CAPPED = 0x100
NLM_F_ACK_TLVS = 0x200
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLMSGERR_ATTR_MSG = 1
NLA_TYPE_MASK = 0x3FFF

GENL_ID_CTRL = 0x10
CTRL_CMD_GETFAMILY = 3
CTRL_ATTR_FAMILY_ID = 1
CTRL_ATTR_FAMILY_NAME = 2

FAMILY_NAME = "IPVS"
VERSION = 1

# commands
NEW_SERVICE, SET_SERVICE, DEL_SERVICE, GET_SERVICE = 1, 2, 3, 4
NEW_DEST, SET_DEST, DEL_DEST, GET_DEST = 5, 6, 7, 8
COMMANDS = {NEW_SERVICE: "add service", SET_SERVICE: "edit service",
            DEL_SERVICE: "delete service", GET_SERVICE: "get service",
            NEW_DEST: "add destination", SET_DEST: "edit destination",
            DEL_DEST: "delete destination", GET_DEST: "get destinations"}
# top-level attributes
CMD_ATTR_SERVICE, CMD_ATTR_DEST = 1, 2
# service attributes
SVC_AF, SVC_PROTOCOL, SVC_ADDR, SVC_PORT, SVC_FWMARK = 1, 2, 3, 4, 5
SVC_SCHED_NAME, SVC_FLAGS, SVC_TIMEOUT, SVC_NETMASK, SVC_PE_NAME = 6, 7, 8, 9, 11
# destination attributes
DEST_ADDR, DEST_PORT, DEST_FWD_METHOD, DEST_WEIGHT, DEST_U_THRESH, DEST_L_THRESH = 1, 2, 3, 4, 5, 6
DEST_ADDR_FAMILY = 11

F_PERSISTENT, F_HASHED, F_ONEPACKET, F_SCHED1, F_SCHED2, F_SCHED3 = 1, 2, 4, 8, 16, 32
PROTOCOLS = {"tcp": 6, "udp": 17, "sctp": 132}
PROTOCOL_NAMES = {v: k for k, v in PROTOCOLS.items()}
METHODS = {"nat": 0, "local": 1, "tun": 2, "dr": 3}
METHOD_NAMES = {v: k for k, v in METHODS.items()}
AF_INET, AF_INET6 = socket.AF_INET, socket.AF_INET6

# errno -> what ipvsadm says for it, per command (the rest: os.strerror)
_ESRCH, _EEXIST, _ENOENT = 3, 17, 2
_WORDS = {
    (NEW_SERVICE, _EEXIST): "Service already exists",
    (NEW_SERVICE, _ENOENT): "Scheduler or persistence engine not found",
    (SET_SERVICE, _ENOENT): "Scheduler or persistence engine not found",
    (SET_SERVICE, _ESRCH): "No such service",
    (DEL_SERVICE, _ESRCH): "No such service",
    (GET_SERVICE, _ESRCH): "No such service",
    (NEW_DEST, _ESRCH): "Service not defined",
    (NEW_DEST, _EEXIST): "Destination already exists",
    (SET_DEST, _ESRCH): "Service not defined",
    (SET_DEST, _ENOENT): "No such destination",
    (DEL_DEST, _ESRCH): "Service not defined",
    (DEL_DEST, _ENOENT): "No such destination",
}


class NetlinkError(OSError):
    """A request the kernel refused: ``errno`` and ipvsadm's words for it."""


class FamilyMissing(NetlinkError):
    """The kernel has no IPVS generic netlink family (ip_vs not loaded or not built)."""


def describe(cmd: int, errno: int, extra: str = "") -> str:
    import os

    text = _WORDS.get((cmd, errno)) or (
        "Memory allocation problem" if errno == 12 else os.strerror(errno))
    return f"{text} ({extra})" if extra else text


# ----- encoding -------------------------------------------------------------------------

def attr(kind: int, payload: bytes) -> bytes:
    """One netlink attribute, padded to 4 bytes."""
    size = 4 + len(payload)
    return struct.pack("=HH", size, kind) + payload + b"\0" * (-size & 3)


def u16(kind: int, value: int) -> bytes:
    return attr(kind, struct.pack("=H", value))


def u32(kind: int, value: int) -> bytes:
    return attr(kind, struct.pack("=I", value))


def be16(kind: int, value: int) -> bytes:
    return attr(kind, struct.pack("!H", value))


def message(kind: int, flags: int, seq: int, cmd: int, payload: bytes) -> bytes:
    """nlmsghdr + genlmsghdr + attributes (port id 0: the kernel)."""
    return struct.pack("=IHHIIBBH", 20 + len(payload), kind, flags, seq, 0, cmd, VERSION,
                       0) + payload


def _addr(text: str, v6: bool) -> bytes:
    """16 bytes (union nf_inet_addr)."""
    raw = socket.inet_pton(AF_INET6 if v6 else AF_INET, text)
    return raw + b"\0" * (16 - len(raw))


def netmask_bytes(svc: Service) -> bytes:
    """The raw ``__be32`` netmask: IPv4 mask bytes, or an IPv6 prefix length."""
    if svc.ipv6:
        return struct.pack("=I", int(svc.netmask) if svc.netmask else 128)
    return socket.inet_aton(svc.netmask) if svc.netmask else b"\xff" * 4


def flags_of(svc: Service) -> int:
    f = F_PERSISTENT if svc.persistent else 0
    if svc.ops:
        f |= F_ONEPACKET
    for name in svc.flags:
        f |= F_SCHED2 if name.endswith("-port") else F_SCHED1 if name.endswith(
            "-fallback") else {"flag-1": F_SCHED1, "flag-2": F_SCHED2, "flag-3": F_SCHED3}[name]
    return f


def service_key(svc: Service) -> bytes:
    """Attributes naming one service (what GET/DEL and the dest commands need)."""
    af = AF_INET6 if svc.ipv6 else AF_INET
    if svc.proto == "fwmark":
        return u16(SVC_AF, af) + u32(SVC_FWMARK, int(svc.addr))
    return (u16(SVC_AF, af) + u16(SVC_PROTOCOL, PROTOCOLS[svc.proto])
            + attr(SVC_ADDR, _addr(svc.addr, svc.ipv6)) + be16(SVC_PORT, svc.port))


def service_full(svc: Service) -> bytes:
    """Key plus every setting NEW/SET_SERVICE need (flags mask: all bits)."""
    return (service_key(svc) + attr(SVC_SCHED_NAME, svc.scheduler.encode() + b"\0")
            + attr(SVC_FLAGS, struct.pack("=II", flags_of(svc), 0xFFFFFFFF))
            + u32(SVC_TIMEOUT, svc.persistent) + attr(SVC_NETMASK, netmask_bytes(svc)))


def dest_attrs(d: Dest, v6: bool, full: bool) -> bytes:
    out = (attr(DEST_ADDR, _addr(d.addr, v6)) + be16(DEST_PORT, d.port)
           + u16(DEST_ADDR_FAMILY, AF_INET6 if v6 else AF_INET))
    if full:
        out += (u32(DEST_FWD_METHOD, METHODS[d.method]) + u32(DEST_WEIGHT, d.weight)
                + u32(DEST_U_THRESH, d.upper) + u32(DEST_L_THRESH, d.lower))
    return out


class Change:
    """One request: ``cmd`` (NEW_/SET_/DEL_SERVICE, NEW_/SET_/DEL_DEST) on ``service``."""

    __slots__ = ("cmd", "dest", "service")

    def __init__(self, cmd: int, service: Service, dest: Dest | None = None) -> None:
        self.cmd = cmd
        self.service = service
        self.dest = dest

    def payload(self) -> bytes:
        if self.cmd in (NEW_SERVICE, SET_SERVICE):
            return attr(CMD_ATTR_SERVICE, service_full(self.service))
        if self.cmd == DEL_SERVICE:
            return attr(CMD_ATTR_SERVICE, service_key(self.service))
        assert self.dest is not None
        return (attr(CMD_ATTR_SERVICE, service_key(self.service))
                + attr(CMD_ATTR_DEST, dest_attrs(self.dest, self.service.ipv6,
                                                 self.cmd != DEL_DEST)))

    def __repr__(self) -> str:
        return f"Change({COMMANDS.get(self.cmd, self.cmd)}, {self.service.key}, {self.dest})"


def request(family: int, change: Change, seq: int) -> bytes:
    return message(family, NLM_F_REQUEST | NLM_F_ACK, seq, change.cmd, change.payload())


def read_requests(family: int, svc: Service, seq: int) -> bytes:
    """GET_SERVICE (seq) and the GET_DEST dump (seq + 1), for one sendmsg."""
    key = attr(CMD_ATTR_SERVICE, service_key(svc))
    return (message(family, NLM_F_REQUEST, seq, GET_SERVICE, key)
            + message(family, NLM_F_REQUEST | NLM_F_DUMP, seq + 1, GET_DEST, key))


def family_request(seq: int) -> bytes:
    return message(GENL_ID_CTRL, NLM_F_REQUEST, seq, CTRL_CMD_GETFAMILY,
                   attr(CTRL_ATTR_FAMILY_NAME, FAMILY_NAME.encode() + b"\0"))


# ----- decoding -------------------------------------------------------------------------

def messages(data: bytes) -> Iterator[tuple[int, int, int, bytes]]:
    """(type, flags, seq, payload after the nlmsghdr) of each message in one datagram."""
    off = 0
    while off + 16 <= len(data):
        size, kind, flags, seq, _pid = struct.unpack_from("=IHHII", data, off)
        if size < 16 or off + size > len(data):
            raise NetlinkError(71, f"malformed netlink message at byte {off}")  # EPROTO
        yield kind, flags, seq, data[off + 16:off + size]
        off += (size + 3) & ~3


def attributes(data: bytes) -> dict[int, bytes]:
    """type -> payload (nested flag masked off; the last of a repeated type wins)."""
    out: dict[int, bytes] = {}
    off = 0
    while off + 4 <= len(data):
        size, kind = struct.unpack_from("=HH", data, off)
        if size < 4 or off + size > len(data):
            break
        out[kind & NLA_TYPE_MASK] = data[off + 4:off + size]
        off += (size + 3) & ~3
    return out


def error_of(flags: int, payload: bytes) -> tuple[int, str]:
    """(errno, kernel's extended-ack message or "") of an NLMSG_ERROR payload; 0 = ack."""
    (err,) = struct.unpack_from("=i", payload)
    text = ""
    if err and flags & NLM_F_ACK_TLVS and len(payload) >= 20:
        (orig_len,) = struct.unpack_from("=I", payload, 4)
        off = 4 + (16 if flags & NLM_F_CAPPED else orig_len)
        raw = attributes(payload[(off + 3) & ~3:]).get(NLMSGERR_ATTR_MSG, b"")
        text = raw.split(b"\0", 1)[0].decode("utf-8", "replace")
    return -err, text


def _u32(a: dict[int, bytes], kind: int, default: int = 0) -> int:
    raw = a.get(kind)
    return int(struct.unpack("=I", raw[:4])[0]) if raw and len(raw) >= 4 else default


def _u16(a: dict[int, bytes], kind: int, default: int = 0) -> int:
    raw = a.get(kind)
    return int(struct.unpack("=H", raw[:2])[0]) if raw and len(raw) >= 2 else default


def _port(a: dict[int, bytes], kind: int) -> int:
    raw = a.get(kind)
    return int(struct.unpack("!H", raw[:2])[0]) if raw and len(raw) >= 2 else 0


def _addr_text(raw: bytes, af: int) -> str:
    if af == AF_INET6:
        return socket.inet_ntop(AF_INET6, raw[:16])
    return socket.inet_ntop(AF_INET, raw[:4])


def _flag_names(scheduler: str, flags: int) -> frozenset[str]:
    names = []
    for bit, n in ((F_SCHED1, 1), (F_SCHED2, 2), (F_SCHED3, 3)):
        if flags & bit:
            if scheduler in ("sh", "mh") and n < 3:
                names.append(f"{scheduler}-{'fallback' if n == 1 else 'port'}")
            else:
                names.append(f"flag-{n}")
    return frozenset(names)


def decode_service(payload: bytes) -> Service:
    """A GET_SERVICE reply (genlmsghdr + attributes) -> Service (as ipvsadm -Ln shows it)."""
    top = attributes(payload[4:])
    a = attributes(top.get(CMD_ATTR_SERVICE, b""))
    af = _u16(a, SVC_AF, AF_INET)
    v6 = af == AF_INET6
    sched = a.get(SVC_SCHED_NAME, b"").split(b"\0", 1)[0].decode("ascii", "replace")
    if SVC_FWMARK in a and _u32(a, SVC_FWMARK):
        svc = Service("fwmark", str(_u32(a, SVC_FWMARK)), 0, v6, sched)
    else:
        proto = _u16(a, SVC_PROTOCOL)
        svc = Service(PROTOCOL_NAMES.get(proto, str(proto)),
                      _addr_text(a.get(SVC_ADDR, b"\0" * 16), af), _port(a, SVC_PORT), v6, sched)
    raw_flags = a.get(SVC_FLAGS, b"\0" * 8)
    flags = int(struct.unpack("=I", raw_flags[:4])[0]) if len(raw_flags) >= 4 else 0
    svc.flags = _flag_names(sched, flags)
    svc.ops = bool(flags & F_ONEPACKET)
    if flags & F_PERSISTENT:
        svc.persistent = _u32(a, SVC_TIMEOUT)
        mask = a.get(SVC_NETMASK, b"")
        if len(mask) >= 4:
            if v6:
                bits = int(struct.unpack("=I", mask[:4])[0])
                svc.netmask = "" if bits in (0, 128) else str(bits)
            elif mask[:4] != b"\xff" * 4:
                svc.netmask = socket.inet_ntoa(mask[:4])
    svc.pe = a.get(SVC_PE_NAME, b"").split(b"\0", 1)[0].decode("ascii", "replace")
    return svc


def decode_dest(payload: bytes, svc_af: int) -> Dest:
    """A GET_DEST dump message (genlmsghdr + attributes) -> Dest with thresholds."""
    a = attributes(attributes(payload[4:]).get(CMD_ATTR_DEST, b""))
    af = _u16(a, DEST_ADDR_FAMILY, svc_af) or svc_af
    method = _u32(a, DEST_FWD_METHOD) & 7
    return Dest(_addr_text(a.get(DEST_ADDR, b"\0" * 16), af), _port(a, DEST_PORT),
                METHOD_NAMES.get(method, str(method)), _u32(a, DEST_WEIGHT),
                _u32(a, DEST_U_THRESH), _u32(a, DEST_L_THRESH))


# ----- the client -----------------------------------------------------------------------

class Client:
    """One netlink socket bound to the IPVS family.

    ``deadline`` bounds every wait (the socket timeout is what is left of it);
    ``trace``, when a list, receives ("send"|"recv", bytes) of all traffic
    (how tests/fixtures/ipvs_netlink/ was recorded).  Raises FamilyMissing
    when the kernel has no IPVS family, OSError when netlink is unusable.
    """

    BUFFER = 4 << 20  # socket buffers asked for (root may exceed rmem_max)

    def __init__(self, deadline: Deadline | None = None, trace: list[tuple[str, bytes]] | None
                 = None, sock: socket.socket | None = None, family: int | None = None) -> None:
        self.deadline = deadline
        self.trace = trace
        self.seq = 0
        if sock is None:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                 NETLINK_GENERIC)
            try:
                sock.bind((0, 0))
                self._buffers(sock)
            except OSError:
                sock.close()
                raise
        self.sock = sock
        rcv = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        snd = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        # every ack is one skb (~1 KiB of receive buffer each, error acks a bit more);
        # all acks of one sendmsg must fit, or the kernel drops them (ENOBUFS)
        self.batch = max(8, min(4096, rcv // 2048))
        self.batch_bytes = max(4096, min(1 << 20, snd // 2 - 256))
        try:
            self.family = self._resolve() if family is None else family
        except OSError:
            sock.close()
            raise

    @classmethod
    def _buffers(cls, sock: socket.socket) -> None:
        for force, plain in ((SO_SNDBUFFORCE, socket.SO_SNDBUF),
                             (SO_RCVBUFFORCE, socket.SO_RCVBUF)):
            try:
                sock.setsockopt(socket.SOL_SOCKET, force, cls.BUFFER)
            except OSError:
                sock.setsockopt(socket.SOL_SOCKET, plain, cls.BUFFER)
        for opt in (NETLINK_CAP_ACK, NETLINK_EXT_ACK):
            try:
                sock.setsockopt(SOL_NETLINK, opt, 1)
            except OSError:
                pass

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----- transport ------------------------------------------------------------------
    def _next(self, n: int = 1) -> int:
        first = self.seq + 1
        self.seq += n
        return first

    def _timeout(self) -> None:
        if self.deadline is not None:
            self.sock.settimeout(self.deadline.cap(None, "IPVS netlink"))

    def _send(self, data: bytes) -> None:
        if self.trace is not None:
            self.trace.append(("send", data))
        self._timeout()
        try:
            self.sock.send(data)
        except socket.timeout:
            raise self._late() from None

    def _recv(self) -> bytes:
        self._timeout()
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise self._late() from None
        if self.trace is not None:
            self.trace.append(("recv", data))
        return data

    @staticmethod
    def _late() -> Exception:
        from lsaa.errors import DeadlineExceeded

        return DeadlineExceeded("IPVS netlink: no answer from the kernel within the operation "
                                "timeout")

    def _resolve(self) -> int:
        seq = self._next()
        self._send(family_request(seq))
        while True:
            for kind, flags, got, payload in messages(self._recv()):
                if got != seq:
                    continue
                if kind == NLMSG_ERROR:
                    err, _ = error_of(flags, payload)
                    if err == _ENOENT:
                        raise FamilyMissing(err, "the kernel has no IPVS netlink family "
                                                 "(module ip_vs not loaded)")
                    raise NetlinkError(err, describe(GET_SERVICE, err))
                fid = _u16(attributes(payload[4:]), CTRL_ATTR_FAMILY_ID)
                if not fid:
                    raise NetlinkError(71, "no family id in the controller's answer")
                return fid

    # ----- operations -----------------------------------------------------------------
    def read(self, svc: Service) -> Service | None:
        """This one service with its destinations (kernel order), or None when absent."""
        seq = self._next(2)
        self._send(read_requests(self.family, svc, seq))
        found: Service | None = None
        dests: list[Dest] = []
        got_service = dump_done = False
        af = AF_INET6 if svc.ipv6 else AF_INET
        while not (got_service and dump_done):
            for kind, flags, got, payload in messages(self._recv()):
                if got == seq:
                    got_service = True
                    if kind == NLMSG_ERROR:
                        err, text = error_of(flags, payload)
                        if err and err != _ESRCH:
                            raise NetlinkError(err, describe(GET_SERVICE, err, text))
                    elif kind == self.family:
                        found = decode_service(payload)
                elif got == seq + 1:
                    if kind == NLMSG_DONE:
                        dump_done = True
                    elif kind == NLMSG_ERROR:
                        err, text = error_of(flags, payload)
                        dump_done = True
                        if err:
                            raise NetlinkError(err, describe(GET_DEST, err, text))
                    elif kind == self.family:
                        dests.append(decode_dest(payload, af))
        if found is not None:
            found.dests = dests
        return found

    def apply(self, changes: Sequence[Change]) -> list[tuple[int, int, str]]:
        """Send every change (batched), collect every ack: [(index, errno, words)] of failures.

        Like ``ipvsadm -R`` the kernel goes on after a failing request; unlike
        it, each failure is returned.
        """
        failures: list[tuple[int, int, str]] = []
        i = 0
        while i < len(changes):
            base = self.seq + 1
            chunks: list[bytes] = []
            size = 0
            j = i
            while j < len(changes) and j - i < self.batch:
                msg = request(self.family, changes[j], base + (j - i))
                if chunks and size + len(msg) > self.batch_bytes:
                    break
                chunks.append(msg)
                size += len(msg)
                j += 1
            self.seq += j - i
            self._send(b"".join(chunks))
            waiting = set(range(base, base + (j - i)))
            while waiting:
                try:
                    data = self._recv()
                except OSError as e:
                    if e.errno == 105:  # ENOBUFS: acks were dropped
                        raise NetlinkError(105, f"{len(waiting)} acknowledgements lost "
                                                "(netlink receive buffer full)") from None
                    raise
                for kind, flags, got, payload in messages(data):
                    if kind != NLMSG_ERROR or got not in waiting:
                        continue
                    waiting.discard(got)
                    err, text = error_of(flags, payload)
                    if err:
                        k = i + got - base
                        failures.append((k, err, describe(changes[k].cmd, err, text)))
            i = j
        failures.sort()
        return failures
