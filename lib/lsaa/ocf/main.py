"""Dispatch and the one exit path of every OCF agent.

The framework, not each agent, keeps Pacemaker's safety rules:

* meta-data needs no environment, no root and no backend library;
* an unknown action exits 3 (OCF_ERR_UNIMPLEMENTED);
* with an invalid configuration, stop exits 0 (the resource provably was never
  started with it) — unless the agent finds its instance without the
  parameters (``Agent.stop_despite_invalid``), then its stop runs with the
  invalid values as None; a probe exits 7 and a recurring monitor 1; other
  actions exit with the validation's code (6 inherent, 2/5 local);
* a probe (monitor with interval 0 or unset) exits 7 when the resource cannot
  be running here: software missing, device or configuration absent;
* every action runs against a deadline inside the operation timeout, and an
  alarm turns a hang into a clear exit reason before Pacemaker's SIGKILL;
* exactly one ``ocf-exit-reason:`` line, at most 128 characters, on failure;
* exceptions never escape as tracebacks: a bug is rc 1 with a reason, and the
  traceback goes to the log.
"""

from __future__ import annotations

import os
import sys
import time

from lsaa.deadline import AlarmExpired, Deadline, arm_alarm, disarm_alarm
from lsaa.errors import (
    AgentError,
    ConfigError,
    DeadlineExceeded,
    LocalConfigError,
    NotInstalledError,
    mask,
)
from lsaa.ocf import (
    OCF_ERR_CONFIGURED,
    OCF_ERR_GENERIC,
    OCF_ERR_UNIMPLEMENTED,
    OCF_NOT_RUNNING,
    OCF_SUCCESS,
)
from lsaa.ocf.agent import Context

TYPE_CHECKING = False  # see lsaa.errors
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import IO, NoReturn

    from lsaa.ocf.agent import Agent
    from lsaa.run import Runner

REASON_MAX = 128  # Pacemaker 2.x-3.0.1 truncate exit reasons here
ALWAYS = ("meta-data", "validate-all")


def run(
    agent: Agent,
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    runner: Runner | None = None,
    stdout: IO[bytes] | None = None,
    stderr: IO[str] | None = None,
    alarm: bool = False,
) -> int:
    """Run the action named in ``argv[1]``; return the OCF exit code.

    ``runner`` replaces the real command runner (tests pass a strict fake);
    ``alarm`` arms SIGALRM at the deadline (only the real entry point does).
    """
    start = time.monotonic()
    spec = agent.spec
    err = stderr if stderr is not None else sys.stderr
    action = argv[1] if len(argv) > 1 else ""
    if action == "meta-data":
        from lsaa.ocf.metadata import metadata_bytes

        out = stdout if stdout is not None else sys.stdout.buffer
        out.write(metadata_bytes(spec))
        out.flush()
        return OCF_SUCCESS
    prefix = env.get("OCF_EXIT_REASON_PREFIX") or "ocf-exit-reason:"
    known = set(spec.action_names) | set(ALWAYS)
    if "monitor" in known:
        known.add("status")  # legacy alias; never advertised
    if action not in known:
        what = f"unknown action {action!r}" if action else "no action given"
        err.write(prefix + _one_line(f"{what}; expected one of: {', '.join(sorted(known))}") + "\n")
        return OCF_ERR_UNIMPLEMENTED
    if action == "status":
        action = "monitor"

    from lsaa.log import Log

    secrets = spec.secret_values(env)
    log = Log(f"{spec.name}({env.get('OCF_RESOURCE_INSTANCE') or spec.name})", env, secrets)
    deadline = Deadline.from_timeout_ms(env.get("OCF_RESKEY_CRM_meta_timeout"), start)
    params, problems = spec.parse(env)
    ctx = Context(spec, action, env, params, log, deadline, runner)
    rc, reason = _dispatch(agent, ctx, problems, alarm)
    if action == "stop" and rc == OCF_NOT_RUNNING:
        rc = OCF_SUCCESS  # stop's success is 0, never 7
    if reason:
        if rc == OCF_SUCCESS or (rc == OCF_NOT_RUNNING and ctx.is_probe):
            log.info(reason)  # e.g. stop or probe with a configuration that cannot run
        else:
            log.error(reason)
            err.write(prefix + _one_line(mask(reason, log.secrets)) + "\n")
    log.debug(f"{action} finished with rc={rc} in {time.monotonic() - start:.3f}s")
    return rc


def _dispatch(  # noqa: PLR0911, PLR0912 - the one table of outcomes, kept in one place
    agent: Agent, ctx: Context, problems: list[str], alarm: bool
) -> tuple[int, str]:
    """Validate, then run the handler; map every outcome to (rc, reason)."""
    action = ctx.action
    try:
        if action == "stop" and agent.stop_despite_invalid:
            if problems:
                ctx.log.warning(f"stopping despite an invalid configuration: "
                                f"{'; '.join(problems)}")
        else:
            if not problems:
                problems = agent.validate(ctx)
            if problems:
                return _invalid(ctx, ConfigError(problems))
        handler = agent.handler(action)
        if alarm:
            arm_alarm(ctx.deadline)
        try:
            rc = handler(ctx)  # type: ignore[operator]
        finally:
            if alarm:
                disarm_alarm()
        if not isinstance(rc, int) or isinstance(rc, bool):
            return OCF_ERR_GENERIC, f"internal error: {action} returned {rc!r}, not an exit code"
        return rc, ""
    except AlarmExpired:
        return OCF_ERR_GENERIC, f"{action} timed out: the operation timeout was used up"
    except ConfigError as e:
        return _invalid(ctx, e)
    except LocalConfigError as e:
        if ctx.is_probe:
            return OCF_NOT_RUNNING, e.reason
        if action == "monitor":
            return OCF_ERR_GENERIC, e.reason
        return e.rc, e.reason
    except NotInstalledError as e:
        if ctx.is_probe:
            return OCF_NOT_RUNNING, e.reason
        return e.rc, e.reason
    except DeadlineExceeded as e:
        return e.rc, f"{action} timed out: {e.reason}"
    except AgentError as e:
        return e.rc, e.reason
    except Exception as e:
        import traceback

        for line in traceback.format_exc().splitlines():
            ctx.log.error(line)
        return OCF_ERR_GENERIC, f"internal error in {action}: {type(e).__name__}: {e}"


def _invalid(ctx: Context, error: ConfigError) -> tuple[int, str]:
    """The configuration is invalid: what each action must answer (ocf-rarun's table)."""
    reason = f"invalid configuration: {error.reason}"
    if ctx.action == "stop":
        # Never started with this configuration, so nothing to stop: a failed
        # stop would get the node fenced for a typo.
        return OCF_SUCCESS, reason
    if ctx.is_probe:
        return OCF_NOT_RUNNING, reason
    if ctx.action == "monitor":
        return OCF_ERR_GENERIC, reason
    return OCF_ERR_CONFIGURED, reason


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= REASON_MAX else text[: REASON_MAX - 3] + "..."


def main(agent: Agent) -> NoReturn:
    """Entry point of an agent launcher: run the action, exit with its code."""
    try:
        rc = run(agent, sys.argv, os.environ, alarm=True)
        sys.stdout.flush()
    except Exception as e:
        sys.stderr.write(f"ocf-exit-reason:internal error: {type(e).__name__}\n")
        rc = OCF_ERR_GENERIC
    raise SystemExit(rc)
