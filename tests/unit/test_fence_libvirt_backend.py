"""fence_lsaa_libvirt's backend logic: the in-process test driver
(``test:///default``) for real libvirt behaviour, fakes for faults libvirt's
test driver cannot produce (lost connections, hung calls, auth prompts)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from lsaa.deadline import Deadline
from lsaa.fence_agents import FENCE_AGENTS
from lsaa.fence_agents import libvirt as agent
from lsaa.fencing.errors import FenceError, TransientFenceError, UnknownTarget
from lsaa.fencing.main import run
from lsaa.log import Log

libvirt = pytest.importorskip("libvirt")

ROOT = Path(__file__).resolve().parents[2]
TEST_UUID = "6695eb01-f6a4-8304-79aa-97f2502e193f"
SECRET = "pa ss=wo#rd "  # blanks, '=' and '#' survive stdin parsing


@pytest.fixture
def anchor() -> Any:
    """Keeps test:///default's state for the whole test (it is shared in-process
    while a connection is open), and gives the test a way to look at it."""
    libvirt.registerErrorHandler(lambda c, e: None, None)
    conn = libvirt.open("test:///default")
    dom = conn.lookupByName("test")
    if not dom.isActive():
        dom.create()
    yield conn
    for d in conn.listAllDomains(0):
        if d.name() != "test":
            if d.isActive():
                d.destroy()
            if d.isPersistent():
                d.undefine()
    dom = conn.lookupByName("test")
    if not dom.isActive():
        dom.create()
    conn.close()


def agent_run(lines: str, factory: Any = agent.factory) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    rc = run(agent.SPEC, factory, ["fence_lsaa_libvirt"], lines.encode(), {},
             validate=agent.validate, stdout=out, stderr=err)
    return rc, out.getvalue(), err.getvalue()


def state(conn: Any, name: str) -> int:
    return int(conn.lookupByName(name).state()[0])


# --- against the test driver --------------------------------------------------

def test_registered() -> None:
    assert FENCE_AGENTS["fence_lsaa_libvirt"] == "lsaa.fence_agents.libvirt"


def test_off_on_status_with_read_back(anchor: Any) -> None:
    base = "uri=test:///default\nplug=test\n"
    assert agent_run("action=status\n" + base)[0] == 0
    rc, out, _ = agent_run("action=off\n" + base)
    assert (rc, out) == (0, "Success: Powered OFF\n")
    assert state(anchor, "test") == libvirt.VIR_DOMAIN_SHUTOFF
    assert agent_run("action=status\n" + base)[0] == 2
    assert agent_run("action=off\n" + base)[0] == 0  # already off: still success
    assert agent_run("action=on\n" + base)[0] == 0
    assert state(anchor, "test") == libvirt.VIR_DOMAIN_RUNNING
    rc, out, _ = agent_run("action=reboot\n" + base)
    assert (rc, out) == (0, "Success: Rebooted\n")
    assert state(anchor, "test") == libvirt.VIR_DOMAIN_RUNNING


def test_plug_by_uuid_and_port_alias(anchor: Any) -> None:
    rc, _, _ = agent_run(f"action=off\nuri=test:///default\nport={TEST_UUID}\n")
    assert rc == 0
    assert state(anchor, "test") == libvirt.VIR_DOMAIN_SHUTOFF
    assert agent_run(f"action=status\nuri=test:///default\nplug={TEST_UUID.upper()}\n")[0] == 2


def test_unknown_domain_is_an_error_never_off(anchor: Any) -> None:
    for action in ("status", "off", "on", "reboot"):
        rc, out, err = agent_run(f"action={action}\nuri=test:///default\nplug=nosuch\n")
        assert rc == 1, action
        assert "no such domain 'nosuch'" in err
        assert err.count("\n") == 1  # one line: each is a WARNING in Pacemaker's log
    # a UUID nobody has: still unknown, not off
    assert agent_run("action=status\nuri=test:///default\n"
                     "plug=00000000-0000-0000-0000-000000000001\n")[0] == 1


def test_missing_as_off_is_opt_in(anchor: Any) -> None:
    rc, out, _ = agent_run("action=status\nuri=test:///default\nplug=nosuch\n"
                           "missing_as_off=1\n")
    assert (rc, out) == (2, "Status: OFF\n")
    assert agent_run("action=off\nuri=test:///default\nplug=nosuch\nmissing_as_off=1\n")[0] == 0


def test_paused_and_crash_states_read_on(anchor: Any) -> None:
    anchor.lookupByName("test").suspend()
    rc, out, _ = agent_run("action=status\nuri=test:///default\nplug=test\n")
    assert (rc, out) == (0, "Status: ON\n")
    assert agent_run("action=off\nuri=test:///default\nplug=test\n")[0] == 0
    assert state(anchor, "test") == libvirt.VIR_DOMAIN_SHUTOFF


def test_transient_domain_vanishing_after_our_destroy_is_off(anchor: Any) -> None:
    anchor.createXML("<domain type='test'><name>tr1</name><memory>8192</memory>"
                     "<os><type>hvm</type></os></domain>", 0)
    rc, out, err = agent_run("action=off\nuri=test:///default\nplug=tr1\n")
    assert (rc, out) == (0, "Success: Powered OFF\n"), err
    # it is gone now: a later status cannot know it was ours, so it is an error
    assert agent_run("action=status\nuri=test:///default\nplug=tr1\n")[0] == 1


def test_transient_reboot_is_off_then_a_logged_failed_on(anchor: Any) -> None:
    anchor.createXML("<domain type='test'><name>tr2</name><memory>8192</memory>"
                     "<os><type>hvm</type></os></domain>", 0)
    rc, out, _ = agent_run("action=reboot\nuri=test:///default\nplug=tr2\n")
    assert (rc, out) == (0, "Success: Powered OFF (power on failed)\n")


def test_list_and_list_status(anchor: Any) -> None:
    anchor.defineXML("<domain type='test'><name>vm-b</name><memory>8192</memory>"
                     "<os><type>hvm</type></os></domain>")
    rc, out, _ = agent_run("action=list\nuri=test:///default\n")
    assert rc == 0
    rows = [line.split(",") for line in out.splitlines()]
    assert ["test", TEST_UUID] in rows
    assert "vm-b" in [r[0] for r in rows]
    rc, out, _ = agent_run("action=list-status\nuri=test:///default\n")
    rows = [line.split(",") for line in out.splitlines()]
    assert ["test", TEST_UUID, "ON"] in rows
    assert [r[2] for r in rows if r[0] == "vm-b"] == ["OFF"]
    assert agent_run("action=monitor\nuri=test:///default\n")[0] == 0


def test_validate_uri() -> None:
    ok = ("qemu:///system", "qemu+ssh://root@hv1/system?keyfile=/k&no_tty=1",
          "qemu+tls://hv1.example.com/system?pkipath=/etc/pki/x", "test+tcp://127.0.0.1:9/default",
          "qemu+unix:///system?socket=/run/x/sock")
    for uri in ok:
        assert agent.validate({"uri": uri}, "status") == [], uri
    for uri in ("qemu", "", "default", "system", "qemu:/system", "qemu+ssh://root:pw@hv1/system",
                "qemu+libssh://hv1/system?password=x"):
        assert agent.validate({"uri": uri}, "status"), uri
    rc, _, err = agent_run("action=status\nuri=qemu\nplug=x\n")
    assert rc == 1
    assert "not an explicit libvirt URI" in err


def test_metadata_needs_no_libvirt() -> None:
    code = ("import sys; sys.modules['libvirt'] = None\n"
            "sys.argv = ['fence_lsaa_libvirt', '-o', 'metadata']\n"
            "from lsaa.fence_agents.libvirt import main; main()\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30,
                       env={**os.environ, "PYTHONPATH": str(ROOT / "lib")}, check=False)
    assert r.returncode == 0, r.stderr
    assert '<parameter name="uri" unique="0" required="1">' in r.stdout
    assert '<action name="list-status"/>' in r.stdout
    golden = (ROOT / "metadata" / "fence_lsaa_libvirt.xml").read_text()
    assert r.stdout == golden


def test_no_libvirt_is_a_clear_error() -> None:
    code = ("import sys; sys.modules['libvirt'] = None\n"
            "sys.argv = ['fence_lsaa_libvirt', '-o', 'status', '--uri', 'test:///default',"
            " '-n', 'test']\n"
            "from lsaa.fence_agents.libvirt import main; main()\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30,
                       env={**os.environ, "PYTHONPATH": str(ROOT / "lib")}, check=False)
    assert r.returncode == 1
    assert r.stderr == "ERROR: libvirt-python is not installed (python3-libvirt)\n"


def test_libvirt_says_nothing_on_stderr() -> None:
    """The launcher, unknown domain, unreachable daemon: one ERROR line, no
    'libvirt: error' lines from libvirt's default handler."""
    agent_path = str(ROOT / "fence" / "fence_lsaa_libvirt")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT / "lib")}
    for stdin, reason in (
        ("action=status\nuri=test:///default\nplug=nosuch\n", "no such domain"),
        ("action=status\nuri=test+tcp://127.0.0.1:1/default\nplug=x\nlogin_timeout=1\n"
         "power_timeout=1\n", "Connection refused"),
    ):
        r = subprocess.run(["/usr/bin/python3", agent_path], input=stdin, capture_output=True,
                           text=True, timeout=60, env=env, check=False)
        assert r.returncode == 1
        lines = r.stderr.splitlines()
        assert len(lines) == 1, r.stderr
        assert lines[0].startswith("ERROR: ") and reason in lines[0], r.stderr


