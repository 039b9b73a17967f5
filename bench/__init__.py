"""Benchmarks of the comments service: `python -m bench` (`make bench`); see docs/benchmarks.md."""
