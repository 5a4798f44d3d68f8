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


@pytest.mark.parametrize("name", ["fence_lsaa_ipmi", "fence_lsaa_libvirt", "fence_lsaa_dummy"])
def test_pcs_stonith_describe_shows_every_option(name):
    """What an administrator reads before ``pcs stonith create``: pcs finds the installed
    agent (make dev-install) and lists each declared option and alias (the advanced and
    deprecated ones with --full), and nothing the agent does not declare."""
    import importlib
    import re
    import subprocess

    from lsaa.fence_agents import FENCE_AGENTS

    spec = importlib.import_module(FENCE_AGENTS[name]).SPEC
    out = subprocess.run(["pcs", "stonith", "describe", "--full", name], capture_output=True,
                         text=True, timeout=120, check=True).stdout
    assert out.startswith(f"{name} - {spec.shortdesc}\n"), out[:200]
    section = out.split("Stonith options:\n", 1)[1].split("\n\n", 1)[0]
    listed = {n for n in re.findall(r"^  (\w+)(?: \(deprecated by [^)]+\))?(?: \(required\))?:",
                                    section, re.M)
              if not n.startswith("pcmk_")}  # the fencer's own options follow the agent's
    declared = {n for o in spec.options for n in (o.name, *o.aliases)
                if o.name not in ("version", "help")}  # pcs shows no command-line-only flag
    assert listed - declared == set(), section
    assert declared - listed == set(), section
    assert "  ip (required):" in section or name != "fence_lsaa_ipmi"
