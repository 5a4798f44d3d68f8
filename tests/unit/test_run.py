"""The command runner against real processes, and the strict fake."""

from __future__ import annotations

import os
import time

import pytest

from lsaa.deadline import Deadline
from lsaa.errors import CommandError, DeadlineExceeded, NotInstalledError
from lsaa.lock import Lock
from lsaa.run import CommandTimeout, Runner
from lsaa.testing.fakerun import Call, FakeRunner, FakeRunnerError


def runner(seconds: float = 10.0, **kw: object) -> Runner:
    return Runner(Deadline(seconds), **kw)  # type: ignore[arg-type]


def test_minimal_environment():
    os.environ["LSAA_LEAK"] = "1"
    try:
        out = runner().run(["env"]).stdout
    finally:
        del os.environ["LSAA_LEAK"]
    assert sorted(out.split()) == ["LC_ALL=C", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"]


def test_argv_must_be_a_list():
    with pytest.raises(TypeError):
        runner().run("ls -l")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        runner().run([])


def test_disallowed_exit_code_names_command_and_stderr():
    with pytest.raises(CommandError) as e:
        runner().run(["sh", "-c", "echo oops >&2; exit 3"])
    assert e.value.returncode == 3
    assert e.value.reason == "sh -c echo oops >&2; exit 3 exited 3: oops"
    assert runner().run(["sh", "-c", "exit 3"], ok=(0, 3)).rc == 3


def test_secrets_masked_in_errors():
    with pytest.raises(CommandError) as e:
        runner(secrets=["hunter2"]).run(["sh", "-c", "echo bad password hunter2 >&2; exit 1"])
    assert "hunter2" not in e.value.reason
    with pytest.raises(CommandError) as e:
        runner().run(["sh", "-c", "echo pw=$0 >&2; exit 1", "zz9"], secrets=["zz9"])
    assert "zz9" not in e.value.reason


def test_input_and_large_output_do_not_deadlock():
    big = "x" * (1 << 20)
    res = runner().run(["sh", "-c", "cat; cat >&2 /dev/null; head -c 2000000 /dev/zero >&2"],
                       input=big)
    assert res.stdout == big
    assert len(res.stderr) == 2000000


def test_timeout_kills_the_child():
    started = time.monotonic()
    with pytest.raises(CommandTimeout):
        runner().run(["sh", "-c", "echo $$ > /dev/stderr; exec sleep 30"], timeout=0.5)
    assert time.monotonic() - started < 5


def test_command_timeout_is_capped_by_the_deadline():
    r = runner(0.3)
    with pytest.raises(CommandTimeout):
        r.run(["sleep", "5"], timeout=60)
    with pytest.raises(DeadlineExceeded):
        time.sleep(0.05)
        r.run(["true"])


def test_missing_binary_is_not_installed():
    with pytest.raises(NotInstalledError, match="no-such-tool not found"):
        runner().run(["no-such-tool"])


def test_fake_runner_is_strict():
    fake = FakeRunner([Call(["a", "1"], stdout="out"), Call(["b"])])
    assert fake.run(["a", "1"]).stdout == "out"
    with pytest.raises(FakeRunnerError):
        fake.run(["c"])
    fake2 = FakeRunner([Call(["a"])])
    with pytest.raises(FakeRunnerError):
        fake2.assert_done()
    fake3 = FakeRunner([Call(["a"], rc=2, stderr="boom")])
    with pytest.raises(CommandError, match="a exited 2: boom"):
        fake3.run(["a"])


def test_lock_waits_then_gives_up_at_the_deadline(tmp_path):
    with Lock(str(tmp_path), "x", Deadline(5)):
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded), Lock(str(tmp_path), "x", Deadline(0.3)):
            pass
        assert time.monotonic() - started >= 0.2
    with Lock(str(tmp_path), "x", Deadline(1)):
        pass  # released: free again


def test_deadline_from_pacemaker_timeout():
    d = Deadline.from_timeout_ms("20000")
    assert 17.9 < d.remaining() <= 18.0  # 10 % kept in reserve
    assert Deadline.from_timeout_ms(None).total == Deadline.from_timeout_ms("garbage").total == 18.0
    assert Deadline.from_timeout_ms("1000").total == 0.5
