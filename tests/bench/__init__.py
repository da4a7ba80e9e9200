"""Benchmarks, not tests: scripts that print figures (wall time, requests, lines sent) by size.

Each runs from the repository root as ``.venv/bin/python -m tests.bench.<script>`` against the
embedded lab on 127.0.0.1. Their names do not start with ``test_``, so pytest never collects
them, and nothing here asserts on time: a script exits non-zero only when a count that must
not depend on the size (requests per observe, lines sent by a no-op pass) does, or when the
daemon's pass fails or runs while it should be idle.
"""
