"""fence_lsaa_libvirt against fence_virsh, side by side, on the same libvirtd.

Rows (median of whole-process runs, alternated so both see the same load):

* ``reboot``: fence_lsaa_libvirt reboot of a QEMU/TCG domain vs Debian's
  fence_virsh reboot of the same domain, driven through a local ssh stand-in
  (lab-recipes.md C.3: ``--ssh-path`` is a stub that prompts for a password,
  then runs an interactive bash with virsh pointed at the same libvirtd).
  Target: at most 0.5x.
* ``list 500``: fence_lsaa_libvirt list with 500 defined domains (libvirt's
  test driver shared through libvirtd) vs a single fence_lsaa_libvirt status
  on that driver.  Target: at most 3x.

Run standalone: ``/usr/bin/python3 bench/bench_libvirt.py`` (root; needs
scripts/setup/apt-libvirt.txt installed and ``make dev-install``).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.functional.libvirt_lab import LibvirtLab, missing  # noqa: E402

AGENT = "/usr/sbin/fence_lsaa_libvirt"
FENCE_VIRSH = "/usr/sbin/fence_virsh"
RUNS = int(os.environ.get("LSAA_BENCH_RUNS", "7"))
LIST_DOMAINS = 500

SSH_STUB = """#!/bin/sh
# ssh stand-in for fence_virsh: prompt like sshd, then a shell whose virsh
# talks to the lab's libvirtd.
printf 'Password: '
read -r _pw
exec env LIBVIRT_DEFAULT_URI='{uri}' PS1='[EXPECT]#' /bin/bash --noprofile --norc -i
"""


def timed(argv: list[str], stdin: str, env: dict[str, str]) -> float:
    started = time.monotonic()
    r = subprocess.run(argv, input=stdin, capture_output=True, text=True, env=env,
                       timeout=120, check=False)
    elapsed = time.monotonic() - started
    if r.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed (rc={r.returncode}): {r.stderr.strip()[:300]}")
    return elapsed


def _reboot_row(lab: LibvirtLab) -> tuple[str, float, str, float, float]:
    lab.define("bench1")
    stub = lab.base / "ssh-stub"
    stub.write_text(SSH_STUB.format(uri=lab.uri))
    stub.chmod(0o755)
    env = lab.env()
    lsaa_stdin = f"action=reboot\nuri={lab.uri}\nplug=bench1\n"
    virsh_argv = [FENCE_VIRSH, "--ssh", "--ip", "127.0.0.1", "--username", "root",
                  "--password", "x", "--ssh-path", str(stub), "--plug", "bench1",
                  "--action", "reboot"]
    ours: list[float] = []
    theirs: list[float] = []
    # one warm-up each (page cache, QEMU binary)
    timed([AGENT], lsaa_stdin, env)
    timed(virsh_argv, "", env)
    for _ in range(RUNS):
        ours.append(timed([AGENT], lsaa_stdin, env))
        if lab.domstate("bench1") != "running":
            raise RuntimeError("fence_lsaa_libvirt reboot left bench1 not running")
        theirs.append(timed(virsh_argv, "", env))
        if lab.domstate("bench1") != "running":
            raise RuntimeError("fence_virsh reboot left bench1 not running")
    return ("fence_lsaa_libvirt reboot (QEMU/TCG via libvirtd)", statistics.median(ours),
            "fence_virsh reboot (ssh stand-in)", statistics.median(theirs), 0.5)


def _list_row(lab: LibvirtLab) -> tuple[str, float, str, float, float]:
    lab.anchor(lab.test_uri)
    names = [f"bench{i:03d}" for i in range(LIST_DOMAINS)]
    lab.define_test_domains(names, running=set(names[::2]))
    env = lab.env()
    list_stdin = f"action=list\nuri={lab.test_uri}\n"
    status_stdin = f"action=status\nuri={lab.test_uri}\nplug=bench000\n"
    r = subprocess.run([AGENT], input=list_stdin, capture_output=True, text=True, env=env,
                       timeout=60, check=True)
    if len(r.stdout.splitlines()) < LIST_DOMAINS:
        raise RuntimeError(f"list printed {len(r.stdout.splitlines())} domains")
    lists: list[float] = []
    statuses: list[float] = []
    timed([AGENT], status_stdin, env)
    for _ in range(RUNS):
        lists.append(timed([AGENT], list_stdin, env))
        statuses.append(timed([AGENT], status_stdin, env))
    return (f"fence_lsaa_libvirt list ({LIST_DOMAINS} domains, test driver)",
            statistics.median(lists), "fence_lsaa_libvirt status (one domain)",
            statistics.median(statuses), 3.0)


def rows() -> list[tuple[str, float, str, float, float]]:
    """(name, lsaa median s, anchor name, anchor median s, target ratio) per row."""
    reason = missing()
    if reason:
        raise RuntimeError(f"bench_libvirt cannot run: {reason}")
    if not os.path.exists(FENCE_VIRSH):
        raise RuntimeError(f"{FENCE_VIRSH} is not installed (fence-agents)")
    lab = LibvirtLab(prefix="lsaa-bench-libvirt-")
    try:
        lab.start()
        return [_reboot_row(lab), _list_row(lab)]
    finally:
        left = lab.stop()
        if left:
            sys.stderr.write(f"bench_libvirt: left behind: {left}\n")


def main() -> int:
    results = rows()
    print(f"{'benchmark':58} {'lsaa':>8} {'anchor':>8} {'ratio':>6} {'target':>6}")
    bad = 0
    for name, ours, anchor, theirs, target in results:
        ratio = ours / theirs
        ok = ratio <= target
        bad += not ok
        print(f"{name:58} {ours:8.3f} {theirs:8.3f} {ratio:6.2f} {target:6.2f}"
              f"  {'ok' if ok else 'MISSED'}  (anchor: {anchor})")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
