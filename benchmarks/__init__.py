"""Benchmarks of ``bridge`` against native apps and its peers; run ``python -m benchmarks``."""
