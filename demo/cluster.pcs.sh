#!/bin/sh
# The demo's resources, as an administrator would create them: run on any one node of a
# running cluster (pcs talks to the local Pacemaker; no pcsd is needed for these commands).
#
#   db   ocf:lsaa:stateful, a promotable clone: one Promoted instance (the "primary"),
#        the others Unpromoted, like a replicated database.
#   app  ocf:lsaa:dummy, a service that must run where the primary is, and only once the
#        primary has been promoted there.
#
# state_dir is under /run, which every node empties at boot: a node that comes back
# starts with its resources stopped, as after a real power cut.
set -e

pcs resource create db ocf:lsaa:stateful state_dir=/run/lsaa-demo \
    promotable promoted-max=1 promoted-node-max=1
pcs resource create app ocf:lsaa:dummy state_dir=/run/lsaa-demo fake=v1 \
    op monitor interval=5s timeout=20s
pcs constraint colocation add app with Promoted db-clone INFINITY
pcs constraint order promote db-clone then start app
