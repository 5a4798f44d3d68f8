"""Fence agents, one module each.  FENCE_AGENTS maps an agent name to its module.

Each module has ``SPEC`` (a FenceSpec), a backend factory, and ``main()``.
"""

FENCE_AGENTS = {
    "fence_lsaa_dummy": "lsaa.fence_agents.dummy",
    "fence_lsaa_ipmi": "lsaa.fence_agents.ipmi",
    "fence_lsaa_libvirt": "lsaa.fence_agents.libvirt",
}
