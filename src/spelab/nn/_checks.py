"""Argument checks shared by every part of nn (backends, schemes, Transformer)."""

from __future__ import annotations


def check_positive_int(owner: str, **values: object) -> None:
    """Raise ValueError naming `owner` and the key unless every value is an int > 0 (bools are refused)."""
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{owner}: {key} must be a positive integer, got {value!r}")
