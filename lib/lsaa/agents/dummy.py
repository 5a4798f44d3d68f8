"""ocf:lsaa:dummy — a resource that only exists as a state file.

The framework's reference agent: it exercises every framework feature without
touching the system (start writes a state file, stop removes it, monitor reads
it), so the conformance harness, the Pacemaker tests and the benchmarks can
measure the framework itself.  ``check_command`` runs a command in every
monitor, to see how the framework bounds a backend command that hangs.
"""

from __future__ import annotations

import os

from lsaa.errors import GenericError, LocalConfigError
from lsaa.ocf import OCF_NOT_RUNNING, OCF_SUCCESS
from lsaa.ocf.agent import Agent, Context
from lsaa.ocf.spec import Action, AgentSpec, Param, absolute_path

SPEC = AgentSpec(
    name="dummy",
    shortdesc="Example resource that exists as a state file",
    longdesc=(
        "A resource that does nothing but record that it is started, in a state file. "
        "Use it to test cluster configuration, constraints and the lsaa framework itself."
    ),
    params=[
        Param("state_dir", "Directory for the state file",
              "Directory where the state file is kept. Defaults to HA_RSCTMP "
              "(/run/resource-agents), which is emptied at boot.",
              check=absolute_path, unique_group="state"),
        Param("fake", "Reloadable value", "A value that can be changed without a restart "
              "(reload-agent rewrites it into the state file).", default="dummy",
              reloadable=True),
        Param("check_command", "Command run by every monitor",
              "A command (words separated by blanks, no shell) run by every monitor; a "
              "non-zero exit fails the monitor. For testing timeouts.", advanced=True),
    ],
    actions=[
        Action("start", 20),
        Action("stop", 20),
        Action("monitor", 20, interval=10, depth=0),
        Action("reload-agent", 20),
        Action("validate-all", 20),
        Action("meta-data", 5),
    ],
)


class Dummy(Agent):
    spec = SPEC

    def _path(self, ctx: Context) -> str:
        directory = ctx.p("state_dir") or ctx.state_dir
        return os.path.join(str(directory), f"lsaa-dummy-{ctx.instance_base}.state")

    def check_local(self, ctx: Context) -> None:
        directory = str(ctx.p("state_dir") or ctx.state_dir)
        if os.path.exists(directory) and not os.path.isdir(directory):
            raise LocalConfigError(f"state_dir: {directory} exists and is not a directory")

    def validate(self, ctx: Context) -> list[str]:
        cmd = ctx.p("check_command")
        if cmd is not None and not str(cmd).split():
            return ["check_command: is blank"]
        return []

    def start(self, ctx: Context) -> int:
        if self.monitor(ctx) == OCF_SUCCESS:
            return OCF_SUCCESS
        self.check_local(ctx)
        self._write(ctx)
        return OCF_SUCCESS

    def stop(self, ctx: Context) -> int:
        try:
            os.unlink(self._path(ctx))
        except FileNotFoundError:
            pass
        except OSError as e:
            raise GenericError(f"cannot remove state file: {e.strerror}") from None
        return OCF_SUCCESS

    def monitor(self, ctx: Context) -> int:
        cmd = ctx.p("check_command")
        if cmd:
            ctx.runner.run(str(cmd).split())
        try:
            with open(self._path(ctx), encoding="utf-8") as f:
                content = f.read()
        except FileNotFoundError:
            return OCF_NOT_RUNNING
        except OSError as e:
            raise GenericError(f"cannot read state file: {e.strerror}") from None
        if ctx.check_level >= 10 and not content.startswith("fake="):
            raise GenericError("state file is corrupt")
        return OCF_SUCCESS

    def reload_agent(self, ctx: Context) -> int:
        if self.monitor(ctx) == OCF_SUCCESS:
            self._write(ctx)
        return OCF_SUCCESS

    def _write(self, ctx: Context) -> None:
        path = self._path(ctx)
        try:
            os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
            tmp = path + ".tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(f"fake={ctx.p('fake')}\n")
            os.replace(tmp, path)
        except OSError as e:
            raise GenericError(f"cannot write state file {path}: {e.strerror}") from None


AGENT = Dummy()


def main() -> None:
    from lsaa.ocf.main import main as run_main

    run_main(AGENT)