# --- fakes: faults the test driver cannot produce -------------------------------

class FakeError(Exception):
    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.code = code

    def get_error_code(self) -> int:
        return self.code

    def get_error_message(self) -> str:
        return str(self)


class FakeDomain:
    def __init__(self, lib: FakeLib, name: str) -> None:
        self.lib = lib
        self._name = name

    def name(self) -> str:
        return self._name

    def UUIDString(self) -> str:
        return "11111111-2222-3333-4444-555555555555"

    def state(self) -> list[int]:
        self.lib.hook("state")
        return [self.lib.power, 1]

    def destroy(self) -> int:
        self.lib.hook("destroy")
        self.lib.power = 5
        return 0

    def create(self) -> int:
        self.lib.hook("create")
        self.lib.power = 1
        return 0


class FakeConn:
    def __init__(self, lib: FakeLib) -> None:
        self.lib = lib
        self.closed = False

    def lookupByName(self, name: str) -> FakeDomain:
        self.lib.hook("lookup")
        if name != "vm1":
            raise FakeError(42, f"Domain not found: no domain with matching name '{name}'")
        return FakeDomain(self.lib, name)

    def lookupByUUIDString(self, uuid: str) -> FakeDomain:
        raise FakeError(42, "Domain not found")

    def getLibVersion(self) -> int:
        self.lib.hook("version")
        return 9000000

    def close(self) -> int:
        self.closed = True
        return 0


