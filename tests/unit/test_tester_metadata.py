"""Metadata parsing and schema choice, on literal XML."""

from __future__ import annotations

import os

import pytest

from lsaa.tester import metadata

OCF_11 = """<?xml version="1.0"?>
<resource-agent name="t" version="0.1">
<version>1.1</version>
<longdesc lang="en">l</longdesc><shortdesc lang="en">s</shortdesc>
<parameters>
<parameter name="state" required="1" unique-group="g">
<longdesc lang="en">l</longdesc><shortdesc lang="en">s</shortdesc>
<content type="string"/>
</parameter>
<parameter name="opt"><longdesc lang="en">l</longdesc><shortdesc lang="en">s</shortdesc>
<content type="boolean" default="0"/></parameter>
</parameters>
<actions>
<action name="start" timeout="20s"/>
<action name="monitor" timeout="20" interval="10s" role="Promoted"/>
<action name="monitor" timeout="20s" interval="11s" role="Unpromoted"/>
<action name="promote" timeout="2m"/>
<action name="demote" timeout="500ms"/>
</actions>
</resource-agent>
"""

FENCE = """<?xml version="1.0" ?>
<resource-agent name="fence_x" shortdesc="x">
<parameters>
<parameter name="status_file" unique="0" required="0">
<getopt mixed="--status-file=[file]" /><content type="string" />
<shortdesc lang="en">f</shortdesc></parameter>
<parameter name="verbose" unique="0" required="0">
<getopt mixed="-v, --verbose" /><content type="boolean" />
<shortdesc lang="en">v</shortdesc></parameter>
</parameters>
<actions><action name="off"/></actions>
</resource-agent>
"""


@pytest.mark.parametrize(("text", "ms"), [
    ("20s", 20000), ("20", 20000), ("2m", 120000), ("500ms", 500), ("1h", 3600000),
    (None, None), ("soon", None),
])
def test_duration_ms(text: str | None, ms: int | None) -> None:
    assert metadata.duration_ms(text) == ms


def test_parse_ocf() -> None:
    meta = metadata.parse(OCF_11)
    assert meta.name == "t" and meta.ocf_version == "1.1"
    state = meta.parameter("state")
    assert state is not None and state.required and state.content_type == "string"
    opt = meta.parameter("opt")
    assert opt is not None and not opt.required
    assert meta.promotable
    assert meta.monitor_interval_ms("Promoted") == 10000
    assert meta.monitor_interval_ms("Slave") == 11000
    assert meta.monitor_interval_ms() == 10000
    assert [a.timeout_ms for a in meta.actions if a.name in ("promote", "demote")] == [120000, 500]


def test_one_of_promote_demote_is_not_promotable() -> None:
    meta = metadata.parse(OCF_11.replace('<action name="demote" timeout="500ms"/>', ""))
    assert not meta.promotable


def test_parse_fence_longopts() -> None:
    meta = metadata.parse(FENCE)
    status_file = meta.parameter("status_file")
    verbose = meta.parameter("verbose")
    assert status_file is not None and status_file.longopt == "--status-file"
    assert verbose is not None and verbose.longopt == "--verbose"
    assert meta.ocf_version is None


@pytest.mark.parametrize("text", ["", "<not-closed>", "<html/>"])
def test_parse_rejects(text: str) -> None:
    with pytest.raises(metadata.MetadataError):
        metadata.parse(text)


def test_external_entities_are_refused_not_read() -> None:
    evil = ('<?xml version="1.0"?><!DOCTYPE r [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
            '<resource-agent name="&e;"/>')
    with pytest.raises(metadata.MetadataError, match="external entity"):
        metadata.parse(evil)


def test_pcs_schema_choice() -> None:
    assert str(metadata.pcs_schema_for(metadata.parse(OCF_11))).endswith("ocf-1.1.rng")
    no_version = OCF_11.replace("<version>1.1</version>", "")
    assert str(metadata.pcs_schema_for(metadata.parse(no_version))).endswith("ocf-1.0.rng")
    agent_version = OCF_11.replace("<version>1.1</version>", "<version>0.1.0</version>")
    assert metadata.pcs_schema_for(metadata.parse(agent_version)) is None


def test_canonical_ignores_whitespace_only() -> None:
    spaced = OCF_11.replace("<actions>", "<actions>\n\n   ").replace(">l<", ">  l  <")
    assert metadata.canonical(metadata.parse(OCF_11)) == metadata.canonical(metadata.parse(spaced))
    changed = OCF_11.replace('timeout="20s"/>', 'timeout="30s"/>', 1)
    assert metadata.canonical(metadata.parse(OCF_11)) != metadata.canonical(
        metadata.parse(changed))


@pytest.mark.skipif(not os.path.exists("/usr/share/pcs/data/ocf-1.1.rng"),
                    reason="pcs schemas not installed")
def test_validate_against_pcs_schema() -> None:
    assert metadata.validate(metadata.parse(OCF_11), "/usr/share/pcs/data/ocf-1.1.rng") == []
    bad = OCF_11.replace('required="1"', 'required="true"')
    errors = metadata.validate(metadata.parse(bad), "/usr/share/pcs/data/ocf-1.1.rng")
    assert errors and "required" in errors[0]


def test_validate_missing_schema() -> None:
    with pytest.raises(FileNotFoundError):
        metadata.validate(metadata.parse(OCF_11), "/nonexistent.rng")
