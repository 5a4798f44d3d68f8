"""Build-time tools (meta-data, man pages); never imported by an agent run."""
