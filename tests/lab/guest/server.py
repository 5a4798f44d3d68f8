"""In-guest command server: PID 1 of a lab guest after stage-1 init.

Runs under the host's /usr/bin/python3 inside the guest (started with -S, so only
the standard library is used here).  Contract with the host side (labctl.py):

* The spool directory is ``$LAB_SHARE/ctl`` (a hostfs mount, shared with the host).
* When the server is ready it writes ``ctl/ready`` (JSON: guest uptime, hostname).
* The host drops requests as ``ctl/req-<id>.json`` (written elsewhere and renamed
  in, so they appear complete).  The server deletes each request when it picks it
  up and answers with ``ctl/resp-<id>.json`` (also renamed in).  Requests run
  concurrently, one thread each.
* Request kinds:
    ``run``:   argv, env, cwd, input, timeout -> rc, stdout, stderr, duration, timed_out
    ``spawn``: argv, env, cwd, log           -> pid (detached, output to ``log``)
    ``poweroff``: answers, then syncs and powers the guest off.

PID 1 forks: the child serves, the parent only reaps (daemons started by tests
are re-parented to PID 1) and powers off when the server child is gone.  Polling
the spool costs a few syscalls per tick; under UML's ptrace that is ~0.2 ms,
cheap next to the ~40 ms of every fork+exec, which is why the server runs
commands itself instead of through a shell.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any

POLL_BUSY = 0.005
POLL_IDLE = 0.03
BASE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "TERM": "dumb",
}


def uptime() -> float:
    with open("/proc/uptime") as f:
        return float(f.read().split()[0])


def put(ctl: str, name: str, data: dict[str, Any]) -> None:
    """Write ``ctl/name`` atomically (the host polls for the final name)."""
    tmp = os.path.join(ctl, f".{name}.tmp")
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.rename(tmp, os.path.join(ctl, name))


def child_env(extra: dict[str, str] | None) -> dict[str, str]:
    env = dict(BASE_ENV)
    env["LAB_SHARE"] = os.environ.get("LAB_SHARE", "")
    env.update(extra or {})
    return env


def do_run(req: dict[str, Any]) -> dict[str, Any]:
    t0 = time.monotonic()
    data = req.get("input")
    try:
        proc = subprocess.Popen(
            req["argv"],
            stdin=subprocess.PIPE if data is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=child_env(req.get("env")),
            cwd=req.get("cwd") or "/",
            start_new_session=True,  # so a timeout kills the whole command tree
        )
    except OSError as e:
        msg = "lab: cannot run {!r}: {}\n".format(req["argv"], e)
        return {"rc": 127, "stdout": "", "stderr": msg,
                "duration": 0.0, "timed_out": False}
    timed_out = False
    try:
        out, err = proc.communicate(
            data.encode() if data is not None else None, timeout=req.get("timeout") or None)
    except subprocess.TimeoutExpired:
        timed_out = True
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = proc.communicate()
    return {
        "rc": proc.returncode,
        "stdout": out.decode("utf-8", "replace"),
        "stderr": err.decode("utf-8", "replace"),
        "duration": time.monotonic() - t0,
        "timed_out": timed_out,
    }


def do_spawn(req: dict[str, Any]) -> dict[str, Any]:
    log = req.get("log") or "/dev/null"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            req["argv"], stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            env=child_env(req.get("env")), cwd=req.get("cwd") or "/", start_new_session=True)
    # PID 1 reaps it when it exits; the Popen object is dropped on purpose.
    return {"pid": proc.pid}


def handle(ctl: str, rid: str, req: dict[str, Any], stop: threading.Event) -> None:
    kind = req.get("kind")
    try:
        if kind == "run":
            resp = do_run(req)
        elif kind == "spawn":
            resp = do_spawn(req)
        elif kind == "poweroff":
            resp = {"ok": True}
            stop.set()
        else:
            resp = {"error": f"unknown request kind {kind!r}"}
    except Exception as e:  # the host must get an answer, whatever went wrong
        resp = {"error": f"{type(e).__name__}: {e}"}
    put(ctl, f"resp-{rid}.json", resp)


def serve(ctl: str) -> None:
    stop = threading.Event()
    put(ctl, "ready", {"uptime": uptime(), "hostname": socket.gethostname()})
    idle_since = time.monotonic()
    while not stop.is_set():
        try:
            names = sorted(n for n in os.listdir(ctl) if n.startswith("req-"))
        except OSError:
            names = []
        for name in names:
            path = os.path.join(ctl, name)
            try:
                with open(path) as f:
                    req = json.load(f)
                os.unlink(path)
            except (OSError, ValueError):
                continue
            rid = name[len("req-"):-len(".json")]
            threading.Thread(target=handle, args=(ctl, rid, req, stop), daemon=True).start()
            idle_since = time.monotonic()
        busy = time.monotonic() - idle_since < 2.0
        time.sleep(POLL_BUSY if busy else POLL_IDLE)


def main() -> None:
    ctl = os.path.join(os.environ["LAB_SHARE"], "ctl")
    name = os.environ.get("LAB_HOSTNAME")
    if name:
        socket.sethostname(name)
    if os.getpid() != 1:  # run by hand for debugging
        serve(ctl)
        return
    server = os.fork()
    if server == 0:
        try:
            serve(ctl)
        finally:
            os._exit(0)
    while True:
        try:
            pid, _status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if pid == server:
            break
    os.sync()
    os.execv("/bin/busybox", ["busybox", "poweroff", "-f"])


if __name__ == "__main__":
    try:
        main()
    except Exception as e:
        # PID 1 must never exit (the kernel panics); power off and say why.
        sys.stderr.write(f"LAB-SERVER: {type(e).__name__}: {e}\n")
        os.execv("/bin/busybox", ["busybox", "poweroff", "-f"])
