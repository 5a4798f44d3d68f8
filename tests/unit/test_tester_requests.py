"""The requests the harness builds: OCF environments and fence stdin/argv."""

from __future__ import annotations

from lsaa.tester import env, metadata
from lsaa.tester.fence import argv_options, stdin_text

FENCE_META = metadata.parse("""<resource-agent name="fence_x" shortdesc="x"><parameters>
<parameter name="action"><getopt mixed="-o, --action=[action]"/><content type="string"/>
</parameter>
<parameter name="plug"><getopt mixed="-n, --plug=[id]"/><content type="string"/></parameter>
<parameter name="status_file"><getopt mixed="--status-file=[file]"/><content type="string"/>
</parameter>
<parameter name="verbose"><getopt mixed="-v, --verbose"/><content type="boolean"/></parameter>
</parameters><actions/></resource-agent>""")


def test_ocf_env_is_built_from_nothing() -> None:
    built = env.ocf_env(instance="r1", rtype="Dummy", provider="heartbeat",
                        params={"state": "/x", "odd-name": "v"}, timeout_ms=3000,
                        interval_ms=0)
    assert built["PATH"] == env.PATH
    assert built["OCF_ROOT"] == "/usr/lib/ocf"
    assert built["OCF_RA_VERSION_MAJOR"] == "1" and built["OCF_RA_VERSION_MINOR"] == "1"
    assert built["OCF_RESOURCE_INSTANCE"] == "r1"
    assert built["OCF_RESOURCE_TYPE"] == "Dummy"
    assert built["OCF_RESOURCE_PROVIDER"] == "heartbeat"
    assert built["OCF_RESKEY_CRM_meta_timeout"] == "3000"
    assert built["OCF_RESKEY_CRM_meta_interval"] == "0"
    assert built["OCF_EXIT_REASON_PREFIX"] == "ocf-exit-reason:"
    # Copied verbatim: Pacemaker does no "-" to "_" mapping.
    assert built["OCF_RESKEY_odd-name"] == "v"
    assert "HOME" not in built


def test_ocf_env_without_interval_and_with_path_prepend() -> None:
    built = env.ocf_env(instance="r", rtype="t", provider="p", params={}, timeout_ms=1,
                        interval_ms=None, extra={"HA_debug": "1"}, path_prepend="/stubs")
    assert "OCF_RESKEY_CRM_meta_interval" not in built
    assert built["PATH"].startswith("/stubs:")
    assert built["HA_debug"] == "1"


def test_identify_provider_and_type() -> None:
    assert env.identify("/usr/lib/ocf/resource.d/lsaa/iscsi-target") == ("lsaa", "iscsi-target")


def test_stdin_text() -> None:
    text = stdin_text("off", "plug", "node1", {"status_file": "/s"}, ["# c", "k=v"])
    assert text == "action=off\nplug=node1\nstatus_file=/s\n# c\nk=v\n"
    assert stdin_text("metadata", None, None, {}) == "action=metadata\n"


def test_argv_uses_getopt_spelling() -> None:
    options = argv_options(FENCE_META, "status", "plug", "node1",
                           {"status_file": "/s", "verbose": "yes", "undeclared_opt": "1"})
    assert options == ["--action=status", "--plug=node1", "--status-file=/s", "--verbose",
                       "--undeclared-opt=1"]


def test_argv_drops_false_booleans_and_works_without_metadata() -> None:
    assert "--verbose" not in argv_options(FENCE_META, "on", None, None, {"verbose": "0"})
    assert argv_options(None, "on", "port", "n2", {"a_b": "1"}) == [
        "--action=on", "--port=n2", "--a-b=1"]
