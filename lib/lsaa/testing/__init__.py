"""Test support shipped with the package, so agent tests and users' tests share it."""