class FakeLib:
    """The part of the libvirt module the backend uses; ``faults`` maps a call
    name to a list of exceptions (or "hang") to produce, one per call."""

    VIR_CRED_AUTHNAME = 2
    VIR_CRED_PASSPHRASE = 5
    VIR_CONNECT_LIST_DOMAINS_ACTIVE = 1
    VIR_CONNECT_LIST_DOMAINS_INACTIVE = 2
    libvirtError = FakeError

    def __init__(self, **faults: list[Any]) -> None:
        self.faults = faults
        self.power = 1
        self.calls: list[str] = []
        self.conns: list[FakeConn] = []
        self.release = threading.Event()
        self.handler_installed_before_connect: bool | None = None
        self.handler: Any = None
        self.answers: list[list[Any]] = []

    def hook(self, what: str) -> None:
        self.calls.append(what)
        todo = self.faults.get(what)
        if todo:
            fault = todo.pop(0)
            if fault == "hang":
                self.release.wait(30)
                raise FakeError(38, "Cannot recv data: Connection reset by peer")
            if fault is not None:
                raise fault

    def registerErrorHandler(self, fn: Any, ctx: Any) -> int:
        self.handler = fn
        return 0

    def openAuth(self, uri: str, auth: list[Any], flags: int) -> FakeConn:
        if self.handler_installed_before_connect is None:
            self.handler_installed_before_connect = self.handler is not None
        self.hook("connect")
        if "askpass" in uri:
            # what libvirt's SASL/libssh client does: ask for the credentials it needs
            creds = [[self.VIR_CRED_AUTHNAME, "Username", "", "root", None],
                     [self.VIR_CRED_PASSPHRASE, "Password", "", None, None]]
            assert set(auth[0]) >= {self.VIR_CRED_AUTHNAME, self.VIR_CRED_PASSPHRASE}
            if auth[1](creds, auth[2]) != 0:
                raise FakeError(45, "authentication failed: Failed to collect auth credentials")
            self.answers.append([c[4] for c in creds])
        conn = FakeConn(self)
        self.conns.append(conn)
        return conn


def fake_factory(lib: FakeLib) -> Any:
    def make(options: dict[str, object], log: Log, deadline: Deadline) -> agent.LibvirtBackend:
        return agent.LibvirtBackend(options, log, deadline, lib=lib)
    return make


def test_auth_callback_supplies_username_and_password() -> None:
    lib = FakeLib()
    rc, out, err = agent_run(f"action=status\nuri=qemu+tcp://askpass/system\nplug=vm1\n"
                             f"username=fencer\npassword={SECRET}\n", fake_factory(lib))
    assert rc == 0, err
    assert lib.answers == [["fencer", SECRET]]
    assert lib.handler_installed_before_connect is True


def test_auth_callback_default_user_and_no_password() -> None:
    lib = FakeLib()
    rc, _, err = agent_run("action=status\nuri=qemu+tcp://askpass/system\nplug=vm1\n",
                           fake_factory(lib))
    assert rc == 1
    assert "authentication failed" in err and "no password is configured" in err
    assert lib.calls.count("connect") == 1  # a wrong password is not retried


