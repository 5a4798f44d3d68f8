"""The OCF resource-agent framework.

An agent declares its parameters and actions once (:mod:`lsaa.ocf.spec`); the
framework derives meta-data, parses and validates ``OCF_RESKEY_*``, dispatches
the action and owns the single exit path (:mod:`lsaa.ocf.main`).
"""

# OCF exit codes (resource-agent-api 1.1, section "Return codes")
OCF_SUCCESS = 0
OCF_ERR_GENERIC = 1
OCF_ERR_ARGS = 2
OCF_ERR_UNIMPLEMENTED = 3
OCF_ERR_PERM = 4
OCF_ERR_INSTALLED = 5
OCF_ERR_CONFIGURED = 6
OCF_NOT_RUNNING = 7
OCF_RUNNING_PROMOTED = 8
OCF_FAILED_PROMOTED = 9
OCF_DEGRADED = 190
OCF_DEGRADED_PROMOTED = 191
