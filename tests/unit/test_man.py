"""The man page generator: complete pages that groff renders without a warning."""

from __future__ import annotations

import importlib
import shutil
import subprocess

import pytest

from lsaa.agents import AGENTS
from lsaa.ocf.spec import Action, AgentSpec, Param
from lsaa.tools import man

needs_groff = pytest.mark.skipif(shutil.which("groff") is None, reason="groff not installed")


def _render(source: str) -> tuple[str, str]:
    """groff's text output and its warnings for ``source``."""
    proc = subprocess.run(
        ["groff", "-man", "-Tutf8", "-ww", "-rLL=78n"],
        input=source.encode("ascii"), capture_output=True, check=True,
        env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"},
    )
    # grotty marks bold and italic with overstrikes; col -b leaves plain text.
    text = proc.stdout.decode("utf-8")
    plain = subprocess.run(["col", "-bx"], input=text.encode(), capture_output=True, check=True)
    return plain.stdout.decode("utf-8"), proc.stderr.decode("utf-8")


def _flat(text: str) -> str:
    """Rendered text on one line, shell continuations joined."""
    return " ".join(text.replace("\\\n", " ").split())


HOSTILE = AgentSpec(
    name="hostile",
    shortdesc="Descriptions that \\fBlook\\fR like groff",
    longdesc=".SH INJECTED\n'br quote first\n\nback\\slash and caf\u00e9 and -dashes",
    params=[
        Param("mode", "Mode", choices=["fast", "slow"], default="fast", required=True),
        Param("old_mode", "Old mode", deprecated="use mode", replaced_by="mode"),
        Param("count", "A count", type="integer", reloadable=True, default="3"),
        Param("secret_key", "Key", secret=True),
    ],
    actions=[
        Action("start", 30),
        Action("monitor", 20, interval=10, depth=10, role="Promoted"),
        Action("promote", 10),
        Action("demote", 10),
    ],
)


def test_every_agent_gets_a_page_naming_every_parameter_and_action() -> None:
    pages = man.pages()
    for agent_type, module in AGENTS.items():
        spec = importlib.import_module(module).SPEC
        source = pages[f"ocf_lsaa_{agent_type}.7"]
        assert source.startswith(f".TH OCF_LSAA_{agent_type.upper()} 7 ")
        for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "PARAMETERS", "ACTIONS", "SEE ALSO"):
            assert f"\n.SH {section}\n" in source
        # groff escapes hyphens (iscsi\-target): compare the text a reader sees
        assert f"ocf:lsaa:{agent_type}" in source.replace("\\-", "-")
        for p in spec.params:
            assert f"\\fB{man.escape(p.name)}\\fR = \\fI{p.type}\\fR" in source
        for a in spec.actions:
            assert f"\\fB{man.escape(a.name)}\\fR\ntimeout={a.timeout}s" in source


@needs_groff
def test_every_page_renders_without_warnings() -> None:
    for name, source in man.pages().items():
        text, warnings = _render(source)
        assert warnings == "", f"{name}: {warnings}"
        assert "NAME" in text and "SEE ALSO" in text


@needs_groff
def test_declared_facts_reach_the_reader_and_text_cannot_inject_requests() -> None:
    source = man.render_ocf("hostile", HOSTILE)
    text, warnings = _render(source)
    assert warnings == ""
    # Declared text is data: no new section, no font change, the leading
    # quote and dot survive, the backslash and the non-ASCII letter print.
    assert "\n.SH INJECTED" not in source
    assert ".SH INJECTED" in text
    assert "'br quote first" in text
    assert "\\fBlook\\fR like groff" in text
    assert "back\\slash and caf\u00e9 and -dashes" in text
    flat = _flat(text)
    assert "mode = select" in flat
    assert "Allowed values: fast, slow." in flat
    assert "(type select; default fast; required)" in flat
    assert "Deprecated, replaced by mode: use mode" in flat
    assert "(type integer; default 3; optional; reloadable without a restart)" in flat
    assert "secret: masked in logs" in flat
    assert "monitor timeout=20s interval=10s depth=10 role=Promoted" in flat
    # Promotable agents are created as promotable clones in the example.
    assert "pcs resource create my-hostile ocf:lsaa:hostile mode=fast promotable" in flat


@needs_groff
def test_long_pcs_example_is_wrapped_for_the_shell() -> None:
    params = [Param(f"parameter_number_{i}", "P", required=True) for i in range(6)]
    spec = AgentSpec("wide", "Wide", "Wide.", params, [Action("start", 5)])
    text, warnings = _render(man.render_ocf("wide", spec))
    assert warnings == ""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if "pcs resource create" in line)
    example = []
    for line in lines[start:]:
        example.append(line.strip())
        if not line.endswith("\\"):
            break
    assert len(example) > 1
    assert all(len(line) <= 78 for line in lines)
    joined = " ".join(part.rstrip("\\").strip() for part in example)
    for p in params:
        assert f"{p.name}={p.name.upper()}" in joined


class _Option:
    def __init__(self, name: str, **kw: object) -> None:
        self.name = name
        self.aliases = kw.get("aliases", ())
        self.shortdesc = kw.get("shortdesc", name)
        self.longdesc = kw.get("longdesc", "")
        self.type = kw.get("type", "string")
        self.default = kw.get("default")
        self.required = kw.get("required", False)
        self.choices = kw.get("choices", ())
        self._getopt = kw.get("getopt")

    def getopt(self) -> object:
        return self._getopt


class _FenceSpec:
    name = "fence_lsaa_fake"
    shortdesc = "Fake fence agent"
    longdesc = "Fences nothing."
    options = (
        _Option("ip", aliases=("ipaddr",), required=True, getopt="-a, --ip=[ip]",
                shortdesc="IP address or hostname of fencing device"),
        _Option("plug", aliases=("port",), required=True, getopt="-n, --plug=[plug]"),
        _Option("method", choices=("onoff", "cycle"), default="onoff",
                getopt="-m, --method=[method]"),
    )
    actions = ("on", "off", "reboot", "status", "metadata")


@needs_groff
def test_fence_page_lists_options_with_aliases_and_actions() -> None:
    source = man.render_fence(_FenceSpec())
    assert source.startswith(".TH FENCE_LSAA_FAKE 8 ")
    text, warnings = _render(source)
    assert warnings == ""
    flat = _flat(text)
    assert "-a, --ip=[ip] IP address or hostname of fencing device." in flat
    assert "(stdin name ip; deprecated alias ipaddr; type string; required)" in flat
    assert "Allowed values: onoff, cycle." in flat
    # pcs supplies the plug itself, so the example asks only for the others.
    assert ("pcs stonith create my-fence-lsaa-fake fence_lsaa_fake ip=IP pcmk_host_list=NODES"
            in flat)
    for action in _FenceSpec.actions:
        assert f"\n       {action}" in text


def test_fence_pages_follow_the_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(man, "_fence_specs", lambda: [_FenceSpec()])
    assert "fence_lsaa_fake.8" in man.pages()
    monkeypatch.setattr(man, "_fence_specs", list)
    assert not [n for n in man.pages() if n.endswith(".8")]


def test_main_writes_the_pages(tmp_path: pytest.TempPathFactory) -> None:
    out = tmp_path / "man"  # type: ignore[operator]
    assert man.main(["man", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(man.pages())
    assert man.main(["man"]) == 2
