"""``python3 -m lsaa.tester``: the same entry point as ``lsaa-tester``."""

import sys

from lsaa.tester.cli import main

sys.exit(main())
