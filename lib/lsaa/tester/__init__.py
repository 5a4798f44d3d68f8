"""Conformance harness for OCF resource agents and fence agents.

Point it at any agent, ours or a third party's::

    lsaa-tester ocf -o state=/tmp/d.state /usr/lib/ocf/resource.d/heartbeat/Dummy
    lsaa-tester fence -o status_file=/tmp/f.st /usr/sbin/fence_dummy

or call it from tests::

    from lsaa.tester.ocf import run_ocf_checks
    report = run_ocf_checks(path, params={"state": "/tmp/d.state"}, timeout=20)
    assert report.ok, report.render()

Nothing is imported here so that ``python3 -m lsaa.tester`` and the agents that
share the ``lsaa`` package stay cheap to start.
"""
