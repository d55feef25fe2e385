"""Token-level helpers shared by the music datasets: transposition tables over a vocabulary.

A transposition by `s` semitones maps every token id to another id (pitches and chord roots move,
everything else stays); ids that would leave the vocabulary map to -1. A window can be transposed
by `s` only if none of its tokens maps to -1, which keeps pitches inside the vocabulary's range.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

TokenShift = Callable[[str, int], "str | None"]


def shift_pitch_token(token: str, semitones: int, prefixes: Sequence[str] = ("Pitch_",)) -> str | None:
    """'Pitch_60' shifted by 2 -> 'Pitch_62'; non-pitch tokens unchanged (drum pitches use another prefix)."""
    for prefix in prefixes:
        if token.startswith(prefix):
            value = token[len(prefix) :]
            if value.lstrip("-").isdigit():
                return f"{prefix}{int(value) + semitones}"
    return token


def transposition_table(vocab: Sequence[str], max_shift: int, shift: TokenShift = shift_pitch_token) -> np.ndarray:
    """(2*max_shift+1, V) int64 table: row `s + max_shift` maps each id to its transposed id, or -1."""
    index = {tok: i for i, tok in enumerate(vocab)}
    table = np.full((2 * max_shift + 1, len(vocab)), -1, dtype=np.int64)
    for row, s in enumerate(range(-max_shift, max_shift + 1)):
        for i, tok in enumerate(vocab):
            moved = shift(tok, s)
            if moved is not None and moved in index:
                table[row, i] = index[moved]
    return table


def random_transpose(ids: np.ndarray, table: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Transpose `ids` by a shift drawn uniformly among those that keep every token in the vocabulary."""
    mapped = table[:, ids]  # (S, N)
    allowed = np.flatnonzero((mapped >= 0).all(axis=1))
    if allowed.size == 0:  # cannot happen: shift 0 is the identity
        return ids
    return mapped[rng.choice(allowed)]
