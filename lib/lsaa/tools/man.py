"""``python -m lsaa.tools.man DIR``: man pages from the agents' declarations.

Writes ``ocf_lsaa_<type>.7`` for every entry of :data:`lsaa.agents.AGENTS`
and ``fence_lsaa_<x>.8`` for every entry of
``lsaa.fence_agents.FENCE_AGENTS`` (skipped while that registry does not
exist).  The pages are rendered from the same ``SPEC`` objects as the
meta-data, not from the XML, so OCF 1.1 details that ra2refentry.xsl drops
(reloadable, deprecated/replaced-with, roles, depths) reach the reader.

Output is plain man(7) macros that ``groff -man -ww`` renders without a
warning; every piece of declared text goes through :func:`escape`, so no
description can inject a request or an escape sequence.
"""

from __future__ import annotations

import importlib
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from typing import Any

    from lsaa.ocf.spec import Action, AgentSpec, Param

OCF_ROOT = "/usr/lib/ocf"
PROVIDER = "lsaa"


def escape(text: str) -> str:
    """``text`` as a safe groff text line (or lines).

    Backslashes become ``\\e``; a line starting with ``.`` or ``'`` (a
    request to groff) is protected with ``\\&``; ASCII hyphen-minus is kept
    as ``\\-`` so option names and paths copy and paste correctly; characters
    outside ASCII become ``\\[uXXXX]`` so the page needs no preconv.  Blank
    lines are dropped: groff would turn them into paragraph breaks (and
    ``-ww`` warns about them in some contexts).
    """
    out_lines = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        chars = []
        for ch in line:
            if ch == "\\":
                chars.append("\\e")
            elif ch == "-":
                chars.append("\\-")
            elif ord(ch) > 126 or (ord(ch) < 32 and ch != "\t"):
                chars.append(f"\\[u{ord(ch):04X}]")
            else:
                chars.append(ch)
        esc = "".join(chars)
        if esc.startswith((".", "'")):
            esc = "\\&" + esc
        out_lines.append(esc)
    return "\n".join(out_lines)


def _bold(text: str) -> str:
    return f"\\fB{escape(text)}\\fR"


def _italic(text: str) -> str:
    return f"\\fI{escape(text)}\\fR"


def _header(name: str, section: int, title: str) -> list[str]:
    from lsaa import __version__

    # No date: the page must be byte-identical between builds of one version
    # (reproducible RPMs, and `rpm -V` compares digests).
    return [
        f'.TH {name.upper()} {section} "" "lsaa {__version__}" "{title}"',
        # Left-aligned: parameter descriptions hold long unbreakable examples
        # (real_servers="..."), which justified text cannot fit.
        ".ad l",
        ".SH NAME",
    ]


def _placeholder(p: Param) -> str:
    """A value an administrator can recognise in the pcs example."""
    if p.default is not None:
        return p.default
    if p.choices:
        return p.choices[0]
    return {"integer": "NUMBER", "boolean": "true"}.get(p.type, p.name.upper())


def _param_facts(p: Param) -> list[str]:
    facts = [f"type {p.type}"]
    if p.default is not None:
        facts.append(f"default {p.default!r}" if p.default == "" else f"default {p.default}")
    facts.append("required" if p.required else "optional")
    if p.unique_group:
        facts.append(f"unique in group {p.unique_group}")
    if p.reloadable:
        facts.append("reloadable without a restart")
    if p.secret:
        facts.append("secret: masked in logs")
    if p.advanced:
        facts.append("advanced")
    return facts


def _action_facts(a: Action) -> str:
    facts = [f"timeout={a.timeout}s"]
    if a.interval is not None:
        facts.append(f"interval={a.interval}s")
    if a.start_delay is not None:
        facts.append(f"start\\-delay={a.start_delay}s")
    if a.depth is not None:
        facts.append(f"depth={a.depth}")
    if a.role is not None:
        facts.append(f"role={a.role}")
    return " ".join(facts)


def _wrapped_command(words: Sequence[str], width: int = 64) -> list[str]:
    """A shell command as groff no-fill lines, continued with a backslash.

    Keeps each rendered line shorter than an 80-column terminal minus the
    indents, so nothing overflows the right margin.
    """
    groups: list[list[str]] = [[]]
    length = 0
    for word in words:
        if groups[-1] and length + 1 + len(word) > width:
            groups.append([])
            length = 4
        groups[-1].append(word)
        length += len(word) + 1
    lines = [escape(" ".join(g)) for g in groups]
    # groff's \e prints the backslash the shell needs to join the lines.
    return [("    " if i else "") + line + (" \\e" if i < len(lines) - 1 else "")
            for i, line in enumerate(lines)]


