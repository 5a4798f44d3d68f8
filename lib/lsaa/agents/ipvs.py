"""ocf:lsaa:ipvs — one LVS virtual service, its real servers and their health checks.

One resource owns one kernel virtual service (``vip``+``port``+``protocol``, or
``fwmark``+``family``).  start and reload-agent read that one service, compute
the difference with the configuration and apply only that difference (never
``-C``, never a restore of the whole table), then read it back.  stop deletes
that service only.

Two backends do the reading and writing, chosen by the hidden ``backend``
parameter (default auto):

* netlink (lsaa.backends.ipvs_netlink), used whenever the kernel has the IPVS
  generic netlink family: the read is one GET_SERVICE plus one GET_DEST dump,
  the difference is sent as batched requests each acknowledged, so a refused
  request is reported by its entry; no child process at all.
* ipvsadm: ``ipvsadm -Ln -t VIP:PORT`` (+ ``--thresholds``), one ``ipvsadm -R``
  fed on stdin, ``ipvsadm -D``.  Used when the family is missing (ip_vs not
  loaded yet: ipvsadm loads it) or with backend=ipvsadm.

Both apply the same ``ipvsadm -R`` lines (plan()); the netlink backend turns
each into one request.  A recurring monitor reads the service, runs the health
checks (lsaa.healthcheck), and quiesces/removes/restores real servers through
the same diff.  Every read-diff-apply holds the node-wide "ipvs" lock.

``ipvsadm -R`` keeps going after a failing line and exits 0 (live, 1.31: a
``-d`` of a missing destination prints "No such destination", rc 0), so
success is decided by reading the service back, never by the exit code.
"""

from __future__ import annotations

import os

from lsaa.errors import ConfigError, GenericError, NotInstalledError
from lsaa.ocf import OCF_NOT_RUNNING, OCF_SUCCESS
from lsaa.ocf.agent import Agent, Context
from lsaa.ocf.spec import Action, AgentSpec, Param

TYPE_CHECKING = False  # see lsaa.errors
if TYPE_CHECKING:
    from lsaa.backends.ipvs_netlink import Change as IpvsChange
    from lsaa.backends.ipvs_netlink import Client as IpvsClient
    from lsaa.backends.ipvsadm import Dest, Service
    from lsaa.healthcheck import Check, Health

SCHEDULERS = ("rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf",
              "mh", "twos")
SCHED_FLAGS = {"sh-fallback": "sh", "sh-port": "sh", "mh-fallback": "mh", "mh-port": "mh"}
METHOD_WORDS = {"nat": "nat", "masq": "nat", "m": "nat", "dr": "dr", "route": "dr",
                "gate": "dr", "direct": "dr", "g": "dr", "tun": "tun", "tunnel": "tun",
                "ipip": "tun", "i": "tun"}
OPTION_KEYS = {"weight": "weight", "w": "weight", "method": "method", "m": "method",
               "upper": "upper", "u": "upper", "x": "upper", "lower": "lower", "l": "lower",
               "y": "lower"}
MAX_SERVERS = 10000
MAX_THRESHOLD = 2147483647


def _show(text: str, limit: int = 40) -> str:
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return '"' + text.encode("ascii", "backslashreplace").decode("ascii") + '"'


def canonical_address(text: str) -> tuple[str, bool]:
    """(canonical text, is IPv6) of a unicast IP address; ValueError otherwise."""
    if not text or "%" in text or text.strip() != text:
        raise ValueError("invalid address")
    parts = text.split(".")
    if len(parts) == 4 and all(p.isascii() and p.isdigit() for p in parts):
        # fast path for dotted IPv4 (1,000 entries per monitor): same rules as ipaddress
        if any(len(p) > 3 or (len(p) > 1 and p[0] == "0") or int(p) > 255 for p in parts):
            raise ValueError("invalid address")
        if text in ("0.0.0.0", "255.255.255.255") or 224 <= int(parts[0]) <= 239:  # noqa: S104
            raise ValueError("not a unicast address")
        return text, False
    import ipaddress

    try:
        a = ipaddress.ip_address(text)
    except ValueError:
        raise ValueError("invalid address") from None
    if a.is_unspecified or a.is_multicast or (a.version == 4 and str(a) == "255.255.255.255"):
        raise ValueError("not a unicast address")
    return str(a), a.version == 6


def _vip(raw: str) -> str:
    return canonical_address(raw.strip())[0]


def _number(text: str, low: int, high: int, what: str) -> int:
    if not text or len(text) > 10 or any(c not in "0123456789" for c in text):
        raise ValueError(f"invalid {what} {_show(text, 16)}")
    n = int(text)
    if n < low or n > high:
        raise ValueError(f"{what} {n} out of range {low}-{high}")
    return n


def _timeout(raw: str) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise ValueError(f"{_show(raw)} is not a number of seconds") from None
    if not 0.05 <= value <= 300:
        raise ValueError(f"{value:g} is not between 0.05 and 300 seconds")
    return value


def _statuses(raw: str) -> tuple[int, ...]:
    codes: list[int] = []
    for part in raw.replace(" ", "").split(","):
        low, sep, high = part.partition("-")
        a = _number(low, 100, 599, "HTTP status")
        b = _number(high, 100, 599, "HTTP status") if sep else a
        if b < a or b - a > 500:
            raise ValueError(f"invalid status range {_show(part, 16)}")
        codes.extend(range(a, b + 1))
    return tuple(codes)


def _attr_name(raw: str) -> str:
    ok = all(c.isascii() and (c.isalnum() or c in "_-.") for c in raw)
    if not raw or not ok or len(raw) > 100 or raw[0] in "-.":
        raise ValueError(f"{_show(raw)} is not a valid attribute name (letters, digits, _ - .)")
    return raw


