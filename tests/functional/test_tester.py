"""lsaa-tester against real agents: the stock Dummy and Stateful must pass,
and each fixture under tests/fixtures/ must fail the one rule it breaks.

The fixtures are copied to a world-readable temporary directory first: the
meta-data check runs the agent as ``nobody``, and a checkout may sit where
nobody cannot read it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lsaa.tester.cli import main
from lsaa.tester.fence import run_fence_checks
from lsaa.tester.ocf import run_ocf_checks
from lsaa.tester.report import PASS, WARN, Report

pytestmark = pytest.mark.functional

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
DUMMY = "/usr/lib/ocf/resource.d/heartbeat/Dummy"
STATEFUL = "/usr/lib/ocf/resource.d/pacemaker/Stateful"
FENCE_DUMMY = "/usr/sbin/fence_dummy"
LIB = Path(__file__).resolve().parent.parent.parent / "lib"


@pytest.fixture(scope="module")
def world() -> Iterator[Path]:
    """A 0755 scratch directory holding copies of the fixture agents."""
    root = Path(tempfile.mkdtemp(prefix="lsaa-tester-test-"))
    root.chmod(0o755)
    for name in ("broken_agents", "fence_agents"):
        shutil.copytree(FIXTURES / name, root / name)
        (root / name).chmod(0o755)
    state = root / "state"
    state.mkdir()
    state.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def ocf_fixture(world: Path, name: str, **kwargs: Any) -> Report:
    state = world / "state" / f"{name}.state"
    return run_ocf_checks(str(world / "broken_agents" / name), {"state": str(state)},
                          timeout=10, **kwargs)


def test_dummy_passes(world: Path) -> None:
    state = world / "state" / "dummy.state"
    report = run_ocf_checks(DUMMY, {"state": str(state)}, timeout=10)
    assert report.ok, report.render()
    for name in ("meta-data.nobody", "meta-data.pcs-schema", "validate-all",
                 "probe.before-start", "start", "monitor.after-start", "start.twice",
                 "stop", "probe.after-stop", "monitor.after-stop", "stop.twice",
                 "probe.no-interval", "unknown-action"):
        assert report.status_of(name) == PASS, report.render()
    # Dummy prints usage, not an exit reason, for an unknown action.
    assert report.status_of("unknown-action.exit-reason") == WARN
    assert not state.exists(), "the harness must leave the resource stopped"


def test_stateful_passes_with_promotion_checks(world: Path) -> None:
    state = world / "state" / "stateful.state"
    report = run_ocf_checks(STATEFUL, {"state": str(state)}, timeout=10)
    assert report.ok, report.render()
    for name in ("promote", "monitor.promoted", "probe.promoted", "promote.twice",
                 "demote", "monitor.demoted", "demote.twice", "notify"):
        assert report.status_of(name) == PASS, report.render()
    # Stateful's OCF 1.1 metadata is beyond resource-agents' schema: a warning only.
    assert report.status_of("meta-data.ra-schema") == WARN
    # Stateful refuses to stop a promoted instance (Pacemaker demotes first).
    assert report.status_of("stop.from-promoted") == WARN
    assert not state.exists()


def test_good_fixture_passes_invalid_config_and_hang_checks(world: Path) -> None:
    report = ocf_fixture(world, "good_agent", hang_commands=["lsaa-fixture-tool"],
                         hang_timeout_ms=2000, hostile=True)
    assert report.ok, report.render()
    for name in ("invalid-config.missing-state.stop", "invalid-config.missing-state.probe",
                 "invalid-config.missing-state.start",
                 "invalid-config.missing-state.start.exit-reason",
                 "invalid-config.hostile.stop", "invalid-config.hostile.injection",
                 "hang.start", "hang.start.exit-reason", "hang.monitor"):
        assert report.status_of(name) == PASS, report.render()


def test_good_promotable_fixture_passes(world: Path) -> None:
    report = ocf_fixture(world, "good_promotable")
    assert report.ok, report.render()
    assert report.status_of("stop.from-promoted") == PASS


def _reason_checks() -> list[str]:
    # A malformed reason is reported wherever the agent prints it.
    return [f"invalid-config.missing-state.{a}.exit-reason"
            for a in ("stop", "probe", "validate-all", "start")]


BROKEN = [
    ("stop_leaves_running", ["probe.after-stop", "monitor.after-stop", "probe.no-interval"]),
    ("probe_rc1_when_stopped", ["probe.before-start", "probe.after-stop", "probe.no-interval"]),
    ("start_twice_fails", ["start.twice"]),
    ("metadata_invalid", ["meta-data.pcs-schema"]),
    ("metadata_needs_root", ["meta-data.nobody"]),
    ("reason_missing", ["invalid-config.missing-state.validate-all.exit-reason",
                        "invalid-config.missing-state.start.exit-reason"]),
    ("reason_multiline", _reason_checks()),
    ("reason_too_long", _reason_checks()),
    ("stop_fails_invalid_config", ["invalid-config.missing-state.stop"]),
    ("unknown_action_0", ["unknown-action"]),
    ("promotable_probe_0", ["probe.promoted"]),
]


@pytest.mark.parametrize(("agent", "expected"), BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_agent_fails_for_its_reason(world: Path, agent: str, expected: list[str]) -> None:
    if agent == "metadata_needs_root" and os.geteuid() != 0:
        pytest.skip("running meta-data as nobody needs root")
    report = ocf_fixture(world, agent)
    assert not report.ok
    assert report.failed_names() == expected, report.render()


def test_exit_reason_details_name_the_problem(world: Path) -> None:
    multi = ocf_fixture(world, "reason_multiline").get(
        "invalid-config.missing-state.start.exit-reason")
    long = ocf_fixture(world, "reason_too_long").get(
        "invalid-config.missing-state.start.exit-reason")
    assert multi is not None and "multi-line" in multi.detail
    assert long is not None and "168 characters" in long.detail


def test_hostile_values_catch_shell_injection(world: Path) -> None:
    report = ocf_fixture(world, "eval_injection", hostile=True)
    assert "invalid-config.hostile.injection" in report.failed_names(), report.render()
    # The normal sequence is fine: only the hostile case exposes the eval.
    assert all(name.startswith("invalid-config.hostile.") for name in report.failed_names())


def test_custom_invalid_config_finds_dummys_missing_reason(world: Path) -> None:
    # A real finding: Dummy's start fails with touch's rc 1 and no exit reason
    # when the state directory is missing (validate-all does give one).
    report = run_ocf_checks(DUMMY, {"state": str(world / "state" / "d-inv.state")}, timeout=10,
                            invalid={"state": "/nonexistent/dir/state"})
    assert report.status_of("invalid-config.custom.stop") == PASS
    assert report.status_of("invalid-config.custom.probe") == PASS
    assert report.status_of("invalid-config.custom.validate-all.exit-reason") == PASS
    assert report.failed_names() == ["invalid-config.custom.start.exit-reason"]


def test_hang_that_ignores_its_timeout_is_killed_and_fails(world: Path) -> None:
    report = ocf_fixture(world, "hang_ignores_timeout", hang_commands=["lsaa-fixture-tool"],
                         hang_timeout_ms=1500)
    assert report.failed_names() == ["hang.start", "hang.monitor"], report.render()
    check = report.get("hang.start")
    assert check is not None and "SIGKILL" in check.detail


def test_hang_not_exercised_is_a_warning(world: Path) -> None:
    # Dummy never runs the stub: the check must say so instead of passing.
    state = world / "state" / "dummy-hang.state"
    report = run_ocf_checks(DUMMY, {"state": str(state)}, timeout=10,
                            hang_commands=["no-such-tool"], hang_timeout_ms=1000)
    assert report.ok
    assert report.status_of("hang.start") == WARN


def test_missing_agent_is_a_failure(world: Path) -> None:
    report = run_ocf_checks(str(world / "no-such-agent"))
    assert report.failed_names() == ["agent.executable"]


def test_cli_exit_codes_and_report(world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = world / "state" / "cli.state"
    assert main(["ocf", "-o", f"state={state}", DUMMY]) == 0
    out = capsys.readouterr().out
    assert "PASS  probe.before-start" in out
    assert out.splitlines()[-1].startswith("SUMMARY OK:")
    broken = str(world / "broken_agents" / "start_twice_fails")
    assert main(["ocf", "-o", f"state={state}", broken]) == 1
    out = capsys.readouterr().out
    assert "FAIL  start.twice" in out
    assert out.splitlines()[-1].startswith("SUMMARY FAILED:")


def test_python_dash_m_entry_point(world: Path) -> None:
    broken = str(world / "broken_agents" / "unknown_action_0")
    env = {**os.environ, "PYTHONPATH": str(LIB)}
    result = subprocess.run(
        [sys.executable, "-m", "lsaa.tester", "ocf", "-o",
         f"state={world / 'state' / 'm.state'}", broken],
        capture_output=True, text=True, env=env, timeout=60, check=False)
    assert result.returncode == 1, result.stderr
    assert "FAIL  unknown-action" in result.stdout


@pytest.mark.skipif(not os.path.exists(FENCE_DUMMY), reason="fence_dummy is not installed")
def test_fence_dummy_passes(world: Path) -> None:
    status_file = world / "state" / "fence_dummy.status"
    report = run_fence_checks(FENCE_DUMMY, {"status_file": str(status_file)}, delay=1)
    assert report.ok, report.render()
    for name in ("metadata.fence-schema", "metadata.pcs-schema", "metadata.stdin-matches-argv",
                 "status.after-on", "status.after-off", "status.after-off.argv-agrees",
                 "delay", "unknown-keys"):
        assert report.status_of(name) == PASS, report.render()


def fence_fixture(world: Path, name: str) -> Report:
    state = world / "state" / f"{name}.json"
    return run_fence_checks(str(world / "fence_agents" / name), {"state_file": str(state)},
                            plug="node1", unknown_plug="node9", delay=1)


def test_good_fence_fixture_passes(world: Path) -> None:
    report = fence_fixture(world, "fence_fixture_good")
    assert report.ok, report.render()
    assert report.status_of("status.unknown-plug") == PASS
    assert report.status_of("list-status.argv-agrees") == PASS


FENCE_BROKEN = [
    ("fence_broken_status", ["status.after-on", "status.after-reboot"]),
    ("fence_broken_delay", ["delay"]),
    ("fence_broken_argv", ["status.after-off", "status.after-off.argv-agrees",
                           "status.after-reboot.argv-agrees"]),
]


@pytest.mark.parametrize(("agent", "expected"), FENCE_BROKEN, ids=[b[0] for b in FENCE_BROKEN])
def test_broken_fence_agent_fails_for_its_reason(world: Path, agent: str,
                                                 expected: list[str]) -> None:
    report = fence_fixture(world, agent)
    assert report.failed_names() == expected, report.render()