def _code_block(lines: Iterable[str]) -> list[str]:
    return [".PP", ".RS 4", ".nf", *lines, ".fi", ".RE"]


def render_ocf(agent_type: str, spec: AgentSpec) -> str:
    """The section-7 page of ``ocf:lsaa:<agent_type>`` as groff source."""
    page = f"ocf_{PROVIDER}_{agent_type}"
    out = _header(page, 7, "OCF resource agents")
    out.append(f"{escape(page)} \\- {escape(spec.shortdesc)}")

    out.append(".SH SYNOPSIS")
    launcher = f"{OCF_ROOT}/resource.d/{PROVIDER}/{agent_type}"
    verbs = "|".join(dict.fromkeys(a.name for a in spec.actions))
    out += [f"OCF_ROOT={escape(OCF_ROOT)}", _bold(launcher), ".br", f"{{{escape(verbs)}}}"]
    words = ["pcs", "resource", "create", f"my-{agent_type}", f"ocf:{PROVIDER}:{agent_type}"]
    words += [f"{p.name}={_placeholder(p)}" for p in spec.params if p.required]
    if spec.promotable:
        words.append("promotable")
    out.append(".PP")
    out.append("Example (required parameters only):")
    out += _code_block(_wrapped_command(words))

    out.append(".SH DESCRIPTION")
    out.append(escape(spec.longdesc))
    if spec.promotable:
        out += [".PP", "This agent is promotable: create it with \\fBpromotable\\fR "
                "(pcs) so that Pacemaker runs it as a promotable clone."]

    out.append(".SH PARAMETERS")
    if not spec.params:
        out.append("This agent takes no parameters.")
    for p in spec.params:
        out += [".TP", f"{_bold(p.name)} = {_italic(p.type)}"]
        out.append(escape(p.shortdesc.rstrip(".") + "."))
        if p.longdesc and p.longdesc != p.shortdesc:
            out += [".br", escape(p.longdesc)]
        if p.choices:
            out += [".br", "Allowed values: " + ", ".join(_bold(c) for c in p.choices) + "."]
        out += [".br", escape("(" + "; ".join(_param_facts(p)) + ")")]
        if p.deprecated is not None:
            note = "Deprecated"
            if p.replaced_by:
                note += f", replaced by {p.replaced_by}"
            note += f": {p.deprecated}" if p.deprecated else "."
            out += [".br", escape(note)]

    out.append(".SH ACTIONS")
    out.append("Advised operation settings (the meta\\-data advertises the same):")
    # A fixed tag width wide enough for "validate-all" keeps each action on one line.
    for a in spec.actions:
        out += [".TP 16", _bold(a.name), _action_facts(a)]

    out.append(".SH SEE ALSO")
    out.append(".BR pcs (8),")
    out.append(".BR crm_resource (8),")
    out.append(".BR pacemaker-execd (8)")
    return "\n".join(out) + "\n"


def _opt(spec: Any, name: str, default: Any = None) -> Any:
    """An attribute of the fence spec, tolerating older or partial shapes.

    A method (the fence Option's ``getopt()``) is called without arguments.
    """
    value = getattr(spec, name, default)
    return value() if callable(value) else value


def _fence_options(options: Sequence[Any]) -> list[str]:
    """The OPTIONS section body: command-line form, stdin name, aliases, facts."""
    out: list[str] = []
    if not options:
        out.append("This agent takes no options.")
    for o in options:
        oname = str(_opt(o, "name"))
        getopt = _opt(o, "getopt", None)
        head = _bold(str(getopt)) if getopt else _bold(oname)
        out += [".TP", head]
        short = str(_opt(o, "shortdesc", "") or "")
        long_ = str(_opt(o, "longdesc", "") or "")
        if short:
            out.append(escape(short.rstrip(".") + "."))
        if long_ and long_ != short:
            out += [".br", escape(long_)]
        choices = list(_opt(o, "choices", ()) or ())
        if choices:
            out += [".br", "Allowed values: " + ", ".join(_bold(str(c)) for c in choices) + "."]
        facts = [f"stdin name {oname}"]
        aliases = list(_opt(o, "aliases", ()) or ())
        if aliases:
            facts.append("deprecated alias " + ", ".join(str(a) for a in aliases))
        otype = _opt(o, "type", None)
        if otype:
            facts.append(f"type {otype}")
        default = _opt(o, "default", None)
        if default is not None:
            facts.append(f"default {default}")
        facts.append("required" if _opt(o, "required", False) else "optional")
        out += [".br", escape("(" + "; ".join(facts) + ")")]
    return out


