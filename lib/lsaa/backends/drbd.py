"""DRBD state: pure parsers for /proc/drbd (8.4) and ``drbdsetup events2 --now``,
the promotion-score table and split-brain detection in kernel messages.

Both parsers produce the same model (:class:`DrbdState`), so the agent's
decisions do not depend on the kernel generation.

**DRBD 8.4** (the lab kernel: 8.4.11 with drbd-utils 9.22, which runs
``drbdsetup-84``/``drbdadm-84`` itself).  ``/proc/drbd`` is one cheap read with
every minor, but names no resource (map resource -> minors with ``drbdadm
sh-minor``, once)::

    version: 8.4.11 (api:1/proto:86-101)
    srcversion: 059B1B470318F053F5077D5
     0: cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate C r-----
        ns:0 nr:0 dw:0 dr:0 al:8 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:0
     1: cs:Unconfigured

``cs`` mixes connection and replication state (SyncSource, WFConnection,
StandAlone...), ``ro``/``ds`` are ``local/peer``; a minor with neither disk nor
network is ``cs:Unconfigured`` (so ``drbdadm detach`` of a StandAlone device
makes it look "down").

**events2** (DRBD 9; drbdsetup-84 also answers it for 8.4.11 with a synthetic
peer ``conn-name:peer peer-node-id:0`` and without quorum/client/promotion
keys — recorded in tests/fixtures/drbd/events2-84-connected.out)::

    exists resource name:r0 role:Secondary suspended:no
    exists connection name:r0 peer-node-id:0 conn-name:peer connection:Connected role:Secondary
    exists device name:r0 volume:0 minor:0 disk:UpToDate
    exists peer-device name:r0 peer-node-id:0 conn-name:peer volume:0 replication:Established peer-disk:UpToDate resync-suspended:no
    exists -

Keys are parsed generically (they vary by version).  ``drbdsetup status --json``
does not exist for 8.4 (exit 20, "unrecognized option '--json'") and is not used:
events2 carries the same facts on both generations.
"""  # noqa: E501

from __future__ import annotations

# drbdsetup exit codes (drbd-utils user/v9/drbdsetup.c, user/v84/drbdsetup.c)
DRBD_EXIT_FAILURE = 10  # "Failure: (err) ...", e.g. unknown minor / resource
DRBD_EXIT_STATE_CHANGE_FAILED = 11  # e.g. (-12) Device is held open by someone
DRBD_SS_NO_UP_TO_DATE_DISK = 17  # "(-2) Need access to UpToDate data"
DRBD_EXIT_NETLINK = 20  # netlink trouble, also usage errors of drbdsetup

# /proc/drbd cs: values that mean "connected, replicating" (8.4 drbd_conns)
REPLICATING = frozenset((
    "Connected", "StartingSyncS", "StartingSyncT", "WFBitMapS", "WFBitMapT", "WFSyncUUID",
    "SyncSource", "SyncTarget", "VerifyS", "VerifyT", "PausedSyncS", "PausedSyncT",
    "Ahead", "Behind",
))
TRANSIENT_DISKS = frozenset(("Attaching", "Negotiating"))
SPLIT_BRAIN = "Split-Brain detected but unresolved"


class Peer:
    """One peer of a resource: connection state, role and its disk per volume."""

    __slots__ = ("connection", "disks", "name", "replication", "role")

    def __init__(self, name: str, connection: str, role: str) -> None:
        self.name = name
        self.connection = connection  # Connected, StandAlone, WFConnection/Connecting...
        self.role = role              # Primary, Secondary, Unknown
        self.disks: list[str] = []    # peer disk state per volume (DUnknown unknown)
        self.replication: list[str] = []  # Established/SyncSource... per volume

    @property
    def connected(self) -> bool:
        return self.connection == "Connected"

    def __repr__(self) -> str:
        return f"Peer({self.name} {self.connection} {self.role} {self.disks})"


