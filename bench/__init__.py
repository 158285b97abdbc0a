"""Benchmarks: `python -m bench.<name>`; they print their figures."""
