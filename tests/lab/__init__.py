"""The kernel lab: User-Mode Linux guests for tests that need real kernel features.

See labctl.py for the design; conftest.py for the pytest fixtures.
"""
