"""The fence-agent framework.

A fence agent declares its options once (:mod:`lsaa.fencing.spec`) and
implements a :class:`~lsaa.fencing.power.PowerBackend`; the framework parses
what the fencer sends on stdin (or a command line), serves metadata, runs the
action with confirmation by read-back, retries inside the deadline, and owns
the exit path (:mod:`lsaa.fencing.main`).
"""

# Exit codes of the fence-agent API (FenceAgentAPI.md)
EC_OK = 0
EC_ERROR = 1
EC_STATUS_OFF = 2  # status only: the target is powered off