def _flags(raw: str) -> str:
    words = [w for w in raw.replace(" ", ",").split(",") if w]
    for w in words:
        if w not in SCHED_FLAGS:
            raise ValueError(f"unknown flag {_show(w, 20)} (use {', '.join(SCHED_FLAGS)})")
    return ",".join(sorted(set(words)))


REAL_SERVERS_DOC = (
    "Real servers, separated by blanks or new lines. Each entry is ADDRESS[:PORT][/OPTIONS]: "
    "an IPv4 address, or an IPv6 address in brackets when a port follows "
    "([2001:db8::5]:80). The port defaults to the service port; with dr and tun the kernel "
    "always uses the service port, so another one is refused. OPTIONS is a comma-separated "
    "list of weight=N (0-65535; 0 = quiescent; default: the weight parameter), "
    "method=nat|dr|tun (default: the method parameter; masq, route, gate, tunnel, ipip are "
    "accepted too), upper=N and lower=N (connection thresholds; u= and l= for short). "
    'Examples: real_servers="10.0.0.2:8080 10.0.0.3:8080/weight=2" ; '
    'real_servers="10.0.0.2 10.0.0.3/weight=3,method=dr" (dr, service port) ; '
    'real_servers="[2001:db8::5]:80 [2001:db8::6]:80/w=2,u=500,l=400". '
    "Every entry is checked before anything is applied; an invalid one is reported as "
    'real_servers: entry 3 "10.0.0.300:80": invalid address.')

SPEC = AgentSpec(
    name="ipvs",
    shortdesc="LVS virtual service with real servers and health checks",
    longdesc=(
        "Manages one IPVS (Linux Virtual Server) virtual service on this node: the service "
        "(vip, port and protocol, or fwmark and family), its scheduler and persistence, and "
        "its real servers. start creates the service or converges an existing one, applying "
        "only the differences; other virtual services are never touched. stop deletes this "
        "service only. The recurring monitor checks that the service exists with the "
        "configured scheduler, flags and persistence (a difference there fails the monitor), "
        "puts real servers back the way they are configured, and with check_type set runs "
        "health checks in parallel: a server failing failure_count checks in a row is "
        "quiesced (weight 0) or removed (on_failure), and restored with its configured "
        "weight after recovery_count good checks. sorry_server is added while every real "
        "server is down. node_attribute publishes the number of healthy servers as a "
        "transient node attribute for location rules. Typical use: "
        "pcs resource create web ocf:lsaa:ipvs vip=192.0.2.10 port=80 scheduler=wrr "
        'real_servers="10.0.0.2:8080 10.0.0.3:8080/weight=2" check_type=http check_path=/health '
        "op monitor interval=10s, grouped after the IPaddr2 resource of the VIP. "
        "Connections to a removed server persist until they expire unless "
        "net.ipv4.vs.expire_nodest_conn=1 (UDP especially); quiescing keeps established "
        "connections and sends no new ones. Direct routing and tunnelling need the VIP on "
        "the real servers' loopback with arp_ignore=1 and arp_announce=2; NAT needs "
        "net.ipv4.ip_forward=1 here and this node as the real servers' gateway."),
    params=[
        Param("vip", "Virtual IP address", "Virtual IPv4 or IPv6 address of the service "
              "(without brackets). Set vip, port and protocol, or fwmark.", check=_vip,
              unique_group="service"),
        Param("port", "Virtual port", "Port of the service (0 = all ports, which needs "
              "persistent).", type="integer", minimum=0, maximum=65535, unique_group="service"),
        Param("protocol", "Protocol", "Protocol of the service.", choices=("tcp", "udp", "sctp"),
              default="tcp", unique_group="service"),
        Param("fwmark", "Firewall mark", "Firewall mark of the service (instead of vip and "
              "port).", type="integer", minimum=1, maximum=4294967295, unique_group="mark"),
        Param("family", "Address family of a fwmark service", "ipv4 or ipv6 (fwmark services "
              "only).", choices=("ipv4", "ipv6"), default="ipv4", unique_group="mark"),
        Param("real_servers", "Real servers", REAL_SERVERS_DOC, required=True, reloadable=True),
        Param("scheduler", "Scheduler", "Scheduling algorithm; each needs the kernel module "
              "ip_vs_<scheduler> (twos exists from Linux 6.2).", choices=SCHEDULERS,
              default="wlc", reloadable=True),
        Param("scheduler_flags", "Scheduler flags", "Comma-separated: sh-fallback, sh-port "
              "(scheduler sh), mh-fallback, mh-port (scheduler mh).", check=_flags,
              reloadable=True),
        Param("persistent", "Persistence timeout", "Seconds a client sticks to its real "
              "server (0 = no persistence).", type="integer", minimum=0, maximum=2678400,
              default="0", reloadable=True),
        Param("netmask", "Persistence netmask", "Clients in one network share persistence: "
              "a dotted IPv4 netmask or a prefix length (IPv6: 1-128). Needs persistent.",
              reloadable=True),
        Param("one_packet", "One-packet scheduling", "Schedule each UDP datagram on its own "
              "(UDP only).", type="boolean", default="false", reloadable=True, advanced=True),
        Param("method", "Default forwarding method", "nat (masquerading), dr (direct "
              "routing) or tun (IP-in-IP), for entries without method=.",
              choices=("nat", "dr", "tun"), default="nat", reloadable=True),
        Param("weight", "Default weight", "Weight of entries without weight=.",
              type="integer", minimum=0, maximum=65535, default="1", reloadable=True),
        Param("check_type", "Health check", "none, tcp (connect), http or https (GET "
              "check_path; status in check_status; body containing check_expect).",
              choices=("none", "tcp", "http", "https"), default="none", reloadable=True),
        Param("check_port", "Health check port", "Port to check (default: the real "
              "server's port).", type="integer", minimum=1, maximum=65535, reloadable=True),
        Param("check_path", "HTTP path", "Path requested by http/https checks.", default="/",
              reloadable=True),
        Param("check_host", "HTTP Host header", "Host header (and TLS server name) of "
              "http/https checks (default: the server's address).", reloadable=True),
        Param("check_status", "Expected HTTP status", "Accepted status codes: a list and "
              "ranges, e.g. 200,301-302.", default="200", check=_statuses, reloadable=True),
        Param("check_expect", "Expected content", "A substring (or with check_regex a "
              "regular expression) the response body must contain.", reloadable=True),
        Param("check_regex", "check_expect is a regex", "Treat check_expect as a Python "
              "regular expression.", type="boolean", default="false", reloadable=True),
        Param("check_verify", "Verify TLS certificates", "Verify the https server's "
              "certificate and name (off by default, like ldirectord).", type="boolean",
              default="false", reloadable=True),
        Param("check_timeout", "Health check timeout", "Seconds for one check (connect, "
              "request and reply). All checks run in parallel within the monitor timeout.",
              default="3", check=_timeout, reloadable=True),
        Param("failure_count", "Failures before down", "Consecutive failed checks before a "
              "server is quiesced or removed.", type="integer", minimum=1, maximum=1000,
              default="2", reloadable=True),
        Param("recovery_count", "Successes before up", "Consecutive good checks before a "
              "down server gets its weight back.", type="integer", minimum=1, maximum=1000,
              default="2", reloadable=True),
        Param("on_failure", "What happens to a failed server", "quiesce (weight 0: existing "
              "connections continue, new ones go elsewhere) or remove.",
              choices=("quiesce", "remove"), default="quiesce", reloadable=True),
        Param("sorry_server", "Fallback server", "One entry in the real_servers syntax, "
              "added while every real server is down (needs check_type).", reloadable=True),
        Param("node_attribute", "Node attribute for the healthy count", "If set, the number "
              "of healthy real servers is published under this name as a transient node "
              "attribute (crm_attribute --lifetime reboot), only when it changes.",
              check=_attr_name, reloadable=True),
        Param("backend", "Kernel interface", "auto (netlink when the kernel's IPVS generic "
              "netlink family is present, ipvsadm otherwise), netlink or ipvsadm (always run "
              "ipvsadm). For tests and comparisons; the result is the same.",
              choices=("auto", "netlink", "ipvsadm"), default="auto", reloadable=True,
              advanced=True),
    ],
    actions=[
        Action("start", 30),
        Action("stop", 30),
        Action("monitor", 30, interval=10, depth=0),
        Action("reload-agent", 30),
        Action("validate-all", 20),
        Action("meta-data", 5),
    ],
)


