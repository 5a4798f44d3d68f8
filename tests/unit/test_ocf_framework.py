"""The OCF framework's guarantees, driven in-process through the reference agents
and small purpose-built agents."""

from __future__ import annotations

import os
import time

import pytest
from ocfrun import ocf

from lsaa.agents.dummy import AGENT as DUMMY
from lsaa.agents.stateful import AGENT as STATEFUL
from lsaa.errors import (
    ConfigError,
    GenericError,
    LocalConfigError,
    NotInstalledError,
)
from lsaa.ocf import spec as S
from lsaa.ocf.agent import Agent, Context
from lsaa.ocf.metadata import build_xml, metadata_bytes
from lsaa.testing.fakerun import Call, FakeRunner


def make_agent(handlers: dict[str, object], params: list[S.Param] | None = None,
               validate: object = None) -> Agent:
    """An agent whose actions are the given callables (ctx) -> int."""
    spec = S.AgentSpec(
        "probe-test", "t", "t",
        params or [S.Param("name", "n", required=True),
                   S.Param("count", "c", type="integer", minimum=1, maximum=9),
                   S.Param("password", "p", secret=True)],
        [S.Action(a, 20) for a in ("start", "stop", "monitor", "validate-all", "meta-data")],
    )
    attrs: dict[str, object] = {"spec": spec}
    for name, fn in handlers.items():
        attrs[name] = lambda self, ctx, fn=fn: fn(ctx)  # type: ignore[misc]
    if validate is not None:
        attrs["validate"] = lambda self, ctx: validate(ctx)  # type: ignore[operator]
    cls = type("TestAgent", (Agent,), attrs)
    return cls()  # type: ignore[no-any-return]


def raiser(exc: BaseException):  # type: ignore[no-untyped-def]
    def fn(ctx: Context) -> int:
        raise exc
    return fn


GOOD = {"name": "x"}


def test_dummy_lifecycle(tmp_path):
    p = {"state_dir": str(tmp_path)}
    assert ocf(DUMMY, "monitor", p).rc == 7  # probe before start
    assert ocf(DUMMY, "start", p).rc == 0
    assert ocf(DUMMY, "start", p).rc == 0  # start on started
    assert ocf(DUMMY, "monitor", p, interval="10000").rc == 0
    assert ocf(DUMMY, "status", p).rc == 0  # legacy alias of monitor
    assert ocf(DUMMY, "stop", p).rc == 0
    assert ocf(DUMMY, "stop", p).rc == 0  # stop on stopped
    assert ocf(DUMMY, "monitor", p, interval="10000").rc == 7


def test_reload_agent_rewrites_only_a_running_instance(tmp_path):
    p = {"state_dir": str(tmp_path), "fake": "a"}
    assert ocf(DUMMY, "reload-agent", p).rc == 0
    assert not list(tmp_path.iterdir())  # not started: nothing written
    ocf(DUMMY, "start", p)
    ocf(DUMMY, "reload-agent", {**p, "fake": "b"})
    (state,) = tmp_path.iterdir()
    assert state.read_text() == "fake=b\n"


def test_meta_data_needs_no_environment():
    out = ocf(DUMMY, "meta-data", env={"PATH": ""})
    assert out.rc == 0
    assert out.stdout == build_xml(DUMMY.spec)
    assert out.stdout == metadata_bytes(DUMMY.spec)


@pytest.mark.parametrize("action", ["bogus", "", "usage", "reload"])
def test_unknown_action_is_unimplemented(action):
    out = ocf(DUMMY, action)
    assert out.rc == 3
    assert len(out.reasons) == 1
    assert "action" in out.reasons[0]


def test_invalid_configuration_table(tmp_path):
    bad = {"state_dir": "relative/dir"}
    assert ocf(DUMMY, "stop", bad).rc == 0  # never started with it: nothing to stop
    assert ocf(DUMMY, "stop", bad).reasons == []
    assert ocf(DUMMY, "monitor", bad).rc == 7  # probe
    recurring = ocf(DUMMY, "monitor", bad, interval="10000")
    assert recurring.rc == 1
    assert "state_dir" in recurring.reasons[0]
    for action in ("start", "validate-all", "reload-agent"):
        out = ocf(DUMMY, action, bad)
        assert out.rc == 6, action
        assert out.reasons == ["invalid configuration: state_dir: 'relative/dir' is not an "
                               "absolute path"]


