"""``python -m tests.lab``: boot guests, run a command, tear down (see labctl.main)."""

import sys

from .labctl import main

sys.exit(main())
