#!/bin/bash
# Set up a Debian 12 machine (as root) to build and test lsaa.
# Installs the Debian packages listed in scripts/setup/apt-*.txt, creates .venv
# (with the system site-packages, so it sees python3-lxml, python3-pyghmi, ...)
# for the developer tools, and links the checkout into the system Python and
# the OCF/fence directories (make dev-install) so Pacemaker can run our agents.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
pkgs=$(sed -e 's/#.*//' scripts/setup/apt-*.txt | tr -s ' \n' ' ')
missing=$(for p in $pkgs; do
    dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || echo "$p"
done)
if [ -n "$missing" ]; then
    # policy-rc.d: packages must not try to start daemons on a machine without init
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends $pkgs
    rm -f /usr/sbin/policy-rc.d
fi
if [ ! -x .venv/bin/python ]; then
    /usr/bin/python3 -m venv --system-site-packages .venv
fi
.venv/bin/python -m pip install -q -r scripts/setup/requirements-dev.txt
make -s dev-install
echo "setup: done"