class Config:
    """The validated configuration: the wanted service and its wanted real servers."""

    def __init__(self, service: Service, servers: list[Dest], sorry: Dest | None,
                 check: Check | None, check_port: int | None, on_failure: str = "quiesce",
                 ) -> None:
        self.on_failure = on_failure
        self.service = service
        self.servers = servers
        self.sorry = sorry
        self.check = check
        self.check_port = check_port

    @property
    def svc_args(self) -> list[str]:
        from lsaa.backends.ipvsadm import service_args

        s = self.service
        return service_args(s.proto, s.addr, s.port, s.ipv6)

    def service_words(self) -> list[str]:
        """Options of -A/-E after the service address."""
        s = self.service
        words = ["-s", s.scheduler]
        if s.persistent:
            words += ["-p", str(s.persistent)]
            if s.netmask:
                words += ["-M", s.netmask]
        if s.flags:
            words += ["-b", ",".join(sorted(s.flags))]
        if s.ops:
            words.append("-o")
        return words

    def target(self, d: Dest) -> tuple[str, int]:
        return (d.addr, self.check_port or d.port)


def _host(host: str) -> tuple[str, bool, int | None]:
    """``ADDR``, ``ADDR:PORT``, ``[V6]``, ``[V6]:PORT`` or a bare IPv6 address."""
    if host.startswith("["):
        end = host.find("]")
        if end < 0:
            raise ValueError("missing ]")
        rest = host[end + 1:]
        if rest and not rest.startswith(":"):
            raise ValueError("expected :PORT after ]")
        addr, v6 = canonical_address(host[1:end])
        if not v6:
            raise ValueError("brackets are for IPv6 addresses")
        return addr, v6, _number(rest[1:], 0, 65535, "port") if rest else None
    if host.count(":") == 1:
        addr_text, _, port_text = host.partition(":")
        addr, v6 = canonical_address(addr_text)
        return addr, v6, _number(port_text, 0, 65535, "port")
    addr, v6 = canonical_address(host)
    return addr, v6, None


def _options(options: str) -> dict[str, str]:
    if not options:
        raise ValueError("empty options after /")
    seen: dict[str, str] = {}
    for opt in options.split(","):
        key, eq, value = opt.partition("=")
        name = OPTION_KEYS.get(key.lower())
        if name is None or not eq:
            raise ValueError(f"unknown option {_show(opt, 20)} (weight=, method=, upper=, "
                             "lower=)")
        if name in seen:
            raise ValueError(f"{name} given twice")
        seen[name] = value
    return seen


