"""Real-server health checks (tcp connect, http/https GET) run in parallel under a deadline.

What ldirectord's ``connect``/``negotiate`` and keepalived's TCP_CHECK/HTTP_GET
give, without a daemon: :func:`run_checks` probes every target at once from a
small pool of threads, each probe bounded by its own timeout and all of them by
one overall deadline; a probe still running at the deadline counts as
*unknown* (None), never as a failure, so a slow monitor cannot quiesce a
healthy server.  :class:`Health` is the per-server hysteresis (consecutive
failures before down, consecutive successes before up) kept between monitor
runs as JSON.
"""

from __future__ import annotations

import socket
import time

TYPE_CHECKING = False  # see lsaa.errors
if TYPE_CHECKING:
    from collections.abc import Sequence

MAX_BODY = 65536
MAX_WORKERS = 64


class Check:
    """What to probe and what counts as healthy."""

    __slots__ = ("expect", "host", "kind", "path", "regex", "statuses", "timeout", "verify")

    def __init__(self, kind: str, timeout: float, *, path: str = "/", host: str = "",
                 statuses: Sequence[int] = (200,), expect: str = "", regex: bool = False,
                 verify: bool = False) -> None:
        self.kind = kind  # tcp | http | https
        self.timeout = timeout
        self.path = path
        self.host = host
        self.statuses = tuple(statuses)
        self.expect = expect
        self.regex = regex
        self.verify = verify


def probe(check: Check, addr: str, port: int, deadline: float) -> tuple[bool, str]:
    """One probe: (healthy, why not).  Never raises."""
    end = min(deadline, time.monotonic() + check.timeout)
    try:
        left = end - time.monotonic()
        if left <= 0:
            return False, "no time left"
        sock = socket.create_connection((addr, port), timeout=left)
    except OSError as e:
        return False, f"connect: {e.strerror or e}"
    try:
        if check.kind == "tcp":
            return True, ""
        return _http(check, sock, addr, port, end)
    except (OSError, ValueError) as e:
        return False, f"{check.kind}: {getattr(e, 'strerror', None) or e}"
    finally:
        sock.close()


def _left(end: float) -> float:
    left = end - time.monotonic()
    if left <= 0:
        raise OSError("timed out")
    return left


def _http(check: Check, sock: socket.socket, addr: str, port: int, end: float) -> tuple[bool, str]:
    if check.kind == "https":
        import ssl

        ctx = ssl.create_default_context()
        if not check.verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        sock.settimeout(_left(end))
        sock = ctx.wrap_socket(sock, server_hostname=check.host or addr)
    host = check.host or (f"[{addr}]" if ":" in addr else addr)
    if not check.host and port not in (80, 443):
        host += f":{port}"
    request = (f"GET {check.path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: lsaa-ipvs\r\n"
               "Accept: */*\r\nConnection: close\r\n\r\n")
    sock.settimeout(_left(end))
    sock.sendall(request.encode("latin-1"))
    chunks: list[bytes] = []
    size = 0
    while size < MAX_BODY:
        sock.settimeout(_left(end))
        data = sock.recv(16384)
        if not data:
            break
        chunks.append(data)
        size += len(data)
    reply = b"".join(chunks)
    head, _, body = reply.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    words = status_line.split()
    if len(words) < 2 or not words[0].startswith("HTTP/") or not words[1].isdigit():
        return False, f"not an HTTP reply: {status_line[:40]!r}"
    status = int(words[1])
    if status not in check.statuses:
        return False, f"status {status}"
    if check.expect:
        text = body.decode("utf-8", "replace")
        if check.regex:
            import re

            if re.search(check.expect, text) is None:
                return False, "content does not match"
        elif check.expect not in text:
            return False, "content not found"
    return True, ""


def run_checks(check: Check, targets: Sequence[tuple[str, int]],
               deadline: float) -> list[tuple[bool, str] | None]:
    """Probe every (addr, port) in parallel; None where the deadline came first.

    ``deadline`` is a time.monotonic() value.  Worker threads are daemons: one
    stuck past the deadline (a TLS peer that never answers) cannot hold the
    agent, whose process exits right after.
    """
    results: list[tuple[bool, str] | None] = [None] * len(targets)
    if not targets:
        return results
    import threading

    lock = threading.Lock()
    todo = list(range(len(targets)))
    todo.reverse()
    done = threading.Event()
    finished = [0]

    def worker() -> None:
        while True:
            with lock:
                if not todo:
                    return
                i = todo.pop()
            if time.monotonic() >= deadline:
                outcome = None
            else:
                addr, port = targets[i]
                outcome = probe(check, addr, port, deadline)
            with lock:
                results[i] = outcome
                finished[0] += 1
                if finished[0] == len(targets):
                    done.set()

    for _ in range(min(MAX_WORKERS, len(targets))):
        threading.Thread(target=worker, daemon=True).start()
    done.wait(max(0.0, deadline - time.monotonic()))
    with lock:
        return list(results)


class Health:
    """Consecutive-failure / recovery counting for one server (``down`` once it tripped)."""

    __slots__ = ("down", "fails", "oks", "why")

    def __init__(self, down: bool = False, fails: int = 0, oks: int = 0, why: str = "") -> None:
        self.down = down
        self.fails = fails
        self.oks = oks
        self.why = why

    def update(self, ok: bool | None, why: str, failure_count: int, recovery_count: int) -> bool:
        """Record one probe result (None: unknown, no change); True when ``down`` flipped."""
        if ok is None:
            return False
        if ok:
            self.fails = 0
            self.oks += 1
            if self.down and self.oks >= recovery_count:
                self.down = False
                self.why = ""
                return True
            return False
        self.oks = 0
        self.fails += 1
        self.why = why
        if not self.down and self.fails >= failure_count:
            self.down = True
            return True
        return False

    def to_json(self) -> list[object]:
        return [int(self.down), self.fails, self.oks, self.why]

    @classmethod
    def from_json(cls, data: object) -> Health:
        if isinstance(data, list) and len(data) == 4:
            down, fails, oks, why = data
            if isinstance(fails, int) and isinstance(oks, int):
                return cls(bool(down), max(0, fails), max(0, oks), str(why))
        return cls()
