"""Conformance checks for a fence agent (see fence-contract.md).

Entry point: :func:`run_fence_checks`. The fencer talks to an agent through
``name=value`` lines on stdin only; administrators and fence-agents' own tests
use the command line. Both must give the same answers, so the scenario mixes
them: power on through stdin, read back through both; power off through argv,
read back through both. Like fence-agents' ``actions.d`` scenarios, this
drives the real device: give it a disposable target (``plug``) or a file-backed
agent.

Status exit codes are the contract that matters most: 0 = on, 2 = off,
1 = error. A status that says "off" without looking makes a failed fence look
successful and makes the wrong device eligible under ``pcmk_host_check=status``.
"""

from __future__ import annotations

import os
import stat
import tempfile
import time
from collections.abc import Mapping, Sequence

from lsaa.tester import env as envmod
from lsaa.tester import metadata, proc
from lsaa.tester.report import FAIL, PASS, SKIP, WARN, Report

FENCE_OK = 0
FENCE_ON = 0  # status only
FENCE_ERROR = 1
FENCE_OFF = 2
STATUS_NAMES = {0: "on", 1: "error", 2: "off"}
RC_NAMES = {0: "success", 1: "error"}
TRUE_VALUES = ("1", "yes", "on", "true")
UNKNOWN_KEY = "lsaa_tester_unknown_key"
UNKNOWN_ACTION = "lsaa-tester-no-such-action"
SECRET_KEYS = ("password", "passwd")
SCRIPT_KEYS = ("password_script", "passwd_script")
# Actions assumed when the metadata cannot be read, so the scenario still runs.
FALLBACK_ACTIONS = ("on", "off", "status", "monitor")


def _rc(rc: int, status: bool = False) -> str:
    """``2 (off)`` for a status action, ``0 (success)`` for the others."""
    names = STATUS_NAMES if status else RC_NAMES
    return f"{rc} ({names.get(rc, 'unexpected')})"


def stdin_text(action: str, plug_key: str | None, plug: str | None,
               params: Mapping[str, str], extra_lines: Sequence[str] = ()) -> str:
    """The fencer's stdin: ``action=``, the target, device parameters, then extras."""
    lines = [f"action={action}"]
    if plug_key and plug is not None:
        lines.append(f"{plug_key}={plug}")
    lines += [f"{name}={value}" for name, value in params.items()]
    lines += list(extra_lines)
    return "\n".join(lines) + "\n"


def argv_options(meta: metadata.AgentMetadata | None, action: str, plug_key: str | None,
                 plug: str | None, params: Mapping[str, str]) -> list[str]:
    """The same request as command-line options, spelt as the metadata's ``getopt``.

    A parameter the metadata does not describe falls back to ``--name-with-dashes``;
    a boolean becomes a bare flag when true and is left out when false.
    """

    def longopt(name: str) -> str:
        parameter = meta.parameter(name) if meta else None
        if parameter and parameter.longopt:
            return parameter.longopt
        return "--" + name.replace("_", "-")

    options = [f"{longopt('action')}={action}"]
    if plug_key and plug is not None:
        options.append(f"{longopt(plug_key)}={plug}")
    for name, value in params.items():
        parameter = meta.parameter(name) if meta else None
        if parameter and parameter.content_type == "boolean":
            if value.lower() in TRUE_VALUES:
                options.append(longopt(name))
        else:
            options.append(f"{longopt(name)}={value}")
    return options


