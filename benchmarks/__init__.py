"""Benchmarks: each reports ratios against a baseline measured in the same run (a shared,
noisy machine makes absolute numbers meaningless from one run to the next)."""