class DrbdState:
    """A configured resource as the kernel sees it."""

    __slots__ = ("disks", "minors", "name", "peers", "quorum", "role")

    def __init__(self, name: str, role: str) -> None:
        self.name = name
        self.role = role          # Primary / Secondary
        self.minors: list[int] = []
        self.disks: list[str] = []  # local disk state per volume
        self.quorum = True
        self.peers: list[Peer] = []

    @property
    def primary(self) -> bool:
        return self.role == "Primary"

    @property
    def uptodate(self) -> bool:
        return bool(self.disks) and all(d == "UpToDate" for d in self.disks)

    @property
    def standalone(self) -> bool:
        return any(p.connection == "StandAlone" for p in self.peers)

    def synced(self) -> bool:
        """Connected to every peer, all disks on both sides UpToDate."""
        return self.uptodate and bool(self.peers) and all(
            p.connected and p.disks and all(d == "UpToDate" for d in p.disks)
            for p in self.peers)

    def uptodate_peer(self) -> Peer | None:
        for p in self.peers:
            if p.connected and p.disks and all(d == "UpToDate" for d in p.disks):
                return p
        return None

    def __repr__(self) -> str:
        return f"DrbdState({self.name} {self.role} {self.disks} {self.peers})"


# -- /proc/drbd (8.4) ---------------------------------------------------------

def proc_version(text: str) -> str:
    """``8.4.11`` from the first line of /proc/drbd ("" when absent)."""
    first = text.split("\n", 1)[0]
    if first.startswith("version:"):
        return first.split()[1]
    return ""


def parse_proc_drbd(text: str) -> dict[int, dict[str, str]]:
    """Minor -> {"cs", "ro", "ds", "protocol"} from /proc/drbd (8.4 format)."""
    out: dict[int, dict[str, str]] = {}
    for line in text.splitlines():
        head, sep, rest = line.strip().partition(": ")
        if not sep or not head.isdigit():
            continue
        fields: dict[str, str] = {}
        for token in rest.split():
            key, colon, value = token.partition(":")
            if colon and key in ("cs", "ro", "ds"):
                fields[key] = value
            elif token in ("A", "B", "C"):
                fields["protocol"] = token
        if "cs" in fields:
            out[int(head)] = fields
    return out


def state_from_proc(procs: dict[int, dict[str, str]], name: str,
                    minors: list[int]) -> DrbdState | None:
    """The resource's state from its minors' /proc/drbd lines; None if unconfigured."""
    rows = [(m, procs[m]) for m in minors if m in procs and procs[m]["cs"] != "Unconfigured"]
    if not rows:
        return None
    roles = [r["ro"].split("/") for _, r in rows if "ro" in r]
    local_role = "Primary" if any(ro[0] == "Primary" for ro in roles) else "Secondary"
    state = DrbdState(name, local_role)
    cs = rows[0][1]["cs"]
    peer_role = roles[0][1] if roles and len(roles[0]) > 1 else "Unknown"
    peer = Peer("peer", "Connected" if cs in REPLICATING else cs, peer_role)
    for minor, r in rows:
        state.minors.append(minor)
        ds = r.get("ds", "Diskless/DUnknown").split("/")
        state.disks.append(ds[0])
        peer.disks.append(ds[1] if len(ds) > 1 else "DUnknown")
        peer.replication.append(r["cs"])
        if r["cs"] not in REPLICATING and peer.connection in REPLICATING | {"Connected"}:
            peer.connection = r["cs"]  # volumes disagree: report the worse one
    state.peers.append(peer)
    return state


# -- events2 (9, and drbdsetup-84's compatibility output) ---------------------

def _kv(tokens: list[str]) -> dict[str, str]:
    out = {}
    for t in tokens:
        k, sep, v = t.partition(":")
        if sep:
            out[k] = v
    return out


def parse_events2(text: str, name: str) -> DrbdState | None:
    """State of resource ``name`` from ``drbdsetup events2 --now``; None if absent."""
    state: DrbdState | None = None
    peers: dict[str, Peer] = {}
    for line in text.splitlines():
        tokens = line.split()
        if len(tokens) < 3 or tokens[0] != "exists":
            continue
        kind, kv = tokens[1], _kv(tokens[2:])
        if kv.get("name") != name:
            continue
        if kind == "resource":
            state = DrbdState(name, kv.get("role", "Unknown"))
        elif state is None:
            continue
        elif kind == "connection":
            pid = kv.get("peer-node-id", "?")
            peers[pid] = Peer(kv.get("conn-name", pid), kv.get("connection", "Unknown"),
                              kv.get("role", "Unknown"))
            state.peers.append(peers[pid])
        elif kind == "device":
            if kv.get("minor", "").isdigit():
                state.minors.append(int(kv["minor"]))
            state.disks.append(kv.get("disk", "Unknown"))
            if kv.get("quorum") == "no":
                state.quorum = False
        elif kind == "peer-device":
            peer = peers.get(kv.get("peer-node-id", "?"))
            if peer is not None:
                peer.disks.append(kv.get("peer-disk", "DUnknown"))
                peer.replication.append(kv.get("replication", "Off"))
    return state