class _Session:
    def __init__(self, agent: str, params: Mapping[str, str], plug: str | None,
                 timeout: float, extra_env: Mapping[str, str], workdir: str,
                 report: Report) -> None:
        self.agent = agent
        self.params = dict(params)
        self.plug = plug
        self.timeout = timeout
        self.env = envmod.fence_env(extra_env)
        self.workdir = workdir
        self.report = report
        self.meta: metadata.AgentMetadata | None = None

    @property
    def plug_key(self) -> str | None:
        # Pacemaker ≥3.0.1 prefers plug, older ones port (fence-contract §1).
        if self.meta is None:
            return "plug"
        for key in ("plug", "port"):
            if self.meta.parameter(key):
                return key
        return None

    def advertises(self, action: str) -> bool:
        if self.meta is None:
            return action in FALLBACK_ACTIONS
        return self.meta.has_action(action)

    def stdin(self, action: str, *, plug: str | None = None,
              params: Mapping[str, str] | None = None,
              extra_lines: Sequence[str] = ()) -> proc.Result:
        text = stdin_text(action, self.plug_key, plug if plug is not None else self.plug,
                          self.params if params is None else params, extra_lines)
        return proc.run([self.agent], self.env, self.timeout, stdin=text, cwd=self.workdir)

    def argv_params(self) -> dict[str, str] | None:
        """The parameters for a command-line request, with no password in them.

        A password given as ``password``/``passwd`` goes through ``password_script``
        (a script in the work directory that prints it), because an option on the
        command line is what ``ps`` shows every user.  None when the agent declares
        no script parameter: then nothing is asked on the command line.
        """
        secret = {k: v for k, v in self.params.items() if k in SECRET_KEYS}
        if not secret:
            return self.params
        script_key = next((k for k in SCRIPT_KEYS if self.meta and self.meta.parameter(k)),
                          None)
        if script_key is None:
            return None
        path = os.path.join(self.workdir, "password-script")
        if not os.path.exists(path):
            with open(os.path.join(self.workdir, "password"), "w", encoding="utf-8",
                      opener=lambda p, f: os.open(p, f, 0o600)) as out:
                out.write(next(iter(secret.values())) + "\n")
            with open(path, "w", encoding="utf-8",
                      opener=lambda p, f: os.open(p, f, 0o700)) as out:
                out.write(f"#!/bin/sh\nexec cat {self.workdir}/password\n")
        rest = {k: v for k, v in self.params.items() if k not in secret}
        return {**rest, script_key: path}

    def argv(self, action: str) -> proc.Result | None:
        """The request on the command line; None (and a SKIP once) when it would need
        the password there."""
        params = self.argv_params()
        if params is None:
            if self.report.get("argv") is None:
                self.report.add("argv", SKIP, "command-line checks skipped: the agent has "
                                "no password_script, and a password option is seen in ps")
            return None
        options = argv_options(self.meta, action, self.plug_key, self.plug, params)
        return proc.run([self.agent, *options], self.env, self.timeout, cwd=self.workdir)

    def judge(self, name: str, result: proc.Result, expected: Sequence[int],
              why: str = "", status: bool = False) -> bool:
        if result.timed_out:
            self.report.add(name, FAIL, f"still running after {self.timeout:.0f}s; the fencer "
                            "would SIGKILL it and not retry")
            return False
        if result.rc in expected:
            self.report.add(name, PASS,
                            f"rc={_rc(result.rc, status)} in {result.duration:.2f}s")
            return True
        detail = (f"rc={_rc(result.rc, status)}, expected "
                  + " or ".join(_rc(c, status) for c in expected))
        if why:
            detail += f": {why}"
        said = " ".join((result.stderr or result.stdout).split())[:100]
        if said:
            detail += f" [agent said: {said}]"
        self.report.add(name, FAIL, detail)
        return False

    def agree(self, name: str, stdin_result: proc.Result,
              argv_result: proc.Result | None) -> None:
        """stdin and argv asked the same question; the exit codes must match."""
        if argv_result is None:
            return
        if argv_result.timed_out or stdin_result.timed_out:
            self.report.add(name, FAIL, "timed out")
        elif argv_result.rc == stdin_result.rc:
            self.report.add(name, PASS, f"argv and stdin both rc={argv_result.rc}")
        else:
            self.report.add(name, FAIL, f"argv rc={argv_result.rc} but stdin "
                            f"rc={stdin_result.rc} for the same request")


