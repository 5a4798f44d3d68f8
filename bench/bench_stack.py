"""The whole HA stack's failover time: lsaa's agents against the ClusterLabs/LINBIT ones.

Takes about 6-7 minutes (two two-node lab clusters booted one after the other, two
power-cut failovers each); ``bench/run.py --only stack`` runs it alone, any other
``--only`` skips it.  It boots the lab cluster of tests/stack, so it holds
/tmp/lsaa-stack.lock while it runs (waiting for it if another helper's stack run holds
it; not taken twice when this process already inherited it from ``flock(1)``).

``python -m tests.stack compare -n 2`` (tests/stack/compare.py) does the measuring:
demo/stack.pcs.sh (ocf:lsaa:drbd, lvm-sysid, iscsi-target, iscsi-lun, ipvs,
fence_lsaa_ipmi) and demo/stack-clusterlabs.pcs.sh (ocf:linbit:drbd, LVM-activate,
iSCSITarget + iSCSILogicalUnit lio-t, ldirectord, fence_ipmilan), the same resource
names, constraints, intervals and lab, each power-cut once from each node.  MTTR is
from the SIGKILL of the active node's guest to the first HTTP GET through the VIP
answered; the figures are medians of the two failovers.  The phase rows (no target)
show where the difference comes from.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
from typing import TYPE_CHECKING

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, ROOT)

from timing import Row  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Iterator

LOCK = "/tmp/lsaa-stack.lock"
FAILOVERS = 2  # one from each node


def _inherited(path: str) -> bool:
    """True if one of this process's descriptors is ``path`` (``flock(1) path cmd``
    passes its locked descriptor to the command)."""
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/self/fd/{fd}") == path:
                return True
    return False


@contextlib.contextmanager
def stack_lock() -> Iterator[None]:
    """Hold LOCK (the stack runs' serialisation) for the duration, unless inherited."""
    if _inherited(LOCK):
        yield
        return
    fd = os.open(LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def rows(n: int = FAILOVERS) -> list[Row]:
    from tests.stack.compare import PHASES, compare

    with stack_lock():
        ours, theirs = compare(n)
    out: list[Row] = []
    if ours.mttr is None or theirs.mttr is None:
        raise RuntimeError("a stack's service never answered through the VIP")
    out.append(Row("stack MTTR: lsaa vs ClusterLabs/LINBIT agents", ours.mttr,
                   "ClusterLabs stack MTTR", theirs.mttr, 0.7))
    for name, mark in PHASES[:-1]:
        a, b = ours.median(mark), theirs.median(mark)
        if a is not None and b is not None:
            out.append(Row(f"stack failover, {name}", a, f"ClusterLabs stack, {name}", b, None))
    return out


if __name__ == "__main__":
    from run import print_table

    print_table(rows())
