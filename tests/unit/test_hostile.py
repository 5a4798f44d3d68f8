"""Property-based: hostile parameters and environments never produce a traceback,
an exit code outside the contract, or a command built from a string."""

from __future__ import annotations

import io
import os
import subprocess

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lsaa.agents.dummy import AGENT as DUMMY
from lsaa.agents.stateful import AGENT as STATEFUL
from lsaa.deadline import Deadline
from lsaa.fence_agents import dummy as fence_dummy
from lsaa.fencing.main import run as fence_run
from lsaa.ocf.main import run as ocf_run
from lsaa.run import Result, Runner

OCF_CODES = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}
ACTIONS = ["start", "stop", "monitor", "status", "promote", "demote", "notify", "validate-all",
           "reload-agent", "meta-data", "", "bogus", "start; rm -rf /", "monitor\n"]
# Text as the environment delivers it: undecodable bytes become surrogates.
hostile_text = st.one_of(
    st.text(max_size=300),
    st.binary(max_size=200).map(os.fsdecode),
    st.sampled_from(["", " ", "$(reboot)", "`id`", "a;b|c&d", "../../etc/passwd", "\x7f",
                     "1e9999", "-1", "0x10", "yes", "x" * 70000, "/tmp/ok"]),
)
names = st.sampled_from(["state_dir", "fake", "check_command", "bogus", "CRM_meta_interval",
                         "CRM_meta_timeout", "CRM_meta_notify_type", "OCF_CHECK_LEVEL"])


class Recorder(Runner):
    """Accepts any command, after checking it is an argv list of plain strings."""

    def __init__(self) -> None:
        super().__init__(Deadline(30))
        self.argvs: list[list[str]] = []

    def _execute(self, argv, input, timeout, env, shown):  # type: ignore[no-untyped-def]
        assert isinstance(argv, list) and all(isinstance(a, str) for a in argv)
        self.argvs.append(argv)
        return Result(argv, 0, "", "")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(action=st.sampled_from(ACTIONS), env=st.dictionaries(names, hostile_text, max_size=6),
       promotable=st.booleans())
def test_ocf_framework_never_breaks_the_contract(tmp_path_factory, action, env, promotable):
    full = {("OCF_RESKEY_" + k if not k.startswith("OCF_") else k): v for k, v in env.items()}
    full.setdefault("HA_LOGFACILITY", "none")
    full["HA_RSCTMP"] = str(tmp_path_factory.getbasetemp())
    out, err = io.BytesIO(), io.StringIO()
    rec = Recorder()
    rc = ocf_run(STATEFUL if promotable else DUMMY, ["agent", action], full, runner=rec,
                 stdout=out, stderr=err)
    assert rc in OCF_CODES
    lines = err.getvalue().splitlines()
    assert len(lines) <= 1
    if lines:
        assert lines[0].startswith("ocf-exit-reason:")
        assert len(lines[0]) <= len("ocf-exit-reason:") + 128
        # the framework's catch-all: an exception no agent code meant (a string handed
        # to the runner is one: Runner.run raises TypeError for it)
        assert "internal error" not in lines[0]
    for argv in rec.argvs:  # check_command is split into words, never given to a shell
        assert argv[0] not in ("sh", "bash", "/bin/sh")


fence_keys = st.sampled_from(["action", "plug", "port", "state_dir", "delay", "power_timeout",
                              "power_wait", "retry_on", "verbose", "password", "bogus",
                              "nodename", "login_timeout", "method"])


def assert_fence_contract(rc: int, stderr: str) -> None:
    """0/1/2, at most one line on stderr, and no exception the framework caught."""
    assert rc in (0, 1, 2)
    assert "Traceback" not in stderr and "internal error" not in stderr
    assert stderr.count("\n") <= 1


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pairs=st.lists(st.tuples(fence_keys, hostile_text.filter(lambda v: "\n" not in v
                                                                 and len(v) < 5000)),
                      max_size=8),
       noise=st.binary(max_size=100))
def test_fence_framework_never_breaks_the_contract(tmp_path_factory, pairs, noise):
    state = tmp_path_factory.getbasetemp() / "fence"
    state.mkdir(exist_ok=True)
    (state / "n1").write_text("on\n")
    lines = []
    for k, value in pairs:
        v = value
        if k == "delay" or k.endswith("timeout") or k == "power_wait":
            v = value[:1]
            if v.isdigit():
                v = "0." + v  # keep waits under a second: the run stays fast
        lines.append(f"{k}={v}")
    stdin = ("\n".join(lines)).encode("utf-8", "surrogateescape") + b"\n" + noise
    out, err = io.StringIO(), io.StringIO()
    rc = fence_run(fence_dummy.SPEC, fence_dummy.factory, ["fence_lsaa_dummy"], stdin,
                   {"HA_LOGFACILITY": "none"}, stdout=out, stderr=err,
                   validate=fence_dummy.validate)
    assert_fence_contract(rc, err.getvalue())


def _short(v: str) -> bool:
    return len(v) < 5000


def _no_nul(v: str) -> bool:  # an environment cannot carry NUL
    return "\x00" not in v


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pairs=st.lists(st.tuples(fence_keys, hostile_text.filter(_short)), max_size=8),
       env=st.dictionaries(st.sampled_from(["HA_debug", "HA_LOGFACILITY", "OCF_TRACE_RA",
                                            "LANG", "LC_ALL", "bogus"]),  # no log file paths
                           hostile_text.filter(_no_nul), max_size=4))
def test_fence_command_line_and_environment_never_break_the_contract(tmp_path_factory,
                                                                      pairs, env):
    """The same on the command line (``--name=value``, bare flags, stray words), with a
    hostile environment: an exit code of the contract, at most one line on stderr."""
    state = tmp_path_factory.getbasetemp() / "fence-argv"
    state.mkdir(exist_ok=True)
    (state / "n1").write_text("on\n")
    argv = ["fence_lsaa_dummy"]
    for k, value in pairs:
        v = value[:1] if k == "delay" or k.endswith("timeout") or k == "power_wait" else value
        argv += [f"--{k.replace('_', '-')}={v}"] if v else [f"--{k.replace('_', '-')}", ""]
    env = {**env, "HA_LOGFACILITY": env.get("HA_LOGFACILITY", "none")}
    out, err = io.StringIO(), io.StringIO()
    rc = fence_run(fence_dummy.SPEC, fence_dummy.factory, argv, b"", env, stdout=out,
                   stderr=err, validate=fence_dummy.validate)
    assert_fence_contract(rc, err.getvalue())


def test_non_utf8_environment_through_a_real_process(tmp_path):
    """The launcher itself, with raw bytes in the environment."""
    launcher = os.path.join(os.path.dirname(__file__), "..", "..", "ocf", "dummy")
    env = {b"PATH": b"/usr/bin:/bin", b"OCF_RESKEY_state_dir": b"/tmp/\xff\xfe",
           b"OCF_RESKEY_fake": b"\xc3\x28", b"HA_LOGFACILITY": b"none"}
    for action, want in [("start", 6), ("stop", 0), ("monitor", 7), ("validate-all", 6)]:
        res = subprocess.run([launcher, action], env=env, capture_output=True, check=False)
        assert res.returncode == want, (action, res.stderr)
        assert b"Traceback" not in res.stderr