def parse_entry(text: str, svc_port: int, svc_v6: bool, method: str, weight: int,
                fwmark: bool) -> Dest:
    """One real_servers entry -> Dest; ValueError says what is wrong (without the entry)."""
    from lsaa.backends.ipvsadm import Dest

    host, slash, options = text.partition("/")
    addr, v6, port = _host(host)
    if v6 != svc_v6:
        raise ValueError(f"IPv{6 if v6 else 4} server in an IPv{6 if svc_v6 else 4} service")
    seen = _options(options) if slash else {}
    if "method" in seen:
        m = METHOD_WORDS.get(seen["method"].lower())
        if m is None:
            raise ValueError(f"unknown method {_show(seen['method'], 16)} (nat, dr, tun)")
        method = m
    if "weight" in seen:
        weight = _number(seen["weight"], 0, 65535, "weight")
    upper = _number(seen["upper"], 0, MAX_THRESHOLD, "upper threshold") if "upper" in seen else 0
    lower = _number(seen["lower"], 0, MAX_THRESHOLD, "lower threshold") if "lower" in seen else 0
    if upper and lower > upper:
        raise ValueError("lower threshold above upper")
    if method != "nat":
        if port is not None and port != svc_port:
            where = "the fwmark service's port 0" if fwmark else f"the service port {svc_port}"
            raise ValueError(f"with method {method} the port must be {where}")
        port = svc_port
    elif port is None:
        port = svc_port
    return Dest(addr, port, method, weight, upper, lower)


def _netmask(raw: str, v6: bool) -> str:
    """Canonical netmask as ipvsadm prints it ("" for a host mask)."""
    text = raw.strip().lstrip("/")
    if v6:
        bits = _number(text, 1, 128, "IPv6 prefix length")
        return "" if bits == 128 else str(bits)
    if "." in text:
        import ipaddress

        try:
            bits = ipaddress.IPv4Network(f"0.0.0.0/{text}").prefixlen
        except ValueError:
            raise ValueError(f"{_show(raw)} is not a contiguous netmask") from None
    else:
        bits = _number(text, 1, 32, "prefix length")
    if bits == 32:
        return ""
    value = (0xFFFFFFFF << (32 - bits)) & 0xFFFFFFFF
    return ".".join(str((value >> s) & 255) for s in (24, 16, 8, 0))


def build_config(ctx: Context) -> tuple[Config | None, list[str]]:  # noqa: PLR0912, PLR0915
    """Parse and cross-check every parameter; (config, problems)."""
    from lsaa.backends.ipvsadm import Service
    from lsaa.healthcheck import Check

    p = ctx.p
    problems: list[str] = []
    vip, port, fwmark = p("vip"), p("port"), p("fwmark")
    if fwmark is not None:
        if vip is not None or port is not None:
            problems.append("fwmark: set either fwmark or vip and port, not both")
        svc = Service("fwmark", str(fwmark), 0, p("family") == "ipv6", str(p("scheduler")))
    else:
        if vip is None:
            problems.append("vip: required parameter is not set (or set fwmark)")
        if port is None:
            problems.append("port: required parameter is not set (or set fwmark)")
        if problems:
            return None, problems
        svc = Service(str(p("protocol")), str(vip), int(str(port)), ":" in str(vip),
                      str(p("scheduler")))
    svc.persistent = int(str(p("persistent")))
    flags = str(p("scheduler_flags") or "")
    svc.flags = frozenset(f for f in flags.split(",") if f)
    for f in sorted(svc.flags):
        if SCHED_FLAGS[f] != svc.scheduler:
            problems.append(f"scheduler_flags: {f} needs scheduler {SCHED_FLAGS[f]}")
    if p("netmask") is not None:
        if not svc.persistent:
            problems.append("netmask: needs persistent")
        try:
            svc.netmask = _netmask(str(p("netmask")), svc.ipv6)
        except ValueError as e:
            problems.append(f"netmask: {e}")
    if p("one_packet"):
        if svc.proto != "udp":
            problems.append("one_packet: only for protocol udp")
        svc.ops = True
    if svc.proto != "fwmark" and svc.port == 0 and not svc.persistent:
        problems.append("port: 0 (all ports) needs persistent")
    method, weight = str(p("method")), int(str(p("weight")))
    is_fwm = svc.proto == "fwmark"
    servers = []
    seen: dict[tuple[str, int], int] = {}
    entries = str(p("real_servers") or "").split()
    if not entries:
        problems.append("real_servers: no entry")
    if len(entries) > MAX_SERVERS:
        problems.append(f"real_servers: {len(entries)} entries (at most {MAX_SERVERS})")
        entries = []
    for i, text in enumerate(entries, 1):
        try:
            d = parse_entry(text, svc.port, svc.ipv6, method, weight, is_fwm)
        except ValueError as e:
            problems.append(f"real_servers: entry {i} {_show(text)}: {e}")
            continue
        if d.key in seen:
            problems.append(f"real_servers: entry {i} {_show(text)}: same server as entry "
                            f"{seen[d.key]}")
            continue
        seen[d.key] = i
        servers.append(d)
    sorry = None
    raw_sorry = p("sorry_server")
    if raw_sorry is not None:
        words = str(raw_sorry).split()
        try:
            if len(words) != 1:
                raise ValueError("must be exactly one entry")
            sorry = parse_entry(words[0], svc.port, svc.ipv6, method, weight, is_fwm)
            if sorry.key in seen:
                raise ValueError("is also a real server")
        except ValueError as e:
            problems.append(f"sorry_server: {_show(str(raw_sorry))}: {e}")
    kind = str(p("check_type"))
    check = None
    check_port = p("check_port")
    if kind != "none":
        expect = str(p("check_expect") or "")
        if expect and p("check_regex"):
            import re

            try:
                re.compile(expect)
            except re.error as e:
                problems.append(f"check_expect: invalid regular expression: {e}")
        path = str(p("check_path"))
        if not path.startswith("/") or any(c.isspace() or ord(c) < 32 for c in path):
            problems.append(f"check_path: {_show(path)} must start with / and hold no blanks")
        host = str(p("check_host") or "")
        if any(c.isspace() or ord(c) < 32 or c == "/" for c in host):
            problems.append(f"check_host: {_show(host)} is not a host name")
        if check_port is None and any(d.port == 0 for d in servers):
            problems.append("check_port: required to check servers on port 0")
        check = Check(kind, float(str(p("check_timeout"))), path=path, host=host,
                      statuses=p("check_status"),  # type: ignore[arg-type]
                      expect=expect, regex=bool(p("check_regex")), verify=bool(p("check_verify")))
    elif sorry is not None:
        problems.append("sorry_server: needs check_type (it is used when checks fail)")
    if problems:
        return None, problems
    return Config(svc, servers, sorry, check,
                  int(str(check_port)) if check_port is not None else None,
                  str(p("on_failure"))), []


