"""One adapter per external tool or subsystem; parsers are pure functions."""
