"""ocf:lsaa:haproxy — an HAProxy instance, reloaded without dropping connections.

Process model: ``haproxy -W -D -p <pid file> -S <master socket>,mode,600 -f <config>``, all
paths per instance in the state directory.  Master-worker mode gives the agent what it needs
without a single line in the administrator's configuration:

* the master CLI socket (``-S``) is the agent's own: ``show proc`` proves the master answers,
  ``@1 show stat`` reaches the worker's statistics, ``reload`` re-executes the master, which
  hands the listening sockets to the new worker (``-x sockpair@``) while the old one finishes
  its connections: a seamless reload;
* the master's argv never changes, so ``-f`` names a stable path: a symlink to ``config``, or
  the file holding ``config_text`` (mode 0600); a reload re-reads whatever it points to;
* the agent's socket path in argv identifies the instance's processes in /proc, so a recycled
  PID in a stale pid file is never mistaken for haproxy, nor signalled.

``haproxy -D`` forks, calls setsid() and points stdio to /dev/null before the parent exits: the
daemon leaves the agent's process group (Pacemaker's SIGKILL of the group on a timeout cannot
reach it) and does not hold the runner's pipes.

A new configuration is always checked (``haproxy -c``) before it replaces the running one; a
bad one fails start/reload-agent with haproxy's own message, and the running instance keeps
serving, untouched.  Exit codes: ``config`` is a file on this node (it may differ elsewhere),
so its errors are node-local (2, OCF_ERR_ARGS: ban this node, try another); ``config_text`` is
the same on every node, so its errors are inherent (6), except those that come from the node
(a missing certificate, user or name: 2).
"""

from __future__ import annotations

import os

from lsaa.errors import ConfigError, GenericError, LocalConfigError
from lsaa.ocf import OCF_NOT_RUNNING, OCF_SUCCESS
from lsaa.ocf.agent import Agent, Context
from lsaa.ocf.spec import Action, AgentSpec, Param, absolute_path

TYPE_CHECKING = False  # see lsaa.errors
if TYPE_CHECKING:
    from lsaa.backends.haproxy import ProcTable

# Options the agent passes itself, or that would keep haproxy in the foreground / not start it.
OWN_OPTIONS = frozenset(("-D", "-W", "-Ws", "-S", "-p", "-f", "-sf", "-st", "-x", "-c", "-d",
                         "-db", "-v", "-vv", "-V"))
SUN_PATH_MAX = 107  # bytes of a UNIX socket path, without the NUL
CLI_TIMEOUT = 5.0  # seconds for one master CLI exchange (capped by the deadline)
POLL = 0.05
DEFAULT_GRACE = 10.0  # seconds; stop_grace's default


def _binary(raw: str) -> str:
    if "/" in raw and not raw.startswith("/"):
        raise ValueError(f"{raw!r} must be a command name or an absolute path")
    if not raw.strip() or raw != raw.strip():
        raise ValueError(f"{raw!r} has leading or trailing blanks")
    return raw


def _config_text(raw: str) -> str:
    """The configuration as haproxy must read it.

    Pacemaker 2.1 stores a newline of a parameter value in the CIB as the two characters
    backslash, n, and hands the agent that (tested: pcs resource create/update, crm_resource
    -p).  A value without any real newline therefore has its ``\\n`` turned back into line
    breaks; inside an argument, write haproxy's ``\\x0a`` for a newline character.
    """
    if not raw.strip():
        raise ValueError("is blank")
    if "\n" not in raw and "\\n" in raw:
        raw = raw.replace("\\n", "\n")
    if "\n" not in raw.strip():
        # pcs 0.11.5's "resource update" turns newlines into spaces (tested); create keeps them
        raise ValueError("has no line break (pcs resource update turns them into spaces: set "
                         "it with crm_resource --set-parameter, or use config)")
    return raw


