"""What an agent module provides, and what the framework hands to it.

An agent is a subclass of :class:`Agent` with a ``spec`` and one method per
declared action (``reload-agent`` becomes ``reload_agent``).  Each action
method takes the :class:`Context` and returns an OCF exit code; failures are
raised as :mod:`lsaa.errors` exceptions and never turned into exit codes here.
"""

from __future__ import annotations

import os

from lsaa.deadline import Deadline
from lsaa.errors import UnimplementedError

TYPE_CHECKING = False  # see lsaa.errors
if TYPE_CHECKING:
    from collections.abc import Mapping

    from lsaa.log import Log
    from lsaa.ocf.notify import Notify
    from lsaa.ocf.spec import AgentSpec
    from lsaa.run import Runner

STATE_DIR = "/run/resource-agents"  # resource-agents' tmpfiles dir; HA_RSCTMP overrides


class Context:
    """One action's view of the world: parameters, meta attributes, deadline, tools."""

    def __init__(
        self,
        spec: AgentSpec,
        action: str,
        env: Mapping[str, str],
        params: dict[str, object],
        log: Log,
        deadline: Deadline,
        runner: Runner | None = None,
    ) -> None:
        self.spec = spec
        self.action = action
        self.env = env
        self.params = params
        self.log = log
        self.deadline = deadline
        self._runner = runner
        self.meta = {k[len("OCF_RESKEY_CRM_meta_"):]: v for k, v in env.items()
                     if k.startswith("OCF_RESKEY_CRM_meta_")}
        self.instance = env.get("OCF_RESOURCE_INSTANCE") or spec.name
        # Globally-unique clone instances are "rsc:N": not usable in file names.
        self.instance_base = self.instance.split(":", 1)[0]
        self.interval_ms = _int(self.meta.get("interval"), 0)
        self.timeout_ms = _int(self.meta.get("timeout"), 20000)
        # Newer Pacemaker passes OCF_CHECK_LEVEL bare; older stacks prefixed it.
        self.check_level = _int(env.get("OCF_CHECK_LEVEL") or
                                env.get("OCF_RESKEY_OCF_CHECK_LEVEL"), 0)
        self.state_dir = env.get("HA_RSCTMP") or STATE_DIR
        self._node: str | None = None

    @property
    def is_probe(self) -> bool:
        """A monitor with interval 0 or unset (crm_resource never sets it)."""
        return self.action in ("monitor", "status") and self.interval_ms == 0

    @property
    def runner(self) -> Runner:
        """The command runner bound to this action's deadline (created on first use)."""
        if self._runner is None:
            from lsaa.run import Runner

            self._runner = Runner(self.deadline, self.log, self.log.secrets)
        return self._runner

    @property
    def node_name(self) -> str:
        """This node's cluster name: CRM_meta_on_node, else ``crm_node -n``."""
        if self._node is None:
            self._node = self.meta.get("on_node") or ""
            if not self._node:
                from lsaa.backends import crm

                self._node = crm.local_node_name(self.runner)
        return self._node

    @property
    def notify(self) -> Notify:
        from lsaa.ocf.notify import Notify

        return Notify(self.meta)

    def p(self, name: str) -> object:
        """The typed value of parameter ``name`` (None when unset without default)."""
        return self.params[name]

    def state_file(self, suffix: str) -> str:
        """A per-instance path in the state directory (emptied at boot)."""
        return os.path.join(self.state_dir, f"lsaa-{self.spec.name}-{self.instance_base}.{suffix}")


def _int(raw: str | None, default: int) -> int:
    try:
        return int(raw) if raw else default
    except ValueError:
        return default


class Agent:
    """Base class for OCF agents.  Subclasses set ``spec`` and define action methods."""

    spec: AgentSpec

    #: True when stop finds what to stop without the parameters (e.g. by the
    #: instance name): stop then runs even with an invalid configuration, with
    #: the invalid values as None, and without validate().  An instance started
    #: with a configuration since made invalid (crm_resource --force-stop with
    #: new parameters) is then still stopped instead of reported stopped.
    stop_despite_invalid = False

    def validate(self, ctx: Context) -> list[str]:
        """Problems beyond what typed parsing catches, as "<param>: <problem>" strings.

        Must not look at the local system (check level 0): a node that will
        never run the resource must still be able to validate it.  Raise
        instead for node-local trouble found at ``ctx.check_level >= 10``.
        """
        return []

    def validate_all(self, ctx: Context) -> int:
        """validate-all beyond the framework's checks: local checks at level 10."""
        if ctx.check_level >= 10:
            self.check_local(ctx)
        return 0

    def check_local(self, ctx: Context) -> None:
        """Raise NotInstalledError / LocalConfigError when this node cannot run it."""

    def handler(self, action: str) -> object:
        """The bound method implementing ``action``."""
        method = getattr(self, action.replace("-", "_"), None)
        if method is None:
            raise UnimplementedError(f"action {action} is not implemented")
        return method