def kernel_module_present(name: str) -> bool | None:
    """Is kernel module ``name`` loaded, built in or installable?  None: cannot tell."""
    if os.path.isdir(f"/sys/module/{name}"):
        return True
    base = f"/lib/modules/{os.uname().release}"
    found = None
    for index in ("modules.dep", "modules.builtin"):
        try:
            with open(os.path.join(base, index), encoding="utf-8", errors="replace") as f:
                text = f.read()
        except OSError:
            continue
        found = False
        for suffix in (".ko:", ".ko.xz:", ".ko.zst:", ".ko.gz:", ".ko\n", ".ko"):
            if f"/{name}{suffix}" in text:
                return True
    return found


def plan(cfg: Config, cur: Service | None, want: list[Dest], thresholds: bool,  # noqa: PLR0912
         service_too: bool = True) -> tuple[list[list[str]], list[str]]:
    """ipvsadm -R lines taking ``cur`` to the configuration; and what differs, in words.

    Additions and edits come before deletions, so the service never loses
    every server on the way.  ``thresholds``: ``cur`` carries read thresholds.
    """
    from lsaa.backends.ipvsadm import METHOD_FLAG, dest_arg

    sa = cfg.svc_args
    lines: list[list[str]] = []
    diffs: list[str] = []
    if cur is None:
        lines.append(["-A", *sa, *cfg.service_words()])
        have: dict[tuple[str, int], Dest] = {}
    else:
        if service_too:
            diffs += service_differences(cfg.service, cur)
            if diffs:
                lines.append(["-E", *sa, *cfg.service_words()])
        have = {d.key: d for d in cur.dests}
    deletes = []
    wanted = {d.key for d in want}
    for d in want:
        words = ["-r", dest_arg(d.addr, d.port), METHOD_FLAG[d.method], "-w", str(d.weight)]
        if d.upper or d.lower:
            words += ["-x", str(d.upper), "-y", str(d.lower)]
        old = have.get(d.key)
        if old is None:
            lines.append(["-a", *sa, *words])
            if cur is not None:
                diffs.append(f"{dest_arg(d.addr, d.port)} missing")
            continue
        why = []
        if old.method not in (d.method, "local"):
            why.append(f"method {old.method}")
        if old.weight != d.weight:
            why.append(f"weight {old.weight}->{d.weight}")
        if thresholds and (old.upper, old.lower) != (d.upper, d.lower):
            why.append(f"thresholds {old.upper}/{old.lower}")
        if why:
            lines.append(["-e", *sa, *words])
            diffs.append(f"{dest_arg(d.addr, d.port)} {', '.join(why)}")
    for key, old in have.items():
        if key not in wanted:
            deletes.append(["-d", *sa, "-r", dest_arg(old.addr, old.port)])
            diffs.append(f"{dest_arg(old.addr, old.port)} not configured")
    return lines + deletes, diffs


def service_differences(want: Service, cur: Service) -> list[str]:
    out = []
    if cur.scheduler != want.scheduler:
        out.append(f"scheduler {cur.scheduler} (configured {want.scheduler})")
    if cur.flags != want.flags:
        out.append(f"flags {','.join(sorted(cur.flags)) or 'none'}")
    if cur.persistent != want.persistent:
        out.append(f"persistent {cur.persistent} (configured {want.persistent})")
    if want.persistent and cur.netmask != want.netmask:
        out.append(f"netmask {cur.netmask or 'host'}")
    if cur.ops != want.ops:
        out.append(f"one-packet {'on' if cur.ops else 'off'}")
    return out


