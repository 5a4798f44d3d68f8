"""``python3 -m tests.cluster {status|teardown} RUN_DIR`` (from the checkout's root)."""

import sys

from .cluster import main

sys.exit(main())
