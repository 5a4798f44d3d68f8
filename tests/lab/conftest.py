"""pytest fixtures for the kernel lab.

* ``lab``: a :class:`Lab` (private netns + work dir), closed after the test.
* ``guest``: one booted guest ``node1`` with two 256 MiB sparse disks (/dev/ubda,
  /dev/ubdb), no network.
* ``guest_pair``: ``node1`` and ``node2`` on network ``lan`` (192.168.77.1 and .2;
  the host side of the lab netns is 192.168.77.254), one 128 MiB disk each,
  booted in parallel on different CPUs.

Example::

    def test_vip(guest):
        guest.run(["modprobe", "ip_vs"], check=True)
        assert "IP Virtual Server" in guest.run(["ipvsadm", "-Ln"]).stdout
        r = guest.agent("dummy", "monitor", {"state_dir": "/run/d"})
        assert r.rc == 7

When a test fails, the guests' console tails are printed in its report.  Guest
shares (results, console logs) stay in the test's tmp_path/lab.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from typing import TYPE_CHECKING

import pytest

from .labctl import Guest, Lab, hash_tree

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

# Host files the smoke tests' guests write to (through their overlay).  They must
# not change on the host; checked once around the whole session.
WATCHED_ETC = ["/etc/lvm", "/etc/iscsi", "/etc/target", "/etc/drbd.conf", "/etc/drbd.d",
               "/etc/hostname", "/etc/hosts", "/etc/dbus-1"]


def _lab_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "the lab needs root (overlay copy-up of unreadable host files, netns)"
    for tool in ("linux", "unshare", "nsenter", "ip", "busybox", "modprobe"):
        if shutil.which(tool) is None:
            return f"{tool} not installed (scripts/setup/apt-lab.txt)"
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    reason = _lab_unavailable()
    for item in items:
        if "tests/lab/" in str(item.fspath):
            item.add_marker(pytest.mark.lab)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call":
        item.stash[_FAILED] = rep.failed


_FAILED = pytest.StashKey[bool]()


def _snapshot_etc() -> dict[str, str]:
    out: dict[str, str] = {}
    for p in WATCHED_ETC:
        if os.path.isdir(p):
            out.update(hash_tree(p))
        elif os.path.lexists(p):
            with open(p, "rb") as f:
                out[p] = hashlib.sha256(f.read()).hexdigest()
    return out


@pytest.fixture(scope="session", autouse=True)
def _host_etc_untouched() -> Iterator[None]:
    before = _snapshot_etc()
    yield
    after = _snapshot_etc()
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    assert not changed, f"lab guests changed host files: {changed}"


@pytest.fixture
def lab(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Lab]:
    lab = Lab(results=tmp_path / "lab")
    try:
        yield lab
    finally:
        if request.node.stash.get(_FAILED, False):
            for g in lab.guests:
                print(g.console_tail())
        lab.close()


@pytest.fixture
def guest(lab: Lab) -> Guest:
    return lab.guest("node1", disks=["256M", "256M"]).wait_ready()


@pytest.fixture
def guest_pair(lab: Lab) -> tuple[Guest, Guest]:
    net = lab.network("lan")
    g1, g2 = lab.boot({"name": "node1", "disks": ["128M"], "nics": [(net, 1)]},
                      {"name": "node2", "disks": ["128M"], "nics": [(net, 2)]})
    return g1, g2
