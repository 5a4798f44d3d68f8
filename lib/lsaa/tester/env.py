"""The environment Pacemaker gives an OCF agent (ocf-contract.md §5).

Built from nothing, like ``env -i``: the agent sees what pacemaker-execd would
pass and nothing from the harness's own shell, so an agent that works here
does not secretly depend on a variable of the administrator's login session.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
OCF_ROOT = "/usr/lib/ocf"
# Pacemaker 2.1.5's CRM_FEATURE_SET (what `cibadmin --empty` writes).
CRM_FEATURE_SET = "3.16.1"
EXIT_REASON_PREFIX = "ocf-exit-reason:"


def identify(agent_path: str) -> tuple[str, str]:
    """(provider, type) from ``.../resource.d/<provider>/<type>``.

    For an agent outside ``resource.d`` the parent directory still names the
    provider, which is what an administrator installing it there would get.
    """
    path = os.path.abspath(agent_path)
    return os.path.basename(os.path.dirname(path)), os.path.basename(path)


def ocf_env(
    *,
    instance: str,
    rtype: str,
    provider: str,
    params: Mapping[str, str],
    timeout_ms: int,
    interval_ms: int | None,
    extra: Mapping[str, str] | None = None,
    path_prepend: str | None = None,
) -> dict[str, str]:
    """Environment for one action.

    ``interval_ms`` None leaves ``OCF_RESKEY_CRM_meta_interval`` unset, as
    ``crm_resource --validate/--force-check`` do; agents must read that as 0.
    Parameters are copied verbatim (no ``-``→``_`` mapping), as Pacemaker does.
    ``path_prepend`` puts a directory first in PATH (used for hang stubs).
    """
    env = {
        "PATH": f"{path_prepend}:{PATH}" if path_prepend else PATH,
        "OCF_ROOT": OCF_ROOT,
        "OCF_RA_VERSION_MAJOR": "1",
        "OCF_RA_VERSION_MINOR": "1",
        "OCF_RESOURCE_INSTANCE": instance,
        "OCF_RESOURCE_TYPE": rtype,
        "OCF_RESOURCE_PROVIDER": provider,
        "OCF_RESKEY_crm_feature_set": CRM_FEATURE_SET,
        "OCF_RESKEY_CRM_meta_timeout": str(timeout_ms),
        "OCF_EXIT_REASON_PREFIX": EXIT_REASON_PREFIX,
    }
    if interval_ms is not None:
        env["OCF_RESKEY_CRM_meta_interval"] = str(interval_ms)
    for name, value in params.items():
        env[f"OCF_RESKEY_{name}"] = value
    if extra:
        env.update(extra)
    return env


def fence_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for a fence agent as pacemaker-fenced runs it (``PCMK_service``)."""
    env = {"PATH": PATH, "PCMK_service": "pacemaker-fenced"}
    if extra:
        env.update(extra)
    return env