def test_auth_failure_is_not_retried_and_password_never_shown(tmp_path: Path) -> None:
    lib = FakeLib(connect=[FakeError(45, f"authentication failed: bad password {SECRET}")])
    debug = tmp_path / "debug.log"
    rc, out, err = agent_run(f"action=off\nuri=qemu+tcp://h/system\nplug=vm1\n"
                             f"username=u\npassword={SECRET}\nverbose=1\n"
                             f"debug_file={debug}\n", fake_factory(lib))
    assert rc == 1
    assert lib.calls.count("connect") == 1
    for text in (out, err, debug.read_text()):
        assert SECRET.strip() not in text
        assert "wo#rd" not in text
    assert "authentication failed" in err


def test_lost_connection_is_retried_never_not_found() -> None:
    # connection reset on the lookup, refused on the reconnect, then fine
    lib = FakeLib(lookup=[FakeError(38, "Cannot recv data: Connection reset by peer")],
                  connect=[None, FakeError(38, "Failed to connect socket: Connection refused")])
    rc, out, err = agent_run("action=off\nuri=qemu:///system\nplug=vm1\n", fake_factory(lib))
    assert (rc, out) == (0, "Success: Powered OFF\n"), err
    assert lib.power == 5
    assert lib.calls.count("connect") == 3


def test_connection_lost_while_waiting_reconnects() -> None:
    """The framework's read-back loop swallows transient errors without
    reconnecting; the backend must reopen the connection by itself."""
    lib = FakeLib(state=[None, FakeError(1, "internal error: client socket is closed")])
    opts = {"uri": "qemu:///system", "login_timeout": 2.0, "power_timeout": 5.0}
    b = agent.LibvirtBackend(opts, Log("t", {}), Deadline(20), lib=lib)
    b.connect()
    assert b.get_power("vm1") == "on"
    with pytest.raises(TransientFenceError):
        b.get_power("vm1")
    assert b.conn is None and lib.conns[0].closed
    assert b.get_power("vm1") == "on"  # reconnected
    assert len(lib.conns) == 2


def test_lost_connection_until_deadline_fails_clearly() -> None:
    lib = FakeLib(connect=[FakeError(38, "Failed to connect socket: Connection refused")] * 100)
    t = time.monotonic()
    rc, _, err = agent_run("action=status\nuri=qemu:///system\nplug=vm1\nlogin_timeout=0.5\n"
                           "power_timeout=0.5\n", fake_factory(lib))
    assert rc == 1
    assert "Connection refused" in err and "gave up after" in err
    assert "no such domain" not in err
    assert time.monotonic() - t < 30


def test_hung_call_is_abandoned_and_its_connection_never_closed() -> None:
    lib = FakeLib(state=["hang"])
    opts = {"uri": "qemu:///system", "login_timeout": 0.3, "power_timeout": 1.0}
    b = agent.LibvirtBackend(opts, Log("t", {}), Deadline(20), lib=lib)
    b.connect()
    first = lib.conns[0]
    with pytest.raises(TransientFenceError, match="no answer from libvirt within 0.3s"):
        b.get_power("vm1")
    assert not first.closed  # closing would block on the stuck call
    assert first in agent._KEPT
    assert b.get_power("vm1") == "on"  # a new connection
    lib.release.set()


def test_error_codes_classified() -> None:
    b = agent.LibvirtBackend({"uri": "qemu:///system"}, Log("t", {}), Deadline(5), lib=FakeLib())
    assert isinstance(b.classify("x", FakeError(42, "Domain not found")), UnknownTarget)
    for code in (1, 6, 9, 38, 39, 68, 85):
        assert type(b.classify("x", FakeError(code, "m"))) is TransientFenceError, code
    for code in (3, 5, 8, 45, 55, 79, 88, 94):
        e = b.classify("x", FakeError(code, "m"))
        assert type(e) is FenceError, code
    assert type(b.classify("x", ValueError("boom"))) is FenceError


def test_destroy_not_running_is_idempotent() -> None:
    lib = FakeLib(destroy=[FakeError(55, "Requested operation is not valid: domain is not "
                                     "running")])
    opts = {"uri": "qemu:///system"}
    b = agent.LibvirtBackend(opts, Log("t", {}), Deadline(5), lib=lib)
    b.connect()
    b.set_power("vm1", "off")  # no exception: the framework reads the state back
    assert "vm1" not in b.destroyed


def test_replaced_domain_is_an_error() -> None:
    lib = FakeLib()
    b = agent.LibvirtBackend({"uri": "qemu:///system"}, Log("t", {}), Deadline(5), lib=lib)
    b.connect()
    b.get_power("vm1")
    b.uuids["vm1"] = "99999999-2222-3333-4444-555555555555"
    with pytest.raises(FenceError, match="was replaced"):
        b.get_power("vm1")
