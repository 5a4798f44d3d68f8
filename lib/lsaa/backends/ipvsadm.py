"""ipvsadm 1.31 adapter: parse its listings, spell its commands.

Pure functions over text; the agent runs the commands through its runner.
Recorded outputs live in tests/fixtures/ipvsadm/ (captured in the lab kernel).

``ipvsadm -Ln [-t VIP:PORT]`` (the banner line only in the full listing)::

    IP Virtual Server version 1.2.1 (size=4096)
    Prot LocalAddress:Port Scheduler Flags
      -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
    TCP  192.0.2.10:443 sh (sh-fallback,sh-port) persistent 600 mask 255.255.255.0
      -> 10.0.0.11:443                Route   5      0          0
    FWM  11 IPv6 mh (mh-fallback,mh-port)
      -> [2001:db8::21]:0             Route   1      0          0

``ipvsadm -Ln --thresholds`` has the same service lines, and destination lines
``  -> 10.0.0.12:8080               100        10         0          0``
(upper, lower, active, inactive; no forwarding method nor weight).

``ipvsadm -S -n``: ``-A -t 192.0.2.10:80 -s wlc -p 300`` and
``-a -t 192.0.2.10:80 -r 10.0.0.11:80 -m -w 1`` (thresholds are not saved).
"""

from __future__ import annotations

TYPE_CHECKING = False  # see lsaa.errors
if TYPE_CHECKING:
    from collections.abc import Iterable

PROTOS = {"TCP": "tcp", "UDP": "udp", "SCTP": "sctp", "FWM": "fwmark"}
METHODS = {"Masq": "nat", "Route": "dr", "Local": "local", "Tunnel": "tun"}
METHOD_FLAG = {"nat": "-m", "dr": "-g", "tun": "-i"}
FLAG_METHOD = {"-m": "nat", "-g": "dr", "-i": "tun"}


class Dest:
    """One real server as listed: ``addr`` is canonical text (IPv6 without brackets)."""

    __slots__ = ("addr", "lower", "method", "port", "upper", "weight")

    def __init__(self, addr: str, port: int, method: str = "", weight: int = -1,
                 upper: int = 0, lower: int = 0) -> None:
        self.addr = addr
        self.port = port
        self.method = method
        self.weight = weight
        self.upper = upper
        self.lower = lower

    @property
    def key(self) -> tuple[str, int]:
        return (self.addr, self.port)

    def __repr__(self) -> str:
        return (f"Dest({self.addr!r}, {self.port}, {self.method!r}, w={self.weight}, "
                f"u={self.upper}, l={self.lower})")


class Service:
    """One virtual service: ``proto`` tcp|udp|sctp|fwmark; ``addr`` the VIP or the mark."""

    __slots__ = ("addr", "dests", "flags", "ipv6", "netmask", "ops", "pe", "persistent",
                 "port", "proto", "scheduler")

    def __init__(self, proto: str, addr: str, port: int, ipv6: bool, scheduler: str) -> None:
        self.proto = proto
        self.addr = addr
        self.port = port
        self.ipv6 = ipv6
        self.scheduler = scheduler
        self.flags: frozenset[str] = frozenset()
        self.persistent = 0  # seconds; 0 = not persistent
        self.netmask = ""  # as printed: dotted IPv4 or an IPv6 prefix length; "" = host
        self.pe = ""
        self.ops = False
        self.dests: list[Dest] = []

    @property
    def key(self) -> tuple[str, str, int, bool]:
        return (self.proto, self.addr, self.port, self.ipv6)

    def __repr__(self) -> str:
        return (f"Service({self.proto} {self.addr}:{self.port} v6={self.ipv6} "
                f"{self.scheduler} flags={sorted(self.flags)} p={self.persistent} "
                f"mask={self.netmask!r} ops={self.ops} dests={self.dests})")


