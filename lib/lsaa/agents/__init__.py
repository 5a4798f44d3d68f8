"""OCF agents, one module each.  AGENTS maps an OCF type to its module.

Tools (meta-data, man pages, the RPM file list, tests) iterate over AGENTS;
agent runs import only their own module.
"""

AGENTS = {
    "drbd": "lsaa.agents.drbd",
    "dummy": "lsaa.agents.dummy",
    "haproxy": "lsaa.agents.haproxy",
    "ipvs": "lsaa.agents.ipvs",
    "iscsi-initiator": "lsaa.agents.iscsi_initiator",
    "iscsi-lun": "lsaa.agents.iscsi_lun",
    "iscsi-target": "lsaa.agents.iscsi_target",
    "lvm-sysid": "lsaa.agents.lvm_sysid",
    "stateful": "lsaa.agents.stateful",
}