class Ipvs(Agent):
    spec = SPEC

    # ----- configuration -------------------------------------------------------------
    def config(self, ctx: Context) -> Config:
        cfg = getattr(ctx, "lsaa_ipvs_config", None)
        if cfg is None:
            cfg, problems = build_config(ctx)
            if cfg is None:
                raise ConfigError(problems)
            setattr(ctx, "lsaa_ipvs_config", cfg)  # noqa: B010 - Context has no slot for it
        return cfg

    def validate(self, ctx: Context) -> list[str]:
        cfg, problems = build_config(ctx)
        if cfg is not None:
            setattr(ctx, "lsaa_ipvs_config", cfg)  # noqa: B010
        return problems

    def check_local(self, ctx: Context) -> None:
        import shutil

        from lsaa.run import PATH

        if self.netlink(ctx) is None and shutil.which("ipvsadm", path=PATH) is None:
            raise NotInstalledError("ipvsadm is not installed")
        sched = self.config(ctx).service.scheduler
        for module in ("ip_vs", f"ip_vs_{sched}"):
            if kernel_module_present(module) is False:
                raise NotInstalledError(f"scheduler {sched}: kernel module {module} not found")

    # ----- backends ------------------------------------------------------------------
    def netlink(self, ctx: Context) -> IpvsClient | None:
        """The netlink client of this action, or None: use ipvsadm.

        With backend=netlink a kernel without the IPVS family raises
        NotInstalledError; with auto it means ipvsadm (which loads ip_vs).
        """
        if hasattr(ctx, "lsaa_ipvs_netlink"):
            client: IpvsClient | None = getattr(ctx, "lsaa_ipvs_netlink")  # noqa: B009
            return client
        mode = str(ctx.p("backend") or "auto")
        client = None
        setattr(ctx, "lsaa_ipvs_family_missing", False)  # noqa: B010
        if mode != "ipvsadm":
            client = open_netlink(ctx, mode == "netlink")
        setattr(ctx, "lsaa_ipvs_netlink", client)  # noqa: B010
        return client

    def read(self, ctx: Context, cfg: Config, thresholds: bool) -> Service | None:
        """This one service as the kernel has it (None: absent).

        Without ``thresholds`` the real servers' thresholds read as 0 (what the
        ipvsadm listing without --thresholds gives), whichever backend reads.
        """
        nl = self.netlink(ctx)
        if nl is not None:
            from lsaa.backends.ipvs_netlink import NetlinkError

            try:
                svc = nl.read(cfg.service)
            except NetlinkError as e:
                raise GenericError(f"reading the service over netlink failed: {e.strerror}"
                                   ) from None
            if svc is not None and not thresholds:
                for d in svc.dests:
                    d.upper = d.lower = 0
            return svc
        from lsaa.backends.ipvsadm import parse_list

        r = ctx.runner.run(["ipvsadm", "-Ln", *cfg.svc_args], ok=(0, 1, 2))
        if r.rc != 0:
            return self._absent(r.rc, r.stderr)
        found = parse_list(r.stdout)
        if len(found) != 1:
            raise GenericError(f"ipvsadm -Ln listed {len(found)} services for one")
        svc = found[0]
        if thresholds:
            t = ctx.runner.run(["ipvsadm", "-Ln", "--thresholds", *cfg.svc_args], ok=(0, 1))
            limits = {d.key: d for s in parse_list(t.stdout) for d in s.dests}
            for d in svc.dests:
                if d.key in limits:
                    d.upper, d.lower = limits[d.key].upper, limits[d.key].lower
        return svc

    @staticmethod
    def _absent(rc: int, stderr: str) -> None:
        if rc == 1 or "No such service" in stderr:
            return
        if "Can't initialize ipvs" in stderr or "Protocol not available" in stderr:
            raise NotInstalledError("IPVS is not available in this kernel (module ip_vs)")
        last = stderr.strip().splitlines()[-1:] or [f"rc {rc}"]
        raise GenericError(f"ipvsadm -Ln failed: {last[0]}")

    def apply(self, ctx: Context, cfg: Config, lines: list[list[str]]) -> str:
        """Apply plan() lines; the errors as text, one line each (read back to judge)."""
        nl = self.netlink(ctx)
        if nl is not None:
            return self.apply_netlink(ctx, cfg, nl, lines)
        from lsaa.backends.ipvsadm import restore_input

        r = ctx.runner.run(["ipvsadm", "-R"], input=restore_input(lines), ok=(0, 1, 2, 255))
        errors = r.stderr.strip()
        if "Scheduler or persistence engine not found" in errors:
            sched = cfg.service.scheduler
            raise NotInstalledError(f"scheduler {sched}: kernel module ip_vs_{sched} not found")
        if "Can't initialize ipvs" in errors:
            raise NotInstalledError("IPVS is not available in this kernel (module ip_vs)")
        if errors:
            ctx.log.warning(f"ipvsadm -R: {' / '.join(errors.splitlines()[:5])}")
        return errors

    def apply_netlink(self, ctx: Context, cfg: Config, nl: IpvsClient,
                      lines: list[list[str]]) -> str:
        """The same lines as netlink requests; each refused one named by its line."""
        from lsaa.backends.ipvs_netlink import NetlinkError

        changes = netlink_changes(cfg, lines)
        try:
            failures = nl.apply(changes)
        except NetlinkError as e:
            raise GenericError(f"applying over netlink failed: {e.strerror}") from None
        errors = "\n".join(f"{' '.join(lines[i])}: {words}" for i, _err, words in failures)
        if any("Scheduler or persistence engine not found" in w for _i, _e, w in failures):
            sched = cfg.service.scheduler
            raise NotInstalledError(f"scheduler {sched}: kernel module ip_vs_{sched} not found")
        if failures:
            more = f" (+{len(failures) - 5} more)" if len(failures) > 5 else ""
            ctx.log.warning(f"IPVS netlink: {' / '.join(errors.splitlines()[:5])}{more}")
        return errors

    # ----- state ---------------------------------------------------------------------
    def load_state(self, ctx: Context, cfg: Config) -> tuple[dict[str, Health], int | None]:
        import json

        from lsaa.healthcheck import Health

        data: dict[str, object] = {}
        try:
            with open(ctx.state_file("health"), encoding="utf-8") as f:
                loaded = json.load(f)
            if isinstance(loaded, dict):
                data = loaded
        except (OSError, ValueError):
            pass
        raw = data.get("servers")
        raw = raw if isinstance(raw, dict) else {}
        health = {}
        for d in cfg.servers:
            k = f"{d.addr} {d.port}"
            health[k] = Health.from_json(raw.get(k))
        pub = data.get("published")
        return health, pub if isinstance(pub, int) else None

    def save_state(self, ctx: Context, health: dict[str, Health], published: int | None) -> None:
        import json

        path = ctx.state_file("health")
        data = {"servers": {k: h.to_json() for k, h in health.items()}, "published": published}
        try:
            os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
            tmp = f"{path}.{os.getpid()}"
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(data, f)
            os.replace(tmp, path)
        except OSError as e:
            ctx.log.warning(f"cannot save health state {path}: {e.strerror}")

    def wanted(self, cfg: Config, health: dict[str, Health]) -> list[Dest]:
        """Real servers as they should be now: health applied, sorry server if all down."""
        from lsaa.backends.ipvsadm import Dest

        if cfg.check is None:
            return cfg.servers
        out = []
        up = 0
        for d in cfg.servers:
            h = health.get(f"{d.addr} {d.port}")
            if h is not None and h.down:
                if ctx_quiesce(cfg):
                    out.append(Dest(d.addr, d.port, d.method, 0, d.upper, d.lower))
            else:
                up += 1
                out.append(d)
        if up == 0 and cfg.sorry is not None and cfg.servers:
            out.append(cfg.sorry)
        return out

    # ----- converge ------------------------------------------------------------------
    def converge(self, ctx: Context, cfg: Config, health: dict[str, Health], *,
                 create: bool, full: bool) -> Service | None:
        """Read, diff, apply, read back (under the ipvs lock).  None: absent, not created.

        ``full``: also read thresholds and edit service attributes (start, reload).
        """
        from lsaa.lock import Lock

        want = self.wanted(cfg, health)
        need_thresholds = any(d.upper or d.lower for d in want)
        with Lock(ctx.state_dir, "ipvs", ctx.deadline):
            cur = self.read(ctx, cfg, full or need_thresholds)
            if cur is None and not create:
                return None
            had_thresholds = cur is not None and any(d.upper or d.lower for d in cur.dests)
            lines, diffs = plan(cfg, cur, want, full or need_thresholds, service_too=full)
            if not lines:
                return cur
            if cur is not None and diffs:
                ctx.log.info(f"converging: {'; '.join(diffs[:10])}"
                             + (f" (+{len(diffs) - 10} more)" if len(diffs) > 10 else ""))
            errors = self.apply(ctx, cfg, lines)
            after = self.read(ctx, cfg, need_thresholds or had_thresholds)
        if after is None:
            raise GenericError("service not created" + (f": {errors.splitlines()[0]}"
                                                       if errors else ""))
        problems = service_differences(cfg.service, after)
        left, dest_diffs = plan(cfg, after, want, need_thresholds or had_thresholds,
                                service_too=False)
        if problems or left:
            what = (problems + dest_diffs)[:3]
            raise GenericError(f"service still differs ({'; '.join(what)})"
                               + (f": {errors.splitlines()[0]}" if errors else ""))
        return after

    def publish(self, ctx: Context, health: dict[str, Health], published: int | None) -> int | None:
        attr = ctx.p("node_attribute")
        if attr is None:
            return published
        count = sum(1 for h in health.values() if not h.down)
        if count == published:
            return published
        from lsaa.errors import AgentError

        try:
            ctx.runner.run(["crm_attribute", "--node", ctx.node_name, "--name", str(attr),
                            "--lifetime", "reboot", "--update", str(count)], timeout=10)
        except AgentError as e:
            # The service itself is fine: failing the action would make Pacemaker
            # restart the load balancer over a node attribute.  Not recorded as
            # published, so the next monitor tries again.
            ctx.log.warning(f"cannot publish node attribute {attr}: {e.reason}")
            return published
        return count

    # ----- actions -------------------------------------------------------------------
    def start(self, ctx: Context) -> int:
        cfg = self.config(ctx)
        self.check_local(ctx)
        health, published = self.load_state(ctx, cfg)
        self.converge(ctx, cfg, health, create=True, full=True)
        published = self.publish(ctx, health, published)
        self.save_state(ctx, health, published)
        return OCF_SUCCESS

    def reload_agent(self, ctx: Context) -> int:
        cfg = self.config(ctx)
        health, published = self.load_state(ctx, cfg)
        if self.converge(ctx, cfg, health, create=False, full=True) is None:
            return OCF_SUCCESS  # not running: the next start applies it all
        published = self.publish(ctx, health, published)
        self.save_state(ctx, health, published)
        return OCF_SUCCESS

    def stop(self, ctx: Context) -> int:
        from lsaa.lock import Lock

        cfg = self.config(ctx)
        with Lock(ctx.state_dir, "ipvs", ctx.deadline):
            try:
                nl = self.netlink(ctx)
            except NotInstalledError:
                nl = None  # backend=netlink without the IPVS family: nothing to stop
            if nl is not None or getattr(ctx, "lsaa_ipvs_family_missing", False):
                self.stop_netlink(ctx, cfg, nl)
            else:
                self.stop_ipvsadm(ctx, cfg)
        self.forget(ctx, cfg)
        return OCF_SUCCESS

    def stop_netlink(self, ctx: Context, cfg: Config, nl: IpvsClient | None) -> None:
        """Delete the service; no IPVS family means no ip_vs, so nothing to stop."""
        if nl is None:
            return
        from lsaa.backends.ipvs_netlink import DEL_SERVICE, Change, NetlinkError

        try:
            failures = nl.apply([Change(DEL_SERVICE, cfg.service)])
        except NetlinkError as e:
            raise GenericError(f"deleting the service over netlink failed: {e.strerror}"
                               ) from None
        if self.read(ctx, cfg, False) is not None:
            why = failures[0][2] if failures else "no error"
            raise GenericError(f"service still present after delete: {why}")

    def stop_ipvsadm(self, ctx: Context, cfg: Config) -> None:
        try:
            r = ctx.runner.run(["ipvsadm", "-D", *cfg.svc_args], ok=(0, 2, 255))
        except NotInstalledError:
            # Without ipvsadm we can still tell whether any service can exist:
            # no ip_vs in the kernel means nothing to stop.  Otherwise a failed
            # stop (and fencing) is the honest answer.
            if not os.path.exists("/proc/net/ip_vs"):
                return
            raise
        gone = r.rc == 2 and "Can't initialize ipvs" in r.stderr
        if not gone:
            try:
                left = self.read(ctx, cfg, False)
            except NotInstalledError:
                left = None
            if left is not None:
                raise GenericError(f"service still present after ipvsadm -D: "
                                   f"{r.stderr.strip()[:60]}")

    def forget(self, ctx: Context, cfg: Config) -> None:
        """After a stop: the node attribute and the health state go."""
        path = ctx.state_file("health")
        if ctx.p("node_attribute") is not None:
            _health, published = self.load_state(ctx, cfg)
            if published is not None:
                from lsaa.errors import AgentError

                try:
                    ctx.runner.run(["crm_attribute", "--node", ctx.node_name, "--name",
                                    str(ctx.p("node_attribute")), "--lifetime", "reboot",
                                    "--delete"], timeout=10)
                except AgentError as e:
                    ctx.log.warning(f"cannot delete node attribute: {e.reason}")
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as e:
            ctx.log.warning(f"cannot remove {path}: {e.strerror}")

    def monitor(self, ctx: Context) -> int:
        cfg = self.config(ctx)
        want0 = cfg.servers
        if self.netlink(ctx) is None and getattr(ctx, "lsaa_ipvs_family_missing", False):
            return OCF_NOT_RUNNING  # no ip_vs in the kernel: no service
        cur = self.read(ctx, cfg, any(d.upper or d.lower for d in want0))
        if cur is None:
            return OCF_NOT_RUNNING
        diffs = service_differences(cfg.service, cur)
        if ctx.is_probe:
            if diffs:
                ctx.log.warning(f"service differs: {'; '.join(diffs)}")
            return OCF_SUCCESS
        if diffs:
            raise GenericError(f"service differs: {'; '.join(diffs)}")
        health, published = self.load_state(ctx, cfg)
        if cfg.check is not None:
            self.run_health_checks(ctx, cfg, health)
        want = self.wanted(cfg, health)
        thresholds = any(d.upper or d.lower for d in want)
        lines, _ = plan(cfg, cur, want, thresholds, service_too=False)
        if lines:
            self.converge(ctx, cfg, health, create=False, full=False)
        published = self.publish(ctx, health, published)
        self.save_state(ctx, health, published)
        return OCF_SUCCESS

    def run_health_checks(self, ctx: Context, cfg: Config, health: dict[str, Health]) -> None:
        import time

        from lsaa.healthcheck import run_checks

        assert cfg.check is not None
        left = ctx.deadline.remaining()
        budget = max(0.1, left - min(3.0, left * 0.3))
        targets = [cfg.target(d) for d in cfg.servers]
        results = run_checks(cfg.check, targets, time.monotonic() + budget)
        fc, rc = int(str(ctx.p("failure_count"))), int(str(ctx.p("recovery_count")))
        unknown = 0
        for d, res in zip(cfg.servers, results):
            h = health[f"{d.addr} {d.port}"]
            if res is None:
                unknown += 1
                continue
            if h.update(res[0], res[1], fc, rc):
                from lsaa.backends.ipvsadm import dest_arg

                if h.down:
                    ctx.log.warning(f"real server {dest_arg(d.addr, d.port)} is down ({h.why}): "
                                    f"{'quiesced' if ctx_quiesce(cfg) else 'removed'}")
                else:
                    ctx.log.info(f"real server {dest_arg(d.addr, d.port)} is up again")
        if unknown:
            ctx.log.warning(f"{unknown} health checks did not finish within the monitor timeout")