# -- promotion scores -----------------------------------------------------------

DEFAULT_SCORES = "0 10 1000 10000"
UNCHANGED = "unchanged"


def parse_scores(raw: str) -> tuple[int, int, int, int]:
    """``adjust_master_score``: four non-decreasing integers."""
    try:
        nums = [int(x) for x in raw.split()]
    except ValueError:
        raise ValueError(f"{raw!r}: four integers expected") from None
    if len(nums) != 4:
        raise ValueError(f"{raw!r}: four integers expected")
    if nums != sorted(nums):
        raise ValueError(f"{raw!r}: the scores must not decrease")
    return nums[0], nums[1], nums[2], nums[3]


def promotion_score(state: DrbdState | None, scores: tuple[int, int, int, int],
                    split_brain: bool = False) -> int | None | str:
    """The promotion score for this node: an int, None (delete) or UNCHANGED.

    First match wins:

    ====================================================  ==================
    not running (unconfigured)                            delete
    quorum lost on some volume (DRBD 9)                   delete
    split brain detected, this node Secondary             delete
    a local disk Attaching/Negotiating                    unchanged
    a local disk neither UpToDate nor Consistent          delete
    (Outdated, Inconsistent, Diskless, Failed...)
    local disks Consistent (not all UpToDate)             scores[0] (0: delete)
    all local UpToDate, Primary                           scores[3]
    all local UpToDate, every peer's disk known           scores[3]
    (connected; peers UpToDate or worse: we are the best)
    all local UpToDate, some peer unknown (DUnknown)      scores[2]
    ====================================================  ==================

    ``scores[1]`` (ocf:linbit:drbd gives it to a node whose own data is *not*
    UpToDate while a peer's is) is accepted for compatibility and never used:
    such a node is never promotable.  Values <= 0 delete the attribute.
    """
    if state is None or not state.quorum:
        return None
    if split_brain and not state.primary:
        return None
    if any(d in TRANSIENT_DISKS for d in state.disks):
        return UNCHANGED
    if not state.disks or any(d not in ("UpToDate", "Consistent") for d in state.disks):
        return None
    if not state.uptodate:
        score = scores[0]
    elif state.primary or (state.peers and all(p.connected and p.disks and "DUnknown" not in p.disks
                             for p in state.peers)):
        score = scores[3]
    else:
        score = scores[2]
    return score if score > 0 else None


# -- kernel messages --------------------------------------------------------------

def split_brain_in_kmsg(messages: list[str], name: str, minors: list[int]) -> bool:
    """Whether the last connection attempt of ``name`` ended in an unresolved split brain.

    8.4: ``block drbd0: Split-Brain detected but unresolved, dropping connection!``
    after ``drbd r0: conn( StandAlone -> Unconnected )``; DRBD 9 prefixes
    ``drbd r0/0 drbd0 node2:`` and says ``conn( StandAlone -> Connecting )``.
    """
    devs = tuple(f"drbd{m}:" for m in minors) + tuple(f"drbd{m} " for m in minors)
    res = (f"drbd {name}:", f"drbd {name} ", f"drbd {name}/")
    found = False
    for msg in messages:
        if SPLIT_BRAIN in msg and (any(d in msg for d in devs) or any(r in msg for r in res)):
            found = True
        elif any(r in msg for r in res) and "conn(" in msg and (
                "-> Unconnected" in msg or "-> Connecting" in msg or "-> Connected" in msg):
            found = False
    return found


def parse_kmsg_record(record: str) -> str:
    """The message text of one /dev/kmsg record ``prio,seq,usec,flags;text``."""
    _, sep, text = record.partition(";")
    return text.split("\n", 1)[0] if sep else record


def dump_settings(text: str) -> tuple[str, bool]:
    """(protocol, allow-two-primaries) from ``drbdadm -d connect <res>``'s drbdsetup
    command lines (options merged from common and resource sections)."""
    protocol = "C"  # DRBD's default
    two = False
    for token in text.split():
        if token.startswith("--protocol="):
            protocol = token.split("=", 1)[1]
        elif token.startswith("--allow-two-primaries"):
            two = token.split("=", 1)[1] in ("yes", "") if "=" in token else True
    return protocol, two
