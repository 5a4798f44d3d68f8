"""PID 1 of a test node's namespaces: prepare the node's view of the file system, then reap.

Run by ``unshare --mount --uts --ipc --net --pid --fork --mount-proc`` (see cluster.py) as
``/usr/bin/python3 -I nsinit.py SPEC.json``, where the JSON file holds an object with:

- ``hostname``: the node's name (UTS namespace);
- ``binds``: ``[[source, target], ...]`` host directories bind-mounted over system paths
  (``/etc/corosync``, ``/var/lib/pacemaker``, ...), so the daemons keep their default paths but
  write into the node's directory under the run directory;
- ``ready``: a file this process creates once the node can run daemons.

Contract: nothing this process does is visible to the host (mounts are private to the new mount
namespace, the network namespace is new).  It reaps every orphan adopted by the namespace (the
daemons daemonise into it, and without reaping ``kill -0`` on a dead daemon stays true), and it
exits on SIGTERM; exiting as PID 1 makes the kernel SIGKILL everything else in the namespace.
SIGKILL from the host does the same, which is how a test node is "powered off".

Standard library only and no lsaa import: it runs before anything else in the namespace.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True)


def _prepare(spec: dict) -> None:  # type: ignore[type-arg]
    # unshare already makes propagation private; repeat it so no mount below can ever
    # propagate back to the host, whatever unshare's defaults become.
    _run("mount", "--make-rprivate", "/")
    for source, target in spec["binds"]:
        _run("mount", "--bind", source, target)
    # A fresh /run is a node "booting": pacemakerd creates /run/crm, agents keep their state
    # in /run/resource-agents (HA_RSCTMP), and the host's /run stays untouched.
    _run("mount", "-t", "tmpfs", "-o", "mode=0755,size=64m", "tmpfs", "/run")
    for d, mode in (("/run/lock", 0o1777), ("/run/resource-agents", 0o755),
                    ("/run/fence-agents", 0o755)):
        os.makedirs(d, exist_ok=True)
        os.chmod(d, mode)
    # libqb keeps its IPC ring buffers in /dev/shm (qb-*): per node, gone with the node.
    _run("mount", "-t", "tmpfs", "-o", "mode=1777,size=64m", "tmpfs", "/dev/shm")
    socket.sethostname(spec["hostname"])
    _run("ip", "link", "set", "lo", "up")


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as f:
        spec = json.load(f)
    _prepare(spec)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
    with open(spec["ready"], "w", encoding="utf-8") as f:
        f.write(f"{os.getpid()}\n")
    print(f"init for {spec['hostname']} ready", flush=True)
    # SIGCHLD's default action discards it unless it is blocked; blocked, sigtimedwait()
    # collects it, so the loop sleeps until a child (or adopted orphan) dies.
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGCHLD])
    while True:
        try:
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        except ChildProcessError:
            pass  # no children yet: daemons started through nsenter are adopted later
        signal.sigtimedwait([signal.SIGCHLD], 5.0)


if __name__ == "__main__":
    main()