def ctx_quiesce(cfg: Config) -> bool:
    return cfg.on_failure == "quiesce"


def open_netlink(ctx: Context, required: bool) -> IpvsClient | None:
    """A netlink client bound to the IPVS family; None: fall back to ipvsadm.

    Marks ``ctx.lsaa_ipvs_family_missing`` when the kernel answered that it
    has no IPVS family (ip_vs is not loaded, so no service can exist).
    """
    from lsaa.backends.ipvs_netlink import Client, FamilyMissing

    try:
        return Client(ctx.deadline)
    except FamilyMissing:
        setattr(ctx, "lsaa_ipvs_family_missing", True)  # noqa: B010
        if required:
            raise NotInstalledError("backend=netlink: the kernel has no IPVS netlink family "
                                    "(module ip_vs not loaded)") from None
    except OSError as e:
        if required:
            raise GenericError(f"backend=netlink: cannot open a netlink socket: {e.strerror}"
                               ) from None
        ctx.log.debug(f"netlink unavailable ({e.strerror}): using ipvsadm")
    return None


def netlink_changes(cfg: Config, lines: list[list[str]]) -> list[IpvsChange]:
    """plan()'s ipvsadm -R lines as netlink requests (one each, same order)."""
    from lsaa.backends import ipvs_netlink as nl
    from lsaa.backends.ipvsadm import FLAG_METHOD, Dest, split_hostport

    cmds = {"-A": nl.NEW_SERVICE, "-E": nl.SET_SERVICE, "-D": nl.DEL_SERVICE,
            "-a": nl.NEW_DEST, "-e": nl.SET_DEST, "-d": nl.DEL_DEST}
    out = []
    for words in lines:
        cmd = cmds[words[0]]
        dest = None
        if "-r" in words:
            addr, port = split_hostport(words[words.index("-r") + 1])
            method = next((FLAG_METHOD[w] for w in words if w in FLAG_METHOD), "dr")

            def num(flag: str, default: int, words: list[str] = words) -> int:
                return int(words[words.index(flag) + 1]) if flag in words else default

            dest = Dest(addr, port, method, num("-w", 1), num("-x", 0), num("-y", 0))
        out.append(nl.Change(cmd, cfg.service, dest))
    return out


AGENT = Ipvs()


def main() -> None:
    from lsaa.ocf.main import main as run_main

    run_main(AGENT)
