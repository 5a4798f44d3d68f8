"""Dispatch and the one exit path of every fence agent.

What the framework guarantees, whatever the backend:

* metadata/manpage need no backend library, no root, no device;
* ``off`` and the off half of ``reboot`` succeed only once the device reports
  the target off (read back, not assumed); ``on`` likewise;
* ``reboot`` is a confirmed off, then a best-effort on: once the target is
  safely off, a failed power-on is logged and the fence still succeeds
  (fence-agents' rule); ``method=cycle`` is one unconfirmable command and
  says so in the log;
* ``status`` exits 0 (on), 2 (off) or 1 (anything else, an unknown target
  included, so the fencer never picks the wrong device);
* transient faults are retried with backoff, but only while the deadline
  leaves room for another attempt; the deadline is derived from the
  options (delay, login_timeout, power_wait, power_timeout) and guarded by an
  alarm, because the fencer SIGKILLs a hung agent and then no retry happens;
* no secret reaches argv, stdout, stderr or a log; stderr gets at most one line
  per failure (every stderr line is a WARNING in Pacemaker's log).
"""

from __future__ import annotations

import os
import sys
import time

from lsaa.deadline import AlarmExpired, Deadline, arm_alarm, disarm_alarm
from lsaa.errors import AgentError, mask
from lsaa.fencing import EC_ERROR, EC_OK, EC_STATUS_OFF
from lsaa.fencing.errors import FenceError, TransientFenceError
from lsaa.fencing.options import UsageError, parse_argv, parse_stdin, typed
from lsaa.fencing.power import OFF, ON
from lsaa.fencing.spec import ACTION_ALIASES

TYPE_CHECKING = False  # see lsaa.errors
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import IO, NoReturn

    from lsaa.fencing.power import PowerBackend
    from lsaa.fencing.spec import FenceSpec
    from lsaa.log import Log

    BackendFactory = Callable[[dict[str, object], Log, Deadline], PowerBackend]
    Validator = Callable[[dict[str, object], str], list[str]]

POLL = 0.5  # seconds between power-state reads while waiting for a change
NEEDS_PLUG = ("on", "off", "reboot", "status")


def run(  # noqa: PLR0911, PLR0912 - the one exit path, kept in one place
    spec: FenceSpec,
    factory: BackendFactory,
    argv: Sequence[str],
    stdin: bytes,
    env: Mapping[str, str],
    *,
    validate: Validator | None = None,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
    alarm: bool = False,
) -> int:
    """Run one fence action; return its exit code.  ``stdin`` is ignored when
    ``argv`` holds options (fence-agents: argv mode or stdin mode, never both)."""
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    unknown: list[str] = []
    try:
        if len(argv) > 1:
            raw = parse_argv(spec, argv)
        else:
            raw, unknown = parse_stdin(spec, stdin)
    except UsageError as e:
        err.write(f"ERROR: {e} (try --help)\n")
        return EC_ERROR
    action = raw.get("action") or spec.option("action").default or "reboot"
    action = ACTION_ALIASES.get(action, action)
    early = _informational(spec, raw, action, out, err)
    if early is not None:
        return early

    values, problems = typed(spec, raw, () if action in NEEDS_PLUG else ("plug",))
    log = _make_log(spec, env, values)
    for name in unknown:
        log.debug(f"ignoring unknown option {name[:40]!r}")
    if (values.get("plug") is None and spec.multi_plug and action in NEEDS_PLUG
            and not any(p.startswith("plug:") for p in problems)):
        problems.append(f"plug: required for action {action}")
    if not problems and validate is not None:
        problems = validate(values, action)
    deadline = Deadline(budget(values, action), reserve=2.0)
    if not problems and values.get("password_script") and values.get("password") is None:
        try:
            values["password"] = _password_from_script(values, log, deadline)
        except AgentError as e:
            problems.append(f"password_script: {e.reason}")
    if problems:
        return _fail(err, log, "invalid options: " + "; ".join(problems))
    if action == "validate-all":
        return EC_OK

    if alarm:
        arm_alarm(deadline)
    started = time.monotonic()
    try:
        rc = _act(spec, factory, action, values, log, deadline, out)
    except AlarmExpired:
        return _fail(err, log, f"{action} timed out after {time.monotonic() - started:.1f}s")
    except AgentError as e:
        return _fail(err, log, e.reason)
    except Exception as e:  # the one place a bug becomes "failed", never a traceback
        import traceback

        for line in traceback.format_exc().splitlines():
            log.error(line)
        return _fail(err, log, f"internal error in {action}: {type(e).__name__}")
    finally:
        if alarm:
            disarm_alarm()
    log.debug(f"{action} finished with rc={rc} in {time.monotonic() - started:.3f}s")
    return rc


