"""HAProxy: its master CLI socket, ``show proc``/``show stat`` output and ``haproxy -c`` messages.

Everything here is pure parsing except :func:`cli`, which speaks the master CLI protocol over
the UNIX socket directly (one command per connection: send it, half-close, read to EOF), so a
monitor needs no ``socat`` child.  Tested against HAProxy 2.6 (Debian 12, RHEL 9).

The master CLI (``haproxy -W -S <path>``) answers for the master itself (``show proc``,
``reload``) and forwards ``@1 <command>`` to the current worker, so ``@1 show stat`` works
without any ``stats socket`` line in the administrator's configuration.
"""

from __future__ import annotations

TYPE_CHECKING = False  # see lsaa.errors
if TYPE_CHECKING:
    from collections.abc import Iterable

# Server states (``show stat`` column ``status``) that take new traffic.  "UP 1/3" is a server
# going down that still serves; "no check" is a server without health checks, always used.
# DRAIN (weight 0), NOLB, MAINT and "DOWN n/m" (coming up) do not take new sessions.
SERVING = ("UP", "no check")
SUMMARY_ROWS = ("FRONTEND", "BACKEND")


def cli(path: str, command: str, timeout: float) -> str:
    """Send one ``command`` to the CLI socket at ``path``; its whole answer.

    Raises OSError (FileNotFoundError / ConnectionRefusedError: nobody listens; TimeoutError,
    socket.timeout on 3.9: it did not answer within ``timeout`` seconds).
    """
    import socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(command.encode() + b"\n")
        # Without the half-close the master CLI waits for the next command.
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
    finally:
        sock.close()
    return b"".join(chunks).decode("utf-8", "replace")


class Proc:
    """One line of ``show proc``: a process the master knows about."""

    __slots__ = ("failed", "kind", "pid", "reloads")

    def __init__(self, pid: int, kind: str, reloads: int, failed: int = 0) -> None:
        self.pid = pid
        self.kind = kind  # master | worker | program
        self.reloads = reloads
        self.failed = failed

    def __repr__(self) -> str:
        return f"Proc({self.pid}, {self.kind!r}, reloads={self.reloads}, failed={self.failed})"


class ProcTable:
    """``show proc`` parsed: the master and its workers."""

    __slots__ = ("master", "old_workers", "workers")

    def __init__(self, master: Proc | None, workers: list[Proc], old_workers: list[Proc]) -> None:
        self.master = master
        self.workers = workers
        self.old_workers = old_workers

    @property
    def all_workers(self) -> list[Proc]:
        return self.workers + self.old_workers


def parse_show_proc(text: str) -> ProcTable:
    """Parse the master CLI's ``show proc``.  HAProxy 2.6 prints::

        #<PID>          <type>          <reloads>       <uptime>        <version>
        1011            master          1 [failed: 0]   0d00h00m31s     2.6.12-1+deb12u4
        # workers
        2687            worker          0               0d00h00m01s     2.6.12-1+deb12u4
        # programs

    Workers still finishing connections after a reload are listed with ``<reloads>`` > 0
    (2.6) or under ``# old workers`` (2.7+).  After a failed reload the master says
    ``[failed: 1]`` and the workers it kept count that reload too.

    Raises ValueError when the text is not a ``show proc`` answer.
    """
    master: Proc | None = None
    workers: list[Proc] = []
    old: list[Proc] = []
    section = ""
    seen_header = False
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#<PID>"):
            seen_header = True
            continue
        if stripped.startswith("#"):
            section = stripped.lstrip("# ").strip()
            continue
        words = stripped.split()
        if len(words) < 3 or not words[0].isdigit():
            continue
        pid, kind = int(words[0]), words[1]
        reloads = int(words[2]) if words[2].isdigit() else 0
        failed = 0
        if kind == "master" and "[failed:" in stripped:
            tail = stripped.split("[failed:", 1)[1].split("]", 1)[0].strip()
            failed = int(tail) if tail.isdigit() else 0
        proc = Proc(pid, kind, reloads, failed)
        if kind == "master":
            master = proc
        elif kind == "worker":
            (old if section == "old workers" else workers).append(proc)
    if not seen_header or master is None:
        raise ValueError(f"not a 'show proc' answer: {_first_line(text)!r}")
    return ProcTable(master, workers, old)


class Server:
    """One server row of ``show stat``."""

    __slots__ = ("backend", "backup", "name", "status", "weight")

    def __init__(self, backend: str, name: str, status: str, backup: bool = False,
                 weight: int | None = None) -> None:
        self.backend = backend
        self.name = name
        self.status = status
        self.backup = backup
        self.weight = weight

    @property
    def serving(self) -> bool:
        """Takes new traffic: up (or unchecked) with a non-zero weight.

        A server with ``weight 0`` is "UP" in the status column but gets no request (its
        backend's own row says DOWN when it is the only one).
        """
        if self.weight == 0:
            return False
        return self.status == "no check" or self.status.split(" ", 1)[0] == "UP"

    def __repr__(self) -> str:
        return f"Server({self.backend}/{self.name}, {self.status!r})"


