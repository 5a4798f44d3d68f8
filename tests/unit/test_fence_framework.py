"""The fence framework's guarantees, in-process, with scripted power backends."""

from __future__ import annotations

import io
import time
from typing import Callable, NamedTuple

import pytest

from lsaa.fence_agents import dummy
from lsaa.fencing.errors import FenceError, TransientFenceError, UnknownTarget
from lsaa.fencing.main import run
from lsaa.fencing.options import parse_stdin
from lsaa.fencing.power import OFF, ON, PowerBackend
from lsaa.fencing.spec import IP, METHOD, PASSWORD, PASSWORD_SCRIPT, PLUG, USERNAME, FenceSpec

SPEC = FenceSpec("fence_test", "t", "t", [PLUG.replace(required=True), IP, USERNAME, PASSWORD,
                                         PASSWORD_SCRIPT, METHOD],
                 vendor_url="https://example.org", multi_plug=True)


class Scripted(PowerBackend):
    """A device: ``states`` per plug; ``faults`` is a list of exceptions raised by the
    next calls to connect(); ``sticky`` plugs ignore set_power."""

    multi_plug = True
    can_cycle = True

    def __init__(self, states: dict[str, str], faults: list[Exception] | None = None,
                 sticky: tuple[str, ...] = (), fail_on: bool = False) -> None:
        self.states = states
        self.faults = faults or []
        self.sticky = sticky
        self.fail_on = fail_on
        self.connects = 0
        self.calls: list[str] = []

    def connect(self) -> None:
        self.connects += 1
        if self.faults:
            raise self.faults.pop(0)

    def get_power(self, plug):  # type: ignore[no-untyped-def]
        self.calls.append(f"get {plug}")
        if plug not in self.states:
            raise UnknownTarget(f"no such target {plug}")
        return self.states[plug]

    def set_power(self, plug, state):  # type: ignore[no-untyped-def]
        self.calls.append(f"set {plug} {state}")
        if state == ON and self.fail_on:
            raise FenceError("power on refused")
        if plug not in self.sticky:
            self.states[plug] = state

    def cycle(self, plug):  # type: ignore[no-untyped-def]
        self.calls.append(f"cycle {plug}")

    def list_plugs(self):  # type: ignore[no-untyped-def]
        return [(p, p.upper()) for p in sorted(self.states)]


class Out(NamedTuple):
    rc: int
    stdout: str
    stderr: str


def fence(backend: PowerBackend | None, stdin: str = "", argv: list[str] | None = None,
          spec: FenceSpec = SPEC, validate: Callable[..., list[str]] | None = None) -> Out:
    out, err = io.StringIO(), io.StringIO()
    rc = run(spec, lambda o, log, d: backend, ["fence_test", *(argv or [])],  # type: ignore[arg-type,return-value]
             stdin.encode(), {"HA_LOGFACILITY": "none"}, stdout=out, stderr=err,
             validate=validate)
    return Out(rc, out.getvalue(), err.getvalue())


def test_status_exit_codes():
    dev = Scripted({"n1": ON, "n2": OFF})
    assert fence(dev, "action=status\nplug=n1\n").rc == 0
    assert fence(dev, "action=status\nplug=n2\n").rc == 2
    unknown = fence(dev, "action=status\nplug=n3\n")
    assert unknown.rc == 1  # never 2: the fencer would pick the wrong device
    assert unknown.stderr == "ERROR: no such target n3\n"


def test_off_is_confirmed_by_reading_back():
    dev = Scripted({"n1": ON})
    assert fence(dev, "action=off\nplug=n1\n").rc == 0
    assert dev.calls == ["get n1", "set n1 off", "get n1"]


def test_off_that_does_not_happen_fails():
    dev = Scripted({"n1": ON}, sticky=("n1",))
    out = fence(dev, "action=off\nplug=n1\npower_timeout=1\n")
    assert out.rc == 1
    assert "did not power off within 1s (last read: on)" in out.stderr


def test_already_off_sends_nothing():
    dev = Scripted({"n1": OFF})
    assert fence(dev, "action=off\nport=n1\n").rc == 0
    assert dev.calls == ["get n1"]


def test_reboot_is_confirmed_off_then_on():
    dev = Scripted({"n1": ON})
    out = fence(dev, "action=reboot\nplug=n1\n")
    assert (out.rc, out.stdout) == (0, "Success: Rebooted\n")
    assert dev.calls == ["get n1", "set n1 off", "get n1", "set n1 on", "get n1"]