def _metadata(s: _Session) -> None:
    report = s.report
    by_argv = proc.run([s.agent, "-o", "metadata"], s.env, s.timeout, cwd=s.workdir)
    s.judge("metadata.argv", by_argv, (FENCE_OK,), why="the fencer runs '-o metadata'")
    try:
        s.meta = metadata.parse(by_argv.stdout)
    except metadata.MetadataError as exc:
        report.add("metadata.xml", FAIL, f"'-o metadata': {exc}")
    else:
        report.add("metadata.xml", PASS, f"<resource-agent name={s.meta.name!r}>")
        for name, rng, consequence in (
            ("metadata.fence-schema", metadata.FENCE_RNG, "fence-agents' rng-check fails"),
            ("metadata.pcs-schema", os.path.join(metadata.PCS_RNG_DIR, "ocf-1.0.rng"),
             "pcs hides the agent"),
        ):
            metadata.check_schema(report, name, s.meta, rng, FAIL, consequence)

    by_stdin = s.stdin("metadata", plug="", params={})
    if not s.judge("metadata.stdin", by_stdin, (FENCE_OK,),
                   why="the fencer also asks with action=metadata on stdin"):
        return
    try:
        from_stdin = metadata.parse(by_stdin.stdout)
    except metadata.MetadataError as exc:
        report.add("metadata.stdin-matches-argv", FAIL, f"action=metadata: {exc}")
        return
    if s.meta is None:
        return
    if metadata.canonical(from_stdin) == metadata.canonical(s.meta):
        report.add("metadata.stdin-matches-argv", PASS, "same XML either way")
    else:
        report.add("metadata.stdin-matches-argv", FAIL,
                   "'-o metadata' and stdin action=metadata print different XML")


def _scenario(s: _Session) -> int | None:
    """monitor, status, on, off, reboot, list. Returns the initial status rc."""
    if s.advertises("monitor"):
        monitor = s.stdin("monitor")
        s.judge("monitor", monitor, (FENCE_OK,), why="the device must be reachable")
        s.agree("monitor.argv-agrees", monitor, s.argv("monitor"))
    initial = s.stdin("status")
    if not s.judge("status.initial", initial, (FENCE_ON, FENCE_OFF),
                   why="status must read the target's power state", status=True):
        s.report.add("power", SKIP, "status does not work; on/off scenario skipped")
        return None
    s.agree("status.initial.argv-agrees", initial, s.argv("status"))

    if s.advertises("on"):
        s.judge("on", s.stdin("on"), (FENCE_OK,))
        _read_back(s, "status.after-on", FENCE_OK, "the target was just powered on")
    else:
        s.report.add("on", SKIP, "action on is not advertised")
    by_argv = s.argv("off")
    if by_argv is not None:
        s.judge("off.argv", by_argv, (FENCE_OK,))
    else:
        s.judge("off", s.stdin("off"), (FENCE_OK,))
    _read_back(s, "status.after-off", FENCE_OFF, "the target was just powered off")
    if s.advertises("reboot"):
        s.judge("reboot", s.stdin("reboot"), (FENCE_OK,))
        _read_back(s, "status.after-reboot", FENCE_ON, "reboot must leave the target on")
    for action in ("list", "list-status"):
        if s.advertises(action):
            result = s.stdin(action, plug="")
            if s.judge(action, result, (FENCE_OK,)):
                s.agree(f"{action}.argv-agrees", result, s.argv(action))
    return initial.rc


def _read_back(s: _Session, name: str, expected: int, why: str) -> None:
    """Read the state back through stdin (judged) and argv (must agree)."""
    by_stdin = s.stdin("status")
    s.judge(name, by_stdin, (expected,), why=why, status=True)
    s.agree(f"{name}.argv-agrees", by_stdin, s.argv("status"))


