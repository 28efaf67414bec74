"""Benchmarks are scripts, never tests: keep pytest out of this folder even when it is
given the repository root (``testpaths = ["tests"]`` already keeps it out by default)."""

collect_ignore_glob = ["*.py"]
