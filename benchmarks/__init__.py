"""Benchmarks that measure mintline against a baseline in one run: `python -m benchmarks.NAME` from the repository root."""
