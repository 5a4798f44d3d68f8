"""System paths, in one place so tests and the RPM spec can see and override them."""

from __future__ import annotations

import os

# Golden meta-data files: the RPM installs them here; a checkout has them at
# the top of the tree.  Served as-is so meta-data never needs lxml (14 ms).
# realpath: a development install links the package into site-packages.
_HERE = os.path.dirname(os.path.realpath(__file__))
METADATA_DIRS = (
    os.path.normpath(os.path.join(_HERE, "..", "..", "metadata")),
    "/usr/share/lsaa/metadata",
)
OCF_ROOT = "/usr/lib/ocf"
