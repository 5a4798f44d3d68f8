"""Shared pytest configuration: markers are declared in setup.cfg."""
