"""The RPMs `make rpm` builds, installed into an alternate root and inspected.

Checks what a RHEL 9 node would get: every registered agent's launcher,
meta-data and man page where Pacemaker, pcs and man look; the Python package
in RHEL 9's sitelib; a clean `rpm -V`; the dependencies the spec's header
promises; and meta-data served from the installed golden file.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from lsaa import __version__
from lsaa.agents import AGENTS

pytestmark = [
    pytest.mark.functional,
    pytest.mark.skipif(
        not all(shutil.which(t) for t in ("rpmbuild", "rpmlint", "rpm", "make", "git")),
        reason="rpm, rpmbuild, rpmlint, make and git are needed",
    ),
]

REPO = Path(__file__).resolve().parents[2]
SITELIB = "usr/lib/python3.9/site-packages"  # RHEL 9's, from rpm/macros.el-compat
RPMDIR = REPO / "build" / "rpm" / "RPMS" / "noarch"
FENCE = sorted(os.path.basename(p) for p in glob.glob(str(REPO / "fence" / "fence_lsaa_*")))


def _rpm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["rpm", *args], capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def rpms() -> dict[str, Path]:
    """Package name -> RPM file, from a fresh `make rpm` (which also runs rpmlint)."""
    proc = subprocess.run(["make", "-C", str(REPO), "rpm"], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert " 0 errors," in proc.stdout
    out = {}
    for path in RPMDIR.glob("*.rpm"):
        name = _rpm("-qp", "--qf", "%{NAME}", str(path)).stdout
        out[name] = path
    return out


@pytest.fixture(scope="module")
def root(rpms: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An alternate root with every built package installed."""
    top = tmp_path_factory.mktemp("rpmroot")
    # --nodeps: the alternate root has no python3 package in its rpm database.
    proc = _rpm("-ivh", "--root", str(top), "--dbpath", "/var/lib/rpm", "--nodeps",
                *map(str, rpms.values()))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return top


def test_packages_split_by_dependency(rpms: dict[str, Path]) -> None:
    expected = {"lsaa", "lsaa-tester", "lsaa-resource-agents"}
    if "fence_lsaa_ipmi" in FENCE:
        expected.add("lsaa-fence-ipmi")
    if "fence_lsaa_libvirt" in FENCE:
        expected.add("lsaa-fence-libvirt")
    if set(FENCE) - {"fence_lsaa_ipmi", "fence_lsaa_libvirt"}:
        expected.add("lsaa-fence-agents")
    assert set(rpms) == expected
    for path in rpms.values():
        assert path.name.endswith(f"-{__version__}-1.el9.noarch.rpm")


def test_spec_version_is_the_package_version() -> None:
    spec = (REPO / "rpm" / "lsaa.spec").read_text()
    assert re.search(rf"^Version:\s+{re.escape(__version__)}$", spec, re.M)


def test_layout(root: Path) -> None:
    ocf = root / "usr/lib/ocf/resource.d/lsaa"
    assert sorted(os.listdir(ocf)) == sorted(AGENTS)
    for agent_type, module in AGENTS.items():
        launcher = ocf / agent_type
        assert stat.S_IMODE(launcher.stat().st_mode) == 0o755
        assert launcher.read_bytes() == (REPO / "ocf" / agent_type).read_bytes()
        source = root / SITELIB / (module.replace(".", "/") + ".py")
        assert source.is_file(), source
        installed_md = root / "usr/share/lsaa/metadata" / f"{agent_type}.xml"
        assert installed_md.read_bytes() == (REPO / "metadata" / f"{agent_type}.xml").read_bytes()
        assert glob.glob(str(root / f"usr/share/man/man7/ocf_lsaa_{agent_type}.7*"))
    for agent in FENCE:
        launcher = root / "usr/sbin" / agent
        assert stat.S_IMODE(launcher.stat().st_mode) == 0o755
        assert (root / "usr/share/lsaa/metadata" / f"{agent}.xml").is_file()
        assert glob.glob(str(root / f"usr/share/man/man8/{agent}.8*"))
    for name in ("__init__.py", "settings.py", "ocf/spec.py", "tools/man.py"):
        assert (root / SITELIB / "lsaa" / name).is_file()
    assert glob.glob(str(root / SITELIB / f"lsaa-{__version__}-py3*.egg-info"))
    tester = root / "usr/bin/lsaa-tester"
    assert stat.S_IMODE(tester.stat().st_mode) == 0o755