def _names(raw: str) -> str:
    for name in raw.split():
        if not all(c.isalnum() or c in "-_.:" for c in name):
            raise ValueError(f"{name[:40]!r} is not a proxy name (letters, digits, - _ . :)")
    return raw


def _words(raw: str) -> str:
    bad = sorted(OWN_OPTIONS.intersection(raw.split()))
    if bad:
        raise ValueError(f"{', '.join(bad)} cannot be used: the agent sets or forbids them")
    return raw


SPEC = AgentSpec(
    name="haproxy",
    shortdesc="HAProxy load balancer with graceful reload",
    longdesc=(
        "Runs one HAProxy instance in master-worker mode from a configuration file (config) "
        "or from configuration text kept in the CIB (config_text); set exactly one. The agent "
        "adds its own master CLI socket on the command line, so the configuration needs no "
        "special line. Changing config, config_text or backends reloads haproxy (reload-agent) "
        "without dropping connections, after checking the new configuration with haproxy -c: "
        "a configuration with errors fails the reload and the running instance keeps serving. "
        "After editing the file named by config, make Pacemaker reload it by changing any "
        "reloadable parameter, e.g. pcs resource update RSC reload_serial=$(date +%s). "
        "The monitor at depth 0 checks that the master process runs and answers on its "
        "socket; a monitor with OCF_CHECK_LEVEL=10 also checks that every backend named in "
        "backends has at least one server up (add it with: pcs resource op add RSC monitor "
        "interval=30s OCF_CHECK_LEVEL=10)."
    ),
    params=[
        Param("config", "Configuration file",
              "Absolute path of the HAProxy configuration file (or directory of .cfg files) "
              "on each node. Errors in it are node-local: start fails with "
              "OCF_ERR_ARGS and the resource may run elsewhere.",
              check=absolute_path, unique_group="config", reloadable=True),
        Param("config_text", "Configuration text",
              "The whole HAProxy configuration as text, kept in the CIB. The agent writes it "
              "to a file only root can read, in its state directory. Errors in it are the "
              "same on every node (OCF_ERR_CONFIGURED). Pacemaker keeps the newlines of a "
              "value as the two characters \\n; a value without a real newline has them "
              "turned back into line breaks (so inside an argument, write \\x0a).",
              check=_config_text, reloadable=True),
        Param("backends", "Backends the depth-10 monitor checks",
              "Names of backend or listen sections, separated by blanks. A monitor with "
              "OCF_CHECK_LEVEL=10 fails when one of them has no server up.",
              check=_names, reloadable=True),
        Param("binary", "haproxy executable",
              "The haproxy command: a name looked up in /usr/sbin:/usr/bin:/sbin:/bin, or an "
              "absolute path.", default="haproxy", check=_binary, advanced=True),
        Param("extra_args", "Extra haproxy arguments",
              "More command-line arguments for haproxy, separated by blanks (no shell "
              "quoting), e.g. \"-L node1\" for peers. Options the agent controls "
              "(-D -W -S -p -f -sf -st -x -c -d -db -v -vv -V) are refused.",
              check=_words, advanced=True),
        Param("stop_grace", "Seconds to finish connections on stop",
              "On stop, haproxy first stops listening and lets open connections finish "
              "(soft stop) for up to this many seconds, then is terminated; the wait is "
              "shortened to fit the stop timeout.",
              type="integer", default="10", minimum=0, maximum=3600, reloadable=True),
        Param("reload_serial", "Any value; a change reloads haproxy",
              "Not used by haproxy: change it after editing the configuration file to make "
              "Pacemaker reload haproxy (reload-agent).", reloadable=True, advanced=True),
    ],
    actions=[
        Action("start", 20),
        Action("stop", 30),
        Action("monitor", 20, interval=10, depth=0),
        Action("reload-agent", 20),
        Action("validate-all", 20),
        Action("meta-data", 5),
    ],
)


