"""spelab benchmarks: each bench_*.py module has `main(device) -> list[Result]` (see bench/common.py)."""