def test_rpm_verify_is_clean(root: Path) -> None:
    proc = _rpm("--root", str(root), "--dbpath", "/var/lib/rpm", "-Va", "--nodeps")
    assert proc.returncode == 0 and proc.stdout == "", proc.stdout + proc.stderr


def _promised() -> dict[str, str]:
    """Runtime package -> note, from the spec header's "Where each dependency
    comes from" table (build-only and not-recommended entries left out)."""
    spec = (REPO / "rpm" / "lsaa.spec").read_text().splitlines()
    start = next(i for i, line in enumerate(spec) if "Where each dependency comes from" in line)
    promised: dict[str, str] = {}
    current = ""
    for line in spec[start + 2:]:
        if not line.startswith("#   "):
            break
        m = re.match(r"#   (\S+)\s+(.*)", line)
        if m:
            current = m.group(1)
            promised[current] = m.group(2)
        elif current:
            promised[current] += " " + line.lstrip("# ")
    return {name: note for name, note in promised.items()
            if "build only" not in note and "not recommended" not in note}


def test_dependencies_match_the_spec_comment(rpms: dict[str, Path]) -> None:
    deps: dict[str, set[str]] = {}
    for name, path in rpms.items():
        found = set()
        for kind in ("--requires", "--recommends"):
            for line in _rpm("-qp", kind, str(path)).stdout.splitlines():
                found.add(line.split()[0])
        deps[name] = found
    everything = set().union(*deps.values())
    promised = _promised()
    assert "python3-pyghmi" in promised and "targetcli" in promised
    for package in promised:
        if package == "python3-pyghmi" and "lsaa-fence-ipmi" not in rpms:
            continue
        if package == "python3-libvirt" and "lsaa-fence-libvirt" not in rpms:
            continue
        if package == "python3":
            # rpm turns the python3 shebangs and the sitelib into these
            assert {"/usr/bin/python3", "python(abi)"} <= everything
            continue
        assert package in everything, f"{package} promised by the spec, required by nothing"
    # Heavy libraries stay out of the packages that do not need them.
    assert "python3-lxml" in deps["lsaa-tester"]
    assert not {"python3-lxml", "python3-pyghmi", "python3-libvirt"} & deps["lsaa"]
    assert not {"python3-pyghmi", "python3-libvirt"} & deps["lsaa-resource-agents"]
    if "lsaa-fence-ipmi" in rpms:
        assert "python3-pyghmi" in deps["lsaa-fence-ipmi"]
    if "lsaa-fence-libvirt" in rpms:
        assert "python3-libvirt" in deps["lsaa-fence-libvirt"]
    for name in rpms:
        if name != "lsaa":
            assert "lsaa" in deps[name], f"{name} must require the framework"


# Runs an installed launcher with the alternate root's sitelib and meta-data
# directory in place of the system ones, and lxml unimportable: the output can
# only come from the installed golden file.
_RUN_INSTALLED = """
import runpy, sys
root, launcher, action = sys.argv[1:4]
sys.path.insert(0, root + "/usr/lib/python3.9/site-packages")
sys.modules["lxml"] = None
import lsaa.settings
assert "/usr/share/lsaa/metadata" in lsaa.settings.METADATA_DIRS, lsaa.settings.METADATA_DIRS
lsaa.settings.METADATA_DIRS = (root + "/usr/share/lsaa/metadata",)
assert lsaa.__file__.startswith(root), lsaa.__file__
sys.argv = [launcher] + action.split()
runpy.run_path(root + launcher, run_name="__main__")
"""


@pytest.mark.parametrize("agent_type", sorted(AGENTS))
def test_installed_agent_serves_the_golden_metadata(root: Path, agent_type: str) -> None:
    launcher = f"/usr/lib/ocf/resource.d/lsaa/{agent_type}"
    proc = subprocess.run(
        ["/usr/bin/python3", "-I", "-c", _RUN_INSTALLED, str(root), launcher, "meta-data"],
        capture_output=True, check=False, env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"},
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout == (REPO / "metadata" / f"{agent_type}.xml").read_bytes()