def parse_show_stat(text: str) -> dict[str, list[Server]]:
    """Servers per proxy from ``show stat`` (CSV with a ``# pxname,svname,...`` header)::

        # pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,...,status,weight,act,bck,...
        fe,FRONTEND,,,0,0,9980,0,0,0,0,0,0,,,,,OPEN,,,,,,,,,1,1,0,...
        be,s1,0,0,0,0,,0,0,0,,0,,0,0,0,0,DOWN,1,1,0,1,1,27,27,,1,2,1,...
        be,BACKEND,0,0,0,0,998,0,0,0,0,0,,0,0,0,0,DOWN,0,0,0,,1,27,27,...

    Every proxy with a BACKEND row (backends and listen sections) is a key, even with no
    server.  Columns are found by name, so added columns in later versions do not matter.
    Raises ValueError when there is no header.
    """
    import csv

    lines = text.splitlines()
    index = next((i for i, ln in enumerate(lines) if ln.startswith("# pxname,")), None)
    if index is None:
        raise ValueError(f"not a 'show stat' answer: {_first_line(text)!r}")
    header = lines[index][2:].split(",")
    try:
        px, sv, st = header.index("pxname"), header.index("svname"), header.index("status")
    except ValueError:
        raise ValueError("'show stat' header lacks pxname/svname/status") from None
    bck = header.index("bck") if "bck" in header else None
    wt = header.index("weight") if "weight" in header else None
    result: dict[str, list[Server]] = {}
    for row in csv.reader(ln for ln in lines[index + 1:] if ln.strip()):
        if len(row) <= max(px, sv, st):
            continue
        proxy, name = row[px], row[sv]
        if name == "BACKEND":
            result.setdefault(proxy, [])
        elif name != "FRONTEND":
            backup = bck is not None and len(row) > bck and row[bck] == "1"
            weight = (int(row[wt]) if wt is not None and len(row) > wt and row[wt].isdigit()
                      else None)
            result.setdefault(proxy, []).append(Server(proxy, name, row[st], backup, weight))
    return result


def backend_problems(stats: dict[str, list[Server]], wanted: Iterable[str]) -> list[str]:
    """One message per wanted backend that has no serving server (or does not exist)."""
    problems = []
    for name in wanted:
        servers = stats.get(name)
        if servers is None:
            problems.append(f"backend {name} does not exist in the running haproxy")
        elif not servers:
            problems.append(f"backend {name} has no server")
        elif not any(s.serving for s in servers):
            states = ", ".join(f"{s.name} {s.status}" + (" weight 0" if s.weight == 0 else "")
                               for s in servers[:3])
            more = f" and {len(servers) - 3} more" if len(servers) > 3 else ""
            problems.append(f"backend {name} has no server up ({states}{more})")
    return problems


def proxy_sections(text: str) -> set[str]:
    """Names of the sections that can carry servers (``backend``/``listen``) in a config.

    A cheap, local reading of section headers only (``backend <name>``), good enough to tell
    an administrator that a name in ``backends`` is a typo before haproxy ever runs.
    """
    names = set()
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] in ("backend", "listen"):
            names.add(words[1])
    return names


# Phrases of ``haproxy -c`` errors caused by this node rather than the configuration's text:
# files (certificates, error pages, maps, Lua), users and groups, name resolution.
LOCAL_PHRASES = (
    "no such file",
    "unable to stat",
    "unable to load",
    "error opening",
    "cannot open",
    "can't open",
    "unable to open",
    "permission denied",
    "cannot find user",
    "cannot find group",
    "could not resolve",
    "unable to resolve",
)


def check_errors(output: str) -> list[str]:
    """The ALERT messages of ``haproxy -c`` output, without their prefixes, most useful first::

        [ALERT]    (2879) : config : parsing [a.cfg:13] : unknown keyword 'x' in 'backend' section
        [ALERT]    (2879) : config : Error(s) found in configuration file : a.cfg
        [ALERT]    (2879) : config : Fatal errors found in configuration.

    gives ``["parsing [a.cfg:13] : unknown keyword 'x' in 'backend' section", ...]``;
    the generic summary lines go last.
    """
    specific, generic = [], []
    for line in output.splitlines():
        if not line.startswith("[ALERT]"):
            continue
        message = line.split(" : ", 1)[1] if " : " in line else line
        if message.startswith("config : "):
            message = message[len("config : "):]
        message = message.strip()
        if message.startswith(("Error(s) found", "Fatal errors found")):
            generic.append(message)
        else:
            specific.append(message)
    return specific + generic


def is_local_problem(messages: Iterable[str]) -> bool:
    """True when an error comes from this node (a missing file, user, name), not the text."""
    return any(phrase in m.lower() for m in messages for phrase in LOCAL_PHRASES)


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:80]
    return ""
