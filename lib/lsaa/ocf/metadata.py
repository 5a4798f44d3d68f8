"""OCF 1.1 meta-data from an AgentSpec.

:func:`build_xml` renders the spec with lxml (element order per ra-api.rng,
booleans as 0/1, roles as Promoted/Unpromoted, times with an ``s`` suffix,
no ``private``/``advanced`` attributes that the schemas reject).  ``make
metadata`` writes the result to ``metadata/<name>.xml``; a test keeps those
golden files identical to the code, so :func:`metadata_bytes` can serve the
file and spare every meta-data call the lxml import.
"""

from __future__ import annotations

import os

from lsaa import settings

TYPE_CHECKING = False  # see lsaa.errors
if TYPE_CHECKING:
    from collections.abc import Callable

    from lsaa.ocf.spec import AgentSpec

OCF_VERSION = "1.1"
ADVANCED = "Advanced use only: "


def served_path(name: str) -> str | None:
    """The golden meta-data file for agent ``name``, if one is installed."""
    for d in settings.METADATA_DIRS:
        path = os.path.join(d, name + ".xml")
        if os.path.isfile(path):
            return path
    return None


def metadata_bytes(spec: AgentSpec) -> bytes:
    """The agent's meta-data: the golden file when present, else built now."""
    return served_or_built(spec.name, lambda: build_xml(spec))


def served_or_built(name: str, build: Callable[[], bytes]) -> bytes:
    """The installed golden file for ``name`` (OCF or fence agent), else ``build()``.

    The two are byte-identical (a test keeps the golden files so); serving the
    file spares every meta-data call the lxml import.
    """
    path = served_path(name)
    if path is not None:
        try:
            with open(path, "rb") as f:
                return f.read()
        except OSError:
            pass
    return build()


def build_xml(spec: AgentSpec) -> bytes:
    """Render ``spec`` as OCF 1.1 meta-data (UTF-8 bytes with XML declaration)."""
    from lxml import etree

    root = etree.Element("resource-agent", name=spec.name, version=spec.version)
    etree.SubElement(root, "version").text = OCF_VERSION
    etree.SubElement(root, "longdesc", lang="en").text = spec.longdesc
    etree.SubElement(root, "shortdesc", lang="en").text = spec.shortdesc
    params = etree.SubElement(root, "parameters")
    for p in spec.params:
        attrs = {"name": p.name}
        if p.unique_group:
            attrs["unique-group"] = p.unique_group
        attrs["required"] = "1" if p.required else "0"
        if p.reloadable:
            attrs["reloadable"] = "1"
        el = etree.SubElement(params, "parameter", attrs)
        if p.deprecated is not None:
            dep = etree.SubElement(el, "deprecated")
            if p.replaced_by:
                etree.SubElement(dep, "replaced-with", name=p.replaced_by)
            etree.SubElement(dep, "desc", lang="en").text = p.deprecated
        etree.SubElement(el, "longdesc", lang="en").text = p.longdesc
        # pcs (0.11, pcs_transform.py) hides a parameter behind --full only when its
        # shortdesc starts with this phrase; the schemas reject an attribute for it.
        prefix = ADVANCED if p.advanced and not p.shortdesc.startswith(ADVANCED) else ""
        etree.SubElement(el, "shortdesc", lang="en").text = prefix + p.shortdesc
        content = etree.SubElement(el, "content", type=p.type)
        if p.default is not None:
            content.set("default", p.default)
        for choice in p.choices:
            etree.SubElement(content, "option", value=choice)
    actions = etree.SubElement(root, "actions")
    for a in spec.actions:
        attrs = {"name": a.name, "timeout": f"{a.timeout}s"}
        if a.interval is not None:
            attrs["interval"] = f"{a.interval}s"
        if a.start_delay is not None:
            attrs["start-delay"] = f"{a.start_delay}s"
        if a.depth is not None:
            attrs["depth"] = str(a.depth)
        if a.role is not None:
            attrs["role"] = a.role
        etree.SubElement(actions, "action", attrs)
    xml: bytes = etree.tostring(root, pretty_print=True, xml_declaration=True, encoding="UTF-8")
    return xml
