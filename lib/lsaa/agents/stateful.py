"""ocf:lsaa:stateful — a promotable resource that exists as a state file.

The promotable counterpart of ocf:lsaa:dummy, for testing promotable clones and
the framework's promotion-score helpers: the state file holds the role;
promotion scores are 5 when unpromoted and 10 when promoted (as Pacemaker's
ocf:pacemaker:Stateful), refreshed by every monitor (probes included, so a
restarted cluster knows where to promote) and removed on stop.
"""

from __future__ import annotations

import os

from lsaa.errors import AgentError, GenericError
from lsaa.ocf import OCF_NOT_RUNNING, OCF_RUNNING_PROMOTED, OCF_SUCCESS
from lsaa.ocf.agent import Agent, Context
from lsaa.ocf.spec import Action, AgentSpec, Param, absolute_path

PROMOTED = "promoted"
UNPROMOTED = "unpromoted"
SCORES = {UNPROMOTED: 5, PROMOTED: 10}


SPEC = AgentSpec(
    name="stateful",
    shortdesc="Example promotable resource that exists as a state file",
    longdesc=(
        "A promotable resource that records its role in a state file and publishes "
        "promotion scores (5 unpromoted, 10 promoted). Use it to test promotable "
        "clone configuration and the lsaa framework."
    ),
    params=[
        Param("state_dir", "Directory for the state file",
              "Directory where the state file is kept. Defaults to HA_RSCTMP "
              "(/run/resource-agents), which is emptied at boot.",
              check=absolute_path, unique_group="state"),
    ],
    actions=[
        Action("start", 20),
        Action("stop", 20),
        Action("promote", 20),
        Action("demote", 20),
        Action("notify", 20),
        Action("monitor", 20, interval=10, role="Promoted"),
        Action("monitor", 20, interval=11, role="Unpromoted"),
        Action("validate-all", 20),
        Action("meta-data", 5),
    ],
)


class Stateful(Agent):
    spec = SPEC

    def _path(self, ctx: Context) -> str:
        directory = ctx.p("state_dir") or ctx.state_dir
        return os.path.join(str(directory), f"lsaa-stateful-{ctx.instance_base}.state")

    def _role(self, ctx: Context) -> str | None:
        try:
            with open(self._path(ctx), encoding="utf-8") as f:
                role = f.read().strip()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise GenericError(f"cannot read state file: {e.strerror}") from None
        if role not in SCORES:
            raise GenericError(f"state file holds unknown role {role!r}")
        return role

    def _set_role(self, ctx: Context, role: str) -> None:
        path = self._path(ctx)
        try:
            os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
            with open(path + ".tmp", "w", encoding="utf-8") as f:
                f.write(role + "\n")
            os.replace(path + ".tmp", path)
        except OSError as e:
            raise GenericError(f"cannot write state file {path}: {e.strerror}") from None
        self._score(ctx, SCORES[role])

    def _score(self, ctx: Context, score: int | None) -> None:
        """Publish (or with None remove) the score; outside a cluster there is no
        CIB to write to, which must not fail a test resource."""
        from lsaa.backends import crm

        try:
            if score is None:
                crm.delete_promotion_score(ctx.runner, ctx.node_name, ctx.instance)
            else:
                crm.set_promotion_score(ctx.runner, ctx.node_name, ctx.instance, score)
        except AgentError as e:
            ctx.log.warning(f"promotion score not updated: {e.reason}")

    def start(self, ctx: Context) -> int:
        if self._role(ctx) is None:
            self._set_role(ctx, UNPROMOTED)
        return OCF_SUCCESS

    def stop(self, ctx: Context) -> int:
        try:
            os.unlink(self._path(ctx))
        except FileNotFoundError:
            pass
        except OSError as e:
            raise GenericError(f"cannot remove state file: {e.strerror}") from None
        self._score(ctx, None)
        return OCF_SUCCESS

    def promote(self, ctx: Context) -> int:
        role = self._role(ctx)
        if role is None:
            raise GenericError("cannot promote: not started")
        if role != PROMOTED:
            self._set_role(ctx, PROMOTED)
        return OCF_SUCCESS

    def demote(self, ctx: Context) -> int:
        role = self._role(ctx)
        if role is None:
            raise GenericError("cannot demote: not started")
        if role != UNPROMOTED:
            self._set_role(ctx, UNPROMOTED)
        return OCF_SUCCESS

    def notify(self, ctx: Context) -> int:
        n = ctx.notify
        ctx.log.debug(f"notify {n.type}-{n.operation}: active={sorted(n.nodes('active'))}")
        return OCF_SUCCESS

    def monitor(self, ctx: Context) -> int:
        role = self._role(ctx)
        if role is None:
            return OCF_NOT_RUNNING
        if ctx.is_probe:
            self._score(ctx, SCORES[role])  # a restarted cluster relearns where to promote
        return OCF_RUNNING_PROMOTED if role == PROMOTED else OCF_SUCCESS


AGENT = Stateful()


def main() -> None:
    from lsaa.ocf.main import main as run_main

    run_main(AGENT)