def render_fence(spec: Any) -> str:
    """The section-8 page of a fence agent as groff source.

    Uses the fence spec's ``name``, ``shortdesc``, ``longdesc``, its
    ``options`` (each with ``name``, ``aliases``, ``shortdesc``,
    ``longdesc``, ``type``, ``default``, ``required``, ``getopt``) and its
    ``actions`` (names or objects with a ``name``).
    """
    name = str(spec.name)
    out = _header(name, 8, "Fence agents")
    out.append(f"{escape(name)} \\- {escape(str(spec.shortdesc))}")

    options = list(_opt(spec, "options", None) or _opt(spec, "params", ()) or ())
    actions = [a if isinstance(a, str) else a.name for a in _opt(spec, "actions", ()) or ()]

    out.append(".SH SYNOPSIS")
    out += [f".B {escape(name)}", "[\\fIOPTIONS\\fR]", ".br", f".B {escape(name)}",
            "< \\fIFILE\\fR (one \\fIname\\fR=\\fIvalue\\fR per line)"]
    words = ["pcs", "stonith", "create", f"my-{name.replace('_', '-')}", name]
    # pcs makes plug/port optional (Pacemaker supplies it), so they are not
    # shown even when the metadata says required.
    words += [f"{_opt(o, 'name')}={str(_opt(o, 'name')).upper()}" for o in options
              if _opt(o, "required", False) and _opt(o, "name") not in ("plug", "port", "action")]
    words.append("pcmk_host_list=NODES")
    out.append(".PP")
    out.append("Example:")
    out += _code_block(_wrapped_command(words))

    out.append(".SH DESCRIPTION")
    longdesc = _opt(spec, "longdesc", "") or str(spec.shortdesc)
    out.append(escape(str(longdesc)))
    out += [".PP", "The fencer runs the agent with no arguments and writes the options as "
            "\\fIname\\fR=\\fIvalue\\fR lines to its standard input; the command-line "
            "forms below are for testing by hand."]

    out.append(".SH OPTIONS")
    out += _fence_options(options)

    out.append(".SH ACTIONS")
    if actions:
        for a in actions:
            out += [".TP", _bold(a)]
            out.append(escape(_FENCE_ACTIONS.get(a, "See the fence agent API.")))
    else:
        out.append("The agent declares no actions.")

    out.append(".SH EXIT STATUS")
    out += [".TP", "\\fB0\\fR", "Success; for \\fBstatus\\fR, the target is on.",
            ".TP", "\\fB1\\fR", "Failure.",
            ".TP", "\\fB2\\fR", "For \\fBstatus\\fR: the target is off."]

    out.append(".SH SEE ALSO")
    out.append(".BR pcs (8),")
    out.append(".BR stonith_admin (8),")
    out.append(".BR pacemaker-fenced (7)")
    return "\n".join(out) + "\n"


_FENCE_ACTIONS = {
    "on": "Power the target on.",
    "off": "Power the target off.",
    "reboot": "Power the target off, then on.",
    "status": "Report the target's power state in the exit status.",
    "monitor": "Check that the fence device answers.",
    "list": "List the targets the device controls.",
    "list-status": "List the targets with their power state.",
    "metadata": "Print the agent's XML meta-data.",
    "manpage": "Print the agent's meta-data for man page tools.",
    "validate-all": "Check the options without touching the device.",
}


def _fence_specs() -> list[Any]:
    """Specs of the registered fence agents; none while the registry is absent."""
    try:
        registry = importlib.import_module("lsaa.fence_agents")
    except ImportError:
        return []
    modules = getattr(registry, "FENCE_AGENTS", None)
    if not modules:
        return []
    return [importlib.import_module(m).SPEC for m in modules.values()]


def pages() -> dict[str, str]:
    """File name -> groff source for every registered agent."""
    from lsaa.agents import AGENTS

    out: dict[str, str] = {}
    for agent_type, module in AGENTS.items():
        spec = importlib.import_module(module).SPEC
        out[f"ocf_{PROVIDER}_{agent_type}.7"] = render_ocf(agent_type, spec)
    for spec in _fence_specs():
        out[f"{spec.name}.8"] = render_fence(spec)
    return out


def main(argv: Sequence[str]) -> int:
    if len(argv) != 2 or argv[1].startswith("-"):
        sys.stderr.write("usage: python -m lsaa.tools.man DIR\n")
        return 2
    directory = argv[1]
    os.makedirs(directory, exist_ok=True)
    files = pages()
    for name, text in files.items():
        with open(os.path.join(directory, name), "w", encoding="ascii") as f:
            f.write(text)
    print(f"wrote {len(files)} man pages to {directory}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
