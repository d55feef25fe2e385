"""Reliability tests (issue 7): faults, bad input, reproducibility."""