def test_reboot_succeeds_once_off_even_if_on_fails():
    dev = Scripted({"n1": ON}, fail_on=True)
    out = fence(dev, "action=reboot\nplug=n1\nretry_on=2\n")
    assert out.rc == 0
    assert dev.states["n1"] == OFF
    assert dev.calls.count("set n1 on") == 2  # retry_on attempts, as fence-agents counts


def test_reboot_tries_power_on_once_by_default_and_at_least_once():
    for extra in ("", "retry_on=0\n"):
        dev = Scripted({"n1": ON}, fail_on=True)
        out = fence(dev, f"action=reboot\nplug=n1\n{extra}")
        assert (out.rc, dev.states["n1"]) == (0, OFF)
        assert dev.calls.count("set n1 on") == 1, extra


def test_cycle_of_a_target_that_is_off_powers_it_on():
    dev = Scripted({"n1": OFF})
    out = fence(dev, "action=reboot\nplug=n1\nmethod=cycle\n")
    assert out.rc == 0
    assert "cycle n1" not in dev.calls
    assert dev.states["n1"] == ON


def test_cycle_is_marked_unconfirmed():
    dev = Scripted({"n1": ON})
    out = fence(dev, "action=reboot\nplug=n1\nmethod=cycle\n")
    assert out.rc == 0
    assert "not confirmed" in out.stdout


def test_transient_faults_are_retried_then_succeed():
    dev = Scripted({"n1": ON}, faults=[TransientFenceError("no answer"),
                                       TransientFenceError("no answer")])
    assert fence(dev, "action=off\nplug=n1\n").rc == 0
    assert dev.connects == 3


def test_transient_faults_give_up_inside_the_budget():
    dev = Scripted({"n1": ON}, faults=[TransientFenceError("no answer")] * 100)
    started = time.monotonic()
    out = fence(dev, "action=off\nplug=n1\nlogin_timeout=1\npower_timeout=1\n")
    assert out.rc == 1
    assert "gave up after" in out.stderr
    assert time.monotonic() - started < 2 * (1 + 1) + 5  # budget(): never past the deadline


def test_permanent_fault_is_not_retried():
    dev = Scripted({"n1": ON}, faults=[FenceError("wrong password")])
    assert fence(dev, "action=off\nplug=n1\n").rc == 1
    assert dev.connects == 1


def test_delay_is_honoured_for_off_only():
    dev = Scripted({"n1": ON, "n2": ON})
    started = time.monotonic()
    fence(dev, "action=status\nplug=n1\ndelay=1\n")
    assert time.monotonic() - started < 1
    fence(dev, "action=off\nplug=n2\ndelay=1\n")
    assert time.monotonic() - started >= 1


def test_stdin_rules():
    raw, unknown = parse_stdin(SPEC, b"# comment\naction=on\nport=old\nplug=new\n"
                                     b"password=ends with blank \nnodename=n1\naction=off\n"
                                     b"junk line\npasswd=alias-loses\n")
    assert raw == {"action": "off", "plug": "new", "password": "ends with blank "}
    assert unknown == ["nodename"]


def test_unknown_stdin_names_are_ignored_silently():
    dev = Scripted({"n1": ON})
    out = fence(dev, "action=status\nplug=n1\npcmk_host_list=x\nsomething=1\n")
    assert out.rc == 0
    assert out.stderr == ""


def test_argv_and_stdin_agree():
    for stdin, argv in [("action=status\nplug=n2\n", ["-o", "status", "-n", "n2"]),
                        ("action=status\nport=n2\n", ["--action=status", "--port", "n2"]),
                        ("action=list\n", ["-o", "list"])]:
        a = fence(Scripted({"n1": ON, "n2": OFF}), stdin)
        b = fence(Scripted({"n1": ON, "n2": OFF}), argv=argv)
        assert a == b


def test_bad_usage_on_the_command_line():
    out = fence(Scripted({}), argv=["--bogus"])
    assert out.rc == 1
    assert "unknown option --bogus" in out.stderr


def test_list_and_list_status_format():
    dev = Scripted({"a": ON, "b": OFF})
    assert fence(dev, "action=list\n").stdout == "a,A\nb,B\n"
    assert fence(dev, "action=list-status\n").stdout == "a,A,ON\nb,B,OFF\n"


