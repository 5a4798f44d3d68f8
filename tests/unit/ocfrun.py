"""Run an OCF agent in-process, as the launcher would, and capture what it says."""

from __future__ import annotations

import io
from typing import NamedTuple

from lsaa.ocf.agent import Agent
from lsaa.ocf.main import run
from lsaa.run import Runner
from lsaa.testing.fakerun import FakeRunner, env_for


class Outcome(NamedTuple):
    rc: int
    stdout: bytes
    stderr: str

    @property
    def reasons(self) -> list[str]:
        return [ln[len("ocf-exit-reason:"):] for ln in self.stderr.splitlines()
                if ln.startswith("ocf-exit-reason:")]


def ocf(agent: Agent, action: str, params: dict[str, str] | None = None,
        runner: Runner | None = None, env: dict[str, str] | None = None,
        alarm: bool = False, **meta: str) -> Outcome:
    full_env = env_for(params or {}, **meta)
    if env:
        full_env.update(env)
    out = io.BytesIO()
    err = io.StringIO()
    rc = run(agent, ["agent", action], full_env, runner=runner or FakeRunner([]),
             stdout=out, stderr=err, alarm=alarm)
    return Outcome(rc, out.getvalue(), err.getvalue())