def test_every_problem_is_reported_at_once():
    agent = make_agent({"start": lambda ctx: 0})
    out = ocf(agent, "start", {"count": "12"})
    assert out.rc == 6
    (reason,) = out.reasons
    assert "name: required parameter is not set" in reason
    assert "count: 12 is above the maximum 9" in reason


def test_exit_reason_is_one_line_of_at_most_128_characters():
    agent = make_agent({"start": raiser(GenericError("word " * 100 + "\nsecond line"))})
    out = ocf(agent, "start", GOOD)
    assert out.rc == 1
    (reason,) = out.reasons
    assert len(reason) <= 128
    assert "\n" not in reason
    assert out.stderr.count("\n") == 1


def test_secret_never_in_exit_reason_or_log(tmp_path):
    log = tmp_path / "ha.log"
    agent = make_agent({"start": raiser(GenericError("login with s3cr3t-pw failed"))})
    out = ocf(agent, "start", {**GOOD, "password": "s3cr3t-pw"},
              env={"HA_LOGFILE": str(log), "HA_debug": "1"})
    assert out.rc == 1
    assert "s3cr3t-pw" not in out.stderr
    assert "******" in out.reasons[0]
    assert "s3cr3t-pw" not in log.read_text()
    assert "******" in log.read_text()


@pytest.mark.parametrize(("exc", "probe", "recurring", "start"), [
    (NotInstalledError("ipvsadm not found"), 7, 5, 5),
    (LocalConfigError("device /dev/x missing"), 7, 1, 2),
    (ConfigError(["a: bad"]), 7, 1, 6),
    (GenericError("boom"), 1, 1, 1),
    (ValueError("a bug"), 1, 1, 1),
])
def test_error_mapping(exc, probe, recurring, start):
    agent = make_agent({"monitor": raiser(exc), "start": raiser(exc)})
    assert ocf(agent, "monitor", GOOD).rc == probe
    assert ocf(agent, "monitor", GOOD, interval="5000").rc == recurring
    assert ocf(agent, "start", GOOD).rc == start


def test_bug_becomes_rc1_with_traceback_in_log_only(tmp_path):
    log = tmp_path / "ha.log"
    agent = make_agent({"start": raiser(KeyError("k"))})
    out = ocf(agent, "start", GOOD, env={"HA_LOGFILE": str(log)})
    assert out.rc == 1
    assert out.reasons == ["internal error in start: KeyError: 'k'"]
    assert "Traceback" not in out.stderr
    assert "Traceback" in log.read_text()


def test_handler_must_return_an_exit_code():
    agent = make_agent({"start": lambda ctx: None, "stop": lambda ctx: 7})
    out = ocf(agent, "start", GOOD)
    assert out.rc == 1
    assert "not an exit code" in out.reasons[0]
    assert ocf(agent, "stop", GOOD).rc == 0  # stop's success is 0, never 7


def test_agent_validate_adds_problems():
    agent = make_agent({"start": lambda ctx: 0, "stop": lambda ctx: 0},
                       validate=lambda ctx: ["name: clashes with count"])
    assert ocf(agent, "start", GOOD).rc == 6
    assert ocf(agent, "stop", GOOD).rc == 0


def test_command_timeout_gives_up_inside_the_operation_timeout(tmp_path):
    runner = FakeRunner([Call(["check"], timeout=True)])
    out = ocf(DUMMY, "monitor", {"state_dir": str(tmp_path), "check_command": "check"},
              runner=runner, interval="10000")
    assert out.rc == 1
    assert "timed out" in out.reasons[0]
    runner.assert_done()


def test_real_hanging_command_is_killed_before_the_op_timeout(tmp_path):
    from lsaa.deadline import Deadline
    from lsaa.run import Runner

    started = time.monotonic()
    deadline = Deadline.from_timeout_ms("3000")
    out = ocf(DUMMY, "monitor", {"state_dir": str(tmp_path), "check_command": "sleep 60"},
              runner=Runner(deadline), timeout="3000", interval="10000")
    assert out.rc == 1  # cannot tell: never "not running" on a guess
    assert "sleep 60 did not finish" in out.reasons[0]
    assert time.monotonic() - started < 3.0  # gave up before Pacemaker's kill


