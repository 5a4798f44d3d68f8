"""The stack's iSCSI client: a third lab guest that writes through the LUN during failovers.

The client is no cluster node: a small UML guest (``client``, <prefix>.10) on the lab
network with the kernel's open-iscsi initiator (iscsi_tcp, iscsid), logged in with CHAP
to the target through the VIP portal.  The login is ``ocf:lsaa:iscsi-initiator`` run by
hand as a standalone host would (start with its parameters in the environment), so that
agent works here too; the cluster needs nothing for it beyond the target's
allowed_initiators and CHAP account in demo/stack.pcs.sh.

The writer (client_io.py in the guest) writes numbered, checksummed 4 KiB records with
O_DIRECT | O_SYNC and logs each one only once the write has returned; during a failover
its write stalls in the initiator's session recovery and returns when the survivor's
target has taken it.  :meth:`Client.verify` pauses the writer and reads the LUN back
through the target: every acknowledged record must be there.

Session recovery (iscsid.conf, before the login creates the node record):
``node.session.timeo.replacement_timeout`` is how long I/O waits for a lost session to
come back before it fails with EIO: it must exceed the cluster's worst MTTR (tens of
seconds here, minutes on real hardware), so it keeps open-iscsi's 120 s.  The NOP-Out
ping (every 2 s, 2 s to answer) finds a dead connection within ~4 s of the power cut
instead of up to 10 s; the new connection is opened to the VIP, which answers again
once the survivor holds it (the target and LUN start before the VIP in the group).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tests.lab.labctl import LabError

if TYPE_CHECKING:
    from tests.lab.labctl import Guest

HERE = Path(__file__).resolve().parent
CLIENT_IO = HERE / "client_io.py"
CLIENT_HOST = 10  # <prefix>.10
# demo/stack.pcs.sh's target, allowed initiator and CHAP account (given to it in pcs_env)
IQN = "iqn.2024-01.lsaa.stack:data"
INITIATOR = "iqn.2024-01.lsaa.stack:client"
CHAP_USER = "stackuser"
CHAP_PASSWORD = "stack-chap-12"
INSTANCE = "stack_lun"  # the iscsi-initiator "resource" on the client
ISCSID_CONF = {
    "node.session.timeo.replacement_timeout": "120",
    "node.conn[0].timeo.noop_out_interval": "2",
    "node.conn[0].timeo.noop_out_timeout": "2",
}


@dataclass
class Ack:
    """One acknowledged write: seq, block, wall-clock start and end of the call."""

    seq: int
    block: int
    start: float
    end: float


class Client:
    """The client guest (already booted): login, writer, acknowledgements, verification."""

    def __init__(self, guest: Guest, portal: str) -> None:
        self.g = guest
        self.portal = portal
        self.log = guest.share / "writes.log"
        self.dev: str | None = None
        self.writer_pid: int | None = None
        self._checked_seq = 0  # last seq covered by the previous verification

    @property
    def params(self) -> dict[str, str]:
        return {"portal": self.portal, "target": IQN, "username": CHAP_USER,
                "password": CHAP_PASSWORD}

    def setup(self) -> None:
        """Kernel initiator modules, initiator name, session timeouts, iscsid."""
        conf = "\n".join(f"s/^{re.escape(k)} = .*/{k} = {v}/" for k, v in ISCSID_CONF.items())
        self.g.sh("modprobe iscsi_tcp; modprobe sd_mod\n"
                  f"echo InitiatorName={INITIATOR} > /etc/iscsi/initiatorname.iscsi\n"
                  f"sed -i -e '{conf}' /etc/iscsi/iscsid.conf", check=True)
        want = [w for k, v in ISCSID_CONF.items() for w in ("-e", f"{k} = {v}")]
        got = self.g.run(["grep", "-c", "-x", "-F", *want, "/etc/iscsi/iscsid.conf"]
                         ).stdout.strip()
        if got != str(len(ISCSID_CONF)):
            raise LabError(f"iscsid.conf: {got} of {len(ISCSID_CONF)} settings applied")
        self.g.spawn(["iscsid", "-f"], log=str(self.g.share / "iscsid.log"))
        deadline = time.monotonic() + 30
        while self.g.run(["iscsiadm", "-m", "session"]).rc not in (0, 21):
            if time.monotonic() > deadline:
                raise LabError("iscsid did not answer")
            time.sleep(0.2)

    def login(self) -> str:
        """ocf:lsaa:iscsi-initiator start; return the LUN's /dev name."""
        r = self.g.agent("iscsi-initiator", "start", self.params, instance=INSTANCE,
                         timeout=90)
        if not r.ok:
            raise LabError(f"iscsi-initiator start failed (rc {r.rc}): {r.stderr[-2000:]}")
        state = self.g.run(["cat", f"/run/resource-agents/lsaa-iscsi-initiator-{INSTANCE}"
                                   ".disks"], check=True).stdout
        dev: str = json.loads(state)["disks"][0]["dev"]
        self.dev = dev
        return dev

    def session(self) -> str:
        """The session's line in ``iscsiadm -m session`` and its recovery timeout."""
        s = self.g.run(["iscsiadm", "-m", "session"]).stdout.strip()
        m = re.search(r"\[(\d+)\]", s)
        t = self.g.run(["cat", f"/sys/class/iscsi_session/session{m.group(1) if m else 1}"
                              "/recovery_tmo"]).stdout
        return f"{s} (recovery_tmo {t.strip() or '?'} s)"

    # -- the writer ---------------------------------------------------------
    def start_writer(self) -> None:
        assert self.dev is not None
        self.writer_pid = self.g.spawn(["python3", str(CLIENT_IO), "write", self.dev,
                                        str(self.log)],
                                       log=str(self.g.share / "writer.out"))
        deadline = time.monotonic() + 30
        n = len(self.acks())
        while len(self.acks()) <= n:  # running once it has one write acknowledged
            if time.monotonic() > deadline:
                raise LabError("the iSCSI writer has no write acknowledged after 30 s:\n"
                               + self._out())
            time.sleep(0.1)

    def stop_writer(self, timeout: float = 60) -> None:
        """SIGTERM: the writer ends after its write in progress (which may be stalled)."""
        if self.writer_pid is None:
            return
        pid, self.writer_pid = self.writer_pid, None
        self.g.run(["kill", "-TERM", str(pid)])
        deadline = time.monotonic() + timeout
        while self.g.run(["sh", "-c", f"grep -q '^State:.*[RSD]' /proc/{pid}/status"]).ok:
            if time.monotonic() > deadline:
                raise LabError(f"the iSCSI writer did not stop within {timeout} s")
            time.sleep(0.1)

    def _out(self) -> str:
        try:
            return (self.g.share / "writer.out").read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def acks(self) -> list[Ack]:
        """The acknowledged writes so far, in order (read from the log in the share)."""
        try:
            lines = self.log.read_text().splitlines()
        except OSError:
            return []
        out = []
        for line in lines:
            w = line.split()
            if len(w) >= 5 and w[0] == "A":
                out.append(Ack(int(w[1]), int(w[2]), float(w[3]), float(w[4])))
        return out

    def errors(self) -> int:
        try:
            return sum(1 for line in self.log.read_text().splitlines() if line[:2] == "E ")
        except OSError:
            return 0

    def last_ack_before(self, t: float) -> float | None:
        return max((a.end for a in self.acks() if a.end < t), default=None)

    def first_ack_after(self, t: float) -> float | None:
        """End of the first write that started after ``t`` (as for HTTP: a write begun
        before a power cut cannot count as the service being back)."""
        return next((a.end for a in self.acks() if a.start > t), None)

    def verify(self, restart: bool = True) -> Verification:
        """Pause the writer, read the LUN back through the target, resume the writer."""
        self.stop_writer()
        acks = self.acks()
        since = [a for a in acks if a.seq > self._checked_seq]
        assert self.dev is not None
        r = self.g.run(["python3", str(CLIENT_IO), "verify", self.dev, str(self.log)],
                       timeout=120)
        try:
            data = json.loads(r.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise LabError(f"verification failed to run (rc {r.rc}): {r.stderr}") from None
        v = Verification(acknowledged=len(since), total=data["acknowledged"],
                         blocks=data["blocks"], verified=data["verified"], lost=data["lost"],
                         examples=data["examples"], errors=self.errors())
        self._checked_seq = acks[-1].seq if acks else 0
        if restart:
            self.start_writer()
        return v


@dataclass
class Verification:
    """One read-back of the LUN against the writer's log."""

    acknowledged: int  # writes acknowledged since the previous verification
    total: int  # writes acknowledged since the writer first started
    blocks: int  # blocks that have an acknowledged record
    verified: int  # of those, holding their newest acknowledged record intact
    lost: int  # acknowledged records missing or damaged (must be 0)
    examples: list[str]
    errors: int  # write calls that failed (and were retried) since the start

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.verified == self.blocks

    def line(self) -> str:
        return (f"{self.acknowledged} writes acknowledged ({self.total} in all),"
                f" {self.verified}/{self.blocks} blocks read back holding their newest"
                f" acknowledged record, lost {self.lost}"
                + (f" ({'; '.join(self.examples)})" if self.examples else "")
                + (f", {self.errors} failed write calls retried" if self.errors else ""))
