"""Parse and validate OCF and fence-agent metadata.

Which schema matters (ocf-contract.md §10.2, fence-contract.md §4):
- pcs validates OCF metadata against its own ``ocf-1.1.rng`` or ``ocf-1.0.rng``
  (chosen by the ``<version>`` element, missing = 1.0) and refuses the agent
  when that fails: fatal for us.
- resource-agents' ``metadata.rng`` is stricter and rejects valid OCF 1.1
  (Stateful fails it): a warning only.
- fence-agents' ``lib/metadata.rng`` (installed by fence-agents) is what its own
  build checks; pcs checks fence metadata against ``ocf-1.0.rng``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lsaa.tester.report import Report

PCS_RNG_DIR = "/usr/share/pcs/data"
RA_RNG = "/usr/share/resource-agents/metadata.rng"
FENCE_RNG = "/usr/share/cluster/relaxng/metadata.rng"
PCS_OCF_VERSIONS = ("1.0", "1.1")


class MetadataError(Exception):
    """The metadata is not well-formed XML or not shaped like agent metadata."""


@dataclass(frozen=True)
class Action:
    name: str
    interval_ms: int | None
    timeout_ms: int | None
    role: str | None


@dataclass(frozen=True)
class Parameter:
    name: str
    required: bool
    content_type: str | None
    longopt: str | None = None  # fence agents: "--status-file" from <getopt mixed=...>


@dataclass
class AgentMetadata:
    """What the harness needs from metadata, plus the parsed tree for validation."""

    name: str
    ocf_version: str | None
    parameters: list[Parameter] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)
    tree: Any = None  # lxml root element; Any because lxml ships no type stubs here

    def has_action(self, name: str) -> bool:
        return any(a.name == name for a in self.actions)

    def parameter(self, name: str) -> Parameter | None:
        for parameter in self.parameters:
            if parameter.name == name:
                return parameter
        return None

    @property
    def promotable(self) -> bool:
        """pcs's rule (``types.py``): both promote and demote are advertised."""
        return self.has_action("promote") and self.has_action("demote")

    def monitor_interval_ms(self, role: str | None = None) -> int | None:
        """Interval of the advertised monitor for ``role`` (any role when None)."""
        roles = {role.lower()} if role else None
        if role and role.lower() in ("promoted", "master"):
            roles = {"promoted", "master"}
        elif role and role.lower() in ("unpromoted", "slave"):
            roles = {"unpromoted", "slave"}
        for action in self.actions:
            if action.name != "monitor" or not action.interval_ms:
                continue
            if roles is None or (action.role or "").lower() in roles:
                return action.interval_ms
        return None


_DURATION = re.compile(r"^\s*(\d+)\s*(ms|msec|s|sec|m|min|h|hr|d)?\s*$", re.IGNORECASE)
_FACTORS = {"ms": 1, "msec": 1, "s": 1000, "sec": 1000, "m": 60000, "min": 60000,
            "h": 3600000, "hr": 3600000, "d": 86400000}


def duration_ms(text: str | None) -> int | None:
    """Parse an OCF action time ("20s", "10", "2m", "500ms") to ms; None if absent or bad.

    A bare number means seconds, as Pacemaker's ``crm_get_msec`` reads it.
    """
    if text is None:
        return None
    match = _DURATION.match(text)
    if not match:
        return None
    unit = (match.group(2) or "s").lower()
    return int(match.group(1)) * _FACTORS[unit]


_LONGOPT = re.compile(r"(--[A-Za-z0-9][A-Za-z0-9_-]*)")


def parse(xml: str) -> AgentMetadata:
    """Parse OCF or fence metadata text. Raises MetadataError when it cannot."""
    from lxml import etree

    # The agent under test is not trusted: no entities, no DTD, no network.
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    try:
        root = etree.fromstring(xml.encode(), parser)  # noqa: S320 -- hardened parser above
    except etree.XMLSyntaxError as exc:
        raise MetadataError(f"not well-formed XML: {exc}") from exc
    if root.tag != "resource-agent":
        raise MetadataError(f"root element is <{root.tag}>, not <resource-agent>")
    version = root.findtext("version")
    result = AgentMetadata(
        name=root.get("name", ""),
        ocf_version=version.strip() if version is not None else None,
        tree=root,
    )
    for node in root.iterfind("parameters/parameter"):
        content = node.find("content")
        getopt = node.find("getopt")
        longopt = None
        if getopt is not None:
            match = _LONGOPT.search(getopt.get("mixed", ""))
            longopt = match.group(1) if match else None
        result.parameters.append(Parameter(
            name=node.get("name", ""),
            required=node.get("required") == "1",
            content_type=content.get("type") if content is not None else None,
            longopt=longopt,
        ))
    for node in root.iterfind("actions/action"):
        result.actions.append(Action(
            name=node.get("name", ""),
            interval_ms=duration_ms(node.get("interval")),
            timeout_ms=duration_ms(node.get("timeout")),
            role=node.get("role"),
        ))
    return result


@cache
def _schema(path: str) -> Any:
    from lxml import etree

    # Installed system schemas, not agent output.
    return etree.RelaxNG(etree.parse(path))  # noqa: S320


def validate(meta: AgentMetadata, rng_path: str) -> list[str]:
    """Validate against the RelaxNG file; return the error lines (empty = valid).

    Raises FileNotFoundError when the schema is not installed.
    """
    if not os.path.exists(rng_path):
        raise FileNotFoundError(rng_path)
    schema = _schema(rng_path)
    if schema.validate(meta.tree):
        return []
    return [f"line {e.line}: {e.message}" for e in schema.error_log] or ["invalid"]


def check_schema(report: Report, name: str, meta: AgentMetadata, rng: str, severity: str,
                 consequence: str) -> None:
    """Add check ``name`` to ``report``: PASS if ``meta`` is valid against ``rng``,
    ``severity`` (with the first error and its ``consequence``) if not, SKIP if the
    schema is not installed.  Shared by the OCF and the fence checks."""
    from lsaa.tester.report import PASS, SKIP

    try:
        errors = validate(meta, rng)
    except FileNotFoundError:
        report.add(name, SKIP, f"{rng} is not installed")
        return
    if errors:
        report.add(name, severity, f"invalid against {rng} ({consequence}): {errors[0]}")
    else:
        report.add(name, PASS, f"valid against {rng}")


def pcs_schema_for(meta: AgentMetadata) -> str | None:
    """The pcs schema pcs would use for this metadata, or None if pcs refuses the version."""
    version = meta.ocf_version or "1.0"
    if version not in PCS_OCF_VERSIONS:
        return None
    return os.path.join(PCS_RNG_DIR, f"ocf-{version}.rng")


def canonical(meta: AgentMetadata) -> bytes:
    """Whitespace-insensitive serialisation, to compare two metadata outputs."""
    from lxml import etree

    parser = etree.XMLParser(remove_blank_text=True, resolve_entities=False, no_network=True)
    root = etree.fromstring(etree.tostring(meta.tree), parser)  # noqa: S320 -- hardened
    for element in root.iter():
        if element.text is not None:
            element.text = " ".join(element.text.split())
        if element.tail is not None:
            element.tail = " ".join(element.tail.split()) or None
    result: bytes = etree.tostring(root, method="c14n")
    return result
