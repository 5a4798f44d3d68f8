"""lsaa: Pacemaker OCF resource agents and fence agents.

Nothing is imported here: an agent process pays only for the modules its
action needs (meta-data and a quiet monitor run in a bare interpreter's time).
"""

__version__ = "0.1.0"
