"""Our own agents pass the conformance harness, run as Pacemaker would run them."""

from __future__ import annotations

import os

import pytest

from lsaa.tester.fence import run_fence_checks
from lsaa.tester.ocf import run_ocf_checks

pytestmark = pytest.mark.functional
ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


@pytest.mark.parametrize("agent", ["dummy", "stateful"])
def test_ocf_reference_agents_pass(tmp_path, agent):
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    report = run_ocf_checks(os.path.join(ROOT, "ocf", agent), params={"state_dir": str(state)},
                            timeout=20, invalid={"state_dir": "relative/path"}, hostile=True)
    assert report.ok, report.render()
    assert report.status_of("meta-data.pcs-schema") == "PASS"
    assert report.status_of("meta-data.nobody") == "PASS"


def test_dummy_gives_up_on_a_hanging_backend(tmp_path):
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    report = run_ocf_checks(os.path.join(ROOT, "ocf", "dummy"), params={"state_dir": str(state)},
                            timeout=20, hang_params={"check_command": "{hang_bin}"})
    assert report.ok, report.render()
    assert report.status_of("hang.monitor") == "PASS"


def test_fence_reference_agent_passes(tmp_path):
    (tmp_path / "node1").write_text("on\n")
    (tmp_path / "node2").write_text("off\n")
    report = run_fence_checks(os.path.join(ROOT, "fence", "fence_lsaa_dummy"),
                              params={"state_dir": str(tmp_path)}, plug="node1",
                              unknown_plug="ghost", delay=1)
    assert report.ok, report.render()
    assert report.status_of("delay") == "PASS"
