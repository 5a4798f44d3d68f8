"""OCF agents, one module each.  AGENTS maps an OCF type to its module.

Tools (meta-data, man pages, the RPM file list, tests) iterate over AGENTS;
agent runs import only their own module.
"""

AGENTS = {
    "dummy": "lsaa.agents.dummy",
    "stateful": "lsaa.agents.stateful",
}