def _unknown_keys(s: _Session) -> None:
    """Unknown names must be ignored (FenceAgentAPI), comments skipped, nodename accepted."""
    plain = s.stdin("status")
    noisy = s.stdin("status", extra_lines=(
        "# a comment line", f"{UNKNOWN_KEY}=1", f"nodename={s.plug or 'node1'}"))
    if noisy.rc == plain.rc and not noisy.timed_out:
        s.report.add("unknown-keys", PASS, f"same status rc={_rc(noisy.rc, True)} with a "
                     "comment, an unknown key and nodename")
        if UNKNOWN_KEY in noisy.stderr:
            # Each stderr line becomes a WARNING in the fencer's log.
            s.report.add("unknown-keys.silent", WARN, "complains about the unknown key on "
                         "stderr; Pacemaker logs every stderr line as a warning")
    else:
        s.report.add("unknown-keys", FAIL, f"status rc={_rc(noisy.rc, True)} with extra lines, "
                     f"rc={_rc(plain.rc, True)} without: unknown names must be ignored")
    result = s.stdin(UNKNOWN_ACTION)
    if result.rc == FENCE_OK:
        s.report.add("unknown-action", FAIL, "an unknown action returned 0")
    else:
        s.report.add("unknown-action", PASS, f"rc={result.rc}")


def _delay(s: _Session, delay: int) -> None:
    """fence-agents' delay-check: ``delay=N`` makes off take at least N seconds."""
    if delay <= 0:
        s.report.add("delay", SKIP, "delay check disabled")
        return
    if s.meta is not None and s.meta.parameter("delay") is None:
        s.report.add("delay", SKIP, "the agent does not declare a delay parameter")
        return
    s.stdin("on")
    started = time.monotonic()
    result = s.stdin("off", params={**s.params, "delay": str(delay)})
    elapsed = time.monotonic() - started
    if result.timed_out or result.rc != FENCE_OK:
        s.judge("delay", result, (FENCE_OK,))
    elif elapsed < delay:
        s.report.add("delay", FAIL, f"off with delay={delay} took {elapsed:.2f}s; the delay "
                     "was ignored (two-node clusters rely on it to avoid a fence race)")
    else:
        s.report.add("delay", PASS, f"off with delay={delay} took {elapsed:.2f}s")
        s.judge("status.after-delay", s.stdin("status"), (FENCE_OFF,), status=True)


def run_fence_checks(
    agent: str,
    params: Mapping[str, str] | None = None,
    *,
    plug: str | None = None,
    unknown_plug: str | None = None,
    timeout: float = 20.0,
    delay: int = 2,
    extra_env: Mapping[str, str] | None = None,
) -> Report:
    """Run every fence check against ``agent`` and return the report.

    - ``params``: device parameters, sent as stdin lines and as argv options (a
      password on the command line only through a ``password_script``).
    - ``plug``: the target to switch (sent as ``plug``, or ``port`` when only
      that is declared); None for single-target agents.
    - ``unknown_plug``: a target that does not exist; status must then be 1.
    - ``delay``: N for the delay check (0 skips it); it costs at least N s.

    The target is left in its initial power state. Never raises for agent
    misbehaviour; a missing agent is a FAIL check.
    """
    path = os.path.abspath(agent)
    report = Report(f"fence agent {path}")
    mode = os.stat(path).st_mode if os.path.exists(path) else 0
    if not stat.S_ISREG(mode) or not os.access(path, os.X_OK):
        report.add("agent.executable", FAIL, "not an executable regular file")
        return report
    with tempfile.TemporaryDirectory(prefix="lsaa-tester-fence-") as workdir:
        s = _Session(path, params or {}, plug, timeout, extra_env or {}, workdir, report)
        _metadata(s)
        if s.advertises("validate-all"):
            s.judge("validate-all", s.stdin("validate-all"), (FENCE_OK,),
                    why="the parameters given must validate")
        initial = _scenario(s)
        _unknown_keys(s)
        _delay(s, delay)
        if unknown_plug is not None:
            s.judge("status.unknown-plug", s.stdin("status", plug=unknown_plug), (FENCE_ERROR,),
                    why="an unknown target must be an error, never 'off'", status=True)
        # Put the target back the way it was.
        if initial == FENCE_OK:
            s.stdin("on")
        elif initial == FENCE_OFF:
            s.stdin("off")
    return report
