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

DEFAULT_PORT = 3260
MAX_NAME = 223  # bytes, RFC 3720

# Character sets instead of regular expressions: ``re`` (with ``enum``) costs a
# monitor 4-10 ms to import, and these checks run at every agent start.  They
# accept exactly what the former patterns accepted (tests/unit/test_iscsi_parsers.py
# compares both on generated names):
#   iqn\.[0-9]{4}-(0[1-9]|1[0-2])\.LABEL(\.LABEL)*(:[a-z0-9.:_-]+)?
#   LABEL = [a-z0-9]([a-z0-9-]*[a-z0-9])?
#   eui\.[0-9a-f]{16}    naa\.([0-9a-f]{16}|[0-9a-f]{32})
_DIGITS = frozenset("0123456789")
_HEX = frozenset("0123456789abcdef")
_LABEL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")
_ID_CHARS = _LABEL_CHARS | frozenset(".:_")
_MONTHS = frozenset(f"{m:02d}" for m in range(1, 13))


def only(text: str, allowed: frozenset[str]) -> bool:
    """Every character of ``text`` is in ``allowed`` (True for "")."""
    return all(c in allowed for c in text)


def _is_label(label: str) -> bool:
    return bool(label) and only(label, _LABEL_CHARS) and label[0] != "-" and label[-1] != "-"


def is_iqn(name: str) -> bool:
    """``name`` is ``iqn.YYYY-MM.reversed.domain[:identifier]``, lowercase (RFC 3720)."""
    if not name.startswith("iqn.") or len(name) < 12:
        return False
    year, month, rest = name[4:8], name[9:11], name[12:]
    if name[8] != "-" or name[11] != "." or not only(year, _DIGITS) or month not in _MONTHS:
        return False
    domain, colon, ident = rest.partition(":")
    if colon and not (ident and only(ident, _ID_CHARS)):
        return False
    return all(_is_label(label) for label in domain.split("."))


def _is_hex(text: str, lengths: tuple[int, ...]) -> bool:
    return len(text) in lengths and only(text, _HEX)


def check_name(raw: str) -> str:
    """The iSCSI name ``raw`` in canonical form (eui./naa. hex lowercased).

    Raises ValueError saying what is wrong.
    """
    name = raw.strip()
    if len(name.encode()) > MAX_NAME:
        raise ValueError(f"iSCSI names are at most {MAX_NAME} bytes")
    low = name.lower()
    if low.startswith(("eui.", "naa.")):
        if _is_hex(low[4:], (16,) if low.startswith("eui.") else (16, 32)):
            return low
        raise ValueError(f"{_short(name)} is not eui.<16 hex> or naa.<16 or 32 hex>")
    if not low.startswith("iqn."):
        raise ValueError(f"{_short(name)} is not an iSCSI name (iqn., eui. or naa.)")
    if name != low:
        raise ValueError(f"{_short(name)}: iqn. names must be lowercase")
    if not is_iqn(name):
        raise ValueError(f"{_short(name)} is not iqn.YYYY-MM.reversed.domain[:identifier]")
    return name


def check_names(raw: str) -> list[str]:
    """A blank- or comma-separated list of iSCSI names, each checked, no duplicates."""
    names = [check_name(w) for w in split_list(raw)]
    if len(set(names)) != len(names):
        raise ValueError("lists a name twice")
    return names


def split_list(raw: str) -> list[str]:
    """Words of ``raw`` separated by blanks and/or commas (str.split's whitespace is
    the same Unicode set as the former ``[\\s,]+`` pattern's)."""
    return raw.replace(",", " ").split()


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
    if not text.startswith("[") and _is_plain_ipv4(host):
        address, v6 = host, False
    else:
        import ipaddress  # 1 ms: only for IPv6 (compressed form) and for the error message

        try:
            addr = ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"{_short(text)}: {_short(host)} is not an IPv4 or IPv6 "
                             "address") from None
        if "%" in host:
            raise ValueError(f"{_short(text)}: scoped IPv6 addresses are not supported")
        address, v6 = addr.compressed, addr.version == 6
    port = default_port
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"{_short(text)}: {_short(port_text)} is not a TCP port")
        port = int(port_text)
    return Portal(address, port, v6)


def _is_plain_ipv4(host: str) -> bool:
    """``host`` is dotted-quad IPv4 in the form ipaddress prints (0-255, no leading
    zeros), so it is its own canonical text.  Anything else goes to ipaddress."""
    parts = host.split(".")
    return len(parts) == 4 and all(
        0 < len(p) <= 3 and only(p, _DIGITS) and (p == "0" or p[0] != "0") and int(p) <= 255
        for p in parts)


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
