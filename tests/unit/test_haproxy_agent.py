"""ocf:lsaa:haproxy without haproxy: the parsers on recorded output (tests/fixtures/haproxy,
re-recorded by its capture.py), the agent's decisions with the strict fake runner, and the
process/socket logic against a stand-in master (a sleeping process with our ``-S`` argv and a
thread answering on the socket with recorded ``show proc``/``show stat``)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from ocfrun import Outcome, ocf

from lsaa.agents.haproxy import AGENT
from lsaa.backends import haproxy as hx
from lsaa.testing.fakerun import Call, FakeRunner

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "haproxy"
BIN = "/bin/sh"  # `binary` must exist and be executable; the fake runner never runs it
TEXT = """\
defaults
    mode http
frontend fe
    bind 127.0.0.1:8080
    default_backend web
backend web
    server s1 127.0.0.1:8081 check
listen lst
    bind 127.0.0.1:8082
"""


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def run(action: str, params: dict[str, str], state: Path, calls: list[Call] = (),  # type: ignore[assignment]
        level: int = 0, **meta: str) -> Outcome:
    runner = FakeRunner(calls)
    env = {"HA_RSCTMP": str(state)}
    if level:
        env["OCF_CHECK_LEVEL"] = str(level)
    out = ocf(AGENT, action, {"binary": BIN, **params}, runner=runner, env=env, **meta)
    runner.assert_done()
    return out


# -- parsers -------------------------------------------------------------------------------------


def test_show_stat_servers_and_their_state() -> None:
    stats = hx.parse_show_stat(fixture("show-stat.csv"))
    assert set(stats) == {"web", "dead", "nocheck", "maint", "drain", "empty", "lst"}
    assert [(s.name, s.status, s.serving) for s in stats["web"]] == [
        ("web1", "UP", True), ("web2", "DOWN", False)]
    assert [(s.name, s.backup) for s in stats["dead"]] == [("d1", False), ("d2", True)]
    assert [s.serving for s in stats["nocheck"]] == [True]  # no health check: always used
    assert [s.status for s in stats["maint"]] == ["MAINT"]
    assert [(s.status, s.weight, s.serving) for s in stats["drain"]] == [("UP", 0, False)]
    assert stats["empty"] == []


def test_backend_problems_name_each_backend_without_a_server_up() -> None:
    stats = hx.parse_show_stat(fixture("show-stat.csv"))
    assert hx.backend_problems(stats, ["web", "nocheck", "lst"]) == []
    assert hx.backend_problems(stats, ["web", "dead", "maint", "drain", "empty", "nope"]) == [
        "backend dead has no server up (d1 DOWN, d2 DOWN)",
        "backend maint has no server up (m1 MAINT)",
        "backend drain has no server up (w0 UP weight 0)",
        "backend empty has no server",
        "backend nope does not exist in the running haproxy",
    ]


def test_server_states_that_serve() -> None:
    def serving(status: str) -> bool:
        return hx.Server("b", "s", status).serving

    assert [serving(s) for s in ("UP", "UP 1/3", "no check")] == [True] * 3
    assert [serving(s) for s in ("DOWN", "DOWN 1/2", "NOLB", "MAINT", "DRAIN",
                                 "MAINT (resolution)")] == [False] * 6


def test_show_proc_before_and_after_reloads() -> None:
    first = hx.parse_show_proc(fixture("show-proc.txt"))
    assert first.master is not None
    assert (first.master.pid, first.master.reloads, first.master.failed) == (24634, 0, 0)
    assert [(w.pid, w.reloads) for w in first.workers] == [(24635, 0)]
    failed = hx.parse_show_proc(fixture("show-proc-failed-reload.txt"))
    assert failed.master is not None and (failed.master.reloads, failed.master.failed) == (1, 1)
    # the worker kept after a failed reload counts that reload too
    assert [(w.pid, w.reloads) for w in failed.workers] == [(24635, 1)]
    ok = hx.parse_show_proc(fixture("show-proc-reloaded.txt"))
    assert ok.master is not None and (ok.master.reloads, ok.master.failed) == (2, 0)
    assert [w.pid for w in ok.all_workers] == [25952]


def test_show_proc_old_workers_section_of_later_versions() -> None:
    text = ("#<PID>          <type>          <reloads>       <uptime>        <version>\n"
            "100             master          1 [failed: 0]   0d00h01m00s     2.8.5\n"
            "# workers\n102             worker          0               0d00h00m01s     2.8.5\n"
            "# old workers\n101             worker          1               0d00h01m00s     2.8.5\n"
            "# programs\n")
    table = hx.parse_show_proc(text)
    assert [w.pid for w in table.workers] == [102]
    assert [w.pid for w in table.old_workers] == [101]


@pytest.mark.parametrize("text", ["", "Unknown command.\n", "# pxname,svname\n"])
def test_parsers_refuse_other_answers(text: str) -> None:
    with pytest.raises(ValueError, match="not a 'show proc' answer"):
        hx.parse_show_proc(text)
    if not text.startswith("# pxname"):
        with pytest.raises(ValueError, match="not a 'show stat' answer"):
            hx.parse_show_stat(text)


def test_check_errors_put_the_specific_message_first() -> None:
    syntax = hx.check_errors(fixture("check-syntax.err"))
    assert syntax[0] == ("parsing [/WORK/h.cfg:27] : unknown keyword 'bogus_keyword' in "
                         "'listen' section")
    assert syntax[1:] == ["Error(s) found in configuration file : /WORK/h.cfg",
                          "Fatal errors found in configuration."]
    assert not hx.is_local_problem(syntax)
    missing = hx.check_errors(fixture("check-missing-file.err"))
    assert missing[0] == ("parsing [/WORK/h.cfg:9] : errorfile : error opening file "
                          "'/nonexistent/503.http'.")
    assert hx.is_local_problem(missing)


def test_proxy_sections() -> None:
    assert hx.proxy_sections(TEXT) == {"web", "lst"}


def test_cli_half_closes_and_reads_to_eof(tmp_path: Path) -> None:
    path = str(tmp_path / "m.sock")
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen(1)
    got: list[bytes] = []

    def answer() -> None:
        conn, _ = server.accept()
        data = b""
        while chunk := conn.recv(100):  # EOF only if the client half-closed
            data += chunk
        got.append(data)
        conn.sendall(b"x" * 100000)
        conn.close()

    thread = threading.Thread(target=answer)
    thread.start()
    try:
        assert hx.cli(path, "show proc", 5) == "x" * 100000
    finally:
        thread.join(5)
        server.close()
    assert got == [b"show proc\n"]
    with pytest.raises(FileNotFoundError):
        hx.cli(str(tmp_path / "none"), "show proc", 1)


# -- validation: parameters only at level 0, haproxy -c at level 10 -------------------------------


@pytest.mark.parametrize(("params", "reason"), [
    ({}, "config, config_text: set exactly one of them"),
    ({"config": "/etc/haproxy/haproxy.cfg", "config_text": TEXT},
     "config, config_text: set exactly one of them"),
    ({"config": "haproxy.cfg"}, "config: 'haproxy.cfg' is not an absolute path"),
    ({"config_text": TEXT, "backends": "web nope"},
     "backends: nope not a backend or listen section of config_text"),
    ({"config_text": TEXT, "backends": "a;b"}, "backends: 'a;b' is not a proxy name"),
    ({"config_text": TEXT, "extra_args": "-L n1 -db"}, "extra_args: -db cannot be used"),
    ({"config_text": TEXT, "binary": "sbin/haproxy"}, "binary: 'sbin/haproxy' must be"),
    ({"config_text": TEXT.replace("\n", " ")}, "config_text: has no line break (pcs resource"),
])
def test_validate_all_refuses_inherently_wrong_parameters(tmp_path: Path, params: dict[str, str],
                                                         reason: str) -> None:
    out = run("validate-all", params, tmp_path)
    assert out.rc == 6
    assert out.reasons[0].startswith("invalid configuration: " + reason), out.reasons


def test_validate_all_level0_runs_nothing(tmp_path: Path) -> None:
    assert run("validate-all", {"config_text": TEXT, "backends": "web lst"}, tmp_path).rc == 0
    assert run("validate-all", {"config": "/nonexistent.cfg"}, tmp_path).rc == 0
    assert list(tmp_path.iterdir()) == []


def test_validate_all_level10_checks_config_text_on_stdin(tmp_path: Path) -> None:
    check = Call([BIN, "-c", "-f", "/dev/stdin"], stdout="Configuration file is valid\n",
                 input=TEXT)
    assert run("validate-all", {"config_text": TEXT.rstrip("\n")}, tmp_path, [check],
               level=10).rc == 0
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_broken_config_text_is_inherent(tmp_path: Path) -> None:
    err = fixture("check-syntax.err").replace("/WORK/h.cfg", "/dev/stdin")
    check = Call([BIN, "-c", "-f", "/dev/stdin"], rc=1, stderr=err, input=TEXT)
    for action in ("validate-all", "start"):
        out = run(action, {"config_text": TEXT}, tmp_path, [check], level=10)
        assert out.rc == 6, out
        assert out.reasons == ["invalid configuration: haproxy -c: parsing [config_text:27] : "
                               "unknown keyword 'bogus_keyword' in 'listen' section"]
    assert list(tmp_path.iterdir()) == []  # start wrote nothing, started nothing


def test_config_text_needing_a_missing_file_is_local(tmp_path: Path) -> None:
    err = fixture("check-missing-file.err").replace("/WORK/h.cfg", "/dev/stdin")
    check = Call([BIN, "-c", "-f", "/dev/stdin"], rc=1, stderr=err, input=TEXT)
    out = run("start", {"config_text": TEXT}, tmp_path, [check])
    assert out.rc == 2
    assert out.reasons == ["haproxy -c: parsing [config_text:9] : errorfile : error opening "
                           "file '/nonexistent/503.http'."]


def test_broken_config_file_is_node_local(tmp_path: Path) -> None:
    cfg = tmp_path / "h.cfg"
    cfg.write_text(TEXT)
    err = fixture("check-syntax.err").replace("/WORK/h.cfg", str(cfg))
    check = Call([BIN, "-c", "-f", str(cfg)], rc=1, stderr=err)
    out = run("start", {"config": str(cfg)}, tmp_path / "state", [check])
    assert out.rc == 2
    assert out.reasons == ["config: haproxy -c: parsing [h.cfg:27] : unknown keyword "
                           "'bogus_keyword' in 'listen' section"]
    assert not (tmp_path / "state").exists()


def test_missing_config_file(tmp_path: Path) -> None:
    params = {"config": str(tmp_path / "none.cfg")}
    out = run("start", params, tmp_path)
    assert (out.rc, out.reasons) == (2, [f"config: {tmp_path}/none.cfg does not exist"])
    assert run("monitor", params, tmp_path).rc == 7  # probe: cannot be running here


def test_backends_missing_from_config_file(tmp_path: Path) -> None:
    cfg = tmp_path / "h.cfg"
    cfg.write_text(TEXT)
    out = run("validate-all", {"config": str(cfg), "backends": "web api"}, tmp_path,
              [Call([BIN, "-c", "-f", str(cfg)])], level=10)
    assert (out.rc, out.reasons) == (2, [f"backends: api not a backend or listen section of "
                                         f"{cfg}"])


def test_missing_binary(tmp_path: Path) -> None:
    params = {"config_text": TEXT, "binary": "/nonexistent/haproxy"}
    out = run("start", params, tmp_path)
    assert (out.rc, out.reasons) == (5, ["/nonexistent/haproxy is not installed (not an "
                                         "executable)"])
    assert run("monitor", params, tmp_path).rc == 7
    assert run("validate-all", params, tmp_path, level=10).rc == 5


# -- not running, stale and foreign pid files ------------------------------------------------------


def test_stopped(tmp_path: Path) -> None:
    params = {"config_text": TEXT}
    assert run("monitor", params, tmp_path).rc == 7
    assert run("monitor", params, tmp_path, interval="10000").rc == 7
    assert run("stop", params, tmp_path).rc == 0
    out = run("reload-agent", params, tmp_path)
    assert (out.rc, out.reasons) == (1, ["haproxy is not running: nothing to reload"])


def test_pid_file_naming_a_foreign_process_means_stopped(tmp_path: Path) -> None:
    (tmp_path / "lsaa-haproxy-test.pid").write_text(f"{os.getpid()}\n")  # this very test
    assert run("monitor", {"config_text": TEXT}, tmp_path).rc == 7
    assert run("stop", {"config_text": TEXT}, tmp_path).rc == 0  # and we are still alive
    assert not (tmp_path / "lsaa-haproxy-test.pid").exists()


def test_stop_ignores_invalid_parameters(tmp_path: Path) -> None:
    assert run("stop", {}, tmp_path).rc == 0  # neither config nor config_text


# -- a stand-in master -----------------------------------------------------------------------------


class FakeMaster:
    """A process whose argv carries ``-S <sock>``, and answers on ``sock`` from a thread."""

    def __init__(self, state: Path, answers: dict[str, str]) -> None:
        self.sock = str(state / "lsaa-haproxy-test.sock")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(120)", "-S", self.sock + ",mode,600"])
        (state / "lsaa-haproxy-test.pid").write_text(f"{self.proc.pid}\n")
        table = hx.parse_show_proc(fixture("show-proc.txt"))
        assert table.master is not None
        self.answers = {k: v.replace(str(table.master.pid), str(self.proc.pid))
                        for k, v in answers.items()}
        self.asked: list[str] = []
        self.server = socket.socket(socket.AF_UNIX)
        self.server.bind(self.sock)
        self.server.listen(8)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            data = b""
            while chunk := conn.recv(1000):
                data += chunk
            command = data.decode().strip()
            self.asked.append(command)
            conn.sendall(self.answers.get(command, "Unknown command.\n").encode())
            conn.close()

    def close(self) -> None:
        self.server.close()
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def master(tmp_path: Path) -> Iterator[FakeMaster]:
    fake = FakeMaster(tmp_path, {"show proc": fixture("show-proc.txt"),
                                 "@1 show stat": fixture("show-stat.csv")})
    yield fake
    fake.close()


def test_monitor_depth0_asks_the_master(tmp_path: Path, master: FakeMaster) -> None:
    assert run("monitor", {"config_text": TEXT}, tmp_path, interval="10000").rc == 0
    assert master.asked == ["show proc"]


def test_monitor_depth10_checks_backends(tmp_path: Path, master: FakeMaster) -> None:
    params = {"config_text": TEXT.replace("listen lst", "listen lst\nbackend dead"),
              "backends": "web"}
    assert run("monitor", params, tmp_path, level=10, interval="10000").rc == 0
    out = run("monitor", {**params, "backends": "web dead"}, tmp_path, level=10,
              interval="10000")
    assert (out.rc, out.reasons) == (1, ["backend dead has no server up (d1 DOWN, d2 DOWN)"])
    assert master.asked[-2:] == ["show proc", "@1 show stat"]


def test_monitor_fails_when_the_master_does_not_answer(tmp_path: Path,
                                                       master: FakeMaster) -> None:
    master.answers["show proc"] = "Unknown command.\n"
    out = run("monitor", {"config_text": TEXT}, tmp_path, interval="10000")
    assert out.rc == 1
    assert "not a 'show proc' answer" in out.reasons[0]
    master.server.close()
    os.unlink(master.sock)
    out = run("monitor", {"config_text": TEXT}, tmp_path, interval="10000")
    assert out.rc == 1  # running but unreachable: never "not running"
    assert "No such file or directory" in out.reasons[0]


def test_start_of_a_running_instance_runs_nothing(tmp_path: Path, master: FakeMaster) -> None:
    assert run("start", {"config_text": TEXT}, tmp_path).rc == 0


def test_monitor_finds_the_master_without_its_pid_file(tmp_path: Path,
                                                       master: FakeMaster) -> None:
    (tmp_path / "lsaa-haproxy-test.pid").unlink()
    assert run("monitor", {"config_text": TEXT}, tmp_path).rc == 0


def test_stop_signals_the_master_and_cleans_up(tmp_path: Path, master: FakeMaster) -> None:
    assert run("stop", {"config_text": TEXT}, tmp_path).rc == 0
    assert master.proc.wait(5) == -10  # SIGUSR1: the soft stop
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_config_text_newlines_as_pacemaker_stores_them(tmp_path: Path) -> None:
    """Pacemaker 2.1 hands the agent a newline of a CIB value as backslash-n."""
    escaped = TEXT.replace("\n", "\\n")
    check = Call([BIN, "-c", "-f", "/dev/stdin"], input=TEXT)
    assert run("validate-all", {"config_text": escaped, "backends": "web lst"}, tmp_path,
               [check], level=10).rc == 0
    # with real newlines, a backslash-n is haproxy's own escape and stays
    verbatim = TEXT + "    http-request return string a\\nb\n"
    check = Call([BIN, "-c", "-f", "/dev/stdin"], input=verbatim)
    assert run("validate-all", {"config_text": verbatim}, tmp_path, [check], level=10).rc == 0
