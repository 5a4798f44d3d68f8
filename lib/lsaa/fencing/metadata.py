"""Fence-agent metadata in fence-agents' format, built with lxml.

The shape pcs and the fencer expect (and fence-agents' metadata.rng accepts):
no <version> element (pcs reads it as OCF 1.0), ``shortdesc`` as an attribute
of the root, each parameter with ``unique``/``required``, a ``getopt``, its
content type and a ``shortdesc``; the current name carries ``obsoletes`` and
each deprecated alias is listed with ``deprecated="1"``.  As for OCF agents,
``make metadata`` writes golden files that the agent serves at run time.
"""

from __future__ import annotations

TYPE_CHECKING = False  # see lsaa.errors
if TYPE_CHECKING:
    from lsaa.fencing.spec import FenceSpec, Option


def metadata_bytes(spec: FenceSpec) -> bytes:
    """The golden file when installed, else built now (same bytes: a test keeps them so)."""
    from lsaa.ocf.metadata import served_or_built

    return served_or_built(spec.name, lambda: build_xml(spec))


def build_xml(spec: FenceSpec) -> bytes:
    from lxml import etree

    root = etree.Element("resource-agent", name=spec.name, shortdesc=spec.shortdesc)
    etree.SubElement(root, "longdesc").text = spec.longdesc
    etree.SubElement(root, "vendor-url").text = spec.vendor_url
    params = etree.SubElement(root, "parameters")

    def add(o: Option, name: str, deprecated: bool) -> None:
        attrs = {"name": name, "unique": "0", "required": "1" if o.required else "0"}
        if deprecated:
            attrs["deprecated"] = "1"
        elif o.aliases:
            attrs["obsoletes"] = o.aliases[0]
        el = etree.SubElement(params, "parameter", attrs)
        etree.SubElement(el, "getopt", mixed=o.getopt())
        content = etree.SubElement(el, "content", type=o.type)
        if o.default is not None:
            content.set("default", o.default)
        for choice in o.choices:
            etree.SubElement(content, "option", value=choice)
        etree.SubElement(el, "shortdesc", lang="en").text = (
            o.shortdesc if not deprecated else f"{o.shortdesc} (deprecated: use {o.name})")

    for o in spec.options:
        add(o, o.name, False)
        for alias in o.aliases:
            add(o, alias, True)
    actions = etree.SubElement(root, "actions")
    for a in spec.actions:
        attrs = {"name": a}
        if a == "on":
            attrs["automatic"] = "0"  # no automatic unfencing: power fencing needs none
        etree.SubElement(actions, "action", attrs)
    xml: bytes = etree.tostring(root, pretty_print=True, xml_declaration=True, encoding="UTF-8")
    return xml
