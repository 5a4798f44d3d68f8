"""Conformance checks for an OCF resource agent (see ocf-contract.md).

Entry point: :func:`run_ocf_checks`. Every action runs as a fresh child in its
own process group with a Pacemaker-like environment (:mod:`lsaa.tester.env`)
and is SIGKILLed as a group at the op timeout (:mod:`lsaa.tester.proc`).

The checks run against the real system, like ocf-tester: give the agent
parameters (``params``) that point it at something disposable.

Hang checks (``hang_commands``/``hang_params``): Pacemaker kills an agent at the
op timeout with SIGKILL and records no reason, so an agent must give up on a
hung tool *before* that and say why. The harness cannot make an arbitrary
backend hang, so it supplies two generic ways to make one block, and runs
start and a recurring monitor with a short ``CRM_meta_timeout``:

- ``hang_commands``: for each name a stub that never returns is put in a
  directory placed first in the agent's PATH. This reaches agents that find
  their tools through PATH (shell agents; ocf-shellfuncs only appends to PATH).
- ``hang_params``: parameter overrides for the hang runs; ``{hang_bin}`` in a
  value becomes the path of a blocking stub. This reaches agents that run tools
  through a fixed PATH or absolute paths (lsaa's runner does) but take a binary
  path or a backend address as a parameter.

Each stub leaves a marker when it is run, so a hang check that the agent never
exercised is reported as such instead of passing silently.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterable, Mapping, Sequence

from lsaa.tester import env as envmod
from lsaa.tester import exitreason, metadata, proc
from lsaa.tester.report import FAIL, PASS, SKIP, WARN, Report

OCF_SUCCESS = 0
OCF_ERR_UNIMPLEMENTED = 3
OCF_NOT_RUNNING = 7
OCF_RUNNING_PROMOTED = 8

RC_NAMES = {
    0: "OCF_SUCCESS", 1: "OCF_ERR_GENERIC", 2: "OCF_ERR_ARGS", 3: "OCF_ERR_UNIMPLEMENTED",
    4: "OCF_ERR_PERM", 5: "OCF_ERR_INSTALLED", 6: "OCF_ERR_CONFIGURED", 7: "OCF_NOT_RUNNING",
    8: "OCF_RUNNING_PROMOTED", 9: "OCF_FAILED_PROMOTED", 190: "OCF_DEGRADED",
    191: "OCF_DEGRADED_PROMOTED", -9: "SIGKILL",
}

DEFAULT_RECURRING_MS = 10000
UNKNOWN_ACTION = "lsaa-tester-no-such-action"
HANG_STUB = "lsaa-tester-hang"
# Actions that must never be advertised (ocf-contract §3).
PSEUDO_ACTIONS = ("usage", "help", "methods")


def rc_name(rc: int) -> str:
    return f"{rc} ({RC_NAMES.get(rc, 'unknown')})"


def _expected(codes: Iterable[int]) -> str:
    return " or ".join(rc_name(c) for c in codes)


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:100]
    return ""


class _Session:
    """One agent under test: runs actions and records checks into ``report``."""

    def __init__(
        self,
        agent: str,
        params: Mapping[str, str],
        timeout: float,
        instance: str,
        provider: str,
        rtype: str,
        extra_env: Mapping[str, str],
        workdir: str,
        report: Report,
    ) -> None:
        self.agent = agent
        self.params = dict(params)
        self.timeout_ms = int(timeout * 1000)
        self.instance = instance
        self.provider = provider
        self.rtype = rtype
        self.extra_env = dict(extra_env)
        self.workdir = workdir
        self.report = report
        self.meta: metadata.AgentMetadata | None = None

    def recurring_ms(self, role: str | None = None) -> int:
        if self.meta is not None:
            return (self.meta.monitor_interval_ms(role) or self.meta.monitor_interval_ms()
                    or DEFAULT_RECURRING_MS)
        return DEFAULT_RECURRING_MS

    def run(
        self,
        action: str,
        *,
        interval_ms: int | None = 0,
        params: Mapping[str, str] | None = None,
        timeout_ms: int | None = None,
        user: str | None = None,
        path_prepend: str | None = None,
    ) -> proc.Result:
        """Run one action. ``interval_ms`` None = CRM_meta_interval unset."""
        op_timeout = timeout_ms if timeout_ms is not None else self.timeout_ms
        environment = envmod.ocf_env(
            instance=self.instance,
            rtype=self.rtype,
            provider=self.provider,
            params=self.params if params is None else params,
            timeout_ms=op_timeout,
            interval_ms=interval_ms,
            extra=self.extra_env,
            path_prepend=path_prepend,
        )
        return proc.run([self.agent, action], environment, op_timeout / 1000.0,
                        user=user, cwd=self.workdir)

    def check(
        self,
        name: str,
        action: str,
        expected: Sequence[int],
        *,
        interval_ms: int | None = 0,
        params: Mapping[str, str] | None = None,
        severity: str = FAIL,
        reason_severity: str = FAIL,
        why: str = "",
    ) -> proc.Result:
        """Run ``action``, expect one of ``expected``; also judge its exit reason.

        ``severity`` is what a wrong rc is reported as (FAIL, or WARN for rules
        Pacemaker itself never exercises).
        """
        result = self.run(action, interval_ms=interval_ms, params=params)
        self.judge(name, result, expected, severity=severity, why=why)
        self.judge_reason(name, action, result, severity=reason_severity)
        return result

    def judge(self, name: str, result: proc.Result, expected: Sequence[int], *,
              severity: str = FAIL, why: str = "") -> bool:
        if result.timed_out:
            self.report.add(name, FAIL, f"still running at the {self.timeout_ms} ms op "
                            "timeout; SIGKILLed its process group as pacemaker-execd does")
            return False
        if result.rc in expected:
            self.report.add(name, PASS, f"rc={rc_name(result.rc)} in {result.duration:.2f}s")
            return True
        detail = f"rc={rc_name(result.rc)}, expected {_expected(expected)}"
        if why:
            detail += f": {why}"
        said = _first_line(result.stderr) or _first_line(result.stdout)
        if said:
            detail += f" [agent said: {said}]"
        self.report.add(name, severity, detail)
        return False

    def judge_reason(self, name: str, action: str, result: proc.Result, *,
                     severity: str = FAIL) -> None:
        """Exit-reason rules (§9): an error rc needs one; any reason must be well-formed."""
        if result.timed_out:
            return
        benign = result.rc == OCF_SUCCESS or (
            action == "monitor" and result.rc in (OCF_NOT_RUNNING, OCF_RUNNING_PROMOTED)
        ) or (action == "validate-all" and result.rc == OCF_ERR_UNIMPLEMENTED)
        reason = exitreason.find(result.stderr)
        check_name = f"{name}.exit-reason"
        if reason is None:
            if not benign:
                self.report.add(check_name, severity,
                                f"rc={rc_name(result.rc)} but no {envmod.EXIT_REASON_PREFIX} "
                                "line on stderr; crm_mon/pcs status will show no reason")
            return
        found = exitreason.problems(reason)
        if found:
            self.report.add(check_name, FAIL, "; ".join(found))
        else:
            self.report.add(check_name, PASS, repr(reason.text))


def _load_metadata(s: _Session) -> None:
    """meta-data as nobody → 0, well-formed, valid for pcs (fatal) and resource-agents (warn)."""
    report = s.report
    if proc.can_switch_user():
        result = s.run("meta-data", user="nobody")
        who = "nobody"
    else:
        result = s.run("meta-data")
        who = f"uid {os.geteuid()}"
    if s.judge("meta-data.nobody", result, (OCF_SUCCESS,),
               why=f"meta-data must not need root (ran as {who})") and who != "nobody":
        report.add("meta-data.nobody", WARN, "harness is not root: could not switch to nobody")
    if result.rc != OCF_SUCCESS and who == "nobody":
        # Carry on with root's output so the remaining checks still mean something.
        result = s.run("meta-data")
    try:
        s.meta = metadata.parse(result.stdout)
    except metadata.MetadataError as exc:
        report.add("meta-data.xml", FAIL, str(exc))
        return
    report.add("meta-data.xml", PASS, f"<resource-agent name={s.meta.name!r}>, "
               f"OCF version {s.meta.ocf_version or '1.0 (no <version>)'}")

    rng = metadata.pcs_schema_for(s.meta)
    if rng is None:
        report.add("meta-data.pcs-schema", FAIL,
                   f"<version>{s.meta.ocf_version}</version>: pcs accepts only 1.0 and 1.1 "
                   "(the element is the OCF version, not the agent's)")
    else:
        metadata.check_schema(report, "meta-data.pcs-schema", s.meta, rng, FAIL,
                              "pcs would refuse the agent")
    metadata.check_schema(report, "meta-data.ra-schema", s.meta, metadata.RA_RNG, WARN,
                          "resource-agents' schema predates OCF 1.1; pcs does not use it")

    missing = [p.name for p in s.meta.parameters if p.required and p.name not in s.params]
    if missing:
        report.add("meta-data.required-params", WARN,
                   "required parameter(s) not given with -o: " + ", ".join(missing))
    listed = [a.name for a in s.meta.actions if a.name in PSEUDO_ACTIONS]
    if listed:
        # pcs copies every advertised action into the CIB as an operation.
        report.add("meta-data.actions", WARN, "advertises " + ", ".join(sorted(set(listed)))
                   + "; pcs would create CIB operations for them")
    promote, demote = s.meta.has_action("promote"), s.meta.has_action("demote")
    if promote != demote:
        report.add("meta-data.promotable", WARN, "advertises only one of promote/demote; "
                   "pcs treats the agent as not promotable")


def _lifecycle(s: _Session) -> None:
    """The main sequence: probe, start, monitor, idempotency, promotion, stop."""
    meta = s.meta
    recurring = s.recurring_ms("Unpromoted")
    # Clean up whatever an earlier run left, without judging it: a failure here
    # resurfaces in the checks below with a better name.
    s.run("stop")
    s.check("probe.before-start", "monitor", (OCF_NOT_RUNNING,), interval_ms=0,
            why="a probe of a stopped resource must say 'not running'")
    s.check("start", "start", (OCF_SUCCESS,))
    s.check("monitor.after-start", "monitor", (OCF_SUCCESS,), interval_ms=recurring,
            why="a started (unpromoted) instance must report running")
    s.check("probe.after-start", "monitor", (OCF_SUCCESS,), interval_ms=0)
    s.check("start.twice", "start", (OCF_SUCCESS,),
            why="starting a running resource must succeed")
    s.check("monitor.after-start-twice", "monitor", (OCF_SUCCESS,), interval_ms=recurring)
    if meta is not None and meta.has_action("notify"):
        # OCF_RESKEY_CRM_meta_notify_* as for a post-start notification.
        notify = {"CRM_meta_notify_type": "post", "CRM_meta_notify_operation": "start"}
        s.check("notify", "notify", (OCF_SUCCESS,), params={**s.params, **notify})
    if meta is not None and meta.promotable:
        _promotion(s)
    s.check("stop", "stop", (OCF_SUCCESS,))
    s.check("probe.after-stop", "monitor", (OCF_NOT_RUNNING,), interval_ms=0,
            why="stop returned but the resource still looks active")
    s.check("monitor.after-stop", "monitor", (OCF_NOT_RUNNING,), interval_ms=recurring)
    s.check("stop.twice", "stop", (OCF_SUCCESS,),
            why="stopping a stopped resource must succeed (a failed stop means fencing)")
    # crm_resource --force-check leaves CRM_meta_interval unset (ocf.py #1579).
    s.check("probe.no-interval", "monitor", (OCF_NOT_RUNNING,), interval_ms=None,
            why="a probe without CRM_meta_interval must be treated as interval 0")


def _promotion(s: _Session) -> None:
    """Promotable agents (§12): roles are reported by monitor, both moves idempotent."""
    promoted = s.recurring_ms("Promoted")
    unpromoted = s.recurring_ms("Unpromoted")
    s.check("promote", "promote", (OCF_SUCCESS,))
    s.check("monitor.promoted", "monitor", (OCF_RUNNING_PROMOTED,), interval_ms=promoted)
    s.check("probe.promoted", "monitor", (OCF_RUNNING_PROMOTED,), interval_ms=0,
            why="a probe of a promoted instance must return 8, or Pacemaker restarts it")
    s.check("promote.twice", "promote", (OCF_SUCCESS,), why="promote must be idempotent")
    s.check("monitor.promoted-twice", "monitor", (OCF_RUNNING_PROMOTED,), interval_ms=promoted)
    s.check("demote", "demote", (OCF_SUCCESS,))
    s.check("monitor.demoted", "monitor", (OCF_SUCCESS,), interval_ms=unpromoted)
    s.check("demote.twice", "demote", (OCF_SUCCESS,), why="demote must be idempotent")
    s.check("monitor.demoted-twice", "monitor", (OCF_SUCCESS,), interval_ms=unpromoted)
    # Pacemaker always demotes before it stops, so a stop of a promoted
    # instance never happens in a cluster (Stateful refuses it); a warning.
    s.run("promote")
    s.check("stop.from-promoted", "stop", (OCF_SUCCESS,), severity=WARN, reason_severity=WARN,
            why="Pacemaker demotes first, but an admin's crm_resource --force-stop does not")
    s.run("demote")
    s.run("stop")
    s.check("probe.after-promoted-stop", "monitor", (OCF_NOT_RUNNING,), interval_ms=0)
    s.check("start.after-promotion", "start", (OCF_SUCCESS,))


def _unknown_action(s: _Session) -> None:
    result = s.run(UNKNOWN_ACTION)
    s.judge("unknown-action", result, (OCF_ERR_UNIMPLEMENTED,),
            why="an unknown action must return OCF_ERR_UNIMPLEMENTED")
    # ocf-contract §3 asks for a reason here, but Pacemaker never sends an
    # unknown action, and the stock agents (Dummy) print usage instead.
    s.judge_reason("unknown-action", UNKNOWN_ACTION, result, severity=WARN)


def _invalid_case(s: _Session, label: str, params: Mapping[str, str], strict: bool) -> None:
    """An invalid configuration: stop → 0 and probe → 7 (the resource provably
    cannot be running), validate-all and start refuse with an exit reason.

    ``strict`` False (hostile values) downgrades "start accepted it" to a warning:
    an agent may legitimately accept any string for a free-form parameter.
    """
    prefix = f"invalid-config.{label}"
    s.check(f"{prefix}.stop", "stop", (OCF_SUCCESS,), params=params,
            why="stop with an invalid configuration must succeed, or the node is fenced")
    s.check(f"{prefix}.probe", "monitor", (OCF_NOT_RUNNING,), params=params, interval_ms=0,
            why="a probe with an invalid configuration must report not running")
    for action in ("validate-all", "start"):
        name = f"{prefix}.{action}"
        result = s.run(action, params=params, interval_ms=None if action == "validate-all" else 0)
        if result.timed_out:
            s.judge(name, result, ())
        elif action == "validate-all" and result.rc == OCF_ERR_UNIMPLEMENTED:
            s.report.add(name, SKIP, "validate-all is not implemented")
        elif result.rc == OCF_SUCCESS:
            s.report.add(name, FAIL if strict else WARN,
                         f"rc={rc_name(result.rc)}: the invalid configuration was accepted")
            if action == "start":
                # Undo it both ways: the invalid values may name another instance.
                s.run("stop", params=params)
                s.run("stop")
        else:
            s.report.add(name, PASS, f"rc={rc_name(result.rc)}")
            s.judge_reason(name, action, result)


def _hostile_value(workdir: str, canary: str) -> str:
    # Shell metacharacters, a newline and spaces. Every word of it is a path
    # inside the workdir (or relative to it, the agent's cwd), so an agent that
    # word-splits it creates or removes files only there.
    return (f"{workdir}/hostile value;$(touch {canary});`touch {canary}`"
            f"|touch {canary}\nx'\"")


def _invalid_configs(s: _Session, invalid: Mapping[str, str | None] | None,
                     hostile: bool) -> None:
    meta = s.meta
    cases = 0
    if meta is not None:
        for parameter in meta.parameters:
            if parameter.required and parameter.name in s.params:
                params = {k: v for k, v in s.params.items() if k != parameter.name}
                _invalid_case(s, f"missing-{parameter.name}", params, strict=True)
                cases += 1
    if invalid:
        params = dict(s.params)
        for name, value in invalid.items():
            if value is None:
                params.pop(name, None)
            else:
                params[name] = value
        _invalid_case(s, "custom", params, strict=True)
        cases += 1
    if hostile and meta is not None and meta.parameters:
        canary = os.path.join(s.workdir, "INJECTED")
        value = _hostile_value(s.workdir, canary)
        params = {**s.params, **{p.name: value for p in meta.parameters}}
        _invalid_case(s, "hostile", params, strict=False)
        if os.path.exists(canary):
            s.report.add("invalid-config.hostile.injection", FAIL,
                         "a parameter value was executed as shell code")
        else:
            s.report.add("invalid-config.hostile.injection", PASS,
                         "no parameter value was executed")
        cases += 1
    if not cases:
        s.report.add("invalid-config", SKIP, "no required parameter to remove; "
                     "use --invalid name=value or --hostile")
    s.run("stop")


def _write_stub(bindir: str, name: str, sleep: str) -> None:
    path = os.path.join(bindir, name)
    marker = os.path.join(bindir, f".{name}.called")
    with open(path, "w", encoding="utf-8") as handle:
        # Leaves a marker, then blocks until killed (default dispositions, so
        # the agent's own TERM or KILL at its deadline ends it).
        handle.write(f"#!/bin/sh\n: > '{marker}'\nexec '{sleep}' 2147483647\n")
    os.chmod(path, 0o755)  # noqa: S103 -- the agent may run it as any user


def _hang_checks(s: _Session, commands: Sequence[str], hang_params: Mapping[str, str],
                 hang_timeout_ms: int) -> None:
    if not commands and not hang_params:
        s.report.add("hang", SKIP, "no --hang-command or --hang-param given")
        return
    sleep = shutil.which("sleep", path=envmod.PATH) or "/bin/sleep"
    bindir = os.path.join(s.workdir, "hang-bin")
    os.makedirs(bindir, exist_ok=True)
    os.chmod(bindir, 0o755)  # noqa: S103 -- searched through PATH by the agent
    for name in (*commands, HANG_STUB):
        _write_stub(bindir, name, sleep)
    stub = os.path.join(bindir, HANG_STUB)
    params = {**s.params, **{k: v.replace("{hang_bin}", stub) for k, v in hang_params.items()}}
    uses_stub = bool(commands) or any("{hang_bin}" in v for v in hang_params.values())

    def markers() -> list[str]:
        return [n for n in os.listdir(bindir) if n.endswith(".called")]

    for action in ("start", "monitor"):
        s.run("stop")
        if action == "monitor":
            s.run("start")
        for marker in markers():
            os.unlink(os.path.join(bindir, marker))
        result = s.run(action, params=params, timeout_ms=hang_timeout_ms, path_prepend=bindir,
                       interval_ms=s.recurring_ms() if action == "monitor" else 0)
        name = f"hang.{action}"
        called = markers()
        if result.timed_out:
            s.report.add(name, FAIL, f"still running at the {hang_timeout_ms} ms op timeout: "
                         "pacemaker-execd would SIGKILL it and record no reason; bound the "
                         "blocked command by CRM_meta_timeout")
        elif uses_stub and not called:
            s.report.add(name, WARN, f"returned rc={rc_name(result.rc)} without running a "
                         "blocking stub: the hang was not exercised")
        else:
            s.report.add(name, PASS, f"gave up by itself: rc={rc_name(result.rc)} after "
                         f"{result.duration:.2f}s of {hang_timeout_ms / 1000:.1f}s")
            s.judge_reason(name, action, result)
    s.run("stop")


def run_ocf_checks(
    agent: str,
    params: Mapping[str, str] | None = None,
    *,
    timeout: float = 20.0,
    instance: str = "lsaa-tester",
    provider: str | None = None,
    rtype: str | None = None,
    extra_env: Mapping[str, str] | None = None,
    invalid: Mapping[str, str | None] | None = None,
    hostile: bool = False,
    hang_commands: Sequence[str] = (),
    hang_params: Mapping[str, str] | None = None,
    hang_timeout_ms: int = 3000,
) -> Report:
    """Run every OCF check against ``agent`` and return the report.

    - ``params``: OCF_RESKEY_* values (as ``-o name=value``).
    - ``timeout``: op timeout in seconds (CRM_meta_timeout and the kill deadline).
    - ``invalid``: an extra invalid configuration: overrides on ``params``, a
      None value removes the parameter. Each required parameter is removed in
      turn regardless.
    - ``hostile``: also give every declared parameter a hostile value (shell
      metacharacters, newline) and check nothing runs it.
    - ``hang_commands``/``hang_params``/``hang_timeout_ms``: see the module doc.

    Never raises for agent misbehaviour; a missing agent is a FAIL check.
    """
    path = os.path.abspath(agent)
    default_provider, default_type = envmod.identify(path)
    report = Report(f"ocf agent {path}")
    mode = os.stat(path).st_mode if os.path.exists(path) else 0
    if not stat.S_ISREG(mode) or not os.access(path, os.X_OK):
        report.add("agent.executable", FAIL, "not an executable regular file")
        return report
    workdir = tempfile.mkdtemp(prefix="lsaa-tester-")
    # The agent's cwd; nobody must be able to enter it for meta-data.
    os.chmod(workdir, 0o755)  # noqa: S103
    s = _Session(path, params or {}, timeout, instance, provider or default_provider,
                 rtype or default_type, extra_env or {}, workdir, report)
    try:
        _load_metadata(s)
        validate = s.run("validate-all", interval_ms=None)
        s.judge("validate-all", validate, (OCF_SUCCESS, OCF_ERR_UNIMPLEMENTED),
                why="the configuration given with -o must validate")
        s.judge_reason("validate-all", "validate-all", validate)
        _lifecycle(s)
        _unknown_action(s)
        _invalid_configs(s, invalid, hostile)
        _hang_checks(s, hang_commands, hang_params or {}, hang_timeout_ms)
    finally:
        # Leave nothing running; judged already, so ignore the outcome.
        s.run("stop")
        shutil.rmtree(workdir, ignore_errors=True)
    return report
