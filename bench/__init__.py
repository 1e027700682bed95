"""Benchmarks (`python -m bench`) and the self-reenactment quality protocol (`python -m bench.quality`)."""