def test_python_hang_is_stopped_by_the_alarm():
    def spin(ctx: Context) -> int:
        while True:
            time.sleep(0.01)

    agent = make_agent({"start": spin})
    started = time.monotonic()
    out = ocf(agent, "start", GOOD, alarm=True, timeout="2000")
    assert out.rc == 1
    assert "timed out" in out.reasons[0]
    assert time.monotonic() - started < 2.0


def test_check_level_read_bare_and_prefixed(tmp_path):
    seen = []
    agent = make_agent({"monitor": lambda ctx: seen.append(ctx.check_level) or 0})
    ocf(agent, "monitor", GOOD, env={"OCF_CHECK_LEVEL": "10"})
    ocf(agent, "monitor", GOOD, env={"OCF_RESKEY_OCF_CHECK_LEVEL": "20"})
    ocf(agent, "monitor", GOOD, env={"OCF_CHECK_LEVEL": "junk"})
    assert seen == [10, 20, 0]


def test_deprecated_parameter_fills_in_for_its_replacement():
    params = [S.Param("vip", "v", required=True),
              S.Param("ip", "old", deprecated="use vip", replaced_by="vip")]
    got = []
    agent = make_agent({"start": lambda ctx: got.append(ctx.p("vip")) or 0}, params=params)
    assert ocf(agent, "start", {"ip": "10.0.0.1"}).rc == 0
    assert ocf(agent, "start", {"ip": "10.0.0.1", "vip": "10.0.0.2"}).rc == 0
    assert got == ["10.0.0.1", "10.0.0.2"]


def _score(value: str | None) -> Call:
    tail = ["--delete"] if value is None else ["--update", value]
    return Call(["crm_attribute", "--node", "n1", "--name", "master-test", "--lifetime",
                 "reboot", *tail])


def test_promotable_stateful_roles_and_scores(tmp_path):
    p = {"state_dir": str(tmp_path)}
    runner = FakeRunner([_score("5"), _score("10"), _score("10"), _score("5"), _score(None)])
    assert ocf(STATEFUL, "start", p, runner=runner, on_node="n1").rc == 0
    assert ocf(STATEFUL, "promote", p, runner=runner, on_node="n1").rc == 0
    assert ocf(STATEFUL, "promote", p, runner=runner, on_node="n1").rc == 0  # no-op, no call
    assert ocf(STATEFUL, "monitor", p, runner=runner, on_node="n1", interval="10000").rc == 8
    assert ocf(STATEFUL, "monitor", p, runner=runner, on_node="n1").rc == 8  # probe: rescore
    assert ocf(STATEFUL, "demote", p, runner=runner, on_node="n1").rc == 0
    assert ocf(STATEFUL, "monitor", p, runner=runner, on_node="n1", interval="11000").rc == 0
    assert ocf(STATEFUL, "stop", p, runner=runner, on_node="n1").rc == 0
    runner.assert_done()
    assert not os.listdir(tmp_path)


def test_score_failure_outside_a_cluster_is_only_logged(tmp_path):
    runner = FakeRunner([Call(["crm_attribute", "--node", "n1", "--name", "master-test",
                               "--lifetime", "reboot", "--update", "5"], rc=102,
                              stderr="Could not connect to the CIB")])
    out = ocf(STATEFUL, "start", {"state_dir": str(tmp_path)}, runner=runner, on_node="n1")
    assert out.rc == 0
    runner.assert_done()


def test_stop_despite_invalid_runs_stop_with_invalid_values_as_none():
    seen = []
    agent = make_agent({"stop": lambda ctx: seen.append(dict(ctx.params)) or 0},
                       validate=lambda ctx: ["name: never consulted for stop"])
    type(agent).stop_despite_invalid = True
    assert ocf(agent, "stop", {"name": "x", "count": "99"}).rc == 0
    assert seen == [{"name": "x", "count": None, "password": None}]
    assert ocf(agent, "start", {"name": "x", "count": "99"}).rc == 6  # other actions unchanged
