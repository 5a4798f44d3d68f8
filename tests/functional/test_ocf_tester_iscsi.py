"""ClusterLabs' stock ocf-tester against ocf:lsaa:iscsi-target and ocf:lsaa:iscsi-lun on tgtd.

tgtd is the one tests/functional/test_iscsi_tgt.py starts (its ``tgtd`` fixture, imported
unchanged: its own network namespace, 127.0.0.1:3260, a private control port).

ocf-tester validates meta-data with ``xmllint --valid`` against ra-api-1.dtd.  OCF 1.1
meta-data has no DOCTYPE (and 1.1 attributes the DTD does not know), so that check fails for
every OCF 1.1 agent - Pacemaker's own Stateful included, which this module shows too.  The
check is not fatal in ocf-tester (it aborts only on validate-all, start and stop), so the
whole action sequence still runs against the real, unmodified agents: nothing is patched.

Each run is verbose (-v), so ocf-tester prints a heading before every check and ``* ...``
for every failure or unsupported optional action; the tests compare that transcript exactly.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.functional.test_iscsi_tgt import (  # noqa: E402
    IQN,
    Tgtd,
    agent,
    lun_params,
    target_params,
    tgtd,  # noqa: F401  (the fixture, shared as is)
)

pytestmark = pytest.mark.functional

OCF_TESTER = "/usr/sbin/ocf-tester"
STATEFUL = "/usr/lib/ocf/resource.d/pacemaker/Stateful"
DTD_FAILURE = "* rc=4: Your agent produces meta-data which does not conform to ra-api-1.dtd"
NO_DTD = "validity error : Validation failed: no DTD found !"
PREFIXES = ("Testing", "Checking", "Restarting resource...", "Stopping resource",
            "Promoting resource", "Demoting resource", "* ")

# What ocf-tester -v prints, in order, for an agent with start/stop/monitor/validate-all and
# none of the optional actions, when its only failure is the DTD step.
TRANSCRIPT = [
    "Testing permissions with uid nobody",  # su nobody ... meta-data -> 0
    "Testing: meta-data",  # xmllint --valid against ra-api-1.dtd
    DTD_FAILURE,
    "Testing: meta-data",  # meta-data -> 0
    "Testing: validate-all",  # -> 0 (anything but 0 or 3 aborts the run)
    "Checking current state",  # monitor -> 7 here: nothing to clean up
    "Testing: monitor",  # a stopped resource -> 7
    "Testing: monitor",  # the probe (interval 0) of a stopped resource -> 7 or 5
    "Testing: start",  # -> 0
    "Testing: monitor",  # -> 0
    "Testing: monitor",  # the probe of an active resource -> 0
    "Testing: notify",
    "* Your agent does not support the notify action (optional)",
    "Checking for demote action",
    "* Your agent does not support the demote action (optional)",
    "Checking for promote action",
    "* Your agent does not support the promote action (optional)",
    "* Your agent does not support promotable clones (optional)",
    "Testing: stop",  # -> 0
    "Testing: monitor",  # -> 7
    "Restarting resource...",  # start -> 0
    "Testing: monitor",  # -> 0
    "Testing: starting a started resource",  # -> 0
    "Testing: monitor",  # -> 0
    "Stopping resource",  # -> 0
    "Testing: monitor",  # -> 7
    "Testing: stopping a stopped resource",  # -> 0
    "Testing: monitor",  # -> 7
    "Checking for migrate_to action",  # 3; ocf-tester's "no migrate" line then never prints
    "Checking for reload action",
    "* Your agent does not support the reload action (optional)",
]


def ocf_tester(path: str, name: str, params: dict[str, str],
               tmp: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "OCF_ROOT": "/usr/lib/ocf",
           "HA_RSCTMP": str(tmp / "run")}
    argv = [OCF_TESTER, "-v", "-n", name]
    for key, value in params.items():
        assert "'" not in value  # ocf-tester single-quotes -o values and evals them
        argv += ["-o", f"{key}={value}"]
    return subprocess.run([*argv, path], env=env, capture_output=True, text=True,
                          timeout=300, check=False)


def transcript(r: subprocess.CompletedProcess[str]) -> list[str]:
    """ocf-tester's own headings and findings; the agents' stdout lines are left out."""
    return [line for line in r.stdout.splitlines() if line.startswith(PREFIXES)]


def failures(r: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in transcript(r) if line.startswith("* rc=")]


def assert_only_dtd_failure(r: subprocess.CompletedProcess[str], path: str) -> None:
    out = f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    assert failures(r) == [DTD_FAILURE], out
    assert NO_DTD in r.stderr, out  # xmllint: OCF 1.1 meta-data carries no DOCTYPE
    assert f"Tests failed: {path} failed 1 tests" in r.stderr, out
    assert r.returncode == 1, out


def meta_data(path: str) -> str:
    return subprocess.run([path, "meta-data"], capture_output=True, text=True, timeout=30,
                          check=True, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                                           "OCF_ROOT": "/usr/lib/ocf"}).stdout


@pytest.fixture(autouse=True)
def _tools() -> None:
    for tool in (OCF_TESTER, "xmllint"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is not installed (resource-agents, libxml2-utils)")
    if os.geteuid() != 0:
        pytest.skip("needs root (ocf-tester's nobody check, tgtd)")


def test_ocf_tester_iscsi_target(tgtd: Tgtd) -> None:  # noqa: F811
    path = str(ROOT / "ocf" / "iscsi-target")
    assert "<version>1.1</version>" in meta_data(path)
    tp = target_params(tgtd)
    r = ocf_tester(path, "p_tgt", tp, tgtd.tmp)
    assert_only_dtd_failure(r, path)
    assert transcript(r) == TRANSCRIPT, r.stdout
    # ocf-tester ends with stop + stop: nothing of ours is left in tgtd
    assert agent(tgtd, "iscsi-target", "monitor", tp, "p_tgt").returncode == 7
    shown = subprocess.run(["tgtadm", "-C", str(tgtd.port), "--lld", "iscsi", "--mode",
                            "target", "--op", "show"], capture_output=True, text=True,
                           timeout=30, check=True).stdout
    assert IQN not in shown


def test_ocf_tester_iscsi_lun(tgtd: Tgtd) -> None:  # noqa: F811
    path = str(ROOT / "ocf" / "iscsi-lun")
    assert "<version>1.1</version>" in meta_data(path)
    img = tgtd.tmp / "lun1.img"
    with img.open("wb") as f:
        f.truncate(16 << 20)
    tp, lp = target_params(tgtd), lun_params(tgtd, img)
    r = agent(tgtd, "iscsi-target", "start", tp, "p_tgt")
    assert r.returncode == 0, r.stderr
    try:
        r = ocf_tester(path, "p_lun", lp, tgtd.tmp)
        assert_only_dtd_failure(r, path)
        assert transcript(r) == TRANSCRIPT, r.stdout
        assert agent(tgtd, "iscsi-lun", "monitor", lp, "p_lun").returncode == 7
    finally:
        assert agent(tgtd, "iscsi-target", "stop", tp, "p_tgt").returncode == 0


def test_ocf_tester_fails_pacemakers_stateful_the_same_way(tmp_path: Path) -> None:
    """The DTD failure is ocf-tester's limit: Pacemaker's own OCF 1.1 agent hits it too."""
    if not Path(STATEFUL).exists():
        pytest.skip(f"{STATEFUL} is missing (pacemaker)")
    assert "<version>1.1</version>" in meta_data(STATEFUL)
    r = ocf_tester(STATEFUL, "p_stateful", {"state": str(tmp_path / "stateful.state")},
                   tmp_path)
    assert_only_dtd_failure(r, STATEFUL)
    # ...and it, too, got through the whole sequence (with promote/demote) after that
    assert transcript(r)[:3] == TRANSCRIPT[:3]
    assert "Testing: promotion of promoted resource" in transcript(r)
    assert transcript(r)[-7:] == TRANSCRIPT[-7:]
