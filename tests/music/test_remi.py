"""REMI tokenisation of a real chorale: round trip, vocabulary, transposition."""

from __future__ import annotations

import numpy as np
import pytest
import symusic

from spelab.data.music.remi import ids_to_score, make_remi_tokenizer, merge_to_piano, score_to_ids
from spelab.data.music.vocab import random_transpose, transposition_table


@pytest.fixture(scope="module")
def chorale():
    from spelab.data.music.chorales import corpus_to_score

    return corpus_to_score("bach/bwv66.6")


@pytest.fixture(scope="module")
def tokenizer():
    return make_remi_tokenizer()


def grid_notes(score: symusic.Score, step: float) -> list[tuple[int, int]]:
    """(onset on a grid of `step` quarter notes, pitch) of every note, sorted."""
    tpq = score.ticks_per_quarter
    return sorted((round(n.time / tpq / step), n.pitch) for t in score.tracks for n in t.notes)


def test_round_trip_tokens_midi_tokens(tokenizer, chorale, tmp_path):
    ids = score_to_ids(tokenizer, chorale)
    assert len(ids) > 3 * chorale.note_num()  # at least pitch+velocity+duration per note
    decoded = ids_to_score(tokenizer, ids)
    path = tmp_path / "chorale.mid"
    decoded.dump_midi(str(path))
    reread = symusic.Score(str(path))
    # the notes survive on the 16th-note grid (the chorale has nothing finer)
    assert grid_notes(reread, 0.25) == grid_notes(chorale, 0.25)
    assert np.array_equal(score_to_ids(tokenizer, reread), ids)


def test_every_token_in_vocabulary(tokenizer, chorale):
    ids = score_to_ids(tokenizer, chorale)
    assert ids.min() >= len(tokenizer.config.special_tokens)  # no padding or special token inside
    assert ids.max() < len(tokenizer)
    tokens = [tokenizer[int(i)] for i in ids]
    assert {t.split("_")[0] for t in tokens} <= {"Bar", "TimeSig", "Position", "Pitch", "Velocity", "Duration"}


def test_merge_keeps_all_pitched_notes(chorale):
    merged = merge_to_piano(chorale)
    assert len(merged.tracks) == 1 and merged.note_num() == chorale.note_num()


def test_transposition_table_moves_pitches_only(tokenizer):
    vocab = [tokenizer[i] for i in range(len(tokenizer))]
    table = transposition_table(vocab, 6)
    for row, s in enumerate(range(-6, 7)):
        for i, tok in enumerate(vocab):
            j = table[row, i]
            if tok.startswith("Pitch_"):
                p = int(tok.split("_")[1]) + s
                assert (j == -1) == (f"Pitch_{p}" not in vocab)
                if j >= 0:
                    assert vocab[j] == f"Pitch_{p}"
            else:
                assert j == i


def test_random_transpose_stays_in_range(tokenizer, chorale):
    vocab = [tokenizer[i] for i in range(len(tokenizer))]
    table = transposition_table(vocab, 12)
    ids = score_to_ids(tokenizer, chorale)
    rng = np.random.default_rng(0)

    def pitch(seq):
        return [int(vocab[i].split("_")[1]) for i in seq if vocab[i].startswith("Pitch_")]

    shifts = set()
    for _ in range(30):
        out = random_transpose(ids, table, rng)
        diffs = set(np.subtract(pitch(out), pitch(ids)))
        assert len(diffs) == 1  # one shift for the whole window
        shifts |= diffs
        assert min(pitch(out)) >= 21 and max(pitch(out)) <= 108
    assert len(shifts) > 3