class Paths:
    """Where one instance keeps its files in the state directory."""

    __slots__ = ("cfg", "pid", "sock")

    def __init__(self, ctx: Context) -> None:
        self.cfg = ctx.state_file("cfg")
        self.pid = ctx.state_file("pid")
        sock = ctx.state_file("sock")
        if len(os.fsencode(sock)) > SUN_PATH_MAX:
            import hashlib

            digest = hashlib.sha256(ctx.instance_base.encode()).hexdigest()[:16]
            sock = os.path.join(ctx.state_dir, f"lsaa-haproxy-{digest}.sock")
        self.sock = sock

    def check(self) -> None:
        if len(os.fsencode(self.sock)) > SUN_PATH_MAX or "," in self.sock:
            raise LocalConfigError(f"state directory {os.path.dirname(self.sock)} is not "
                                   "usable for a UNIX socket path (too long, or a comma)")


# -- processes, from /proc ---------------------------------------------------------------------


class ProcInfo:
    __slots__ = ("argv", "pid", "ppid", "start")

    def __init__(self, pid: int, argv: list[str], ppid: int, start: int) -> None:
        self.pid = pid
        self.argv = argv
        self.ppid = ppid
        self.start = start


def _proc(pid: int, needle: bytes | None = None) -> ProcInfo | None:
    """A live (not zombie) process, or None; with ``needle``, only if its argv holds it."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
        if needle is not None and needle not in raw:
            return None
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("utf-8", "replace")
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    if len(fields) < 20 or fields[0] in ("Z", "X", "x"):
        return None
    argv = [a.decode("utf-8", "replace") for a in raw.split(b"\0") if a]
    return ProcInfo(pid, argv, int(fields[1]), int(fields[19]))


def _ours(info: ProcInfo | None, sock: str) -> bool:
    """Is this a process of our instance: haproxy started with ``-S <our socket>``?"""
    if info is None:
        return False
    argv = info.argv
    return any(argv[i] == "-S" and argv[i + 1].split(",", 1)[0] == sock
               for i in range(len(argv) - 1))


def _scan(sock: str) -> dict[int, ProcInfo]:
    """Every live process of this instance (master, workers, old workers), by PID."""
    needle = os.fsencode(sock)
    found = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            info = _proc(int(name), needle)
            if _ours(info, sock) and info is not None:
                found[info.pid] = info
    return found


def _read_pid(path: str) -> int | None:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            text = f.read(64).strip()
    except OSError:
        return None
    return int(text) if text.isdigit() and int(text) > 1 else None


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        raise GenericError(f"cannot remove {path}: {e.strerror}") from None


class HAProxy(Agent):
    spec = SPEC

    # -- validation ------------------------------------------------------------------------

    # Stop finds the instance by its name, whatever the parameters say now: an
    # instance started with a configuration since made invalid must still stop.
    stop_despite_invalid = True

    def validate(self, ctx: Context) -> list[str]:
        problems = []
        config, text = ctx.p("config"), ctx.p("config_text")
        if (config is None) == (text is None):
            problems.append("config, config_text: set exactly one of them")
        names = str(ctx.p("backends") or "").split()
        if text is not None and names:
            from lsaa.backends.haproxy import proxy_sections

            declared = proxy_sections(str(text))
            missing = [n for n in names if n not in declared]
            if missing:
                problems.append(f"backends: {', '.join(missing)} not a backend or listen "
                                "section of config_text")
        return problems

    def check_local(self, ctx: Context) -> None:
        Paths(ctx).check()
        self._check_config(ctx, self._binary(ctx))

    def _binary(self, ctx: Context) -> str:
        binary = str(ctx.p("binary"))
        if binary.startswith("/"):
            found: str | None = binary if os.access(binary, os.X_OK) else None
        else:
            import shutil

            from lsaa.run import PATH

            found = shutil.which(binary, path=PATH)
        if not found or os.path.isdir(found):
            from lsaa.errors import NotInstalledError

            raise NotInstalledError(f"{binary} is not installed (not an executable)")
        return binary

    def _check_config(self, ctx: Context, binary: str) -> None:
        """``haproxy -c`` of the configuration the parameters give; raise if it is bad."""
        from lsaa.backends.haproxy import check_errors, is_local_problem

        text = ctx.p("config_text")
        path = str(ctx.p("config"))
        if text is not None:
            argv = [binary, "-c", "-f", "/dev/stdin"]
            res = ctx.runner.run(argv, ok=range(256), input=_with_newline(str(text)))
        elif not os.path.exists(path):
            raise LocalConfigError(f"config: {path} does not exist")
        else:
            res = ctx.runner.run([binary, "-c", "-f", path], ok=range(256))
        if res.rc != 0:
            errors = check_errors(res.stdout + "\n" + res.stderr)
            for line in errors:
                ctx.log.error(f"haproxy -c: {line}")
            # Exit reasons are cut at 128 characters: name files the shortest clear way.
            shown = "config_text" if text is not None else os.path.basename(path.rstrip("/"))
            where = "/dev/stdin" if text is not None else path.rstrip("/")
            errors = [e.replace(where, shown) for e in errors]
            if not errors:
                said = (res.stderr + "\n" + res.stdout).strip().splitlines()
                ctx.log.error(f"haproxy -c exited {res.rc}: {said[-3:]}")
                errors = [f"exited {res.rc}" + (f": {said[-1].strip()}" if said else "")]
            first = errors[0]
            more = sum(1 for e in errors[1:] if not e.startswith(("Error(s)", "Fatal")))
            message = f"haproxy -c: {first}" + (f" (+{more} more)" if more else "")
            if text is not None and not is_local_problem(errors):
                raise ConfigError(message)
            raise LocalConfigError(message if text is not None else f"config: {message}")
        if text is None:
            self._check_backends_declared(ctx, path)

    def _check_backends_declared(self, ctx: Context, path: str) -> None:
        names = str(ctx.p("backends") or "").split()
        if not names:
            return
        from lsaa.backends.haproxy import proxy_sections

        files = ([os.path.join(path, n) for n in sorted(os.listdir(path)) if n.endswith(".cfg")]
                 if os.path.isdir(path) else [path])
        declared: set[str] = set()
        for name in files:
            try:
                with open(name, encoding="utf-8", errors="replace") as f:
                    declared |= proxy_sections(f.read())
            except OSError as e:
                raise LocalConfigError(f"config: cannot read {name}: {e.strerror}") from None
        missing = [n for n in names if n not in declared]
        if missing:
            raise LocalConfigError(f"backends: {', '.join(missing)} not a backend or listen "
                                   f"section of {path}")

    def _install_config(self, ctx: Context, paths: Paths) -> None:
        """Point the stable path haproxy reads at the (checked) configuration."""
        text = ctx.p("config_text")
        try:
            os.makedirs(ctx.state_dir, mode=0o755, exist_ok=True)
            tmp = paths.cfg + ".new"
            _unlink(tmp)
            if text is not None:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    f.write(_with_newline(str(text)))
            else:
                os.symlink(str(ctx.p("config")), tmp)
            os.replace(tmp, paths.cfg)
        except OSError as e:
            raise GenericError(f"cannot write {paths.cfg}: {e.strerror}") from None

    # -- talking to the master -------------------------------------------------------------

    def _ask(self, ctx: Context, paths: Paths, command: str) -> str:
        from lsaa.backends.haproxy import cli

        timeout = ctx.deadline.cap(CLI_TIMEOUT, f"haproxy CLI {command}")
        try:
            return cli(paths.sock, command, timeout)
        except OSError as e:
            why = e.strerror or str(e) or type(e).__name__
            # The socket's path is in the log; an exit reason has 128 characters.
            ctx.log.error(f"haproxy master socket {paths.sock}: {command}: {why}")
            raise GenericError(f"haproxy master CLI {command!r}: {why}") from None

    def _procs(self, ctx: Context, paths: Paths) -> ProcTable:
        from lsaa.backends.haproxy import parse_show_proc

        answer = self._ask(ctx, paths, "show proc")
        try:
            return parse_show_proc(answer)
        except ValueError as e:
            raise GenericError(f"haproxy master CLI: {e}") from None

    def _master(self, ctx: Context, paths: Paths) -> int | None:
        """The PID of this instance's running master, or None if nothing of it runs."""
        pid = _read_pid(paths.pid)
        if pid is not None and _ours(_proc(pid, os.fsencode(paths.sock)), paths.sock):
            return pid
        # Pid file missing, stale or recycled: is anything of ours still running?
        found = _scan(paths.sock)
        if not found:
            return None
        try:
            master = self._procs(ctx, paths).master
        except GenericError:
            master = None
        if master is not None and master.pid in found:
            ctx.log.warning(f"pid file {paths.pid} does not name master {master.pid}")
            return master.pid
        raise GenericError(f"haproxy processes of this instance run ({_pids(found)}) but "
                           "none answers as master")

    def _status(self, ctx: Context, paths: Paths, master: int) -> None:
        """Raise unless the master answers and has a worker (depth 0)."""
        table = self._procs(ctx, paths)
        if table.master is None or table.master.pid != master:
            raise GenericError(f"haproxy master socket answered for another master "
                               f"({table.master.pid if table.master else '?'}, not {master})")
        if not table.all_workers:
            raise GenericError(f"haproxy master {master} has no worker")

    def _check_backends(self, ctx: Context, paths: Paths) -> None:
        """Raise unless every backend in ``backends`` has a server up (depth 10)."""
        from lsaa.backends.haproxy import backend_problems, parse_show_stat

        answer = self._ask(ctx, paths, "@1 show stat")
        try:
            stats = parse_show_stat(answer)
        except ValueError as e:
            raise GenericError(f"haproxy worker statistics: {e}") from None
        problems = backend_problems(stats, str(ctx.p("backends") or "").split())
        if problems:
            raise GenericError("; ".join(problems))

    # -- actions -------------------------------------------------------------------------------

    def monitor(self, ctx: Context) -> int:
        paths = Paths(ctx)
        master = self._master(ctx, paths)
        if master is None:
            return OCF_NOT_RUNNING
        self._status(ctx, paths, master)
        if ctx.check_level >= 10:
            self._check_backends(ctx, paths)
        return OCF_SUCCESS

    def start(self, ctx: Context) -> int:
        paths = Paths(ctx)
        paths.check()
        master = self._master(ctx, paths)
        if master is not None:
            self._status(ctx, paths, master)
            return OCF_SUCCESS
        binary = self._binary(ctx)
        self._check_config(ctx, binary)
        self._install_config(ctx, paths)
        _unlink(paths.pid)
        _unlink(paths.sock)
        argv = [binary, "-W", "-D", "-p", paths.pid, "-S", f"{paths.sock},mode,600",
                "-f", paths.cfg, *str(ctx.p("extra_args") or "").split()]
        from lsaa.errors import CommandError

        try:
            ctx.runner.run(argv)
        except CommandError as e:
            from lsaa.backends.haproxy import check_errors

            errors = check_errors(e.stdout + "\n" + e.stderr)
            raise GenericError(f"haproxy did not start: {errors[0]}" if errors
                               else e.reason) from None
        last = ""
        while True:
            master = _read_pid(paths.pid)
            if master is not None and _ours(_proc(master), paths.sock):
                try:
                    self._status(ctx, paths, master)
                    return OCF_SUCCESS
                except GenericError as e:
                    last = e.reason
            else:
                last = f"no haproxy master named in {paths.pid}"
            ctx.deadline.sleep(POLL, f"haproxy start ({last})")

    def reload_agent(self, ctx: Context) -> int:
        paths = Paths(ctx)
        master = self._master(ctx, paths)
        if master is None:
            raise GenericError("haproxy is not running: nothing to reload")
        binary = self._binary(ctx)
        self._check_config(ctx, binary)  # a bad configuration stops here, nothing touched
        before = self._procs(ctx, paths)
        self._install_config(ctx, paths)
        old = {w.pid for w in before.all_workers}
        reloads = before.master.reloads if before.master else 0
        self._ask(ctx, paths, "reload")  # 2.6 answers nothing; 2.7+ says Success=1
        last = "master did not count a reload"
        while True:
            ctx.deadline.sleep(POLL, f"haproxy reload ({last})")
            try:
                table = self._procs(ctx, paths)
            except GenericError as e:  # the master re-executes itself meanwhile
                last = e.reason
                continue
            if table.master is None or table.master.reloads <= reloads:
                continue
            if table.master.failed:
                raise GenericError("haproxy refused the new configuration at reload (see its "
                                   "log); the previous workers keep serving")
            if any(w.pid not in old for w in table.workers):
                ctx.log.info(f"reloaded haproxy master {master}")
                return OCF_SUCCESS
            last = "no new worker yet"

    def stop(self, ctx: Context) -> int:
        paths = Paths(ctx)
        procs = _scan(paths.sock)
        if procs:
            pid = _read_pid(paths.pid)
            masters = [pid] if pid in procs else [p for p, i in procs.items()
                                                    if i.ppid not in procs]
            self._terminate(ctx, procs, masters)
        for path in (paths.pid, paths.sock, paths.cfg, paths.cfg + ".new"):
            _unlink(path)
        return OCF_SUCCESS

    def _terminate(self, ctx: Context, procs: dict[int, ProcInfo], masters: list[int]) -> None:
        """Soft stop (SIGUSR1 to the master), then SIGTERM, then SIGKILL, within the deadline."""
        import signal

        def alive() -> dict[int, ProcInfo]:
            return {p: i for p, i in procs.items()
                    if (now := _proc(p)) is not None and now.start == i.start}

        def send(sig: int, pids: list[int]) -> None:
            for p in pids:
                if p in alive():  # same process as scanned (start time), never a recycled PID
                    try:
                        os.kill(p, sig)
                    except ProcessLookupError:
                        pass

        def wait(seconds: float) -> dict[int, ProcInfo]:
            import time

            end = time.monotonic() + max(0.0, seconds)
            left = alive()
            while left and time.monotonic() < end:
                time.sleep(POLL)
                left = alive()
            return left

        configured = ctx.p("stop_grace")  # None when invalid: stop runs regardless
        grace = min(float(configured) if isinstance(configured, int) else DEFAULT_GRACE,
                    ctx.deadline.remaining() - 3.0)
        send(signal.SIGUSR1, masters or list(procs))
        left = wait(grace)
        if left:
            ctx.log.warning(f"haproxy still running after soft stop: {_pids(left)}; SIGTERM")
            send(signal.SIGTERM, list(left))
            left = wait(min(2.0, ctx.deadline.remaining() - 1.0))
        if left:
            ctx.log.warning(f"haproxy survived SIGTERM: {_pids(left)}; SIGKILL")
            send(signal.SIGKILL, list(left))
            left = wait(min(2.0, ctx.deadline.remaining()))
        if left:
            raise GenericError(f"haproxy processes survived SIGKILL: {_pids(left)}")


def _with_newline(text: str) -> str:
    """haproxy warns about a last line without LF (shells strip it from $(cat file))."""
    return text if text.endswith("\n") else text + "\n"


def _pids(procs: dict[int, ProcInfo]) -> str:
    return " ".join(str(p) for p in sorted(procs))


AGENT = HAProxy()


def main() -> None:
    from lsaa.ocf.main import main as run_main

    run_main(AGENT)