def test_metadata_needs_no_backend():
    out = fence(None, "action=metadata\n")
    assert out.rc == 0
    assert out.stdout.startswith("<?xml")
    assert 'name="port"' in out.stdout and 'obsoletes="port"' in out.stdout


def test_validate_all_has_no_side_effects():
    dev = Scripted({"n1": ON})
    assert fence(dev, "action=validate-all\nplug=n1\n").rc == 0
    assert dev.connects == 0
    bad = fence(dev, "action=validate-all\nplug=n1\npower_timeout=soon\n")
    assert bad.rc == 1
    assert "power_timeout" in bad.stderr


@pytest.mark.parametrize("action", ["on", "off", "reboot", "status"])
def test_target_actions_need_a_plug(action):
    out = fence(Scripted({"n1": ON}), f"action={action}\n")
    assert out.rc == 1
    assert "plug" in out.stderr


def test_password_never_leaks(tmp_path):
    debug = tmp_path / "debug"
    dev = Scripted({"n1": ON}, faults=[FenceError("login as admin/Pa55word refused")])
    out = fence(dev, f"action=off\nplug=n1\npassword=Pa55word\nverbose=1\n"
                     f"debug_file={debug}\n")
    assert out.rc == 1
    assert "Pa55word" not in out.stdout + out.stderr
    assert "Pa55word" not in debug.read_text()
    assert "******" in debug.read_text()


def test_password_script_runs_without_shell(tmp_path):
    script = tmp_path / "pw.sh"
    script.write_text("#!/bin/sh\necho Scr1pted; echo second\n")
    script.chmod(0o755)
    seen: dict[str, object] = {}

    def validate(values, action):  # type: ignore[no-untyped-def]
        return []

    class Capture(Scripted):
        def connect(self) -> None:
            seen["password"] = self.options["password"]

    dev = Capture({"n1": ON})
    dev.options = {}

    def factory(options, log, deadline):  # type: ignore[no-untyped-def]
        dev.options = options
        return dev

    out, err = io.StringIO(), io.StringIO()
    rc = run(SPEC, factory, ["fence_test"],
             f"action=status\nplug=n1\npassword_script={script}\n".encode(),
             {"HA_LOGFACILITY": "none"}, stdout=out, stderr=err, validate=validate)
    assert rc == 0
    assert seen["password"] == "Scr1pted"


def test_dummy_agent_files(tmp_path):
    (tmp_path / "n1").write_text("on\n")
    out2, err = io.StringIO(), io.StringIO()
    rc = run(dummy.SPEC, dummy.factory, ["fence_lsaa_dummy"],
             f"action=off\nplug=n1\nstate_dir={tmp_path}\n".encode(), {"HA_LOGFACILITY": "none"},
             stdout=out2, stderr=err, validate=dummy.validate)
    assert rc == 0
    assert (tmp_path / "n1").read_text() == "off\n"


def test_wait_reconnects_after_a_transient_read_failure():
    class Flaky(Scripted):
        """The session dies after set_power; only a new connect() cures it."""

        dead = False

        def set_power(self, plug, state):  # type: ignore[no-untyped-def]
            super().set_power(plug, state)
            self.dead = True

        def connect(self) -> None:
            super().connect()
            self.dead = False

        def get_power(self, plug):  # type: ignore[no-untyped-def]
            if self.dead:
                raise TransientFenceError("session lost")
            return super().get_power(plug)

    dev = Flaky({"n1": ON})
    out = fence(dev, "action=off\nplug=n1\npower_timeout=5\n")
    assert out.rc == 0
    assert dev.connects == 2


def test_password_script_failure_never_shows_its_output(tmp_path):
    # A script that prints the password and then fails: the runner's error
    # message would quote the last line of stdout when stderr is empty.
    script = tmp_path / "pw.sh"
    script.write_text("#!/bin/sh\necho Leak3dPw\nexit 3\n")
    script.chmod(0o755)
    debug = tmp_path / "debug.log"
    out, err = io.StringIO(), io.StringIO()
    rc = run(SPEC, lambda o, lg, d: Scripted({"n1": ON}), ["fence_test"],
             f"action=status\nplug=n1\npassword_script={script}\n".encode(),
             {"HA_LOGFACILITY": "none", "HA_LOGFILE": str(debug)}, stdout=out, stderr=err)
    assert rc == 1
    assert "password_script" in err.getvalue() and "exited 3" in err.getvalue()
    assert "Leak3dPw" not in out.getvalue() + err.getvalue()
    assert "Leak3dPw" not in debug.read_text()
