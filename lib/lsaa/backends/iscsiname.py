"""iSCSI names and portals: syntax checks and the one textual form lsaa uses.

Pure functions shared by the iscsi-target, iscsi-lun and iscsi-initiator agents
and by the tgt, LIO and iscsiadm adapters; nothing here touches the system.

* names (RFC 3720 §3.2.6.3): ``iqn.2024-01.org.example:tgt1``,
  ``eui.02004567A425678D``, ``naa.52004567BA64678D``;
* portals: ``192.0.2.20``, ``192.0.2.20:3260``, ``[fe80::1]:3260``, ``[::]``;
  the canonical text is ``ip:port`` with IPv6 addresses compressed and in
  brackets, which is how LIO names its ``np/`` directories and how tgtadm and
  iscsiadm print portals.
"""

from __future__ import annotations

import re

DEFAULT_PORT = 3260
MAX_NAME = 223  # bytes, RFC 3720
_LABEL = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
_IQN = re.compile(r"iqn\.[0-9]{4}-(?:0[1-9]|1[0-2])\." + _LABEL + r"(?:\." + _LABEL + r")*"
                  r"(?::[a-z0-9.:_-]+)?\Z")
_EUI = re.compile(r"eui\.[0-9a-f]{16}\Z")
_NAA = re.compile(r"naa\.(?:[0-9a-f]{16}|[0-9a-f]{32})\Z")


def check_name(raw: str) -> str:
    """The iSCSI name ``raw`` in canonical form (eui./naa. hex lowercased).

    Raises ValueError saying what is wrong.
    """
    name = raw.strip()
    if len(name.encode()) > MAX_NAME:
        raise ValueError(f"iSCSI names are at most {MAX_NAME} bytes")
    low = name.lower()
    if low.startswith(("eui.", "naa.")):
        if (_EUI if low.startswith("eui.") else _NAA).match(low):
            return low
        raise ValueError(f"{_short(name)} is not eui.<16 hex> or naa.<16 or 32 hex>")
    if not low.startswith("iqn."):
        raise ValueError(f"{_short(name)} is not an iSCSI name (iqn., eui. or naa.)")
    if name != low:
        raise ValueError(f"{_short(name)}: iqn. names must be lowercase")
    if not _IQN.match(name):
        raise ValueError(f"{_short(name)} is not iqn.YYYY-MM.reversed.domain[:identifier]")
    return name


def check_names(raw: str) -> list[str]:
    """A blank- or comma-separated list of iSCSI names, each checked, no duplicates."""
    names = [check_name(w) for w in split_list(raw)]
    if len(set(names)) != len(names):
        raise ValueError("lists a name twice")
    return names


def split_list(raw: str) -> list[str]:
    return [w for w in re.split(r"[\s,]+", raw.strip()) if w]


class Portal:
    """An IP address and TCP port; ``str()`` is the canonical ``ip:port`` text."""

    __slots__ = ("host", "port", "v6")

    def __init__(self, host: str, port: int, v6: bool) -> None:
        self.host = host
        self.port = port
        self.v6 = v6

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if self.v6 else f"{self.host}:{self.port}"

    def __repr__(self) -> str:
        return f"Portal({self})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Portal) and (self.host, self.port) == (other.host, other.port)

    def __hash__(self) -> int:
        return hash((self.host, self.port))

    @property
    def bracketed_host(self) -> str:
        return f"[{self.host}]" if self.v6 else self.host


def parse_portal(raw: str, default_port: int = DEFAULT_PORT) -> Portal:
    """``raw`` (``ip``, ``ip:port``, ``[ip6]``, ``[ip6]:port`` or a bare ``ip6``) as a Portal.

    Host names are refused: tgtadm, LIO and ``iscsiadm -m session`` all print
    addresses, so a name could never be matched against what they show.
    """
    import ipaddress

    text = raw.strip()
    port_text = ""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(f"{_short(text)}: missing ]")
        host, rest = text[1:end], text[end + 1:]
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"{_short(text)}: expected :port after ]")
            port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host = text  # IPv4 without port, or a bare IPv6 address
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{_short(text)}: {_short(host)} is not an IPv4 or IPv6 address") from None
    if "%" in host:
        raise ValueError(f"{_short(text)}: scoped IPv6 addresses are not supported")
    port = default_port
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"{_short(text)}: {_short(port_text)} is not a TCP port")
        port = int(port_text)
    return Portal(addr.compressed, port, addr.version == 6)


def check_portals(raw: str) -> list[Portal]:
    """A blank- or comma-separated list of portals, each parsed, no duplicates."""
    portals = [parse_portal(w) for w in split_list(raw)]
    if not portals:
        raise ValueError("no portal given")
    if len(set(portals)) != len(portals):
        raise ValueError("lists a portal twice")
    return portals


def portal_of_listing(text: str) -> tuple[Portal, int]:
    """The portal and TPG tag in ``192.0.2.20:3260,1`` or ``[fe80::1]:3260,1``.

    Split at the last ``,`` and then at the last ``:``: IPv6 addresses hold colons.
    """
    addr, _, tag = text.rpartition(",")
    if not addr:
        addr, tag = text, "1"
    return parse_portal(addr), int(tag) if tag.isdigit() else 1


def _short(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")
