"""Helpers shared by the smoke tests (not a test module: no test functions)."""

from __future__ import annotations

import time
from typing import Callable


def wait_until(pred: Callable[[], bool], timeout: float, what: str, step: float = 0.1) -> None:
    """Poll pred until it is true; AssertionError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(step)
