"""A two-node Pacemaker cluster inside lab guests, with IPMI fencing (project issue 8).

``python -m tests.stack demo [--keep]`` / ``soak -n N``; see cluster.py and bmc.py.
"""
