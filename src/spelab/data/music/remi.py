"""REMI tokenisation of single-stream (piano-like) scores with miditok, on symusic scores.

All tracks are merged into one piano track before encoding, so a piece is one token sequence
(Bar, TimeSig, Position, Pitch, Velocity, Duration). The padding token PAD_None has id 0, the
padding id of the data contract.
"""

from __future__ import annotations

import numpy as np
import symusic
from miditok import REMI, TokenizerConfig
from miditok.utils import merge_tracks

PITCH_RANGE = (21, 109)  # piano range, end exclusive as miditok expects


def make_remi_tokenizer(
    pitch_range: tuple[int, int] = PITCH_RANGE, num_velocities: int = 8, positions_per_beat: int = 4
) -> REMI:
    """A REMI tokenizer on a 16th-note grid (beats 0-4) and 8th notes for long durations (4-12 beats)."""
    if positions_per_beat not in (1, 2, 4, 8, 12, 16):
        raise ValueError(f"positions_per_beat must be one of 1, 2, 4, 8, 12, 16, got {positions_per_beat}")
    config = TokenizerConfig(
        pitch_range=tuple(pitch_range),
        num_velocities=num_velocities,
        beat_res={(0, 4): positions_per_beat, (4, 12): max(1, positions_per_beat // 2)},
        use_time_signatures=True,
        use_tempos=False,
        use_programs=False,
        use_chords=False,
        special_tokens=["PAD", "BOS", "EOS"],
    )
    tokenizer = REMI(config)
    assert tokenizer.pad_token_id == 0, "the data contract needs pad id 0"
    return tokenizer


def merge_to_piano(score: symusic.Score) -> symusic.Score:
    """One non-drum track holding every pitched note of `score` (drum tracks are dropped)."""
    out = score.copy()
    pitched = [t for t in out.tracks if not t.is_drum and len(t.notes)]
    while len(out.tracks):
        out.tracks.pop()
    if pitched:
        track = merge_tracks(pitched, effects=False)
        track.program, track.is_drum, track.name = 0, False, "piano"
        out.tracks.append(track)
    return out


def score_to_ids(tokenizer: REMI, score: symusic.Score) -> np.ndarray:
    """REMI ids (int32) of the merged score; empty when the score has no pitched notes."""
    merged = merge_to_piano(score)
    if not len(merged.tracks):
        return np.zeros(0, dtype=np.int32)
    seq = tokenizer.encode(merged)
    seq = seq[0] if isinstance(seq, list) else seq
    return np.asarray(seq.ids, dtype=np.int32)


def ids_to_score(tokenizer: REMI, ids) -> symusic.Score:
    """Decode REMI ids (padding and special tokens ignored) to a one-track symusic score."""
    keep = [int(i) for i in ids if int(i) >= len(tokenizer.config.special_tokens)]
    return tokenizer.decode([keep])