def _informational(spec: FenceSpec, raw: Mapping[str, str], action: str, out: IO[str],
                   err: IO[str]) -> int | None:
    """Exit code of help, version, metadata or an unknown action; None otherwise."""
    if raw.get("help"):
        out.write(usage(spec))
        return EC_OK
    if raw.get("version"):
        from lsaa import __version__

        out.write(f"{spec.name} {__version__}\n")
        return EC_OK
    if action not in spec.actions:
        err.write(f"ERROR: unrecognised action {action[:40]!r}; supported: "
                  f"{', '.join(spec.actions)}\n")
        return EC_ERROR
    if action in ("metadata", "manpage"):
        from lsaa.fencing.metadata import metadata_bytes

        out.write(metadata_bytes(spec).decode("utf-8"))
        return EC_OK
    return None


def seconds(values: Mapping[str, object], name: str) -> float:
    """A "second"/"integer" option's value as float (0 when unset)."""
    v = values.get(name)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else 0.0


def budget(values: Mapping[str, object], action: str) -> float:
    """Seconds this action may take: the delay plus two full login+power rounds
    (one for reboot's on half, or for retries), plus slack for process start.
    With fence-agents' defaults that is 55 s, inside the fencer's default 60 s."""
    delay = seconds(values, "delay") if action in ("off", "reboot") else 0.0
    round_ = (seconds(values, "login_timeout") + seconds(values, "power_wait")
              + seconds(values, "power_timeout"))
    return delay + 2 * round_ + 5.0


def _make_log(spec: FenceSpec, env: Mapping[str, str], values: Mapping[str, object]) -> Log:
    from lsaa.log import Log

    secrets = [str(values["password"])] if values.get("password") else []
    log = Log(spec.name, env, secrets)
    debug_file = values.get("debug_file")
    if values.get("verbose"):
        log.debug_on = True
        log.tracefile = "/dev/stderr"
    if debug_file:
        log.debug_on = True
        log.logfile = str(debug_file)
    return log


def _password_from_script(values: Mapping[str, object], log: Log, deadline: Deadline) -> str:
    """First line of the script's output; run as argv (no shell), with a timeout."""
    from lsaa.run import Runner

    argv = str(values["password_script"]).split()
    # Every exit code is accepted here and judged below: the runner's own error
    # would quote the last line of stdout (the password) when stderr is empty.
    res = Runner(deadline, log).run(argv, ok=range(-64, 256),  # < 0: killed by a signal
                                    timeout=seconds(values, "login_timeout") or 5.0)
    if res.rc != 0:
        said = res.stderr.strip().splitlines()
        raise FenceError(f"{argv[0]} exited {res.rc}"
                         + (f": {said[-1].strip()[:80]}" if said else ""))
    password = res.stdout.split("\n", 1)[0]
    if not password:
        raise FenceError("printed no password")
    log.add_secret(password)
    return password


def _fail(err: IO[str], log: Log, reason: str) -> int:
    reason = " ".join(mask(reason, log.secrets).split())  # mask first: see Log._emit
    log.error(reason)
    err.write(f"ERROR: {reason}\n")
    return EC_ERROR


def _act(
    spec: FenceSpec,
    factory: BackendFactory,
    action: str,
    values: dict[str, object],
    log: Log,
    deadline: Deadline,
    out: IO[str],
) -> int:
    plug = values.get("plug")
    target = str(plug) if plug is not None else None
    if action in ("off", "reboot"):
        delay = seconds(values, "delay")
        if delay:
            log.info(f"waiting {delay:g}s (delay) before {action}")
            deadline.sleep(delay, "delay")
    backend = factory(values, log, deadline)
    try:
        return _with_retries(lambda: _do(backend, action, target, values, log, deadline, out),
                             backend, log, deadline)
    finally:
        backend.close()


def _with_retries(step: Callable[[], int], backend: PowerBackend, log: Log,
                  deadline: Deadline) -> int:
    """Run ``step`` on a connected backend; on a transient fault reconnect and
    try again, backing off, while the deadline leaves room for an attempt."""
    pause = 0.5
    attempt = 1
    while True:
        try:
            backend.connect()
            return step()
        except TransientFenceError as e:
            if deadline.remaining() < pause + 1.0:
                raise FenceError(f"{e.reason} (gave up after {attempt} attempts)") from None
            log.warning(f"attempt {attempt} failed: {e.reason}; retrying in {pause:g}s")
            backend.close()
            time.sleep(pause)
            pause = min(pause * 2, 4.0)
            attempt += 1


