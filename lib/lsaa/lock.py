"""A node-local lock for agents that touch a shared subsystem.

Pacemaker runs operations of different resources in parallel; two instances
editing the IPVS table, configfs or LVM metadata at once can interleave.  The
lock is an flock on a file in the state directory, so it dies with the process
(Pacemaker's SIGKILL included) and never needs cleaning up.  Waiting for it is
bounded by the operation deadline.
"""

from __future__ import annotations

import os

from lsaa.errors import DeadlineExceeded

TYPE_CHECKING = False  # see lsaa.errors
if TYPE_CHECKING:
    from lsaa.deadline import Deadline


class Lock:
    """``with Lock(state_dir, "ipvs", deadline):`` holds the lock for the block."""

    def __init__(self, state_dir: str, name: str, deadline: Deadline) -> None:
        self.path = os.path.join(state_dir, f"lsaa-{name}.lock")
        self.deadline = deadline
        self.fd = -1

    def __enter__(self) -> Lock:
        import fcntl

        os.makedirs(os.path.dirname(self.path), mode=0o755, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except BlockingIOError:
                try:
                    self.deadline.sleep(0.05, f"waiting for lock {self.path}")
                except DeadlineExceeded:
                    os.close(self.fd)
                    self.fd = -1
                    raise

    def __exit__(self, *exc: object) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # closing releases the flock
            self.fd = -1
