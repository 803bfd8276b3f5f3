"""Benchmark suite: `python -m tests.bench.run` (see run.py). Ratios, never absolute times."""