def _do(  # noqa: PLR0911 - one branch per fence action
        backend: PowerBackend, action: str, plug: str | None, values: Mapping[str, object],
        log: Log, deadline: Deadline, out: IO[str]) -> int:
    name = plug or "target"
    if action == "status":
        state = backend.get_power(plug)
        out.write(f"Status: {state.upper()}\n")
        return EC_OK if state == ON else EC_STATUS_OFF
    if action == "monitor":
        backend.monitor()
        return EC_OK
    if action == "list":
        for p, alias in backend.list_plugs():
            out.write(f"{p},{alias}\n")
        return EC_OK
    if action == "list-status":
        for p, alias, state in backend.list_status():
            out.write(f"{p},{alias},{state}\n")
        return EC_OK
    if action in ("on", "off"):
        set_confirmed(backend, plug, action, values, log, deadline)
        out.write(f"Success: Powered {action.upper()}\n")
        return EC_OK
    # reboot
    if values.get("method") == "cycle":
        if backend.get_power(plug) == OFF:
            # A BMC may refuse to cycle a machine that is off (IPMI 0xd5); it is
            # already fenced, so only the power-on half is left.
            log.info(f"{name} is already off: powering it on instead of cycling")
            set_confirmed(backend, plug, ON, values, log, deadline, current=OFF)
            out.write("Success: Rebooted (was already off)\n")
            return EC_OK
        log.warning(f"method=cycle: one power-cycle command for {name}; the off phase "
                    "cannot be confirmed")
        backend.cycle(plug)
        wait_for(backend, plug, ON, values, log, deadline)
        out.write("Success: Rebooted (power cycle, off phase not confirmed)\n")
        return EC_OK
    set_confirmed(backend, plug, OFF, values, log, deadline)
    # fence-agents: retry_on is the number of power-on attempts (default 1), at least one
    tries = max(1, int(seconds(values, "retry_on")))
    for attempt in range(1, tries + 1):
        try:
            # The first attempt knows the state: off was just read back.
            set_confirmed(backend, plug, ON, values, log, deadline,
                          current=OFF if attempt == 1 else None)
            out.write("Success: Rebooted\n")
            return EC_OK
        except FenceError as e:
            log.warning(f"power on attempt {attempt}/{tries} failed: {e.reason}")
    # The target is confirmed off: fencing has done its job.
    log.error(f"{name} is off but did not power back on")
    out.write("Success: Powered OFF (power on failed)\n")
    return EC_OK


def set_confirmed(backend: PowerBackend, plug: str | None, state: str,
                  values: Mapping[str, object], log: Log, deadline: Deadline,
                  current: str | None = None) -> None:
    """Bring ``plug`` to ``state`` and return only once the device reports it.

    ``current`` is the state just read back, when the caller has it (saves a
    round trip); otherwise it is read first.
    """
    name = plug or "target"
    if current is None:
        current = backend.get_power(plug)
    if current == state:
        log.info(f"{name} is already {state}")
        return
    log.info(f"powering {name} {state}")
    backend.set_power(plug, state)
    wait = seconds(values, "power_wait")
    if wait:
        deadline.sleep(wait, "power_wait")
    wait_for(backend, plug, state, values, log, deadline)
    log.info(f"{name} is {state} (confirmed)")


def wait_for(backend: PowerBackend, plug: str | None, state: str,
             values: Mapping[str, object], log: Log, deadline: Deadline) -> None:
    """Poll until the device reports ``state``, for at most power_timeout seconds.

    A read that fails transiently while waiting does not end the wait: the
    device may be busy carrying out the change, or the session may have died,
    so the backend is reconnected before the next read.
    """
    name = plug or "target"
    limit = seconds(values, "power_timeout") or 20.0
    end = time.monotonic() + min(limit, deadline.remaining())
    last: object = "unknown"
    while True:
        try:
            last = backend.get_power(plug)
            if last == state:
                return
        except TransientFenceError as e:
            log.debug(f"state read failed while waiting: {e.reason}")
            last = "unreadable"
            # The session may be dead (a restarted daemon, a BMC that dropped it):
            # open a new one for the next read.
            backend.close()
            try:
                backend.connect()
            except TransientFenceError as again:
                log.debug(f"reconnect failed while waiting: {again.reason}")
        if time.monotonic() + POLL > end:
            raise FenceError(f"{name} did not power {state} within {limit:g}s (last read: {last})")
        time.sleep(POLL)


def usage(spec: FenceSpec) -> str:
    lines = [f"{spec.name}: {spec.shortdesc}", "", "Options (stdin: name=value):"]
    for o in spec.options:
        alias = f" (deprecated: {', '.join(o.aliases)})" if o.aliases else ""
        default = f" [default: {o.default}]" if o.default is not None else ""
        lines.append(f"  {o.getopt():34} {o.shortdesc}{default}{alias}")
    lines.append("")
    lines.append(f"Actions: {', '.join(spec.actions)}")
    return "\n".join(lines) + "\n"


def main(spec: FenceSpec, factory: BackendFactory, validate: Validator | None = None) -> NoReturn:
    """Entry point of a fence agent launcher."""
    argv = sys.argv
    data = b"" if len(argv) > 1 else sys.stdin.buffer.read(1 << 20)
    try:
        rc = run(spec, factory, argv, data, os.environ, validate=validate, alarm=True)
        sys.stdout.flush()
    except Exception as e:  # last resort: a bug outside dispatch
        sys.stderr.write(f"ERROR: internal error: {type(e).__name__}\n")
        rc = EC_ERROR
    raise SystemExit(rc)