def split_hostport(text: str) -> tuple[str, int]:
    """``10.0.0.1:80`` or ``[2001:db8::1]:80`` -> (address, port); ValueError otherwise."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or text[end + 1:end + 2] != ":":
            raise ValueError(f"bad address {text!r}")
        return text[1:end], int(text[end + 2:])
    host, sep, port = text.rpartition(":")
    if not sep:
        raise ValueError(f"bad address {text!r}")
    return host, int(port)


def _service_line(line: str) -> Service:
    words = line.split()
    proto = PROTOS[words[0]]
    i = 1
    if proto == "fwmark":
        addr, port = words[1], 0
        i = 2
        ipv6 = len(words) > 2 and words[2] == "IPv6"
        if ipv6:
            i = 3
    else:
        addr, port = split_hostport(words[1])
        ipv6 = words[1].startswith("[")
        i = 2
    svc = Service(proto, addr, port, ipv6, words[i] if i < len(words) else "")
    i += 1
    while i < len(words):
        w = words[i]
        if w.startswith("(") and w.endswith(")"):
            svc.flags = frozenset(f for f in w[1:-1].split(",") if f)
        elif w == "persistent" and i + 1 < len(words):
            svc.persistent = int(words[i + 1])
            i += 1
        elif w == "mask" and i + 1 < len(words):
            svc.netmask = words[i + 1]
            i += 1
        elif w == "pe" and i + 1 < len(words):
            svc.pe = words[i + 1]
            i += 1
        elif w == "ops":
            svc.ops = True
        i += 1
    return svc


def parse_list(text: str) -> list[Service]:
    """Services and real servers from ``ipvsadm -Ln`` or ``-Ln --thresholds``.

    With ``--thresholds`` each Dest has ``upper``/``lower`` set and ``weight`` -1.
    Headers are recognised by content, not counted (the banner comes and goes).
    """
    services: list[Service] = []
    thresholds = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("->"):
            words = line.split()
            if len(words) < 3 or words[1] == "RemoteAddress:Port" or not services:
                continue
            addr, port = split_hostport(words[1])
            if thresholds:
                d = Dest(addr, port, upper=int(words[2]), lower=int(words[3]))
            else:
                d = Dest(addr, port, METHODS.get(words[2], words[2]), int(words[3]))
            services[-1].dests.append(d)
            continue
        first = line.split(None, 1)[0]
        if first == "Prot":
            if "CPS" in line or "Conns" in line:
                raise ValueError("ipvsadm --rate/--stats output: not a service listing")
            thresholds = "Uthreshold" in line
            continue
        if first in PROTOS:
            services.append(_service_line(line))
    return services


def parse_save(text: str) -> list[Service]:
    """Services and real servers from ``ipvsadm -S -n`` (restorable lines)."""
    services: dict[tuple[str, str, int, bool], Service] = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) < 3 or words[0] not in ("-A", "-a"):
            continue
        opts: dict[str, str] = {}
        flags: set[str] = set()
        i = 1
        while i < len(words):
            w = words[i]
            if w in ("-6", "-o", "-m", "-g", "-i"):
                flags.add(w)
                i += 1
            else:
                opts[w] = words[i + 1] if i + 1 < len(words) else ""
                i += 2
        ipv6 = "-6" in flags
        if "-f" in opts:
            proto, addr, port = "fwmark", opts["-f"], 0
        else:
            flag = next(f for f in ("-t", "-u", "--sctp-service") if f in opts)
            proto = {"-t": "tcp", "-u": "udp", "--sctp-service": "sctp"}[flag]
            hostport = opts[flag]
            ipv6 = hostport.startswith("[")
            addr, port = split_hostport(hostport)
        key = (proto, addr, port, ipv6)
        if words[0] == "-A":
            svc = Service(proto, addr, port, ipv6, opts.get("-s", ""))
            svc.persistent = int(opts.get("-p", "0"))
            svc.netmask = opts.get("-M", "")
            svc.flags = frozenset(f for f in opts.get("-b", "").split(",") if f)
            svc.pe = opts.get("--pe", "")
            svc.ops = "-o" in flags
            services[key] = svc
        elif key in services:
            raddr, rport = split_hostport(opts["-r"])
            method = next((FLAG_METHOD[f] for f in ("-m", "-g", "-i") if f in flags), "dr")
            services[key].dests.append(Dest(raddr, rport, method, int(opts.get("-w", "1"))))
    return list(services.values())


def service_args(proto: str, addr: str, port: int, ipv6: bool) -> list[str]:
    """The words addressing one service: ``-t 192.0.2.1:80``, ``-f 10 -6``..."""
    if proto == "fwmark":
        return ["-f", addr] + (["-6"] if ipv6 else [])
    host = f"[{addr}]" if ipv6 else addr
    flag = {"tcp": "-t", "udp": "-u", "sctp": "--sctp-service"}[proto]
    return [flag, f"{host}:{port}"]


def dest_arg(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def restore_input(lines: Iterable[list[str]]) -> str:
    """Lines for one ``ipvsadm -R`` run (it splits on blanks; no quoting exists)."""
    return "".join(" ".join(words) + "\n" for words in lines)
